/* The typed column accessors of the host API (ABI 1.6): an event's columns
 * and its row values as PostgreSQL printed them, read straight from the
 * decoded tuples, without building JSON. */
#ifndef PGSPOUT_HOST_COLUMNS_H
#define PGSPOUT_HOST_COLUMNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgspout/host.h"

int host_event_column_count(const pgspout_event *ev);
const char *host_event_column_name(const pgspout_event *ev, int column);
uint32_t host_event_column_type_oid(const pgspout_event *ev, int column);
const char *host_event_column_type_name(const pgspout_event *ev, int column);
bool host_event_column_is_key(const pgspout_event *ev, int column);
pgspout_value_state host_event_value(const pgspout_event *ev,
                                     pgspout_row_image row, int column,
                                     const char **text, size_t *length);

#endif
