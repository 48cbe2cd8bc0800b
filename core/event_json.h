/* The canonical JSON of change events (see the file sink's format in the
 * README): compact, keys in a fixed order. */
#ifndef PGSPOUT_EVENT_JSON_H
#define PGSPOUT_EVENT_JSON_H

#include <stddef.h>

#include "event_internal.h"
#include "json_out.h"
#include "strbuf.h"

/* Appends the JSON of an event or of one part of it. A part that does not
 * apply to the event's op (key/before/after/unchanged_toast of a truncate or
 * schema event, columns of anything but a schema event) is null. */
void event_json_append(strbuf *out, const event *ev, pgspout_event_part part);
void event_json_write(json_out *out, const event *ev, pgspout_event_part part);

/* The same, encoded on first request and cached in the event until
 * event_clear. Returns NULL (and *len = 0) for a part out of range. Not
 * thread-safe: the cache is filled without locking, so an event shared by
 * threads must have its parts requested before it is shared. */
const char *event_json_get(event *ev, pgspout_event_part part, size_t *len);

/* The same JSON handed to emit in pieces of at most `piece` bytes (0: the
 * default, JSON_OUT_PIECE), in order, without building it whole (the cache
 * is used when event_json_get filled it already). Returns false when emit
 * did (nothing follows it) or the part is out of range. */
bool event_json_stream(const event *ev, pgspout_event_part part, size_t piece,
                       json_out_fn emit, void *ctx);

/* The JSON name of an op ("insert", ...), NULL for an unknown value. */
const char *event_op_name(pgspout_op op);

#endif
