/* The file sink: one compact JSON event per line, appended to a file (or
 * written to stdout), made durable before it is acknowledged, rotated by
 * size, followed when another program renames it away, and read back on
 * start so a restart continues exactly after the last stored event. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pgspout/pgspout.h>

#include "file_identity.h"
#include "file_recovery.h"
#include "strbuf.h"

/* Past this much pending output, write() hands it to the kernel, so a huge
 * transaction never piles up in memory between flushes. */
#define FILE_SINK_WRITE_THRESHOLD ((size_t)1 << 20)

typedef struct file_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    char *path; /* NULL when writing to stdout */
    int fd;     /* -1 after a rotation could not open the fresh file */
    bool sync;
    /* A regular file, checked for being deleted, renamed or cut under us;
     * not a pipe, a device or stdout. */
    bool watched;
    /* The output was deleted or cut under us: nothing more is acknowledged
     * in this run. */
    bool failed;
    int64_t rotate_size;
    uint64_t last_rotation;

    /* Output not yet in the file is out.data[sent..out.len); `sent` survives
     * a failed write(2), so a retry never repeats bytes that already went
     * out. */
    strbuf out;
    size_t sent;
    off_t file_size;     /* bytes already handed to the file */
    off_t verified_size; /* file_size when the file was last seen whole */
    bool keep_cached;    /* leave fsynced bytes in the page cache */
    off_t uncached_to;   /* fsynced bytes of this file dropped from it */
    off_t writeback_to;  /* bytes of this file whose writeback started */

    bool have_written;
    pgspout_position last_written; /* newest event taken by write() */
    bool have_handed;
    pgspout_position last_handed; /* newest event whose line went out */
    bool have_acked;
    pgspout_position last_acked;
    bool have_resume;
    pgspout_position resume;

    bool have_state;
    file_state state;      /* as last read from or written to disk */
    bool state_unwritable; /* the directory refused the state file */
} file_sink;

static bool is_transient(int errnum)
{
    return errnum == ENOSPC || errnum == EDQUOT || errnum == EINTR ||
           errnum == EAGAIN || errnum == EWOULDBLOCK;
}

PGSPOUT_PRINTF(4, 5)
static pgspout_status report(const pgspout_host_api *host,
                             pgspout_sink_handle *handle, int errnum,
                             const char *fmt, ...)
{
    char message[1200];
    va_list ap;
    bool retry = is_transient(errnum);

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (errnum)
        host->log(handle, retry ? PGSPOUT_LOG_WARNING : PGSPOUT_LOG_ERROR,
                  "%s: %s%s", message, strerror(errnum),
                  retry ? " (will retry)" : "");
    else
        host->log(handle, PGSPOUT_LOG_ERROR, "%s", message);
    return retry ? PGSPOUT_RETRY : PGSPOUT_FATAL;
}

/* The message of a file_error already names the cause. */
static pgspout_status report_error(file_sink *fs, const file_error *err)
{
    bool retry = is_transient(err->errnum);

    fs->host->log(fs->handle, retry ? PGSPOUT_LOG_WARNING : PGSPOUT_LOG_ERROR,
                  "%s%s", err->message, retry ? " (will retry)" : "");
    return retry ? PGSPOUT_RETRY : PGSPOUT_FATAL;
}

static const char *lsn_text(const file_sink *fs, pgspout_lsn lsn, char *buf,
                            size_t buflen)
{
    return fs->host->format_lsn(lsn, buf, buflen);
}

/* With fsync, the disk starts on what was just written while more is
 * being encoded, rather than all of it at the next fsync (the kernel on
 * its own would wait for gigabytes to be dirty): fsync then finds little
 * left, and the time it blocks the stream shrinks. A hint only. */
static void start_writeback(file_sink *fs)
{
    if (!fs->path || !fs->sync || !fs->watched)
        return;
    off_t from = fs->writeback_to <= fs->file_size ? fs->writeback_to : 0;
    if (fs->file_size > from)
        (void)sync_file_range(fs->fd, from, fs->file_size - from,
                              SYNC_FILE_RANGE_WRITE);
    fs->writeback_to = fs->file_size;
}

