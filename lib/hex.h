/* Hexadecimal digits. */
#ifndef PGSPOUT_HEX_H
#define PGSPOUT_HEX_H

#include <stddef.h>

/* The value of one hex digit (either case), or -1 for anything else. */
int hex_digit_value(char c);

/* Writes the 2 * n lower-case hex digits of bytes[0..n) to out, without a
 * terminator. */
void hex_encode(const void *bytes, size_t n, char *out);

#endif
