/* JSON string escaping: the one escaper for every JSON string pgspout
 * writes, whether the daemon's event encoder (which streams huge values in
 * bounded pieces and so writes through these primitives, not a strbuf) or
 * a sink's request body.
 *
 * Valid UTF-8 passes through unchanged; '"', '\\' and control characters
 * are escaped (\n, \t, \r, \b, \f, else \u00XX), and each byte that is not
 * part of well-formed UTF-8 becomes U+FFFD, so the result is always valid
 * JSON whatever the input (a SQL_ASCII database may hold any bytes).
 *
 * A writer of its own output kind follows json_append_string: copy the
 * runs json_plain_span finds as they are, and replace the byte after each
 * run by json_escape_byte's text. */
#ifndef PGSPOUT_JSON_STRING_H
#define PGSPOUT_JSON_STRING_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* The longest text json_escape_byte writes ("\u001f"). */
#define JSON_ESCAPE_MAX 6

/* Appends s[0..len) as a JSON string, quotes included. */
void json_append_string(strbuf *out, const char *s, size_t len);

/* How many bytes at the start of s[0..len) a JSON string holds as they
 * are: printable ASCII other than '"' and '\\', and well-formed UTF-8.
 * Scans 16 bytes per step through plain ASCII (8 where SSE2 is missing),
 * the bulk of large values; reads no byte past s[len - 1]. */
size_t json_plain_span(const char *s, size_t len);

/* Writes into esc what a JSON string holds in place of the byte c at which
 * json_plain_span stopped (an escape, or U+FFFD for a byte of malformed
 * UTF-8); returns its length, at most JSON_ESCAPE_MAX. */
size_t json_escape_byte(unsigned char c, char esc[JSON_ESCAPE_MAX]);

/* Length of the well-formed UTF-8 sequence at s (avail bytes readable), or
 * 0 if there is none. Overlong forms, surrogates and code points past
 * U+10FFFF count as malformed, as RFC 3629 says. */
size_t utf8_sequence_length(const unsigned char *s, size_t avail);

/* True when s[0..len) is well-formed UTF-8 throughout: then a JSON string
 * of it, unescaped, gives back exactly these bytes. */
bool utf8_valid(const char *s, size_t len);

#endif
