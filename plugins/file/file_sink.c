/* The file sink: one compact JSON event per line, appended to a file (or
 * written to stdout), made durable before it is acknowledged, rotated by
 * size, and read back on start so a restart continues exactly after the last
 * stored event. */
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

#include "file_recovery.h"

/* Past this much pending output, write() hands it to the kernel, so a huge
 * transaction never piles up in memory between flushes. */
#define FILE_SINK_WRITE_THRESHOLD ((size_t)1 << 20)

typedef struct file_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    char *path; /* NULL when writing to stdout */
    int fd;     /* -1 after a rotation could not open the fresh file */
    bool sync;
    int64_t rotate_size;
    uint64_t last_rotation;

    /* Output not yet in the file is buf[sent..len); `sent` survives a failed
     * write(2), so a retry never repeats bytes that already went out. */
    char *buf;
    size_t len, cap, sent;
    off_t file_size; /* bytes already handed to the file */

    bool have_written;
    pgspout_position last_written; /* newest event taken by write() */
    bool have_acked;
    pgspout_position last_acked;
    bool have_resume;
    pgspout_position resume;
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

static bool buffer_append(file_sink *fs, const char *data, size_t n)
{
    if (fs->cap - fs->len < n) {
        size_t cap = fs->cap ? fs->cap : 65536;
        char *grown;

        while (cap - fs->len < n)
            cap *= 2;
        grown = realloc(fs->buf, cap);
        if (!grown)
            return false;
        fs->buf = grown;
        fs->cap = cap;
    }
    memcpy(fs->buf + fs->len, data, n);
    fs->len += n;
    return true;
}

/* Returns 0, or the errno of the failed write(2) with the unsent rest kept. */
static int drain(file_sink *fs)
{
    while (fs->sent < fs->len) {
        ssize_t n = write(fs->fd, fs->buf + fs->sent, fs->len - fs->sent);

        if (n < 0)
            return errno;
        fs->sent += (size_t)n;
        fs->file_size += n;
    }
    fs->len = fs->sent = 0;
    return 0;
}

/* Everything the sink holds, on disk or still buffered. */
static off_t logical_size(const file_sink *fs)
{
    return fs->file_size + (off_t)(fs->len - fs->sent);
}

/* Forgets all output past `mark`, so the host can redeliver a batch that
 * failed half-way without any of it being stored twice. */
