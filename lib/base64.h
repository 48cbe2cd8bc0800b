/* Base64 (RFC 4648): the standard form for payloads and HTTP Basic
 * credentials, the URL-safe form for JWTs. */
#ifndef PGSPOUT_BASE64_H
#define PGSPOUT_BASE64_H

#include <stddef.h>

/* Characters of the padded standard form of len bytes. */
#define BASE64_ENCODED_LEN(len) (((len) + 2) / 3 * 4)

/* Writes the standard base64 of data[0..len), padded with '=', and a
 * terminator to out, which holds BASE64_ENCODED_LEN(len) + 1 bytes.
 * Returns the length written (without the terminator). */
size_t base64_encode_into(char *out, const void *data, size_t len);

/* The same, malloc'd. */
char *base64_encode(const void *data, size_t len);

/* base64url without padding (RFC 4648, section 5; RFC 7515 for JWTs);
 * malloc'd. */
char *base64url_encode(const void *data, size_t len);

#endif