/* Returns 0, or the errno of the failed write(2) with the unsent rest kept. */
static int drain(file_sink *fs)
{
    while (fs->sent < fs->out.len) {
        ssize_t n =
            write(fs->fd, fs->out.data + fs->sent, fs->out.len - fs->sent);

        if (n < 0)
            return errno;
        fs->sent += (size_t)n;
        fs->file_size += n;
    }
    sbuf_reset(&fs->out);
    fs->sent = 0;
    start_writeback(fs);
    fs->have_handed = fs->have_written;
    fs->last_handed = fs->last_written;
    return 0;
}

/* Everything the sink holds, on disk or still buffered. */
static off_t logical_size(const file_sink *fs)
{
    return fs->file_size + (off_t)(fs->out.len - fs->sent);
}

/* Forgets all output past `mark`, so the host can redeliver a batch that
 * failed half-way without any of it being stored twice. */
static pgspout_status rollback(file_sink *fs, off_t mark)
{
    if (mark >= fs->file_size) {
        sbuf_truncate(&fs->out, fs->sent + (size_t)(mark - fs->file_size));
        return PGSPOUT_OK;
    }
    if (!fs->path) {
        fs->host->log(fs->handle, PGSPOUT_LOG_ERROR,
                      "part of a failed batch already reached stdout and "
                      "cannot be taken back");
        return PGSPOUT_FATAL;
    }
    if (ftruncate(fs->fd, mark) != 0) {
        report(fs->host, fs->handle, errno,
               "cannot cut \"%s\" back to %lld bytes after a failed write",
               fs->path, (long long)mark);
        return PGSPOUT_FATAL;
    }
    fs->file_size = mark;
    if (fs->verified_size > mark)
        fs->verified_size = mark;
    sbuf_reset(&fs->out);
    fs->sent = 0;
    return PGSPOUT_OK;
}

/* Opens `path` for appending and, when it is a regular file, locks it. */
static pgspout_status open_locked(file_sink *fs, int *fd, struct stat *st)
{
    pgspout_status status;

    *fd = open(fs->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return report(fs->host, fs->handle, errno, "cannot open \"%s\"",
                      fs->path);
    if (fstat(*fd, st) != 0) {
        status =
            report(fs->host, fs->handle, errno, "cannot stat \"%s\"", fs->path);
        goto fail;
    }
    /* Two writers appending to one file would interleave lines and break
     * recovery, be they two sinks of one config or two pgspout processes. */
    if (S_ISREG(st->st_mode) && flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            status = report(fs->host, fs->handle, errno, "cannot lock \"%s\"",
                            fs->path);
            goto fail;
        }
        fs->host->log(fs->handle, PGSPOUT_LOG_ERROR,
                      "\"%s\" is in use by another sink or process", fs->path);
        status = PGSPOUT_FATAL;
        goto fail;
    }
    return PGSPOUT_OK;
fail:
    close(*fd);
    *fd = -1;
    return status;
}

/* Makes the file open on `fd` the output. */
static void adopt(file_sink *fs, int fd, const struct stat *st)
{
    fs->fd = fd;
    fs->uncached_to = fs->writeback_to = 0;
    fs->watched = S_ISREG(st->st_mode);
    if (!fs->watched) {
        /* A device or FIFO (/dev/stderr, a named pipe) cannot be synced,
         * renamed or read back; treat it like stdout. */
        fs->sync = false;
        fs->rotate_size = 0;
    }
    fs->file_size = fs->verified_size = fs->watched ? st->st_size : 0;
}

/* The position of the last change stored before the file now being
 * started: the last one handed to the files before it (fsynced there before
 * a file is started), or the resume position read back on start. */
static bool stored_before(const file_sink *fs, pgspout_position *pos)
{
    if (fs->have_handed)
        *pos = fs->last_handed;
    else if (fs->have_resume)
        *pos = fs->resume;
    return fs->have_handed || fs->have_resume;
}

static bool same_state(const file_state *a, const file_state *b)
{
    return a->file.dev == b->file.dev && a->file.ino == b->file.ino &&
           a->file.has_btime == b->file.has_btime &&
           a->file.btime_sec == b->file.btime_sec &&
           a->file.btime_nsec == b->file.btime_nsec &&
           a->has_before == b->has_before &&
           (!a->has_before || pgspout_position_cmp(a->before, b->before) == 0);
}

/* A directory the sink may write files into but not its state (a file
 * pre-created in a directory it cannot write): go on without, as before
 * the state existed, and say what that costs. */
