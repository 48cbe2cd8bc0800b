/* A scanner for the compact JSON pgspout's events are made of: it finds
 * the members of an object or the elements of an array as the raw text
 * they are written in, so that a sink can reuse a value byte for byte
 * (a Kafka key must be the same bytes every time) without parsing and
 * re-encoding it. It checks the structure (strings, nesting), not the
 * grammar of numbers and literals, which the encoder vouches for. */
#ifndef KAFKA_JSON_H
#define KAFKA_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* A span of the text. */
typedef struct json_span {
    const char *p;
    size_t len;
} json_span;

/* Called per member of an object (name: the quoted name as written) or per
 * element of an array (name.p NULL). Returns false to stop the scan. */
typedef bool (*json_item_fn)(void *ctx, json_span name, json_span value);

/* Calls fn for each member or element of the object or array that json
 * holds, in order. False when json is neither, is malformed, or fn
 * stopped the scan. */
bool kafka_json_each(const char *json, size_t len, json_item_fn fn, void *ctx);

/* The raw value of the member whose quoted name is `name` (as written,
 * quotes included), or a span with p NULL when absent. */
json_span kafka_json_member(const char *json, size_t len, json_span name);

bool json_span_eq(json_span a, json_span b);

#endif
