/* Reading back what the file sink left on disk: repairing a torn last line,
 * finding the last stored position, and naming rotated files. Kept apart
 * from the sink so the on-disk format rules live in one place. */
#ifndef PGSPOUT_FILE_RECOVERY_H
#define PGSPOUT_FILE_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <pgspout/pgspout.h>

typedef struct file_error {
    /* The errno behind the failure; 0 when the file's content is at fault,
     * which no retry can fix. */
    int errnum;
    char message[1024];
} file_error;

typedef struct file_tail {
    off_t size;       /* file size after the repair */
    off_t torn_bytes; /* bytes of an incomplete last line that were cut */
    bool has_position;
    pgspout_position position; /* of the last event stored in the file */
    off_t position_line;       /* offset of the line it was read from */
} file_tail;

/* Cuts an incomplete last line off the file open read-write on `fd` (fsyncing
 * the cut when `sync`), then reads back the position of the last stored
 * event. Reads the file backwards in fixed-size chunks, never all of it.
 * Returns false with `err` filled when the file cannot be read or its last
 * complete line is not a pgspout event. */
bool file_tail_repair(int fd, const char *path, bool sync, file_tail *tail,
                      file_error *err);

/* Highest N among the rotated files "<path>.<N>" next to `path`; 0 when
 * there are none. */
bool file_rotation_last(const char *path, uint64_t *last, file_error *err);

/* "<path>.<N>" with N zero-padded to 6 digits; the caller frees it. */
char *file_rotation_name(const char *path, uint64_t n);

/* Makes renames and creations inside the directory holding `path` durable. */
bool file_sync_parent_dir(const char *path, file_error *err);

/* Parses PostgreSQL's "X/X" text form of an LSN. */
bool file_parse_lsn(const char *text, pgspout_lsn *lsn);

#endif