static bool state_optional(file_sink *fs, const file_error *err)
{
    if (err->errnum != EACCES && err->errnum != EPERM && err->errnum != EROFS)
        return false;
    if (!fs->state_unwritable)
        fs->host->log(fs->handle, PGSPOUT_LOG_WARNING,
                      "%s; without it, a crash right after another program "
                      "renames \"%s\" away may write changes twice",
                      err->message, fs->path);
    fs->state_unwritable = true;
    return true;
}

/* Records the file open on `fd` as the one being written, with the
 * position stored before it, then syncs the directory so that the file's
 * name and the record are as durable as the data later fsynced into it. */
static pgspout_status record_output(file_sink *fs, int fd,
                                    const struct stat *st)
{
    file_state state;
    file_error err;

    if (!S_ISREG(st->st_mode))
        return PGSPOUT_OK;
    memset(&state, 0, sizeof state);
    if (!file_identity_of(fd, fs->path, &state.file, &err))
        return report_error(fs, &err);
    state.has_before = stored_before(fs, &state.before);
    if (!fs->have_state || !same_state(&state, &fs->state)) {
        if (file_state_write(fs->path, &state, fs->sync, &err)) {
            fs->have_state = true;
            fs->state = state;
        } else if (!state_optional(fs, &err)) {
            return report_error(fs, &err);
        }
    }
    if (fs->sync && !file_sync_parent_dir(fs->path, &err))
        return report_error(fs, &err);
    return PGSPOUT_OK;
}

/* Opens `path` as the new output (after a rotation, or when a reopen
 * failed before). */
static pgspout_status start_file(file_sink *fs)
{
    int fd;
    struct stat st;
    pgspout_status status = open_locked(fs, &fd, &st);

    if (status == PGSPOUT_OK)
        status = record_output(fs, fd, &st);
    if (status != PGSPOUT_OK) {
        if (fd >= 0)
            close(fd);
        return status;
    }
    adopt(fs, fd, &st);
    return PGSPOUT_OK;
}

static pgspout_status rotate(file_sink *fs)
{
    uint64_t n = fs->last_rotation + 1;
    char *target;
    struct stat st;

    for (;;) {
        target = file_rotation_name(fs->path, n);
        if (lstat(target, &st) != 0 && errno == ENOENT)
            break;
        /* Someone else's file, or one we could not inspect: never touch it. */
        free(target);
        n++;
    }
    if (rename(fs->path, target) != 0) {
        pgspout_status status =
            report(fs->host, fs->handle, errno,
                   "cannot rename \"%s\" to \"%s\"", fs->path, target);
        free(target);
        return status;
    }
    fs->last_rotation = n;
    fs->host->log(fs->handle, PGSPOUT_LOG_INFO,
                  "rotated \"%s\" (%lld bytes) to \"%s\"", fs->path,
                  (long long)fs->file_size, target);
    free(target);
    close(fs->fd);
    fs->fd = -1;
    fs->file_size = 0;
    /* Also syncs the directory, which makes the rename durable. */
    return start_file(fs);
}

/* ---- the output deleted, cut or renamed under us ------------------------ */

static pgspout_status output_deleted(file_sink *fs)
{
    fs->failed = true;
    fs->host->log(fs->handle, PGSPOUT_LOG_ERROR,
                  "\"%s\" was deleted (or replaced by another file) while "
                  "pgspout was writing to it: changes written to it and not "
                  "yet acknowledged went with it, so pgspout stops without "
                  "confirming anything more; a restart writes them again "
                  "into a new \"%s\"",
                  fs->path, fs->path);
    return PGSPOUT_FATAL;
}

/* The file shrank to `size` (logrotate's copytruncate, truncate(1)): the cut
 * may have taken changes written since the last acknowledgement, and the
 * lines appended after the cut would make a restart skip those. So these
 * lines go too: at most the bytes written since the file was last seen
 * whole (which are never acknowledged), so a restart resumes before them. */
static pgspout_status output_cut(file_sink *fs, off_t size)
{
    off_t since = fs->file_size - fs->verified_size;
    off_t keep = size > since ? size - since : 0;

    fs->failed = true;
    if (keep < size &&
        (ftruncate(fs->fd, keep) != 0 || (fs->sync && fsync(fs->fd) != 0)))
        report(fs->host, fs->handle, errno,
               "cannot cut \"%s\" back to %lld bytes", fs->path,
               (long long)keep);
    fs->host->log(fs->handle, PGSPOUT_LOG_ERROR,
                  "\"%s\" shrank to %lld bytes while pgspout was writing to "
                  "it (it had written %lld): another program cut it "
                  "(logrotate's copytruncate?); changes written since the "
                  "last acknowledged one may be lost with the cut part, so "
                  "pgspout stops without confirming them, having cut the "
                  "file back to %lld bytes, before anything written after "
                  "the cut, so that a restart writes them again",
                  fs->path, (long long)size, (long long)fs->file_size,
                  (long long)keep);
    return PGSPOUT_FATAL;
}

