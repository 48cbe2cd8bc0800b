/* A sink for tests of the host's delivery rules: it writes each event's JSON
 * to a file like the file sink (without fsync), and can be told to be slow,
 * to ask for retries, to fail for good, never to acknowledge (which keeps
 * the slot's confirmed position where it is, whatever other sinks store),
 * to hold its acknowledgements while a file exists, to wait in every write
 * until the host says to stop waiting, to wait in its flushes while a file
 * exists (as for a service's answer), or to live through an outage of its
 * service inside the first write as a network sink does (a warning and a
 * record reported for retry per failed request). Built with the tests,
 * never installed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pgspout/pgspout.h>

typedef struct fault_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    FILE *out;
    int64_t write_delay_ms;
    int64_t retry_writes; /* the first N write calls return RETRY */
    int64_t fatal_write;  /* write call number N returns FATAL (0: never) */
    int64_t write_calls;
    bool ack;
    bool wait_for_stop;
    int64_t outage_ms, outage_request_ms;
    const char *hold_acks_file;
    const char *flush_wait_file;
    bool flush_wait_failing;
    bool have_pending;
    pgspout_position pending; /* last event written, not yet acknowledged */
} fault_sink;

static const pgspout_option_def fault_options[] = {
    {.name = "path",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "file that receives one JSON line per event"},
    {.name = "write_delay",
     .type = PGSPOUT_OPT_DURATION,
     .default_value = "0",
     .doc = "sleep this long in every write call"},
    {.name = "retry_writes",
     .type = PGSPOUT_OPT_INT,
     .default_value = "0",
     .doc = "answer RETRY to the first N write calls"},
    {.name = "fatal_write",
     .type = PGSPOUT_OPT_INT,
     .default_value = "0",
     .doc = "answer FATAL to write call number N (0: never)"},
    {.name = "ack",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "true",
     .doc = "acknowledge what flush wrote (false: never)"},
    {.name = "wait_for_stop",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "false",
     .doc = "every write waits (up to 30 s) until the host's should_stop "
            "says to give up, then answers RETRY"},
    {.name = "outage",
     .type = PGSPOUT_OPT_DURATION,
     .default_value = "0",
     .doc = "the first write lives through an outage this long: each failed "
            "request logs a warning and reports a record to send again"},
    {.name = "outage_request",
     .type = PGSPOUT_OPT_DURATION,
     .default_value = "10",
     .doc = "during the outage, one failed request this often"},
    {.name = "hold_acks_file",
     .type = PGSPOUT_OPT_STRING,
     .doc = "while this file exists, flush acknowledges nothing"},
    {.name = "flush_wait_file",
     .type = PGSPOUT_OPT_STRING,
     .doc = "while this file exists, a flush waits (as for its service's "
            "answer) until it is gone or should_stop says to give up "
            "(RETRY); first it reports a record accepted"},
    {.name = "flush_wait_failing",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "false",
     .doc = "the waiting flush reports a record to send again instead"},
    PGSPOUT_OPTION_END};

