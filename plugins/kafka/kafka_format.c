#include "kafka_format.h"

#include <inttypes.h>
#include <string.h>

#include "json_string.h"

bool kafka_op_has_row(pgspout_op op)
{
    return op == PGSPOUT_OP_INSERT || op == PGSPOUT_OP_UPDATE ||
           op == PGSPOUT_OP_DELETE || op == PGSPOUT_OP_READ;
}

void kafka_table_key(strbuf *out, const char *schema, const char *table)
{
    sbuf_appendf(out, "%s.%s", schema, table);
}

static bool is_empty_object(json_span s)
{
    return s.p && s.len == 2 && s.p[0] == '{' && s.p[1] == '}';
}

bool kafka_message_key(kafka_key_mode mode, const kafka_change *c, strbuf *out)
{
    switch (mode) {
    case KAFKA_KEY_NONE:
        return false;
    case KAFKA_KEY_TABLE:
        kafka_table_key(out, c->schema, c->table);
        return true;
    case KAFKA_KEY_ROW:
        /* A row without a replica identity ({}) has nothing to be told
         * apart by: one shared key would pile every such row into one
         * partition, and compaction would keep only the last. */
        if (!kafka_op_has_row(c->op) || !c->key.p || is_empty_object(c->key))
            return false;
        sbuf_append(out, c->key.p, c->key.len);
        return true;
    }
    return false;
}

typedef struct previous_key {
    json_span before;
    strbuf *out;
    bool changed, complete;
} previous_key;

static bool add_previous_member(void *ctx, json_span name, json_span value)
{
    previous_key *pk = ctx;
    json_span old = kafka_json_member(pk->before.p, pk->before.len, name);
    if (!old.p) {
        pk->complete = false;
        return false;
    }
    if (!json_span_eq(old, value))
        pk->changed = true;
    sbuf_append_char(pk->out, pk->out->len ? ',' : '{');
    sbuf_append(pk->out, name.p, name.len);
    sbuf_append_char(pk->out, ':');
    sbuf_append(pk->out, old.p, old.len);
    return true;
}

bool kafka_previous_key(const kafka_change *c, strbuf *out)
{
    if (c->op != PGSPOUT_OP_UPDATE || !c->key.p || !c->before.p ||
        is_empty_object(c->key) || c->before.len < 2 || c->before.p[0] != '{')
        return false;
    size_t start = out->len;
    strbuf tmp = STRBUF_INIT;
    previous_key pk = {c->before, &tmp, false, true};
    bool ok = kafka_json_each(c->key.p, c->key.len, add_previous_member, &pk);
    if (ok && pk.complete && pk.changed) {
        sbuf_append(out, tmp.data, tmp.len);
        sbuf_append_char(out, '}');
    }
    sbuf_free(&tmp);
    return out->len > start;
}

const char *kafka_debezium_op(pgspout_op op)
{
    switch (op) {
    case PGSPOUT_OP_INSERT:
        return "c";
    case PGSPOUT_OP_UPDATE:
        return "u";
    case PGSPOUT_OP_DELETE:
        return "d";
    case PGSPOUT_OP_READ:
        return "r";
    case PGSPOUT_OP_TRUNCATE:
        return "t";
    case PGSPOUT_OP_SCHEMA:
    case PGSPOUT_OP_MESSAGE:
    case PGSPOUT_OP_BEGIN:
    case PGSPOUT_OP_COMMIT:
        /* Not row changes; the kafka sink declares ABI 1.4 and never
         * receives the last three (README). */
        return NULL;
    }
    return NULL;
}

static void append_raw_or_null(strbuf *out, json_span s)
{
    if (s.p)
        sbuf_append(out, s.p, s.len);
    else
        sbuf_append_str(out, "null");
}

static bool add_unavailable(void *ctx, json_span name, json_span column)
{
    strbuf *out = ctx;
    (void)name;
    if (out->data[out->len - 1] != '{')
        sbuf_append_char(out, ',');
    sbuf_append(out, column.p, column.len);
    sbuf_append_str(out, ":\"" KAFKA_DEBEZIUM_UNAVAILABLE "\"");
    return true;
}

