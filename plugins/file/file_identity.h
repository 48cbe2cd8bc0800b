/* Which file the sink writes, in a form that survives renames and restarts.
 *
 * Another program (logrotate) may rename the output away while the sink
 * writes it, and pgspout may be killed before it notices. So the sink keeps
 * a small state file next to the output, ".<name>.pgspout-state", saying
 * which file it writes (device, inode and, where the filesystem keeps one,
 * birth time) and the position of the last change stored before that file
 * began. It is rewritten (atomically) only when the sink starts a file.
 * On start the sink finds its last file again by that identity, under
 * whatever name it now has, and knows where the stream stood even when the
 * current file is still empty and the one before it is gone. */
#ifndef PGSPOUT_FILE_IDENTITY_H
#define PGSPOUT_FILE_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include <pgspout/pgspout.h>

#include "file_recovery.h"

typedef struct file_identity {
    uint64_t dev;
    uint64_t ino;
    /* A recycled inode number has a new birth time; filesystems that keep
     * none (NFS, ...) are compared by device and inode alone. */
    bool has_btime;
    int64_t btime_sec;
    uint32_t btime_nsec;
} file_identity;

typedef struct file_state {
    file_identity file; /* the file the sink writes */
    bool has_before;
    pgspout_position before; /* last change stored before that file began */
} file_state;

/* The identity of the file open on `fd`. */
bool file_identity_of(int fd, const char *path, file_identity *id,
                      file_error *err);

bool file_identity_equal(const file_identity *a, const file_identity *b);

/* "<dir>/.<base>.pgspout-state" for `path`; the caller frees it. */
char *file_state_path(const char *path);

/* The state recorded for `path`; *found is false when there is none. A
 * state file that cannot be parsed is an error (errnum 0). */
bool file_state_read(const char *path, bool *found, file_state *state,
                     file_error *err);

/* Replaces the state recorded for `path` atomically (a temporary file,
 * fsynced when `sync`, renamed over it). The caller syncs the directory. */
bool file_state_write(const char *path, const file_state *state, bool sync,
                      file_error *err);

/* Looks through the directory of `path` for the regular file with identity
 * `id`; *found is its path (the caller frees it), or NULL when there is
 * none. */
bool file_find_by_identity(const char *path, const file_identity *id,
                           char **found, file_error *err);

#endif
