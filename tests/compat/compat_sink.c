/* A sink built against a frozen copy of an older SDK's headers (by default
 * ABI 1.0, tests/compat/abi-1.0): proves that today's host still loads such
 * a sink and hands it only what its headers can name. One line per event,
 * "op<TAB>schema.table<TAB>key JSON"; an op its headers do not know is a
 * fatal error, so a host that leaks one fails the run.
 *
 * Built with -DCOMPAT_SINK_TOO_NEW against today's headers it instead
 * declares the minor after the host's, which the host must refuse. */
#include <stdio.h>
#include <stdlib.h>

#include "pgspout/sink.h"

#ifdef COMPAT_SINK_TOO_NEW
#define COMPAT_SINK_MINOR (PGSPOUT_ABI_MINOR + 1)
#else
#define COMPAT_SINK_MINOR PGSPOUT_ABI_MINOR
#endif

typedef struct compat_state {
    const pgspout_host_api *host;
    pgspout_sink_handle *sink;
    FILE *out;
    pgspout_position last; /* of the last event written */
    int written;
} compat_state;

static const char *known_op_name(pgspout_op op)
{
    switch (op) {
    case PGSPOUT_OP_INSERT:
        return "insert";
    case PGSPOUT_OP_UPDATE:
        return "update";
    case PGSPOUT_OP_DELETE:
        return "delete";
    case PGSPOUT_OP_TRUNCATE:
        return "truncate";
    case PGSPOUT_OP_SCHEMA:
        return "schema";
    default:
        return NULL; /* beyond what this sink's headers name */
    }
}

static pgspout_status compat_create(const pgspout_host_api *host,
                                    pgspout_sink_handle *sink, void **state)
{
    const char *path;
    if (!host->option_string(sink, "path", &path))
        return PGSPOUT_FATAL;
    compat_state *s = calloc(1, sizeof *s);
    if (!s || !(s->out = fopen(path, "a"))) {
        host->log(sink, PGSPOUT_LOG_ERROR, "cannot open %s", path);
        free(s);
        return PGSPOUT_FATAL;
    }
    s->host = host;
    s->sink = sink;
    *state = s;
    return PGSPOUT_OK;
}

static pgspout_status
compat_write(void *state, const pgspout_event *const *events, size_t count)
{
    compat_state *s = state;
    for (size_t i = 0; i < count; i++) {
        pgspout_op op = s->host->event_op(events[i]);
        const char *name = known_op_name(op);
        if (!name) {
            s->host->log(s->sink, PGSPOUT_LOG_ERROR,
                         "op %d is unknown to ABI %u.%u", (int)op,
                         PGSPOUT_ABI_MAJOR, (unsigned)COMPAT_SINK_MINOR);
            return PGSPOUT_FATAL;
        }
        size_t len;
        const char *key =
            s->host->event_json(events[i], PGSPOUT_PART_KEY, &len);
        fprintf(s->out, "%s\t%s.%s\t%s\n", name,
                s->host->event_schema(events[i]),
                s->host->event_table(events[i]), key ? key : "null");
        s->last = s->host->event_position(events[i]);
        s->written++;
    }
    return PGSPOUT_OK;
}

static pgspout_status compat_flush(void *state)
{
    compat_state *s = state;
    if (fflush(s->out) != 0)
        return PGSPOUT_RETRY;
    if (s->written)
        s->host->ack_durable(s->sink, s->last);
    return PGSPOUT_OK;
}

static void compat_destroy(void *state)
{
    compat_state *s = state;
    fclose(s->out);
    free(s);
}

static const pgspout_option_def compat_options[] = {
    {.name = "path",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "file the events are written to"},
    PGSPOUT_OPTION_END};

static const pgspout_sink_descriptor compat_descriptor = {
    .magic = PGSPOUT_ABI_MAGIC,
    .abi_major = PGSPOUT_ABI_MAJOR,
    .abi_minor = COMPAT_SINK_MINOR,
    .size = sizeof(pgspout_sink_descriptor),
    .name = "compat",
    .version = "1",
    .description = "a sink built against an older SDK (tests only)",
    .options = compat_options,
    .create = compat_create,
    .write = compat_write,
    .flush = compat_flush,
    .destroy = compat_destroy,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &compat_descriptor;
}
