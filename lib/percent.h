/* Percent-encoding (RFC 3986, section 2.1) for URL paths, query strings
 * and form bodies. */
#ifndef PGSPOUT_PERCENT_H
#define PGSPOUT_PERCENT_H

#include <stddef.h>

#include "strbuf.h"

/* Appends s[0..len) with every byte percent-encoded ("%2F", upper-case
 * hex) except the unreserved characters (A-Z a-z 0-9 - . _ ~) and those in
 * `keep` (may be NULL or ""). Encoding everything else is always safe in a
 * path segment, a query value or an application/x-www-form-urlencoded
 * body. */
void percent_encode(strbuf *out, const char *s, size_t len, const char *keep);

/* Decodes every %XX (either case) of s[0..len); a '%' not followed by two
 * hex digits stays as it is. Returns a malloc'd, NUL-terminated string. */
char *percent_decode(const char *s, size_t len);

#endif