/* The file we write must still be linked and hold all we wrote to it. */
static pgspout_status check_inode(file_sink *fs, struct stat *own)
{
    if (!fs->watched)
        return PGSPOUT_OK;
    if (fstat(fs->fd, own) != 0) {
        report(fs->host, fs->handle, errno, "cannot stat \"%s\"", fs->path);
        return PGSPOUT_FATAL;
    }
    if (own->st_nlink == 0)
        return output_deleted(fs);
    if (own->st_size < fs->file_size)
        return output_cut(fs, own->st_size);
    fs->verified_size = fs->file_size;
    return PGSPOUT_OK;
}

/* The new name of the file open on `fd`, for the log; NULL when it left the
 * directory (or cannot be found). */
static char *renamed_to(file_sink *fs)
{
    file_identity id;
    file_error err;
    char *name = NULL;

    if (file_identity_of(fs->fd, fs->path, &id, &err))
        file_find_by_identity(fs->path, &id, &name, &err);
    return name;
}

/* An NFS client that removes a file still open on it renames the file to
 * ".nfsXXXX" instead, and deletes that once the file is closed. */
static bool nfs_silly_rename(const char *name)
{
    const char *base = name + strlen(name);

    while (base > name && base[-1] != '/')
        base--;
    return strncmp(base, ".nfs", 4) == 0;
}

static pgspout_status refuse_replacement(file_sink *fs, off_t size)
{
    fs->failed = true;
    fs->host->log(fs->handle, PGSPOUT_LOG_ERROR,
                  "\"%s\" was renamed away while pgspout was writing to it, "
                  "and that name now holds another file (%lld bytes) that "
                  "pgspout did not start; refusing to append to it, so "
                  "pgspout stops without confirming the changes written since "
                  "the last acknowledged one (they are in the renamed file)",
                  fs->path, (long long)size);
    return PGSPOUT_FATAL;
}

/* The file was renamed away (logrotate's default rotation): what went into
 * it stays there, made durable; go on in a new file at `path`, which must be
 * empty (created now, or by logrotate's "create"). Called between complete
 * lines only. */
static pgspout_status follow_rename(file_sink *fs)
{
    char *name = renamed_to(fs);
    int fd;
    struct stat st;
    pgspout_status status;

    if (name && nfs_silly_rename(name)) {
        free(name);
        return output_deleted(fs);
    }
    /* The new file's record will say that what went into this one is
     * stored: a failed fsync is never retried (see file_flush). */
    if (fs->sync && fsync(fs->fd) != 0) {
        report(fs->host, fs->handle, errno, "cannot fsync \"%s\"", fs->path);
        free(name);
        return PGSPOUT_FATAL;
    }
    status = open_locked(fs, &fd, &st);
    if (status == PGSPOUT_OK && (!S_ISREG(st.st_mode) || st.st_size != 0)) {
        close(fd);
        status = refuse_replacement(fs, st.st_size);
    } else if (status == PGSPOUT_OK) {
        status = record_output(fs, fd, &st);
        if (status != PGSPOUT_OK)
            close(fd);
    }
    if (status == PGSPOUT_OK) {
        fs->host->log(fs->handle, PGSPOUT_LOG_INFO,
                      "\"%s\" was renamed away%s%s%s with %lld bytes, which "
                      "stay there; going on in a new \"%s\"",
                      fs->path, name ? " to \"" : " out of its directory",
                      name ? name : "", name ? "\"" : "",
                      (long long)fs->file_size, fs->path);
        close(fs->fd);
        adopt(fs, fd, &st);
    }
    free(name);
    return status; /* on RETRY, the retried flush looks again */
}

/* Is the file still `path`, linked and whole? Checked before lines go out
 * (never append to a file renamed away: a compressor may be reading it) and
 * before acknowledging what was fsynced. */
