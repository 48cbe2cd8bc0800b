/* Reading back what the file sink left on disk: repairing a torn last line,
 * finding the last stored position, and naming rotated files. Kept apart
 * from the sink so the on-disk format rules live in one place. */
#ifndef PGSPOUT_FILE_RECOVERY_H
#define PGSPOUT_FILE_RECOVERY_H

#include <dirent.h>
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
    off_t size;       /* file size (after file_tail_cut: after the cut) */
    off_t torn_bytes; /* bytes of an incomplete last line */
    bool has_position;
    pgspout_position position; /* of the last event stored in the file */
    off_t position_line;       /* offset of the line it was read from */
} file_tail;

/* Reads back, without changing anything, the position of the last event
 * stored in the file open on `fd`: the last complete line that is not a
 * schema event. Bytes after the last newline (a line torn by a crash) are
 * counted in torn_bytes and left alone. Reads the file backwards in
 * fixed-size chunks, never all of it. Returns false with `err` filled when
 * the file cannot be read or its last complete line is not a pgspout event
 * (errnum 0, the message naming the line's offset and what is wrong). */
bool file_tail_read(int fd, const char *path, file_tail *tail, file_error *err);

/* Cuts the torn line file_tail_read() found (fsyncing the cut when
 * `sync`), so appending starts on a line of its own. */
bool file_tail_cut(int fd, const char *path, bool sync, file_tail *tail,
                   file_error *err);

/* file_tail_read() then, when the file held a pgspout event or no complete
 * line at all, file_tail_cut(): a file whose last line is not ours is never
 * modified, and the error says the sink refuses to append after it. */
bool file_tail_repair(int fd, const char *path, bool sync, file_tail *tail,
                      file_error *err);

/* Highest N among the rotated files "<path>.<N>" next to `path`; 0 when
 * there are none. */
bool file_rotation_last(const char *path, uint64_t *last, file_error *err);

/* "<path>.<N>" with N zero-padded to 6 digits; the caller frees it. */
char *file_rotation_name(const char *path, uint64_t n);

/* Fills `err` (errnum and a formatted message) and returns false. */
PGSPOUT_PRINTF(3, 4)
bool file_fail(file_error *err, int errnum, const char *fmt, ...);

/* Splits `path` into its directory ("." when it has none; the caller frees
 * it) and its last component (pointing into `path`). */
void file_split_path(const char *path, char **dir, const char **base);

/* Opens the directory holding `path` for listing; *dir and *base as
 * file_split_path() sets them (*dir freed and NULL again on failure).
 * NULL with `err` filled when it cannot be opened. */
DIR *file_open_parent_dir(const char *path, char **dir, const char **base,
                          file_error *err);

/* Makes renames and creations inside the directory holding `path` durable. */
bool file_sync_parent_dir(const char *path, file_error *err);

#endif
