#include "sink_host.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "event_internal.h"
#include "event_json.h"
#include "host_columns.h"
#include "log.h"
#include "lsn.h"
#include "stats.h"
#include "strbuf.h"

/* The first signal while streaming ends every wait, except a healthy
 * sink's (its last report said its service accepts records): that one is
 * not failing, only not done, and the clean stop that follows would wait
 * for it anyway; it finishes the write or flush under way. A second
 * signal, or a sink that is failing or never reports, stops waiting at
 * once (README, "SIGINT/SIGTERM"). */
static bool host_should_stop(pgspout_sink_handle *sink)
{
    if (!stop_requested(sink->stop))
        return false;
    if (stop_get_phase(sink->stop) != STOP_STREAMING ||
        stop_signal_count(sink->stop) > 1 ||
        !atomic_load(&sink->reported_healthy))
        return true;
    if (!atomic_exchange(&sink->told_to_finish, true))
        log_msg(PGSPOUT_LOG_INFO,
                "sink '%s': stop requested; letting it finish what it is "
                "sending, as its service answers (a second signal stops at "
                "once)",
                sink->name);
    return false;
}

static void host_log(pgspout_sink_handle *sink, pgspout_log_level level,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, sink ? sink->name : "sink", fmt, ap);
    va_end(ap);
}

static bool host_option_string(pgspout_sink_handle *sink, const char *name,
                               const char **value)
{
    return sink_options_get_string(sink->options, name, value);
}

static bool host_option_int(pgspout_sink_handle *sink, const char *name,
                            int64_t *value)
{
    return sink_options_get_int(sink->options, name, value);
}

static bool host_option_bool(pgspout_sink_handle *sink, const char *name,
                             bool *value)
{
    return sink_options_get_bool(sink->options, name, value);
}

static bool host_option_double(pgspout_sink_handle *sink, const char *name,
                               double *value)
{
    return sink_options_get_double(sink->options, name, value);
}

static bool host_option_prefixed(pgspout_sink_handle *sink, const char *prefix,
                                 pgspout_option_visitor visit, void *ctx)
{
    return sink_options_each_prefixed(sink->options, prefix, visit, ctx);
}

static pgspout_op host_event_op(const pgspout_event *ev)
{
    return ev->op;
}

static const char *host_event_schema(const pgspout_event *ev)
{
    return ev->rel ? ev->rel->schema : NULL;
}

static const char *host_event_table(const pgspout_event *ev)
{
    return ev->rel ? ev->rel->table : NULL;
}

static pgspout_position host_event_position(const pgspout_event *ev)
{
    return ev->pos;
}

static pgspout_lsn host_event_lsn(const pgspout_event *ev)
{
    return ev->lsn;
}

static uint32_t host_event_xid(const pgspout_event *ev)
{
    return ev->xid;
}

static int64_t host_event_commit_time(const pgspout_event *ev)
{
    return ev->commit_time_us;
}

static const char *host_event_json(const pgspout_event *ev,
                                   pgspout_event_part part, size_t *length)
{
    if ((int)part < 0 || (int)part >= EVENT_PART_COUNT) {
        if (length)
            *length = 0;
        return NULL;
    }
    /* The cache lives in the event; sinks see it as const because they must
     * not change what other sinks read. */
    size_t len = 0;
    const char *json = event_json_get((pgspout_event *)ev, part, &len);
    if (length)
        *length = len;
    return json;
}

static bool host_event_json_stream(const pgspout_event *ev,
                                   pgspout_event_part part,
                                   pgspout_json_writer writer, void *ctx)
{
    return event_json_stream(ev, part, PGSPOUT_JSON_PIECE_MAX, writer, ctx);
}

static char *host_format_lsn(pgspout_lsn lsn, char *buf, size_t buflen)
{
    return lsn_format(lsn, buf, buflen);
}

static void host_ack_durable(pgspout_sink_handle *sink, pgspout_position upto)
{
    pthread_mutex_lock(&sink->ack_lock);
    bool backwards = pgspout_position_cmp(upto, sink->acked) < 0;
    if (!backwards)
        sink->acked = upto;
    pthread_mutex_unlock(&sink->ack_lock);
    if (backwards) {
        log_msg(PGSPOUT_LOG_WARNING,
                "sink '%s' acknowledged a position older than before; "
                "ignored",
                sink->name);
        return;
    }
    stop_wake(sink->stop);
}

static void host_report_records(pgspout_sink_handle *sink,
                                pgspout_record_outcome what, uint64_t n)
{
    stats_sink_report(sink->name, what, n);
    if (what == PGSPOUT_RECORDS_RETRIED && n > 0)
        atomic_store(&sink->reported_healthy, false);
    else if (what == PGSPOUT_RECORDS_ACCEPTED && n > 0)
        atomic_store(&sink->reported_healthy, true);
}