static pgspout_status check_file(file_sink *fs)
{
    struct stat own, named;
    pgspout_status status = check_inode(fs, &own);

    if (status != PGSPOUT_OK || !fs->watched)
        return status;
    if (stat(fs->path, &named) == 0) {
        if (named.st_dev == own.st_dev && named.st_ino == own.st_ino)
            return PGSPOUT_OK;
    } else if (errno != ENOENT && errno != ENOTDIR) {
        return report(fs->host, fs->handle, errno, "cannot stat \"%s\"",
                      fs->path);
    }
    return follow_rename(fs);
}

static const pgspout_option_def file_options[] = {
    {.name = "path",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "file to append JSON lines to; \"-\" writes to stdout"},
    {.name = "fsync",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "true",
     .doc = "fsync before acknowledging (off: faster, not crash-safe)"},
    {.name = "keep_cached",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "false",
     .doc = "leave what was fsynced in the page cache (false: dropped, "
            "since pgspout never reads it back)"},
    {.name = "rotate_size",
     .type = PGSPOUT_OPT_INT,
     .default_value = "0",
     .doc = "rotate the file to <path>.<N> once it reaches this many bytes; "
            "0 never",
     .min = 0,
     .max = 9.2e18},
    PGSPOUT_OPTION_END};

static void file_destroy(void *state);

/* ---- reading back where the stream stood -------------------------------- */

/* The newest position found so far, and where it was read (for the log). */
typedef struct resume_point {
    bool have;
    pgspout_position pos;
    char *from;
    off_t line; /* offset of its line; -1 when read from the state file */
} resume_point;

static void consider(resume_point *best, const char *from, off_t line,
                     pgspout_position pos)
{
    if (best->have && pgspout_position_cmp(pos, best->pos) <= 0)
        return;
    free(best->from);
    best->have = true;
    best->pos = pos;
    best->from = xstrdup(from);
    best->line = line;
}

static void log_torn(file_sink *fs, const char *name, const file_tail *tail)
{
    if (tail->torn_bytes > 0)
        fs->host->log(fs->handle, PGSPOUT_LOG_WARNING,
                      "\"%s\": truncated %lld bytes of an incomplete last "
                      "line at offset %lld",
                      name, (long long)tail->torn_bytes, (long long)tail->size);
}

/* A rotated file must end in an event, like `path`. The file last written,
 * found again by its identity, is only read when its last line is an event
 * (an inode number can be reused where no birth time tells files apart);
 * otherwise it is left untouched and the loss of certainty reported. */
static pgspout_status read_other(file_sink *fs, const char *name, bool strict,
                                 resume_point *best)
{
    file_tail tail;
    file_error err;
    bool ok;
    int fd = open(name, O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        ok = file_fail(&err, errno, "cannot open \"%s\": %s", name,
                       strerror(errno));
    } else if (strict) {
        ok = file_tail_repair(fd, name, fs->sync, &tail, &err);
    } else {
        ok = file_tail_read(fd, name, &tail, &err);
        if (ok && tail.has_position)
            ok = file_tail_cut(fd, name, fs->sync, &tail, &err);
    }
    if (fd >= 0)
        close(fd);
    if (!ok && !strict) {
        fs->host->log(fs->handle, PGSPOUT_LOG_WARNING,
                      "not resuming from the file pgspout wrote last: %s; "
                      "changes it holds past PostgreSQL's confirmed "
                      "position, if any, will be written again",
                      err.message);
        return PGSPOUT_OK;
    }
    if (!ok)
        return report_error(fs, &err);
    log_torn(fs, name, &tail);
    if (tail.has_position)
        consider(best, name, tail.position_line, tail.position);
    return PGSPOUT_OK;
}

/* When the state names another file than `path`, the file last written was
 * renamed away (or deleted) before the sink noticed: find it again. */
static pgspout_status read_moved(file_sink *fs, resume_point *best)
{
    file_identity current;
    file_error err;
    char *found;
    pgspout_status status;

    if (!file_identity_of(fs->fd, fs->path, &current, &err))
        return report_error(fs, &err);
    if (file_identity_equal(&current, &fs->state.file))
        return PGSPOUT_OK;
    if (!file_find_by_identity(fs->path, &fs->state.file, &found, &err))
        return report_error(fs, &err);
    if (!found) {
        fs->host->log(fs->handle, PGSPOUT_LOG_WARNING,
                      "\"%s\" is not the file pgspout wrote last (inode "
                      "%" PRIu64 "), and that one is no longer in the "
                      "directory (deleted, compressed or moved elsewhere): "
                      "changes it held past PostgreSQL's confirmed position, "
                      "if any, will be written again",
                      fs->path, fs->state.file.ino);
        return PGSPOUT_OK;
    }
    fs->host->log(fs->handle, PGSPOUT_LOG_INFO,
                  "the file pgspout wrote last is no longer \"%s\" but "
                  "\"%s\"; reading it back",
                  fs->path, found);
    status = read_other(fs, found, false, best);
    free(found);
    return status;
}

