/* A sink built against the ABI 1.6 headers that writes what the typed
 * column accessors return, for the integration tests to compare with the
 * server's own text output. Per event of a table, lines of tab-separated
 * fields (names and texts in hex, so that any byte survives):
 *   E op schema.table column-count
 *   C column name-hex type-oid type-name-hex key(0|1)
 *   V old|new|key column state text-hex
 * with states T (text), N (NULL), U (unchanged TOAST), A (absent),
 * B (binary). Built with the tests, never installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pgspout/pgspout.h>

typedef struct columns_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    FILE *out;
    bool have_last;
    pgspout_position last;
} columns_sink;

static const pgspout_option_def columns_options[] = {
    {.name = "path",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "file the accessors' answers are written to"},
    PGSPOUT_OPTION_END};

static pgspout_status columns_create(const pgspout_host_api *host,
                                     pgspout_sink_handle *handle, void **state)
{
    const char *path;
    if (!PGSPOUT_HAS_FIELD(host, pgspout_host_api, event_value)) {
        host->log(handle, PGSPOUT_LOG_ERROR, "the host has no ABI 1.6");
        return PGSPOUT_FATAL;
    }
    if (!host->option_string(handle, "path", &path))
        return PGSPOUT_FATAL;
    columns_sink *s = calloc(1, sizeof *s);
    if (!s || !(s->out = fopen(path, "a"))) {
        host->log(handle, PGSPOUT_LOG_ERROR, "cannot open %s", path);
        free(s);
        return PGSPOUT_FATAL;
    }
    s->host = host;
    s->handle = handle;
    *state = s;
    return PGSPOUT_OK;
}

static void write_hex(FILE *out, const char *data, size_t len)
{
    fputc('\t', out);
    for (size_t i = 0; i < len; i++)
        fprintf(out, "%02x", (unsigned char)data[i]);
}

static void write_column(columns_sink *s, const pgspout_event *ev, int i)
{
    const pgspout_host_api *h = s->host;
    const char *name = h->event_column_name(ev, i);
    const char *type = h->event_column_type_name(ev, i);
    fprintf(s->out, "C\t%d", i);
    write_hex(s->out, name, strlen(name));
    fprintf(s->out, "\t%u", (unsigned)h->event_column_type_oid(ev, i));
    write_hex(s->out, type, strlen(type));
    fprintf(s->out, "\t%d\n", h->event_column_is_key(ev, i) ? 1 : 0);
}

static void write_value(columns_sink *s, const pgspout_event *ev,
                        pgspout_row_image row, int i)
{
    static const char *const rows[] = {"old", "new", "key"};
    static const char states[] = "TNUAB";
    const char *text;
    size_t len;
    pgspout_value_state st = s->host->event_value(ev, row, i, &text, &len);
    fprintf(s->out, "V\t%s\t%d\t%c", rows[row], i, states[st]);
    write_hex(s->out, text ? text : "", len);
    fputc('\n', s->out);
}

static void write_event(columns_sink *s, const pgspout_event *ev)
{
    const pgspout_host_api *h = s->host;
    int n = h->event_column_count(ev);
    fprintf(s->out, "E\t%s\t%s.%s\t%d\n", h->op_name(h->event_op(ev)),
            h->event_schema(ev), h->event_table(ev), n);
    for (int i = 0; i < n; i++)
        write_column(s, ev, i);
    for (int row = PGSPOUT_ROW_OLD; row <= PGSPOUT_ROW_KEY; row++)
        for (int i = 0; i < n; i++)
            write_value(s, ev, (pgspout_row_image)row, i);
}

static pgspout_status
columns_write(void *state, const pgspout_event *const *events, size_t count)
{
    columns_sink *s = state;
    for (size_t i = 0; i < count; i++) {
        if (s->host->event_schema(events[i]))
            write_event(s, events[i]);
        s->last = s->host->event_position(events[i]);
        s->have_last = true;
    }
    return PGSPOUT_OK;
}

static pgspout_status columns_flush(void *state)
{
    columns_sink *s = state;
    if (fflush(s->out) != 0)
        return PGSPOUT_RETRY;
    if (s->have_last)
        s->host->ack_durable(s->handle, s->last);
    return PGSPOUT_OK;
}

static void columns_destroy(void *state)
{
    columns_sink *s = state;
    fclose(s->out);
    free(s);
}

static const pgspout_sink_descriptor columns_descriptor = {
    PGSPOUT_SINK_HEADER,
    .name = "columns",
    .version = "1.0",
    .description = "test sink: what the typed column accessors return",
    .options = columns_options,
    .create = columns_create,
    .write = columns_write,
    .flush = columns_flush,
    .destroy = columns_destroy,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &columns_descriptor;
}
