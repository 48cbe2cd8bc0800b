/* Whole-file reads and complete writes. */
#ifndef PGSPOUT_FILEIO_H
#define PGSPOUT_FILEIO_H

#include <stdbool.h>
#include <stddef.h>

/* The whole content of the file at path (NUL bytes included), malloc'd,
 * with a terminator after its *len bytes; NULL with errno set when it
 * cannot be opened or read. Credentials (key files) are read here, so no
 * copy is left behind in freed memory: a regular file is read straight
 * into one allocation of its size, and what was read before a failure is
 * wiped. (A pipe is read as it comes, in a buffer that may grow.) The
 * caller wipes the result when it holds a secret. */
char *read_whole_file(const char *path, size_t *len);

/* Writes all of data[0..len) to fd, going on after short writes and
 * EINTR. false with errno set when write(2) fails. */
bool write_all(int fd, const void *data, size_t len);

#endif