/* Everything the sink left on disk that says where the stream stood: the
 * file, the file last written if it was renamed away, the newest rotated
 * file when the file holds no event, and the position recorded when the
 * file was started. Positions only grow, so the newest one wins. */
static pgspout_status find_resume(file_sink *fs, resume_point *best)
{
    file_tail tail;
    file_error err;
    pgspout_status status = PGSPOUT_OK;
    char *name;

    if (!file_tail_repair(fs->fd, fs->path, fs->sync, &tail, &err))
        return report_error(fs, &err);
    log_torn(fs, fs->path, &tail);
    fs->file_size = fs->verified_size = tail.size;
    if (tail.has_position)
        consider(best, fs->path, tail.position_line, tail.position);
    if (!file_state_read(fs->path, &fs->have_state, &fs->state, &err))
        return report_error(fs, &err);
    if (fs->have_state && (status = read_moved(fs, best)) != PGSPOUT_OK)
        return status;
    if (!file_rotation_last(fs->path, &fs->last_rotation, &err))
        return report_error(fs, &err);
    if (!tail.has_position && fs->last_rotation > 0) {
        name = file_rotation_name(fs->path, fs->last_rotation);
        status = read_other(fs, name, true, best);
        free(name);
    }
    if (status == PGSPOUT_OK && fs->have_state && fs->state.has_before) {
        name = file_state_path(fs->path);
        consider(best, name, -1, fs->state.before);
        free(name);
    }
    return status;
}

static void log_resume(file_sink *fs, const resume_point *best)
{
    char lsn[32];

    lsn_text(fs, best->pos.commit_lsn, lsn, sizeof lsn);
    if (best->line >= 0)
        fs->host->log(fs->handle, PGSPOUT_LOG_INFO,
                      "\"%s\": resuming after commit_lsn %s seq %" PRIu64
                      " (line at offset %lld)",
                      best->from, lsn, best->pos.seq, (long long)best->line);
    else
        fs->host->log(fs->handle, PGSPOUT_LOG_INFO,
                      "\"%s\": resuming after commit_lsn %s seq %" PRIu64
                      " (the last change stored before \"%s\" was started)",
                      best->from, lsn, best->pos.seq, fs->path);
}

/* Tells the host where this sink's stored events end, so it can skip them. */
static pgspout_status recover(file_sink *fs)
{
    resume_point best = {0};
    pgspout_status status;

    if (!fs->watched)
        return PGSPOUT_OK;
    status = find_resume(fs, &best);
    if (status == PGSPOUT_OK && best.have) {
        fs->have_resume = true;
        fs->resume = best.pos;
        log_resume(fs, &best);
    } else if (status == PGSPOUT_OK) {
        fs->host->log(fs->handle, PGSPOUT_LOG_INFO,
                      "\"%s\": no stored events, starting fresh", fs->path);
    }
    free(best.from);
    return status;
}

static pgspout_status file_create(const pgspout_host_api *host,
                                  pgspout_sink_handle *handle, void **state)
{
    const char *path;
    bool sync = true, keep_cached = false;
    int64_t rotate_size = 0;
    file_sink *fs;
    pgspout_status status;
    int fd;
    struct stat st;

    if (!host->option_string(handle, "path", &path) || !*path) {
        host->log(handle, PGSPOUT_LOG_ERROR, "option \"path\" is required");
        return PGSPOUT_FATAL;
    }
    host->option_bool(handle, "fsync", &sync);
    host->option_bool(handle, "keep_cached", &keep_cached);
    host->option_int(handle, "rotate_size", &rotate_size);
    if (rotate_size < 0) {
        host->log(handle, PGSPOUT_LOG_ERROR,
                  "option \"rotate_size\" must not be negative");
        return PGSPOUT_FATAL;
    }

    fs = xcalloc(1, sizeof *fs);
    fs->host = host;
    fs->handle = handle;
    fs->fd = -1;

    if (strcmp(path, "-") == 0) {
        /* A pipe or terminal can be neither synced, rotated nor read back. */
        fs->fd = STDOUT_FILENO;
        *state = fs;
        return PGSPOUT_OK;
    }
    fs->path = xstrdup(path);
    fs->sync = sync;
    fs->keep_cached = keep_cached;
    fs->rotate_size = rotate_size;

    status = open_locked(fs, &fd, &st);
    if (status == PGSPOUT_OK) {
        adopt(fs, fd, &st);
        status = recover(fs);
    }
    if (status == PGSPOUT_OK)
        status = record_output(fs, fs->fd, &st);
    if (status != PGSPOUT_OK) {
        file_destroy(fs);
        return status;
    }
    *state = fs;
    return PGSPOUT_OK;
}