/* `after`, with each column the server did not send (unchanged TOAST) as
 * Debezium's placeholder, which Debezium writes where pgspout leaves the
 * column out. */
static void append_after(strbuf *out, const kafka_change *c)
{
    json_span after = c->after, toast = c->unchanged_toast;
    bool fill = after.p && after.len >= 2 && after.p[0] == '{' && toast.p &&
                toast.len > 2;
    if (!fill) {
        append_raw_or_null(out, after);
        return;
    }
    sbuf_append(out, after.p, after.len - 1); /* without its '}' */
    kafka_json_each(toast.p, toast.len, add_unavailable, out);
    sbuf_append_char(out, '}');
}

static void append_times(strbuf *out, const char *sep, int64_t us)
{
    sbuf_appendf(
        out, "%s\"ts_ms\":%" PRId64 ",\"ts_us\":%" PRId64 ",\"ts_ns\":%" PRId64,
        sep, us / 1000, us, us * 1000);
}

bool kafka_read_is_incremental(json_span event)
{
    static const char initial[] = "\"initial-";
    static const json_span snapshot_name = {"\"snapshot\"", 10};
    static const json_span id_name = {"\"id\"", 4};
    json_span snapshot = kafka_json_member(event.p, event.len, snapshot_name);
    if (!snapshot.p)
        return false;
    json_span id = kafka_json_member(snapshot.p, snapshot.len, id_name);
    return id.p && !(id.len >= sizeof initial - 1 &&
                     memcmp(id.p, initial, sizeof initial - 1) == 0);
}

/* Debezium's source.snapshot: "true" while its initial snapshot runs,
 * "incremental" for an incremental (signalled) one, "false" when
 * streaming. */
static const char *snapshot_flag(const kafka_change *c)
{
    if (c->op != PGSPOUT_OP_READ)
        return "false";
    return c->incremental ? "incremental" : "true";
}

static void append_source(strbuf *out, const kafka_change *c,
                          const kafka_debezium_source *src)
{
    sbuf_append_str(out, "\"source\":{\"version\":");
    json_append_string(out, src->version, strlen(src->version));
    sbuf_append_str(out, ",\"connector\":\"postgresql\",\"name\":");
    json_append_string(out, src->name, strlen(src->name));
    append_times(out, ",", c->commit_time_us);
    sbuf_appendf(out, ",\"snapshot\":\"%s\",\"db\":", snapshot_flag(c));
    json_append_string(out, src->db, strlen(src->db));
    /* Debezium's ordering token: a JSON array of two decimal LSNs, as a
     * string. Here the transaction's commit LSN and the change's LSN,
     * which order the whole stream. */
    sbuf_appendf(out,
                 ",\"sequence\":\"[\\\"%" PRIu64 "\\\",\\\"%" PRIu64
                 "\\\"]\",\"schema\":",
                 (uint64_t)c->pos.commit_lsn, (uint64_t)c->lsn);
    json_append_string(out, c->schema, strlen(c->schema));
    sbuf_append_str(out, ",\"table\":");
    json_append_string(out, c->table, strlen(c->table));
    sbuf_appendf(out,
                 ",\"txId\":%" PRIu32 ",\"lsn\":%" PRIu64 ",\"xmin\":null}",
                 c->xid, (uint64_t)c->lsn);
}

bool kafka_debezium_value(strbuf *out, const kafka_change *c,
                          const kafka_debezium_source *src,
                          int64_t processed_us)
{
    const char *op = kafka_debezium_op(c->op);
    if (!op)
        return false;
    sbuf_append_char(out, '{');
    if (c->op != PGSPOUT_OP_TRUNCATE) {
        sbuf_append_str(out, "\"before\":");
        append_raw_or_null(out, c->before);
        sbuf_append_str(out, ",\"after\":");
        append_after(out, c);
        sbuf_append_char(out, ',');
    }
    append_source(out, c, src);
    sbuf_appendf(out, ",\"op\":\"%s\"", op);
    append_times(out, ",", processed_us);
    sbuf_append_str(out, ",\"transaction\":null}");
    return true;
}