static pgspout_status rollback(file_sink *fs, off_t mark)
{
    if (mark >= fs->file_size) {
        fs->len = fs->sent + (size_t)(mark - fs->file_size);
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
    fs->len = fs->sent = 0;
    return PGSPOUT_OK;
}

static pgspout_status claim_output(file_sink *fs)
{
    struct stat st;
    file_error err;

    if (fstat(fs->fd, &st) != 0)
        return report(fs->host, fs->handle, errno, "cannot stat \"%s\"",
                      fs->path);
    if (!S_ISREG(st.st_mode)) {
        /* A device or FIFO (/dev/stderr, a named pipe) cannot be synced,
         * renamed or read back; treat it like stdout. */
        fs->sync = false;
        fs->rotate_size = 0;
        fs->file_size = 0;
        return PGSPOUT_OK;
    }
    /* Two writers appending to one file would interleave lines and break
     * recovery, be they two sinks of one config or two pgspout processes. */
    if (flock(fs->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            fs->host->log(fs->handle, PGSPOUT_LOG_ERROR,
                          "\"%s\" is in use by another sink or process",
                          fs->path);
            return PGSPOUT_FATAL;
        }
        return report(fs->host, fs->handle, errno, "cannot lock \"%s\"",
                      fs->path);
    }
    fs->file_size = st.st_size;
    if (fs->sync && !file_sync_parent_dir(fs->path, &err))
        return report_error(fs, &err);
    return PGSPOUT_OK;
}

/* Opens `path` for appending; the directory is synced so that a newly
 * created file's name is as durable as the data later fsynced into it. */
static pgspout_status open_output(file_sink *fs)
{
    pgspout_status status;

    fs->fd = open(fs->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fs->fd < 0)
        return report(fs->host, fs->handle, errno, "cannot open \"%s\"",
                      fs->path);
    status = claim_output(fs);
    if (status != PGSPOUT_OK) {
        close(fs->fd);
        fs->fd = -1;
    }
    return status;
}

static pgspout_status rotate(file_sink *fs)
{
    uint64_t n = fs->last_rotation + 1;
    char *target;
    struct stat st;

    for (;;) {
        target = file_rotation_name(fs->path, n);
        if (!target)
            return report(fs->host, fs->handle, ENOMEM, "cannot rotate");
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
    return open_output(fs);
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
    {.name = "rotate_size",
     .type = PGSPOUT_OPT_INT,
     .default_value = "0",
     .doc = "rotate the file to <path>.<N> once it reaches this many bytes; "
            "0 never",
     .min = 0,
     .max = 9.2e18},
    PGSPOUT_OPTION_END};

static void file_destroy(void *state);

/* Reads back the file (or, when it holds no event yet, the newest rotated
 * one) so the host can skip what is already stored. */
static pgspout_status recover(file_sink *fs)
{
    file_tail tail;
    file_error err;
    const char *from = fs->path;
    char *rotated = NULL;
    char lsn[32];

    if (!file_tail_repair(fs->fd, fs->path, fs->sync, &tail, &err))
        return report_error(fs, &err);
    if (tail.torn_bytes > 0)
        fs->host->log(fs->handle, PGSPOUT_LOG_WARNING,
                      "\"%s\": truncated %lld bytes of an incomplete last "
                      "line at offset %lld",
                      fs->path, (long long)tail.torn_bytes,
                      (long long)tail.size);
    fs->file_size = tail.size;
    if (!file_rotation_last(fs->path, &fs->last_rotation, &err))
        return report_error(fs, &err);

    if (!tail.has_position && fs->last_rotation > 0) {
        int fd;
        bool ok;

        rotated = file_rotation_name(fs->path, fs->last_rotation);
        if (!rotated)
            return report(fs->host, fs->handle, ENOMEM, "cannot recover");
        fd = open(rotated, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            pgspout_status status = report(fs->host, fs->handle, errno,
                                           "cannot open \"%s\"", rotated);
            free(rotated);
            return status;
        }
        ok = file_tail_repair(fd, rotated, fs->sync, &tail, &err);
        close(fd);
        if (!ok) {
            free(rotated);
            return report_error(fs, &err);
        }
        if (tail.torn_bytes > 0)
            fs->host->log(fs->handle, PGSPOUT_LOG_WARNING,
                          "\"%s\": truncated %lld bytes of an incomplete "
                          "last line at offset %lld",
                          rotated, (long long)tail.torn_bytes,
                          (long long)tail.size);
        from = rotated;
    }
    if (tail.has_position) {
        fs->have_resume = true;
        fs->resume = tail.position;
        fs->host->log(fs->handle, PGSPOUT_LOG_INFO,
                      "\"%s\": resuming after commit_lsn %s seq %" PRIu64
                      " (line at offset %lld)",
                      from,
                      lsn_text(fs, tail.position.commit_lsn, lsn, sizeof lsn),
                      tail.position.seq, (long long)tail.position_line);
    } else {
        fs->host->log(fs->handle, PGSPOUT_LOG_INFO,
                      "\"%s\": no stored events, starting fresh", fs->path);
    }
    free(rotated);
    return PGSPOUT_OK;
}

static pgspout_status file_create(const pgspout_host_api *host,
                                  pgspout_sink_handle *handle, void **state)
{
    const char *path;
    bool sync = true;
    int64_t rotate_size = 0;
    file_sink *fs;
    pgspout_status status;

    if (!host->option_string(handle, "path", &path) || !*path) {
        host->log(handle, PGSPOUT_LOG_ERROR, "option \"path\" is required");
        return PGSPOUT_FATAL;
    }
    host->option_bool(handle, "fsync", &sync);
    host->option_int(handle, "rotate_size", &rotate_size);
    if (rotate_size < 0) {
        host->log(handle, PGSPOUT_LOG_ERROR,
                  "option \"rotate_size\" must not be negative");
        return PGSPOUT_FATAL;
    }

    fs = calloc(1, sizeof *fs);
    if (!fs)
        return report(host, handle, ENOMEM, "cannot create the file sink");
    fs->host = host;
    fs->handle = handle;
    fs->fd = -1;

    if (strcmp(path, "-") == 0) {
        /* A pipe or terminal can be neither synced, rotated nor read back. */
        fs->fd = STDOUT_FILENO;
        *state = fs;
        return PGSPOUT_OK;
    }
    fs->path = strdup(path);
    if (!fs->path) {
        file_destroy(fs);
        return report(host, handle, ENOMEM, "cannot create the file sink");
    }
    fs->sync = sync;
    fs->rotate_size = rotate_size;

    status = open_output(fs);
    if (status == PGSPOUT_OK)
        status = recover(fs);
    if (status != PGSPOUT_OK) {
        file_destroy(fs);
        return status;
    }
    *state = fs;
    return PGSPOUT_OK;
}

/* Adds output; once a megabyte is pending it goes to the kernel, even in
 * the middle of an event, so an event with a huge value passes through in
 * bounded pieces. Returns 0 or an errno (ENOMEM: the buffer could not
 * grow). */
static int put_output(file_sink *fs, const char *data, size_t n)
{
    if (!buffer_append(fs, data, n))
        return ENOMEM;
    if (fs->len - fs->sent < FILE_SINK_WRITE_THRESHOLD)
        return 0;
    return drain(fs);
}

typedef struct event_output {
    file_sink *fs;
    int errnum; /* why put_output refused a piece */
} event_output;

static bool take_piece(void *ctx, const char *data, size_t length)
{
    event_output *out = ctx;

    out->errnum = put_output(out->fs, data, length);
    return out->errnum == 0;
}

/* Appends one event's line. The host streams the JSON when it can (ABI
 * 1.1), so that neither side holds it whole. Returns 0, an errno, or -1
 * when the host could not encode the event. */
static int put_event(file_sink *fs, const pgspout_event *ev)
{
    const pgspout_host_api *host = fs->host;
    event_output out = {fs, 0};

    if (PGSPOUT_HAS_FIELD(host, pgspout_host_api, event_json_stream) &&
        host->event_json_stream) {
        if (!host->event_json_stream(ev, PGSPOUT_PART_EVENT, take_piece, &out))
            return out.errnum ? out.errnum : -1;
    } else {
        size_t len = 0;
        const char *json = host->event_json(ev, PGSPOUT_PART_EVENT, &len);

        if (!json)
            return -1;
        if (!take_piece(&out, json, len))
            return out.errnum;
    }
    return put_output(fs, "\n", 1);
}

static pgspout_status
file_write(void *state, const pgspout_event *const *events, size_t count)
{
    file_sink *fs = state;
    const pgspout_host_api *host = fs->host;
    off_t mark;
    bool had_written = fs->have_written;
    pgspout_position was_written = fs->last_written;
    pgspout_status status;

    if (fs->fd < 0 && (status = open_output(fs)) != PGSPOUT_OK)
        return status;
    mark = logical_size(fs);
    for (size_t i = 0; i < count; i++) {
        int errnum = put_event(fs, events[i]);

        if (errnum < 0) {
            host->log(fs->handle, PGSPOUT_LOG_ERROR,
                      "the host could not encode an event as JSON");
            status = PGSPOUT_FATAL;
            goto undo;
        }
        if (errnum == ENOMEM) {
            status = report(host, fs->handle, ENOMEM, "cannot buffer events");
            goto undo;
        }
        if (errnum) {
            status =
                report(host, fs->handle, errnum, "cannot write to %s%s%s",
                       fs->path ? "\"" : "", fs->path ? fs->path : "stdout",
                       fs->path ? "\"" : "");
            goto undo;
        }
        fs->have_written = true;
        fs->last_written = host->event_position(events[i]);
    }
    return PGSPOUT_OK;

undo:
    fs->have_written = had_written;
    fs->last_written = was_written;
    if (rollback(fs, mark) != PGSPOUT_OK)
        return PGSPOUT_FATAL;
    return status;
}

static pgspout_status file_flush(void *state)
{
    file_sink *fs = state;
    pgspout_status status;
    int errnum;

    if (fs->fd < 0 && (status = open_output(fs)) != PGSPOUT_OK)
        return status;
    errnum = drain(fs);
    if (errnum)
        return report(fs->host, fs->handle, errnum, "cannot write to %s%s%s",
                      fs->path ? "\"" : "", fs->path ? fs->path : "stdout",
                      fs->path ? "\"" : "");
    /* A failed fsync is never retried: the kernel may already have dropped
     * the dirty pages, and a second fsync would then report success for data
     * that never reached the disk. */
    if (fs->path && fs->sync && fsync(fs->fd) != 0) {
        report(fs->host, fs->handle, errno, "cannot fsync \"%s\"", fs->path);
        return PGSPOUT_FATAL;
    }
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
    free(fs->buf);
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
