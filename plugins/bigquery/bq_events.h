/* pgspout's own tables for the events that belong to no source table:
 * message events (the messages table) and begin and commit events (the
 * transactions table): their schemas and their insertAll rows. */
#ifndef BQ_EVENTS_H
#define BQ_EVENTS_H

#include <stddef.h>

#include <jansson.h>

#include "pipeline.h"

typedef enum bq_event_table_kind {
    BQ_MESSAGES_TABLE = 0,
    BQ_TRANSACTIONS_TABLE = 1
} bq_event_table_kind;

/* The tables.insert body of such a table. Caller frees (free()). */
char *bq_event_table_json(const char *project, const char *dataset,
                          const char *table_id, bq_event_table_kind kind);

/* The insertAll row {"insertId":..,"json":{..}} for one parsed message,
 * begin or commit event at pos: the event's fields, LSNs as integers; an
 * absent or null field is a NULL cell. The insertId is the position's, as
 * for changes. NULL with err when a field has a form it cannot take. */
json_t *bq_event_row(json_t *event, pgspout_position pos,
                     bq_event_table_kind kind, char *err, size_t errlen);

#endif