static pgspout_status report_write_error(file_sink *fs, int errnum)
{
    return report(fs->host, fs->handle, errnum, "cannot write to %s%s%s",
                  fs->path ? "\"" : "", fs->path ? fs->path : "stdout",
                  fs->path ? "\"" : "");
}

/* Whether the output is usable: not failed for good, and open. */
static pgspout_status ready(file_sink *fs)
{
    if (fs->failed) {
        fs->host->log(fs->handle, PGSPOUT_LOG_ERROR,
                      "\"%s\": not writing after the failure above", fs->path);
        return PGSPOUT_FATAL;
    }
    return fs->fd < 0 ? start_file(fs) : PGSPOUT_OK;
}

/* Hands the buffered lines to the file. The file must still be `path`
 * before (a rename is followed there, between complete lines, unless part
 * of the current batch, which begins at `mark`, already went into the
 * renamed file; `mark` moves to the new file), and still linked and whole
 * after. */
static pgspout_status write_out(file_sink *fs, off_t *mark)
{
    struct stat own;
    off_t before = fs->file_size;
    pgspout_status status = PGSPOUT_OK;
    int errnum;

    if (fs->sent == 0 && (!mark || *mark >= fs->file_size)) {
        status = check_file(fs);
        if (mark)
            *mark += fs->file_size - before;
    }
    if (status != PGSPOUT_OK)
        return status;
    errnum = drain(fs);
    if (errnum)
        return report_write_error(fs, errnum);
    return check_inode(fs, &own);
}

/* Adds output; once a megabyte is pending it goes to the file (checked as
 * write_out does), even in the middle of an event, so an event with a huge
 * value passes through in bounded pieces. */
static pgspout_status put_output(file_sink *fs, const char *data, size_t n,
                                 off_t *mark)
{
    sbuf_append(&fs->out, data, n);
    if (fs->out.len - fs->sent < FILE_SINK_WRITE_THRESHOLD)
        return PGSPOUT_OK;
    return write_out(fs, mark);
}

typedef struct event_output {
    file_sink *fs;
    off_t *mark;
    pgspout_status status; /* why put_output refused a piece */
} event_output;

static bool take_piece(void *ctx, const char *data, size_t length)
{
    event_output *out = ctx;

    out->status = put_output(out->fs, data, length, out->mark);
    return out->status == PGSPOUT_OK;
}

/* Appends one event's line. The host streams the JSON when it can (ABI
 * 1.1), so that neither side holds it whole. *unencodable is set when the
 * host could not encode the event. */
static pgspout_status put_event(file_sink *fs, const pgspout_event *ev,
                                off_t *mark, bool *unencodable)
{
    const pgspout_host_api *host = fs->host;
    event_output out = {fs, mark, PGSPOUT_OK};

    *unencodable = false;
    if (PGSPOUT_HAS_FIELD(host, pgspout_host_api, event_json_stream) &&
        host->event_json_stream) {
        if (!host->event_json_stream(ev, PGSPOUT_PART_EVENT, take_piece,
                                     &out)) {
            *unencodable = out.status == PGSPOUT_OK;
            return out.status;
        }
    } else {
        size_t len = 0;
        const char *json = host->event_json(ev, PGSPOUT_PART_EVENT, &len);

        *unencodable = json == NULL;
        if (!json || !take_piece(&out, json, len))
            return out.status;
    }
    return put_output(fs, "\n", 1, mark);
}

