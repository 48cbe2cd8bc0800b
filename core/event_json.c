#include "event_json.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "hex.h"
#include "json_string.h"
#include "lsn.h"
#include "value_json.h"

const char *event_op_name(pgspout_op op)
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
    case PGSPOUT_OP_READ:
        return "read";
    case PGSPOUT_OP_MESSAGE:
        return "message";
    case PGSPOUT_OP_BEGIN:
        return "begin";
    case PGSPOUT_OP_COMMIT:
        return "commit";
    }
    return NULL;
}

#define APPEND_LITERAL(out, lit) json_out_put((out), (lit), sizeof(lit) - 1)

/* Writes v's decimal digits at the start of buf (room for 20); returns how
 * many. */
static size_t format_u64(uint64_t v, char *buf)
{
    char digits[20];
    size_t n = 0;

    do {
        digits[sizeof digits - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(buf, digits + sizeof digits - n, n);
    return n;
}

static void append_u64(json_out *out, uint64_t v)
{
    char digits[20];
    json_out_put(out, digits, format_u64(v, digits));
}

static void append_bool(json_out *out, bool b)
{
    if (b)
        APPEND_LITERAL(out, "true");
    else
        APPEND_LITERAL(out, "false");
}

/* A value formatted last, kept per thread: the events of a transaction
 * share their commit LSN and time, the read events of a chunk their LSN
 * too, so most events format none of them again. */
typedef struct formatted {
    bool valid;
    uint64_t value;
    size_t len;
    char text[TIMESTAMP_FORMAT_BUFSIZE];
} formatted;

static _Thread_local formatted last_commit_time;

/* ,"lsn":...,"commit_lsn":...,"xid":... formatted last, kept per thread:
 * the events of a transaction share the last two, a chunk's read events
 * all three. */
typedef struct formatted_position {
    bool valid;
    uint64_t lsn, commit_lsn;
    uint32_t xid;
    size_t len;
    char text[128]; /* 32 bytes of names, two LSNs of 17, an xid of 10 */
} formatted_position;

static _Thread_local formatted_position last_position;

static void format_position(formatted_position *f, const event *ev)
{
    char lsn[LSN_FORMAT_BUFSIZE], commit_lsn[LSN_FORMAT_BUFSIZE];
    lsn_format(ev->lsn, lsn, sizeof lsn);
    lsn_format(ev->pos.commit_lsn, commit_lsn, sizeof commit_lsn);
    int n = snprintf(f->text, sizeof f->text,
                     ",\"lsn\":\"%s\",\"commit_lsn\":\"%s\",\"xid\":%u", lsn,
                     commit_lsn, (unsigned)ev->xid);
    f->len = (size_t)n; /* never more than text holds */
    f->lsn = ev->lsn;
    f->commit_lsn = ev->pos.commit_lsn;
    f->xid = ev->xid;
    f->valid = true;
}

static void append_position(json_out *out, const event *ev)
{
    formatted_position *last = &last_position;
    if (!last->valid || last->lsn != ev->lsn ||
        last->commit_lsn != ev->pos.commit_lsn || last->xid != ev->xid)
        format_position(last, ev);
    json_out_put(out, last->text, last->len);
}

static void append_commit_time(json_out *out, int64_t us)
{
    formatted *last = &last_commit_time;
    if (!last->valid || last->value != (uint64_t)us) {
        timestamp_format_utc(us, last->text, sizeof last->text);
        last->len = strlen(last->text);
        last->value = (uint64_t)us;
        last->valid = true;
    }
    json_out_putc(out, '"');
    json_out_put(out, last->text, last->len);
    json_out_putc(out, '"');
}

static void append_nullable_string(json_out *out, const char *s)
{
    if (s)
        json_write_string(out, s, strlen(s));
    else
        APPEND_LITERAL(out, "null");
}

/* Binary-format values print as bytea's hex text output would, a block at a
 * time so that a stream never holds the whole value. */
static void append_binary(json_out *out, const char *data, uint32_t len)
{
    const size_t block = 4096;

    if (!json_out_streaming(out))
        sbuf_reserve(out->buf, 5 + 2 * (size_t)len);
    APPEND_LITERAL(out, "\"\\\\x");
    for (size_t done = 0; done < len; done += block) {
        size_t n = len - done < block ? len - done : block;
        hex_encode(data + done, n, json_out_room(out, 2 * n));
        json_out_commit(out, 2 * n);
    }
    json_out_putc(out, '"');
}

static void append_colval(json_out *out, const relation_column *col,
                          const colval *v)
{
    switch (v->kind) {
    case COLVAL_TEXT:
        value_json_write(out, col->vtype, v->data, v->len);
        return;
    case COLVAL_BINARY:
        append_binary(out, v->data, v->len);
        return;
    default:
        APPEND_LITERAL(out, "null");
    }
}

/* The tuple's value of relation column i, or NULL when the tuple has none:
 * a tuple may be shorter than its relation, and an unchanged TOAST value is
 * not a value. */
static const colval *column_value(const tuple *t, int i)
{
    const colval *v = tuple_column(t, i);
    return v && v->kind == COLVAL_UNCHANGED_TOAST ? NULL : v;
}

static int relation_ncols(const event *ev)
{
    return ev->rel ? ev->rel->ncols : 0;
}

static void append_member(json_out *out, bool *first,
                          const relation_column *col, const colval *v)
{
    if (!*first)
        json_out_putc(out, ',');
    *first = false;
    if (col->json_member) {
        json_out_put(out, col->json_member, col->json_member_len);
    } else {
        json_write_string(out, col->name, strlen(col->name));
        json_out_putc(out, ':');
    }
    append_colval(out, col, v);
}

static void append_row(json_out *out, const event *ev, const tuple *t,
                       bool key_only)
{
    bool first = true;

    json_out_putc(out, '{');
    for (int i = 0; i < relation_ncols(ev); i++) {
        const relation_column *col = &ev->rel->cols[i];
        const colval *v = column_value(t, i);
        if (v && (col->key || !key_only))
            append_member(out, &first, col, v);
    }
    json_out_putc(out, '}');
}

static void append_key(json_out *out, const event *ev)
{
    bool first = true;

    json_out_putc(out, '{');
    for (int i = 0; i < relation_ncols(ev); i++) {
        const relation_column *col = &ev->rel->cols[i];
        const colval *v = col->key ? event_key_column(ev, i) : NULL;
        if (v && v->kind != COLVAL_UNCHANGED_TOAST)
            append_member(out, &first, col, v);
    }
    json_out_putc(out, '}');
}

static void append_before(json_out *out, const event *ev)
{
    if (ev->old_kind == 0)
        APPEND_LITERAL(out, "null");
    else
        append_row(out, ev, &ev->old_tuple, ev->old_kind == 'K');
}

static void append_after(json_out *out, const event *ev)
{
    if (ev->op == PGSPOUT_OP_DELETE)
        APPEND_LITERAL(out, "null");
    else
        append_row(out, ev, &ev->new_tuple, false);
}

/* A json/jsonb value holding JSON null encodes as null, as SQL NULL does;
 * the event names such columns so that consumers can tell them apart. */
static bool is_json_null(const event *ev, const tuple *t, int i, bool key_only)
{
    const relation_column *col = &ev->rel->cols[i];
    if (col->vtype.kind != VK_JSON || (key_only && !col->key))
        return false;
    const colval *v = column_value(t, i);
    return v && v->kind == COLVAL_TEXT &&
           value_json_is_null(col->vtype, v->data, v->len);
}

static bool image_has_json_null(const event *ev, const tuple *t, bool key_only)
{
    for (int i = 0; t && i < relation_ncols(ev); i++)
        if (is_json_null(ev, t, i, key_only))
            return true;
    return false;
}

/* Which columns a list of names in the event holds. */
typedef bool (*column_test)(const event *ev, const tuple *t, int i,
                            bool key_only);

/* The JSON array of the names of the first n columns that test picks
 * (empty when there is no tuple t). */
static void append_name_list(json_out *out, const event *ev, const tuple *t,
                             int n, bool key_only, column_test test)
{
    bool first = true;

    json_out_putc(out, '[');
    for (int i = 0; t && i < n; i++) {
        if (!test(ev, t, i, key_only))
            continue;
        if (!first)
            json_out_putc(out, ',');
        first = false;
        const char *name = ev->rel->cols[i].name;
        json_write_string(out, name, strlen(name));
    }
    json_out_putc(out, ']');
}

static bool is_unchanged_toast(const event *ev, const tuple *t, int i,
                               bool key_only)
{
    (void)ev;
    (void)key_only;
    return t->cols[i].kind == COLVAL_UNCHANGED_TOAST;
}

static bool has_unchanged_toast(const tuple *t, int n)
{
    for (int i = 0; t && i < n; i++)
        if (t->cols[i].kind == COLVAL_UNCHANGED_TOAST)
            return true;
    return false;
}

static void append_unchanged_toast(json_out *out, const event *ev)
{
    const tuple *after = event_after_tuple(ev);
    int n = relation_ncols(ev);

    if (after && after->ncols < n)
        n = after->ncols;
    /* Nearly every event has none. */
    if (!has_unchanged_toast(after, n))
        APPEND_LITERAL(out, "[]");
    else
        append_name_list(out, ev, after, n, false, is_unchanged_toast);
}

/* Only in events that have such a value, so that every other event (nearly
 * all) stays as it was. */
static void append_json_null(json_out *out, const event *ev)
{
    bool key_only;
    const tuple *before = event_before_tuple(ev, &key_only);
    const tuple *after = event_after_tuple(ev);

    if (!image_has_json_null(ev, before, key_only) &&
        !image_has_json_null(ev, after, false))
        return;
    APPEND_LITERAL(out, ",\"json_null\":{\"before\":");
    append_name_list(out, ev, before, relation_ncols(ev), key_only,
                     is_json_null);
    APPEND_LITERAL(out, ",\"after\":");
    append_name_list(out, ev, after, relation_ncols(ev), false, is_json_null);
    json_out_putc(out, '}');
}

static void append_columns(json_out *out, const event *ev)
{
    json_out_putc(out, '[');
    for (int i = 0; i < relation_ncols(ev); i++) {
        const relation_column *col = &ev->rel->cols[i];
        if (i > 0)
            json_out_putc(out, ',');
        APPEND_LITERAL(out, "{\"name\":");
        append_nullable_string(out, col->name);
        APPEND_LITERAL(out, ",\"type\":");
        append_nullable_string(out, col->type_name);
        APPEND_LITERAL(out, ",\"type_oid\":");
        append_u64(out, col->type_oid);
        APPEND_LITERAL(out, ",\"key\":");
        append_bool(out, col->key);
        if (col->generated)
            APPEND_LITERAL(out, ",\"generated\":true");
        json_out_putc(out, '}');
    }
    json_out_putc(out, ']');
}

static void write_snapshot(json_out *out, const event_snapshot *s)
{
    APPEND_LITERAL(out, ",\"snapshot\":{\"id\":");
    json_write_string(out, s->id, strnlen(s->id, sizeof s->id));
    APPEND_LITERAL(out, ",\"table_rows\":");
    append_u64(out, s->table_rows > 0 ? (uint64_t)s->table_rows : 0);
    APPEND_LITERAL(out, ",\"chunk\":");
    append_u64(out, s->chunk);
    APPEND_LITERAL(out, ",\"last\":");
    append_bool(out, s->last);
    json_out_putc(out, '}');
}

/* The "snapshot" member formatted last, kept per thread: a chunk's read
 * events all carry the same one. */
typedef struct formatted_snapshot {
    bool valid;
    event_snapshot of;
    size_t len;
    char text[256];
} formatted_snapshot;

static _Thread_local formatted_snapshot last_snapshot;

static bool same_snapshot(const event_snapshot *a, const event_snapshot *b)
{
    return strncmp(a->id, b->id, sizeof a->id) == 0 &&
           a->table_rows == b->table_rows && a->chunk == b->chunk &&
           a->last == b->last;
}

static void append_snapshot(json_out *out, const event *ev)
{
    formatted_snapshot *last = &last_snapshot;
    if (!last->valid || !same_snapshot(&last->of, &ev->snapshot)) {
        strbuf sb = STRBUF_INIT;
        json_out text = json_out_buffer(&sb);
        write_snapshot(&text, &ev->snapshot);
        last->valid = sb.len < sizeof last->text;
        if (last->valid) {
            memcpy(last->text, sb.data, sb.len);
            last->len = sb.len;
            last->of = ev->snapshot;
        }
        sbuf_free(&sb);
        if (!last->valid) {
            write_snapshot(out, &ev->snapshot);
            return;
        }
    }
    json_out_put(out, last->text, last->len);
}

/* ,"schema":...,"table":... (null for a missing name). */
static void append_names(json_out *out, const relation *rel)
{
    if (rel && rel->json_names) {
        json_out_put(out, rel->json_names, rel->json_names_len);
        return;
    }
    APPEND_LITERAL(out, ",\"schema\":");
    append_nullable_string(out, rel ? rel->schema : NULL);
    APPEND_LITERAL(out, ",\"table\":");
    append_nullable_string(out, rel ? rel->table : NULL);
}

/* A message's content is text for most applications (JSON, say) but may be
 * any bytes: text that is valid UTF-8 goes as a JSON string, anything else
 * as base64 under a name of its own, so no byte is ever replaced. */
static void append_message(json_out *out, const event *ev)
{
    APPEND_LITERAL(out, ",\"prefix\":");
    append_nullable_string(out, ev->prefix);
    if (utf8_valid(ev->content, ev->content_len)) {
        APPEND_LITERAL(out, ",\"content\":");
        json_write_string(out, ev->content, ev->content_len);
    } else {
        char *b64 = base64_encode(ev->content, ev->content_len);
        APPEND_LITERAL(out, ",\"content_base64\":\"");
        json_out_put(out, b64, strlen(b64));
        json_out_putc(out, '"');
        free(b64);
    }
    APPEND_LITERAL(out, ",\"transactional\":");
    append_bool(out, ev->transactional);
}

static void append_op_members(json_out *out, const event *ev)
{
    if (event_is_row_op(ev->op)) {
        APPEND_LITERAL(out, ",\"key\":");
        append_key(out, ev);
        APPEND_LITERAL(out, ",\"before\":");
        append_before(out, ev);
        APPEND_LITERAL(out, ",\"after\":");
        append_after(out, ev);
        APPEND_LITERAL(out, ",\"unchanged_toast\":");
        append_unchanged_toast(out, ev);
        append_json_null(out, ev);
        if (ev->op == PGSPOUT_OP_READ)
            append_snapshot(out, ev);
    } else if (ev->op == PGSPOUT_OP_TRUNCATE) {
        APPEND_LITERAL(out, ",\"cascade\":");
        append_bool(out, ev->cascade);
        APPEND_LITERAL(out, ",\"restart_identity\":");
        append_bool(out, ev->restart_identity);
    } else if (ev->op == PGSPOUT_OP_SCHEMA) {
        APPEND_LITERAL(out, ",\"columns\":");
        append_columns(out, ev);
    } else if (ev->op == PGSPOUT_OP_MESSAGE) {
        append_message(out, ev);
    } else if (ev->op == PGSPOUT_OP_COMMIT && ev->txn_counts) {
        json_out_put(out, ev->txn_counts, strlen(ev->txn_counts));
    }
}

/* {"op":"<name>" (names need no escaping). */
static void append_op(json_out *out, pgspout_op op)
{
    const char *name = event_op_name(op);
    if (!name) {
        APPEND_LITERAL(out, "{\"op\":null");
        return;
    }
    APPEND_LITERAL(out, "{\"op\":\"");
    json_out_put(out, name, strlen(name));
    json_out_putc(out, '"');
}

static void append_event(json_out *out, const event *ev)
{
    append_op(out, ev->op);
    append_names(out, ev->rel);
    append_position(out, ev);
    /* A schema event is not a change: its place in the stream depends on
     * what this run of pgspout described before, so it carries no seq. */
    if (ev->op != PGSPOUT_OP_SCHEMA) {
        APPEND_LITERAL(out, ",\"seq\":");
        append_u64(out, ev->pos.seq);
    }
    APPEND_LITERAL(out, ",\"commit_time\":");
    /* A non-transactional message belongs to no transaction: no time. */
    if (ev->op == PGSPOUT_OP_MESSAGE && !ev->transactional)
        APPEND_LITERAL(out, "null");
    else
        append_commit_time(out, ev->commit_time_us);

    append_op_members(out, ev);
    json_out_putc(out, '}');
}

void event_json_write(json_out *out, const event *ev, pgspout_event_part part)
{
    bool row = event_is_row_op(ev->op);

    switch (part) {
    case PGSPOUT_PART_EVENT:
        append_event(out, ev);
        return;
    case PGSPOUT_PART_KEY:
        if (row) {
            append_key(out, ev);
            return;
        }
        break;
    case PGSPOUT_PART_BEFORE:
        if (row) {
            append_before(out, ev);
            return;
        }
        break;
    case PGSPOUT_PART_AFTER:
        if (row) {
            append_after(out, ev);
            return;
        }
        break;
    case PGSPOUT_PART_UNCHANGED_TOAST:
        if (row) {
            append_unchanged_toast(out, ev);
            return;
        }
        break;
    case PGSPOUT_PART_COLUMNS:
        if (ev->op == PGSPOUT_OP_SCHEMA) {
            append_columns(out, ev);
            return;
        }
        break;
    }
    APPEND_LITERAL(out, "null");
}

void event_json_append(strbuf *out, const event *ev, pgspout_event_part part)
{
    json_out o = json_out_buffer(out);
    event_json_write(&o, ev, part);
}

const char *event_json_get(event *ev, pgspout_event_part part, size_t *len)
{
    if ((unsigned)part >= EVENT_PART_COUNT) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (!ev->json[part]) {
        strbuf sb = STRBUF_INIT;
        /* Typical rows fit without regrowing. */
        sbuf_reserve(&sb, 512);
        event_json_append(&sb, ev, part);
        ev->json_len[part] = sb.len;
        ev->json[part] = sbuf_detach(&sb);
    }
    if (len)
        *len = ev->json_len[part];
    return ev->json[part];
}

/* The stream's scratch buffer, kept per thread between events rather than
 * allocated for each (a backfill streams millions); a thread's is freed
 * when it ends. It holds a piece plus a value being checked; grown much
 * beyond, it is given back after the event. A nested stream (an emit
 * callback encoding another event) gets its own. */
typedef struct stream_scratch {
    strbuf buf;
    bool busy;
} stream_scratch;

#define SCRATCH_KEEP_BYTES (4 * (size_t)JSON_OUT_PIECE)

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    stream_scratch *sc = p;
    sbuf_free(&sc->buf);
    free(sc);
}

static void scratch_key_create(void)
{
    if (pthread_key_create(&scratch_key, scratch_free) != 0)
        abort();
}

static stream_scratch *thread_scratch(void)
{
    pthread_once(&scratch_once, scratch_key_create);
    stream_scratch *sc = pthread_getspecific(scratch_key);
    if (!sc) {
        sc = xcalloc(1, sizeof *sc);
        if (pthread_setspecific(scratch_key, sc) != 0)
            abort();
    }
    return sc;
}

bool event_json_stream(const event *ev, pgspout_event_part part, size_t piece,
                       json_out_fn emit, void *ctx)
{
    if ((unsigned)part >= EVENT_PART_COUNT)
        return false;
    stream_scratch *sc = thread_scratch();
    strbuf own = STRBUF_INIT;
    bool shared = !sc->busy;
    strbuf *scratch = shared ? &sc->buf : &own;
    sc->busy = true;
    sbuf_reset(scratch);
    /* Typical rows fit without regrowing; more than a piece never waits. */
    sbuf_reserve(scratch, 1024);
    json_out out = json_out_stream(scratch, piece, emit, ctx);
    /* Another sink may have had it encoded whole already. */
    if (ev->json[part])
        json_out_copy(&out, ev->json[part], ev->json_len[part]);
    else
        event_json_write(&out, ev, part);
    bool ok = json_out_finish(&out);
    if (!shared || scratch->cap > SCRATCH_KEEP_BYTES)
        sbuf_free(scratch);
    if (shared)
        sc->busy = false;
    return ok;
}
