/* Error messages returned through (char *err, size_t errlen) pairs. */
#ifndef PGSPOUT_ERROR_H
#define PGSPOUT_ERROR_H

#include <stddef.h>

/* Formats into err; does nothing when err is NULL or errlen is 0. */
void set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