static const pgspout_host_api api_table = {
    .size = sizeof(pgspout_host_api),
    .abi_major = PGSPOUT_ABI_MAJOR,
    .abi_minor = PGSPOUT_ABI_MINOR,
    .log = host_log,
    .option_string = host_option_string,
    .option_int = host_option_int,
    .option_bool = host_option_bool,
    .option_double = host_option_double,
    .event_op = host_event_op,
    .event_schema = host_event_schema,
    .event_table = host_event_table,
    .event_position = host_event_position,
    .event_lsn = host_event_lsn,
    .event_xid = host_event_xid,
    .event_commit_time = host_event_commit_time,
    .event_json = host_event_json,
    .format_lsn = host_format_lsn,
    .ack_durable = host_ack_durable,
    .op_name = event_op_name,
    .should_stop = host_should_stop,
    .event_json_stream = host_event_json_stream,
    .report_records = host_report_records,
    .option_prefixed = host_option_prefixed,
    .event_column_count = host_event_column_count,
    .event_column_name = host_event_column_name,
    .event_column_type_oid = host_event_column_type_oid,
    .event_column_type_name = host_event_column_type_name,
    .event_column_is_key = host_event_column_is_key,
    .event_value = host_event_value,
};

const pgspout_host_api *host_api(void)
{
    return &api_table;
}

/* The end of the table as a host of ABI 1.`minor` had it. */
static size_t table_size_of_minor(long minor)
{
    if (minor < 1)
        return offsetof(pgspout_host_api, event_json_stream);
    if (minor < 3)
        return offsetof(pgspout_host_api, report_records);
    if (minor < 4)
        return offsetof(pgspout_host_api, option_prefixed);
    if (minor < 6)
        return offsetof(pgspout_host_api, event_column_count);
    return sizeof(pgspout_host_api);
}

static pgspout_host_api sinks_table;

/* PGSPOUT_HOST_ABI_MINOR=N hands sinks the table a host of ABI 1.N had
 * (sdk/GUIDE.md, "Testing against an older host"), so that a sink's
 * fallbacks for older hosts run, and can be measured, on this build. */
static void choose_sinks_table(void)
{
    sinks_table = api_table;
    const char *text = getenv("PGSPOUT_HOST_ABI_MINOR");
    if (!text || !*text)
        return;
    char *end;
    long minor = strtol(text, &end, 10);
    if (*end || minor < 0 || minor > PGSPOUT_ABI_MINOR) {
        log_warning("PGSPOUT_HOST_ABI_MINOR=%s ignored: not a minor from 0 "
                    "to %d",
                    text, PGSPOUT_ABI_MINOR);
        return;
    }
    sinks_table.abi_minor = (uint16_t)minor;
    sinks_table.size = (uint32_t)table_size_of_minor(minor);
    log_info("sinks get the host API of ABI %d.%ld "
             "(PGSPOUT_HOST_ABI_MINOR)",
             PGSPOUT_ABI_MAJOR, minor);
}

static const pgspout_host_api *sinks_api(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose_sinks_table);
    return &sinks_table;
}

sink_handle *sink_handle_new(const char *name, sink_library lib,
                             const sink_options *options, table_filter *filter,
                             stop_state *stop)
{
    sink_handle *s = xcalloc(1, sizeof *s);
    s->name = xstrdup(name);
    s->lib = lib;
    s->options = options;
    s->filter = filter;
    s->stop = stop;
    pthread_mutex_init(&s->ack_lock, NULL);
    return s;
}

void sink_handle_free(sink_handle *s)
{
    if (!s)
        return;
    if (s->created)
        s->lib.desc->destroy(s->state);
    sink_library_close(&s->lib);
    if (s->filter)
        table_filter_free(s->filter);
    pthread_mutex_destroy(&s->ack_lock);
    free(s->name);
    free(s);
}

bool sink_handle_check_options(sink_handle *s, char *option, size_t option_size,
                               char *why, size_t why_size)
{
    const pgspout_sink_descriptor *d = s->lib.desc;
    option[0] = why[0] = '\0';
    if (!PGSPOUT_HAS_FIELD(d, pgspout_sink_descriptor, check_options) ||
        !d->check_options || sinks_api()->abi_minor < 7 /* 1.7 added it */)
        return true;
    if (d->check_options(sinks_api(), s, option, option_size, why, why_size))
        return true;
    /* A sink that refused without saying why still gets a message. */
    if (!why[0])
        snprintf(why, why_size, "refused by the sink (no reason given)");
    return false;
}

pgspout_status sink_handle_create(sink_handle *s)
{
    const pgspout_sink_descriptor *d = s->lib.desc;
    pgspout_status st = d->create(sinks_api(), s, &s->state);
    if (st != PGSPOUT_OK)
        return st;
    s->created = true;
    if (d->resume_position) {
        pgspout_position pos;
        if (d->resume_position(s->state, &pos)) {
            s->has_resume = true;
            s->resume = pos;
            char lsn[32];
            log_info("sink '%s' already holds changes up to commit_lsn %s "
                     "seq %llu; earlier ones are skipped for it",
                     s->name, lsn_format(pos.commit_lsn, lsn, sizeof lsn),
                     (unsigned long long)pos.seq);
        }
    }
    return PGSPOUT_OK;
}

pgspout_position sink_handle_acked(sink_handle *s)
{
    pthread_mutex_lock(&s->ack_lock);
    pgspout_position p = s->acked;
    pthread_mutex_unlock(&s->ack_lock);
    return p;
}

void sink_handle_skip_delivered(sink_handle *s)
{
    if (!s->has_resume || pgspout_position_cmp(s->delivered, s->resume) > 0) {
        s->resume = s->delivered;
        s->has_resume = true;
    }
}