static pgspout_status
file_write(void *state, const pgspout_event *const *events, size_t count)
{
    file_sink *fs = state;
    const pgspout_host_api *host = fs->host;
    off_t mark;
    bool had_written = fs->have_written;
    pgspout_position was_written = fs->last_written;
    pgspout_status status = ready(fs);

    if (status != PGSPOUT_OK)
        return status;
    mark = logical_size(fs);
    for (size_t i = 0; i < count; i++) {
        bool unencodable;
        status = put_event(fs, events[i], &mark, &unencodable);

        if (unencodable) {
            host->log(fs->handle, PGSPOUT_LOG_ERROR,
                      "the host could not encode an event as JSON");
            status = PGSPOUT_FATAL;
            goto undo;
        }
        /* A file deleted or cut under us has nothing to roll back. */
        if (status != PGSPOUT_OK && fs->failed)
            return status;
        if (status != PGSPOUT_OK)
            goto undo;
        fs->have_written = true;
        fs->last_written = host->event_position(events[i]);
    }
    return PGSPOUT_OK;

undo:
    fs->have_written = had_written;
    fs->last_written = was_written;
    if (rollback(fs, mark) != PGSPOUT_OK)
        return PGSPOUT_FATAL;
    if (fs->out.len == 0) { /* the file ends where the batch began */
        fs->have_handed = had_written;
        fs->last_handed = was_written;
    }
    return status;
}

/* Drops the bytes just fsynced from the page cache (clean pages: nothing
 * is written). pgspout never reads them back; dropped pages are free again
 * at once and the next writes reuse them, whereas growing the cache takes
 * fresh memory, which on virtual machines that hand free memory back to
 * the host costs several times the copy itself (the backfill benchmark's
 * file sink spent most of its time there). A hint only: failures do not
 * matter. */
static void drop_from_cache(file_sink *fs)
{
    if (!fs->path || !fs->sync || fs->keep_cached || !fs->watched)
        return;
    off_t from = fs->uncached_to <= fs->file_size ? fs->uncached_to : 0;
    if (fs->file_size > from)
        (void)posix_fadvise(fs->fd, from, fs->file_size - from,
                            POSIX_FADV_DONTNEED);
    /* A partly filled last page stays cached: it is dropped next time. */
    fs->uncached_to = fs->file_size & ~(off_t)4095;
}

static pgspout_status file_flush(void *state)
{
    file_sink *fs = state;
    pgspout_status status = ready(fs);

    if (status == PGSPOUT_OK && fs->out.len > fs->sent)
        status = write_out(fs, NULL);
    if (status != PGSPOUT_OK)
        return status;
    /* A failed fsync is never retried: the kernel may already have dropped
     * the dirty pages, and a second fsync would then report success for data
     * that never reached the disk. */
    if (fs->path && fs->sync && fsync(fs->fd) != 0) {
        report(fs->host, fs->handle, errno, "cannot fsync \"%s\"", fs->path);
        return PGSPOUT_FATAL;
    }
    drop_from_cache(fs);
    /* What was just made durable must still be in `path` (or, renamed
     * away, in the renamed file) before it is acknowledged. */
    status = check_file(fs);
    if (status != PGSPOUT_OK)
        return status;
    if (fs->have_written &&
        (!fs->have_acked ||
         pgspout_position_cmp(fs->last_written, fs->last_acked) > 0)) {
        fs->host->ack_durable(fs->handle, fs->last_written);
        fs->have_acked = true;
        fs->last_acked = fs->last_written;
    }
    if (fs->path && fs->rotate_size > 0 && fs->file_size >= fs->rotate_size)
        return rotate(fs);
    return PGSPOUT_OK;
}

static void file_destroy(void *state)
{
    file_sink *fs = state;

    if (!fs)
        return;
    if (fs->path && fs->fd >= 0)
        close(fs->fd);
    free(fs->path);
    sbuf_free(&fs->out);
    free(fs);
}

static bool file_resume_position(void *state, pgspout_position *position)
{
    file_sink *fs = state;

    if (!fs->have_resume)
        return false;
    *position = fs->resume;
    return true;
}

static const pgspout_sink_descriptor file_descriptor = {
    PGSPOUT_SINK_HEADER,
    .name = "file",
    .version = "1.0.0",
    .description = "appends one JSON object per change to a file or stdout",
    .options = file_options,
    .create = file_create,
    .write = file_write,
    .flush = file_flush,
    .destroy = file_destroy,
    .resume_position = file_resume_position,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &file_descriptor;
}
