/* Spill files: a chunk's rows as read, kept on disk until every sink made
 * their read events durable, so that memory stays bounded whatever the
 * chunk's size and a restart can send exactly the same events again.
 *
 * The file's first line is a JSON header describing the rows (columns,
 * chunk key); each further line is one row exactly as COPY ... TO STDOUT
 * (text format) sent it: the columns' output text, tab-separated, with
 * COPY's backslash escapes and \N for NULL. */
#ifndef PGSPOUT_BACKFILL_SPILL_H
#define PGSPOUT_BACKFILL_SPILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "strbuf.h"
#include "tuple.h"

typedef struct bf_spill_writer {
    int fd;
    char *path;
    strbuf buf; /* written out in pieces of about 1 MiB */
    uint64_t rows;
    uint64_t written; /* bytes handed to the file so far */
    bool piece;       /* rows for another file (no header) */
} bf_spill_writer;

/* Creates path (0600, must not exist) with the header line; without one
 * (NULL), a piece: rows read beside the chunk's own, for bf_spill_take. */
bool bf_spill_create(bf_spill_writer *w, const char *path, const char *header,
                     char *err, size_t errlen);
/* One row as COPY sent it, with its newline. */
bool bf_spill_append(bf_spill_writer *w, const char *line, size_t len,
                     char *err, size_t errlen);
/* Appends the piece's rows after w's and removes the piece's file
 * (whatever the outcome). */
bool bf_spill_take(bf_spill_writer *w, bf_spill_writer *piece, char *err,
                   size_t errlen);
/* Writes out the rest, fsyncs and closes. */
bool bf_spill_finish(bf_spill_writer *w, char *err, size_t errlen);
/* Closes and removes the file. */
void bf_spill_abandon(bf_spill_writer *w);

typedef struct bf_spill_reader {
    int fd;
    char *path; /* NULL: not open */
    char *buf;  /* what was read and not yet taken: buf[start, end) */
    size_t start, end;
    size_t cap; /* a megabyte, or the longest row so far */
    bool at_eof;
} bf_spill_reader;

/* Opens path and reads its header line (*header: malloc'd, without the
 * newline). */
bool bf_spill_open(bf_spill_reader *r, const char *path, char **header,
                   char *err, size_t errlen);
/* The next row: *cols (one block from mem, which also holds the text the
 * values point into) holds its ncols values. Returns 1, 0 at the end, -1
 * with err on a row that does not parse. */
int bf_spill_next(bf_spill_reader *r, int ncols, colval **cols, arena *mem,
                  char *err, size_t errlen);
void bf_spill_close(bf_spill_reader *r);

/* Splits one COPY text line (without its newline) in place into ncols
 * values, undoing COPY's escapes; false when it has another number of
 * fields. */
bool bf_copy_parse_line(char *line, size_t len, colval *cols, int ncols);

/* Appends field `index` of a COPY text line, unescaped, to out; false when
 * the line has fewer fields or the field is NULL. */
bool bf_copy_field(const char *line, size_t len, int index, strbuf *out);

#endif
