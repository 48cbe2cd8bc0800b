/* Column values (PostgreSQL text output) to JSON. This is the per-row hot
 * path: nothing here allocates beyond growing the output buffer, except
 * the dry run that checks an array or json value longer than a stream's
 * piece, and the unescaped copy of a quoted array element longer than 256
 * bytes. */
#ifndef PGSPOUT_VALUE_JSON_H
#define PGSPOUT_VALUE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "json_out.h"
#include "json_string.h"
#include "strbuf.h"
#include "typeinfo.h"

/* Appends the JSON of one non-NULL value given in PostgreSQL's text output
 * form. The result is always valid JSON: a value that does not look the way
 * its type's output function prints (say, an "int" that is not a number)
 * falls back to a JSON string of its text rather than breaking the line. */
void value_json_append(strbuf *out, value_type t, const char *text, size_t len);

/* True when a non-NULL value encodes as JSON null, which SQL NULL also
 * encodes as: a json/jsonb value holding the JSON literal null. */
bool value_json_is_null(value_type t, const char *text, size_t len);

/* The same into a json_out: a stream hands the JSON on in pieces and never
 * holds a whole copy of the value. */
void value_json_write(json_out *out, value_type t, const char *text,
                      size_t len);

/* Writes s as a JSON string, escaped as json_append_string (lib's
 * json_string.h, included here) escapes it. */
void json_write_string(json_out *out, const char *s, size_t len);

#endif
