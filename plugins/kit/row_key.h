/* What an event's key is, read through the host's typed column access
 * (ABI 1.6) rather than by parsing the event's JSON back: the sinks whose
 * output is keyed by the row (document ids, record keys, tombstones) ask
 * here first and build the JSON only when these cannot answer. Each
 * function answers "cannot tell" (false) on a host older than 1.6. */
#ifndef KIT_ROW_KEY_H
#define KIT_ROW_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgspout/host.h"

/* The host offers typed column access (ABI 1.6). */
bool kit_has_typed_columns(const pgspout_host_api *host);

/* True when an update's old row provably holds the same key as its new
 * one: each key column's old value is not in the old image (the server
 * sends the old key only when it changed, or with REPLICA IDENTITY FULL),
 * is an unchanged TOAST value, or has the same state and text as the
 * event's key. Then the old row's key JSON equals the key's, and the sink
 * needs neither the "before" JSON nor to compare the two. False for every
 * other op, and whenever it cannot prove it (the text differs: the JSON
 * may still be equal, e.g. a json value printed with other spaces). */
bool kit_key_unchanged(const pgspout_host_api *host, const pgspout_event *ev);

/* The event's only key column and its text in the key, when the table has
 * exactly one replica-identity column and the key holds a value
 * (PGSPOUT_VALUE_TEXT) for it. *text is not NUL-terminated. */
bool kit_single_key_text(const pgspout_host_api *host, const pgspout_event *ev,
                         uint32_t *type_oid, const char **text, size_t *len);

/* True when the new row of an update holds an unchanged TOAST value (the
 * JSON's "unchanged_toast" is not empty). Sets *known = false when the host
 * cannot tell without the JSON (older than 1.6). */
bool kit_has_unchanged_toast(const pgspout_host_api *host,
                             const pgspout_event *ev, bool *known);

#endif
