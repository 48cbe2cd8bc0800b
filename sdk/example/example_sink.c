/* A minimal pgspout sink, written to be read: it appends one tab-separated
 * line per change to a file,
 *
 *     commit_lsn <TAB> seq <TAB> op <TAB> schema.table <TAB> key as JSON
 *
 * and shows the whole contract: an option table, create/write/flush/destroy,
 * copying what must outlive write(), making data durable before
 * acknowledging it, and using the host table safely across ABI minors.
 *
 * Build: make (see the Makefile; needs only pkg-config and the SDK). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pgspout/pgspout.h>

/* The host validates options against this table before create() runs, and
 * prints it in `pgspout --list-sinks` and `--help`. */
static const pgspout_option_def example_options[] = {
    {.name = "path",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "file to append the lines to"},
    PGSPOUT_OPTION_END};

typedef struct example_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    int fd;

    /* Lines formatted by write() and not yet in the file. Events die when
     * write() returns, so the sink keeps its own copy of what it needs. The
     * host calls flush() when it holds too much unacknowledged data, which
     * keeps this buffer bounded. */
    char *buf;
    size_t len, cap;
    size_t sent; /* survives a failed flush, so a retry repeats nothing */

    bool have_pending;
    pgspout_position pending; /* newest event in buf or the file */
} example_sink;

static bool reserve(example_sink *ex, size_t extra)
{
    size_t cap = ex->cap ? ex->cap : 4096;
    char *grown;

    while (cap - ex->len < extra)
        cap *= 2;
    if (cap == ex->cap)
        return true;
    grown = realloc(ex->buf, cap);
    if (!grown)
        return false;
    ex->buf = grown;
    ex->cap = cap;
    return true;
}

#define LINE_FORMAT "%s\t%" PRIu64 "\t%s\t%s.%s\t%.*s\n"

static bool append_line(example_sink *ex, const pgspout_event *ev)
{
    const pgspout_host_api *host = ex->host;
    pgspout_position pos = host->event_position(ev);
    const char *op = host->op_name(host->event_op(ev));
    const char *schema = host->event_schema(ev);
    const char *table = host->event_table(ev);
    size_t key_len = 0;
    const char *key = host->event_json(ev, PGSPOUT_PART_KEY, &key_len);
    char lsn[32];
    int needed;

    if (!key) {
        key = "null";
        key_len = 4;
    }
    host->format_lsn(pos.commit_lsn, lsn, sizeof lsn);
    needed = snprintf(NULL, 0, LINE_FORMAT, lsn, pos.seq, op, schema, table,
                      (int)key_len, key);
    if (needed < 0 || !reserve(ex, (size_t)needed + 1))
        return false;
    snprintf(ex->buf + ex->len, (size_t)needed + 1, LINE_FORMAT, lsn, pos.seq,
             op, schema, table, (int)key_len, key);
    ex->len += (size_t)needed; /* the NUL is overwritten by the next line */
    return true;
}

static pgspout_status example_create(const pgspout_host_api *host,
                                     pgspout_sink_handle *handle, void **state)
{
    const char *path;
    example_sink *ex;

    /* Every field used here exists since ABI 1.0, so this check cannot fail
     * on a 1.x host; it is the pattern for fields appended in later minors.
     * A host older than the field hands a shorter table, and reading past
     * its end would be undefined. For a hypothetical 1.1 addition:
     *
     *     if (PGSPOUT_HAS_FIELD(host, pgspout_host_api, event_origin))
     *         origin = host->event_origin(ev);
     *     else
     *         origin = NULL;   // degrade gracefully on a 1.0 host
     *
     * Never compare host->size with sizeof(pgspout_host_api): that is the
     * size in *your* headers, not in the host's. */
    if (!PGSPOUT_HAS_FIELD(host, pgspout_host_api, op_name)) {
        host->log(handle, PGSPOUT_LOG_ERROR, "host API table too old");
        return PGSPOUT_FATAL;
    }

    /* Declared required, so the host guarantees it is there. */
    if (!host->option_string(handle, "path", &path))
        return PGSPOUT_FATAL;

    ex = calloc(1, sizeof *ex);
    if (!ex)
        return PGSPOUT_FATAL;
    ex->host = host;
    ex->handle = handle;
    ex->fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (ex->fd < 0) {
        host->log(handle, PGSPOUT_LOG_ERROR, "cannot open \"%s\": %s", path,
                  strerror(errno));
        free(ex);
        return PGSPOUT_FATAL;
    }
    *state = ex;
    return PGSPOUT_OK;
}

static pgspout_status
example_write(void *state, const pgspout_event *const *events, size_t count)
{
    example_sink *ex = state;
    size_t batch_start = ex->len;

    for (size_t i = 0; i < count; i++) {
        if (!append_line(ex, events[i])) {
            /* RETRY (or FATAL) means "I kept nothing of this batch": the
             * host will hand over the very same events again. */
            ex->len = batch_start;
            ex->host->log(ex->handle, PGSPOUT_LOG_ERROR, "out of memory");
            return PGSPOUT_FATAL;
        }
    }
    if (count > 0) {
        ex->have_pending = true;
        ex->pending = ex->host->event_position(events[count - 1]);
    }
    return PGSPOUT_OK;
}

static pgspout_status example_flush(void *state)
{
    example_sink *ex = state;

    while (ex->sent < ex->len) {
        ssize_t n = write(ex->fd, ex->buf + ex->sent, ex->len - ex->sent);

        if (n < 0) {
            int err = errno;
            bool transient = err == ENOSPC || err == EINTR || err == EAGAIN;

            ex->host->log(ex->handle,
                          transient ? PGSPOUT_LOG_WARNING : PGSPOUT_LOG_ERROR,
                          "write failed: %s", strerror(err));
            return transient ? PGSPOUT_RETRY : PGSPOUT_FATAL;
        }
        ex->sent += (size_t)n;
    }
    ex->len = ex->sent = 0;

    /* Acknowledge only what is on stable storage: the host confirms a
     * position to PostgreSQL once every sink acknowledged it, and PostgreSQL
     * may then recycle the WAL behind it. */
    if (fsync(ex->fd) != 0) {
        ex->host->log(ex->handle, PGSPOUT_LOG_ERROR, "fsync failed: %s",
                      strerror(errno));
        return PGSPOUT_FATAL;
    }
    if (ex->have_pending) {
        ex->host->ack_durable(ex->handle, ex->pending);
        ex->have_pending = false;
    }
    return PGSPOUT_OK;
}

static void example_destroy(void *state)
{
    example_sink *ex = state;

    close(ex->fd);
    free(ex->buf);
    free(ex);
}

static const pgspout_sink_descriptor example_descriptor = {
    /* ABI 1.4: no message, begin or commit events (README). */
    PGSPOUT_SINK_HEADER_MINOR(4),
    .name = "example",
    .version = "1.0.0",
    .description = "SDK example: one tab-separated line per change",
    .options = example_options,
    .create = example_create,
    .write = example_write,
    .flush = example_flush,
    .destroy = example_destroy,
    /* This sink cannot read its output back, so it leaves resume_position
     * NULL: after a crash the host redelivers from PostgreSQL's confirmed
     * position and the file may hold a few lines twice (at-least-once). */
    .resume_position = NULL,
};

/* The only symbol the shared object exports (built -fvisibility=hidden). */
PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &example_descriptor;
}