static pgspout_status fault_create(const pgspout_host_api *host,
                                   pgspout_sink_handle *handle, void **state)
{
    fault_sink *s = calloc(1, sizeof *s);
    if (!s)
        return PGSPOUT_FATAL;
    s->host = host;
    s->handle = handle;
    const char *path = NULL;
    host->option_string(handle, "path", &path);
    host->option_int(handle, "write_delay", &s->write_delay_ms);
    host->option_int(handle, "retry_writes", &s->retry_writes);
    host->option_int(handle, "fatal_write", &s->fatal_write);
    host->option_bool(handle, "ack", &s->ack);
    host->option_bool(handle, "wait_for_stop", &s->wait_for_stop);
    host->option_int(handle, "outage", &s->outage_ms);
    host->option_int(handle, "outage_request", &s->outage_request_ms);
    host->option_string(handle, "hold_acks_file", &s->hold_acks_file);
    host->option_string(handle, "flush_wait_file", &s->flush_wait_file);
    host->option_bool(handle, "flush_wait_failing", &s->flush_wait_failing);
    s->out = path ? fopen(path, "a") : NULL;
    if (!s->out) {
        host->log(handle, PGSPOUT_LOG_ERROR, "cannot open %s: %s",
                  path ? path : "(no path)", strerror(errno));
        free(s);
        return PGSPOUT_FATAL;
    }
    *state = s;
    return PGSPOUT_OK;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* As a sink waiting for a service that does not answer: only the host's
 * should_stop ends the wait. */
static pgspout_status wait_for_stop(fault_sink *s)
{
    for (int waited = 0; waited < 3000; waited++) {
        if (s->host->should_stop(s->handle))
            break;
        sleep_ms(10);
    }
    s->host->log(s->handle, PGSPOUT_LOG_WARNING,
                 "write call %lld gave up waiting", (long long)s->write_calls);
    return PGSPOUT_RETRY;
}

/* As a network sink whose service is down for outage_ms: each request
 * fails, is logged and its record reported for a retry (when the host
 * knows reports), until the service is back. */
static void live_through_outage(fault_sink *s)
{
    int64_t failed = 0;
    int64_t step = s->outage_request_ms > 0 ? s->outage_request_ms : 1;
    bool reports =
        PGSPOUT_HAS_FIELD(s->host, pgspout_host_api, report_records) &&
        s->host->report_records;
    for (int64_t waited = 0; waited < s->outage_ms; waited += step) {
        failed++;
        s->host->log(s->handle, PGSPOUT_LOG_WARNING,
                     "outage: request %lld failed (connection refused)",
                     (long long)failed);
        if (reports)
            s->host->report_records(s->handle, PGSPOUT_RECORDS_RETRIED, 1);
        sleep_ms(step);
    }
    if (reports)
        s->host->report_records(s->handle, PGSPOUT_RECORDS_ACCEPTED, 1);
    s->host->log(s->handle, PGSPOUT_LOG_INFO,
                 "outage over after %lld failed requests", (long long)failed);
    s->outage_ms = 0;
}

/* Built with FAULT_SINK_ABI_MINOR, the sink declares that older minor: the
 * tests check what the host hands a sink built before an op existed. */
#ifdef FAULT_SINK_ABI_MINOR
#define FAULT_SINK_MINOR FAULT_SINK_ABI_MINOR
#else
#define FAULT_SINK_MINOR PGSPOUT_ABI_MINOR
#endif

/* Whether a sink of FAULT_SINK_MINOR can know the op (read: since 1.2;
 * message, begin and commit: since 1.5). */
static bool knows_op(pgspout_op op)
{
    if (op == PGSPOUT_OP_MESSAGE || op == PGSPOUT_OP_BEGIN ||
        op == PGSPOUT_OP_COMMIT)
        return FAULT_SINK_MINOR >= 5;
    return op != PGSPOUT_OP_READ || FAULT_SINK_MINOR >= 2;
}

static pgspout_status
fault_write(void *state, const pgspout_event *const *events, size_t count)
{
    fault_sink *s = state;
    s->write_calls++;
    if (s->write_delay_ms > 0)
        sleep_ms(s->write_delay_ms);
    if (s->wait_for_stop)
        return wait_for_stop(s);
    if (s->outage_ms > 0)
        live_through_outage(s);
    if (s->write_calls <= s->retry_writes) {
        s->host->log(s->handle, PGSPOUT_LOG_WARNING,
                     "injected RETRY for write call %lld",
                     (long long)s->write_calls);
        return PGSPOUT_RETRY;
    }
    if (s->fatal_write > 0 && s->write_calls >= s->fatal_write) {
        s->host->log(s->handle, PGSPOUT_LOG_ERROR,
                     "injected FATAL for write call %lld",
                     (long long)s->write_calls);
        return PGSPOUT_FATAL;
    }
    for (size_t i = 0; i < count; i++) {
        size_t len;
        if (!knows_op(s->host->event_op(events[i]))) {
            s->host->log(s->handle, PGSPOUT_LOG_ERROR,
                         "received op %d, unknown in ABI 1.%d",
                         (int)s->host->event_op(events[i]), FAULT_SINK_MINOR);
            return PGSPOUT_FATAL;
        }
        const char *json =
            s->host->event_json(events[i], PGSPOUT_PART_EVENT, &len);
        fwrite(json, 1, len, s->out);
        fputc('\n', s->out);
        s->pending = s->host->event_position(events[i]);
        s->have_pending = true;
    }
    return PGSPOUT_OK;
}

/* As a network sink's flush waiting for its service to answer, healthy
 * (its last report: accepted) or failing (to be sent again). False when
 * the host gave up waiting. */
static bool wait_in_flush(fault_sink *s)
{
    if (!s->flush_wait_file || access(s->flush_wait_file, F_OK) != 0)
        return true;
    s->host->report_records(s->handle,
                            s->flush_wait_failing ? PGSPOUT_RECORDS_RETRIED
                                                  : PGSPOUT_RECORDS_ACCEPTED,
                            1);
    s->host->log(s->handle, PGSPOUT_LOG_INFO, "flush waiting");
    while (access(s->flush_wait_file, F_OK) == 0) {
        if (s->host->should_stop(s->handle)) {
            s->host->log(s->handle, PGSPOUT_LOG_INFO, "flush gave up waiting");
            return false;
        }
        sleep_ms(10);
    }
    return true;
}

static pgspout_status fault_flush(void *state)
{
    fault_sink *s = state;
    if (!wait_in_flush(s))
        return PGSPOUT_RETRY;
    if (fflush(s->out) != 0)
        return PGSPOUT_FATAL;
    /* Held acknowledgements are given with the next flush after the
     * file is gone: pending is the newest position written. */
    if (s->hold_acks_file && access(s->hold_acks_file, F_OK) == 0)
        return PGSPOUT_OK;
    if (s->have_pending && s->ack)
        s->host->ack_durable(s->handle, s->pending);
    s->have_pending = false;
    return PGSPOUT_OK;
}

static void fault_destroy(void *state)
{
    fault_sink *s = state;
    fclose(s->out);
    free(s);
}

static const pgspout_sink_descriptor fault_descriptor = {
    .magic = PGSPOUT_ABI_MAGIC,
    .abi_major = PGSPOUT_ABI_MAJOR,
    .abi_minor = FAULT_SINK_MINOR,
    .size = sizeof(pgspout_sink_descriptor),
    .name = "fault",
    .version = "1.0",
    .description = "test sink: JSON lines, with injected delays and failures",
    .options = fault_options,
    .create = fault_create,
    .write = fault_write,
    .flush = fault_flush,
    .destroy = fault_destroy,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &fault_descriptor;
}
