#include "host_columns.h"

#include "event_internal.h"

/* The relation's column, or NULL when the event has no table or no such
 * column. */
static const relation_column *event_column(const pgspout_event *ev, int column)
{
    if (!ev->rel || column < 0 || column >= ev->rel->ncols)
        return NULL;
    return &ev->rel->cols[column];
}

int host_event_column_count(const pgspout_event *ev)
{
    return ev->rel ? ev->rel->ncols : 0;
}

const char *host_event_column_name(const pgspout_event *ev, int column)
{
    const relation_column *col = event_column(ev, column);
    return col ? col->name : NULL;
}

uint32_t host_event_column_type_oid(const pgspout_event *ev, int column)
{
    const relation_column *col = event_column(ev, column);
    return col ? col->type_oid : 0;
}

const char *host_event_column_type_name(const pgspout_event *ev, int column)
{
    const relation_column *col = event_column(ev, column);
    return col ? col->type_name : NULL;
}

bool host_event_column_is_key(const pgspout_event *ev, int column)
{
    const relation_column *col = event_column(ev, column);
    return col && col->key;
}

/* The value `row` holds in the column, by the rules of the JSON's
 * "before", "after" and "key"; NULL when that image has none. */
static const colval *image_value(const pgspout_event *ev, pgspout_row_image row,
                                 int column)
{
    const relation_column *col = event_column(ev, column);
    bool key_only;

    if (!col || !event_is_row_op(ev->op))
        return NULL;
    switch (row) {
    case PGSPOUT_ROW_OLD: {
        const tuple *before = event_before_tuple(ev, &key_only);
        return key_only && !col->key ? NULL : tuple_column(before, column);
    }
    case PGSPOUT_ROW_NEW:
        return tuple_column(event_after_tuple(ev), column);
    case PGSPOUT_ROW_KEY:
        return col->key ? event_key_column(ev, column) : NULL;
    }
    return NULL;
}

static pgspout_value_state value_state(const colval *v)
{
    if (!v)
        return PGSPOUT_VALUE_ABSENT;
    switch (v->kind) {
    case COLVAL_TEXT:
        return PGSPOUT_VALUE_TEXT;
    case COLVAL_BINARY:
        return PGSPOUT_VALUE_BINARY;
    case COLVAL_UNCHANGED_TOAST:
        return PGSPOUT_VALUE_UNCHANGED_TOAST;
    case COLVAL_NULL:
        return PGSPOUT_VALUE_NULL;
    }
    return PGSPOUT_VALUE_ABSENT;
}

pgspout_value_state host_event_value(const pgspout_event *ev,
                                     pgspout_row_image row, int column,
                                     const char **text, size_t *length)
{
    const colval *v = image_value(ev, row, column);
    pgspout_value_state state = value_state(v);
    bool has_bytes =
        state == PGSPOUT_VALUE_TEXT || state == PGSPOUT_VALUE_BINARY;

    if (text)
        *text = has_bytes ? v->data : NULL;
    if (length)
        *length = has_bytes ? v->len : 0;
    return state;
}
