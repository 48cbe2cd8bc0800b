#include "bq_events.h"

#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "bq_row.h"
#include "bq_schema.h"
#include "lsn.h"

/* How an event field becomes a cell. */
typedef enum cell_form {
    CELL_AS_IS = 0,    /* strings, integers, booleans, RFC 3339 times */
    CELL_LSN = 1,      /* "0/16B3748" -> INT64, as the changelog's LSNs */
    CELL_JSON_TEXT = 2 /* a JSON column: insertAll takes JSON text */
} cell_form;

typedef struct event_column {
    const char *name, *type, *description;
    cell_form form;
} event_column;

/* Every such event's position fields, in the event's order. */
static const event_column position_columns[] = {
    {"op", "STRING", "message, begin or commit", CELL_AS_IS},
    {"lsn", "INT64", "the event's WAL position", CELL_LSN},
    {"commit_lsn", "INT64",
     "commit LSN of its transaction (a non-transactional message: its own "
     "LSN)",
     CELL_LSN},
    {"seq", "INT64",
     "position in its transaction (0: a non-transactional message)",
     CELL_AS_IS},
    {"xid", "INT64", "transaction id (0: a non-transactional message)",
     CELL_AS_IS},
    {"commit_time", "TIMESTAMP",
     "commit time (NULL: a non-transactional message)", CELL_AS_IS},
    {NULL, NULL, NULL, CELL_AS_IS}};

static const event_column message_columns[] = {
    {"prefix", "STRING", "the message's prefix", CELL_AS_IS},
    {"content", "STRING", "the content, when it is valid UTF-8", CELL_AS_IS},
    {"content_base64", "BYTES", "the content, when it is not valid UTF-8",
     CELL_AS_IS},
    {"transactional", "BOOL", "part of its transaction", CELL_AS_IS},
    {NULL, NULL, NULL, CELL_AS_IS}};

static const event_column transaction_columns[] = {
    {"event_count", "INT64", "commit: the transaction's delivered events",
     CELL_AS_IS},
    {"tables", "JSON", "commit: events per table (\"schema.table\": n)",
     CELL_JSON_TEXT},
    {"messages", "INT64", "commit: messages among the events", CELL_AS_IS},
    {NULL, NULL, NULL, CELL_AS_IS}};

static const event_column *kind_columns(bq_event_table_kind kind)
{
    return kind == BQ_MESSAGES_TABLE ? message_columns : transaction_columns;
}

static void append_fields(json_t *fields, const event_column *cols)
{
    for (const event_column *c = cols; c->name; c++)
        json_array_append_new(
            fields, bq_field_json(c->name, c->type, false, c->description));
}

char *bq_event_table_json(const char *project, const char *dataset,
                          const char *table_id, bq_event_table_kind kind)
{
    json_t *fields = json_array();
    append_fields(fields, position_columns);
    append_fields(fields, kind_columns(kind));
    return bq_table_json(project, dataset, table_id, fields,
                         kind == BQ_MESSAGES_TABLE
                             ? "pgspout: one row per logical decoding message"
                             : "pgspout: one row per begin and commit event");
}

/* The cell of one column into row; false with err on an unexpected form. */
static bool set_cell(json_t *row, const event_column *c, json_t *value,
                     char *err, size_t errlen)
{
    uint64_t lsn;

    if (!value || json_is_null(value))
        return true;
    if (c->form == CELL_LSN) {
        if (!json_is_string(value) ||
            !lsn_parse(json_string_value(value), &lsn))
            goto bad;
        json_object_set_new(row, c->name, json_integer((json_int_t)lsn));
    } else if (c->form == CELL_JSON_TEXT) {
        char *text = xnonnull(json_dumps(value, JSON_COMPACT));
        json_object_set_new(row, c->name, json_string(text));
        free(text);
    } else {
        json_object_set(row, c->name, value);
    }
    return true;
bad:
    snprintf(err, errlen, "the event's \"%s\" is not a WAL position", c->name);
    return false;
}

static bool set_cells(json_t *row, json_t *event, const event_column *cols,
                      char *err, size_t errlen)
{
    for (const event_column *c = cols; c->name; c++)
        if (!set_cell(row, c, json_object_get(event, c->name), err, errlen))
            return false;
    return true;
}

json_t *bq_event_row(json_t *event, pgspout_position pos,
                     bq_event_table_kind kind, char *err, size_t errlen)
{
    char id[64];
    json_t *row = json_object();

    if (!set_cells(row, event, position_columns, err, errlen) ||
        !set_cells(row, event, kind_columns(kind), err, errlen)) {
        json_decref(row);
        return NULL;
    }
    bq_insert_id(pos, NULL, id, sizeof id);
    return json_pack("{s:s, s:o}", "insertId", id, "json", row);
}
