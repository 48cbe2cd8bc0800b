/* The backfill workers: each a thread with its own connection (made with
 * pq_connect, so the settings that change how values print are pinned and
 * every wait ends on a stop), copying one table at a time in chunks.
 *
 * A chunk: the low watermark (a transactional message of its own), the
 * rows read in one REPEATABLE READ transaction that lasts only that read
 * (so no transaction holds vacuum back for longer), into a spill file that
 * is fsynced, the chunk recorded in the state, then the high watermark.
 * A worker reads the next chunk while the stream sends the previous one,
 * never more than two ahead of it. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backfill_internal.h"
#include "backfill_read.h"
#include "backoff.h"
#include "hex.h"
#include "log.h"
#include "strbuf.h"

/* A connection with nothing to do is closed after this long. */
#define IDLE_CLOSE_US INT64_C(5000000)
/* Chunks recorded and not yet sent by the stream, at most, before the
 * worker reads another one. */
#define MAX_UNPROCESSED 2

typedef enum task_kind {
    TASK_NONE,
    TASK_STATUS,
    TASK_SEND_HW,
    TASK_START,
    TASK_CHUNK
} task_kind;

typedef struct task {
    task_kind kind;
    char token[BF_TOKEN_LEN + 1]; /* TASK_SEND_HW */
    bool reread;                  /* a range found stale, read again */
    bf_moved_list keys;           /* a chunk of moved keys (lo, hi unused) */
    bf_key lo, hi;
    uint64_t limit;
    uint64_t number;
    uint64_t rewinds; /* the table's, when the task was picked */
    char *where;
} task;

typedef struct chunk_read {
    uint64_t rows;
    bool more; /* rows follow after the last one read */
    bf_key last_key;
    char *snapshot;
    char *spill;
    uint64_t spill_bytes;
} chunk_read;

static void task_clear(task *t)
{
    bf_key_clear(&t->lo);
    bf_key_clear(&t->hi);
    bf_moved_clear(&t->keys);
    free(t->where);
    memset(t, 0, sizeof *t);
}

static void chunk_read_clear(chunk_read *r)
{
    bf_key_clear(&r->last_key);
    free(r->snapshot);
    free(r->spill);
    memset(r, 0, sizeof *r);
}

/* ---- connections ---- */

static void drop_readers(bf_worker *w);

/* The worker's connection, and the other chunk readers' with it. */
static void drop_conn(bf_worker *w)
{
    PQfinish(w->conn);
    w->conn = NULL;
    drop_readers(w);
}

/* After connection trouble (a server restart empties an UNLOGGED
 * table), every status row is written again. */
static void status_all_changed(backfill *bf)
{
    pthread_mutex_lock(&bf->lock);
    bf_status_all_changed_locked(bf);
    pthread_mutex_unlock(&bf->lock);
}

/* The worker's commits (its watermarks above all) wait as long as any
 * can for synchronous standbys. A low watermark's commit then returns
 * only once every transaction committed before it was let go by them,
 * and so is visible to the chunk's snapshot a moment later, not after a
 * standby's delay (the stream checks the moment left, see bf_recent).
 * Without synchronous standbys this changes nothing. */
static bool wait_for_standbys(bf_worker *w, char *err, size_t errlen)
{
    bool retryable;
    PGresult *res = bf_exec(w->conn, &w->bf->worker_stop,
                            "SET synchronous_commit = remote_apply", 0, NULL,
                            PGRES_COMMAND_OK, "cannot set synchronous_commit",
                            err, errlen, &retryable);
    PQclear(res);
    return res != NULL;
}

/* Connects (again) with backoff until it works or a stop comes. */
static bool ensure_conn(bf_worker *w)
{
    backfill *bf = w->bf;
    if (w->conn && PQstatus(w->conn) == CONNECTION_OK)
        return true;
    if (w->failures > 0)
        status_all_changed(bf);
    while (!w->conn || PQstatus(w->conn) != CONNECTION_OK) {
        drop_conn(w);
        char err[1024];
        w->conn = pq_connect(bf->conninfo, false, &bf->worker_stop, NULL, err,
                             sizeof err);
        if (w->conn && !wait_for_standbys(w, err, sizeof err))
            drop_conn(w);
        if (w->conn)
            break;
        if (stop_requested(&bf->worker_stop))
            return false;
        log_warning("backfill worker %d: %s", w->index + 1, err);
        if (!stop_sleep(&bf->worker_stop, backoff_delay_ms(++w->failures)))
            return false;
    }
    return true;
}

/* Connection trouble: start again on a new connection after a pause. */
static void back_off(bf_worker *w, const char *err)
{
    if (stop_requested(&w->bf->worker_stop))
        return;
    int64_t ms = backoff_delay_ms(++w->failures);
    log_warning("backfill worker %d: %s; trying again in %lld ms", w->index + 1,
                err, (long long)ms);
    drop_conn(w);
    stop_sleep(&w->bf->worker_stop, ms);
}

/* ---- picking work (lock held) ---- */

static bf_table *own_table(backfill *bf, bf_worker *w, bf_backfill **b)
{
    return w->id ? bf_find_table(&bf->st, w->id, w->oid, b) : NULL;
}

static void release_table(bf_worker *w, bf_table *t)
{
    if (t && t->owner == w->index)
        t->owner = -1;
    free(w->id);
    w->id = NULL;
    w->oid = 0;
    if (w->have_info)
        bf_table_info_clear(&w->info);
    w->have_info = false;
}

static size_t unprocessed(const bf_table *t, const bf_chunk *except)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nchunks; i++)
        n += &t->chunks[i] != except && t->chunks[i].spill &&
             !t->chunks[i].processed;
    return n;
}

static bf_chunk *range_to_read(bf_table *t)
{
    for (size_t i = 0; i < t->nchunks; i++)
        if (!t->chunks[i].spill && !t->chunks[i].claimed)
            return &t->chunks[i];
    return NULL;
}

static bool table_has_work(bf_table *t)
{
    if (t->status == BF_PENDING)
        return true;
    return t->status == BF_COPYING &&
           (!t->at_end || range_to_read(t) || t->moved.n > t->moved_claimed);
}

/* A stale range is read again with the chunk size halved each time it is
 * found stale once more, so that a hot range ends up read in pieces
 * small enough to get through. */
static uint64_t reread_limit(const backfill *bf, int attempts)
{
    int halvings = attempts > 1 ? attempts - 1 : 0;
    uint64_t limit =
        (uint64_t)bf->chunk_rows >> (halvings > 30 ? 30 : halvings);
    return limit ? limit : 1;
}

/* Keys a chunk of keys reads at most (each is a condition of its own). */
#define KEYS_PER_CHUNK 1000

/* A chunk of the keys updates moved rows to: at most `limit` of them,
 * claimed until the chunk is recorded or given up. One at a time per
 * table, so that ranges go on while moves keep coming. */
static bool keys_task(bf_table *t, uint64_t limit, task *out)
{
    if (t->moved.n == 0 || t->moved_claimed)
        return false;
    for (size_t i = 0; i < t->nchunks; i++)
        if (t->chunks[i].keys.n && !t->chunks[i].processed)
            return false;
    if (limit > KEYS_PER_CHUNK)
        limit = KEYS_PER_CHUNK;
    size_t n = t->moved.n < limit ? t->moved.n : (size_t)limit;
    for (size_t i = 0; i < n; i++)
        bf_moved_append(&out->keys, &t->moved.v[i]);
    t->moved_claimed = n;
    out->limit = n;
    return true;
}

/* The next range: one found stale, else new rows after the cursor. */
static bool range_task(backfill *bf, bf_table *t, task *out)
{
    bf_chunk *r = range_to_read(t);
    if (r) {
        r->claimed = true;
        out->reread = true;
        bf_key_copy(&out->lo, &r->lo);
        bf_key_copy(&out->hi, &r->hi);
        out->limit = reread_limit(bf, r->attempts);
        return true;
    }
    if (t->at_end)
        return false;
    bf_key_copy(&out->lo, &t->cursor);
    out->limit = reread_limit(bf, t->stale_streak);
    return true;
}

static bool table_task(backfill *bf, bf_worker *w, bf_backfill *b, bf_table *t,
                       task *out)
{
    if (!w->have_info) {
        out->kind = TASK_START;
        return true;
    }
    if (unprocessed(t, NULL) >= MAX_UNPROCESSED ||
        !(keys_task(t, reread_limit(bf, t->stale_streak), out) ||
          range_task(bf, t, out)))
        return false;
    out->rewinds = t->rewinds;
    out->kind = TASK_CHUNK;
    out->number = t->next_chunk;
    out->where = b->where ? xstrdup(b->where) : NULL;
    return true;
}

static bool hw_task(backfill *bf, task *out)
{
    for (size_t i = 0; i < bf->st.nbackfills; i++) {
        bf_backfill *b = &bf->st.backfills[i];
        for (size_t j = 0; j < b->ntables; j++) {
            bf_table *t = &b->tables[j];
            for (size_t k = 0; k < t->nchunks; k++) {
                bf_chunk *c = &t->chunks[k];
                if (!c->spill || c->hw_sent || c->claimed)
                    continue;
                c->claimed = true;
                out->kind = TASK_SEND_HW;
                snprintf(out->token, sizeof out->token, "%s", c->token);
                return true;
            }
        }
    }
    return false;
}

static bool claim_table(backfill *bf, bf_worker *w)
{
    for (size_t i = 0; i < bf->st.nbackfills; i++) {
        bf_backfill *b = &bf->st.backfills[i];
        if (!b->resolved || b->status == BF_DONE || b->status == BF_FAILED)
            continue;
        for (size_t j = 0; j < b->ntables; j++) {
            bf_table *t = &b->tables[j];
            if (t->owner != -1 || !table_has_work(t))
                continue;
            t->owner = w->index;
            w->id = xstrdup(b->id);
            w->oid = t->oid;
            return true;
        }
    }
    return false;
}

static void pick_task_locked(backfill *bf, bf_worker *w, task *out)
{
    if (bf_status_due_locked(bf)) {
        bf->status_busy = true;
        out->kind = TASK_STATUS;
        return;
    }
    if (bf->closing)
        return;
    if (hw_task(bf, out))
        return;
    bf_backfill *b;
    bf_table *t = own_table(bf, w, &b);
    if (t && table_has_work(t)) {
        table_task(bf, w, b, t, out);
        return;
    }
    release_table(w, t);
    if (claim_table(bf, w))
        out->kind = TASK_START;
}

/* ---- messages ---- */

static void new_token(char *token)
{
    unsigned char bytes[BF_TOKEN_LEN / 2];
    if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes) {
        /* Tokens only need to differ between chunks. */
        int64_t t = now_us() ^ (int64_t)getpid() << 32;
        memcpy(bytes, &t, sizeof bytes < sizeof t ? sizeof bytes : sizeof t);
    }
    hex_encode((const char *)bytes, sizeof bytes, token);
    token[BF_TOKEN_LEN] = '\0';
}

/* What a watermark names: the backfill, the table, the chunk. */
typedef struct watermark {
    const char *type, *token, *id, *table;
    uint32_t oid;
    uint64_t chunk;
} watermark;

static bool emit_watermark(bf_worker *w, const watermark *m, char *err,
                           size_t errlen, bool *retryable)
{
    backfill *bf = w->bf;
    json_t *msg = json_pack("{s s s s s s s s s I s I s s}", "type", m->type,
                            "slot", bf->slot, "id", m->id, "table", m->table,
                            "oid", (json_int_t)m->oid, "chunk",
                            (json_int_t)m->chunk, "token", m->token);
    char *content = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    const char *params[] = {content};
    PGresult *res = bf_exec(
        w->conn, &bf->worker_stop,
        "SELECT pg_catalog.pg_logical_emit_message(true, 'pgspout', $1)", 1,
        params, PGRES_TUPLES_OK, "cannot emit a watermark", err, errlen,
        retryable);
    free(content);
    PQclear(res);
    return res != NULL;
}

/* ---- tasks ---- */

static void log_start(const bf_backfill *b, const bf_table *t,
                      const bf_table_info *info, bool resumed)
{
    log_info("backfill %s: %s %s (~%lld rows, chunks by %s)", b->id,
             resumed ? "resuming" : "copying", t->name,
             (long long)info->rows_estimated, info->key_desc);
}

/* The table's copy can go on with this chunk key: the cursor saved has as
 * many values. */
static const char *key_problem(const bf_table *t, const bf_table_info *info)
{
    size_t want = info->nkey ? (size_t)info->nkey : 1;
    if (t->cursor.n && t->cursor.n != want)
        return "its chunk key changed since the copy started; request the "
               "backfill again";
    return NULL;
}

static void key_column_names(const bf_table_info *info, bf_key *out)
{
    char *names[64];
    int n = info->nkey < 64 ? info->nkey : 64;
    for (int k = 0; k < n; k++)
        names[k] = info->cols[info->key[k].col].name;
    bf_key_set(out, names, (size_t)n);
}

static void run_start(bf_worker *w)
{
    backfill *bf = w->bf;
    char err[1024];
    bool gone = false, retryable = false, kept = false;
    bf_table_info info;
    if (!ensure_conn(w))
        return;
    bool ok =
        bf_table_info_load(w->conn, &bf->worker_stop, w->oid, bf->publication,
                           &info, &gone, err, sizeof err, &retryable);
    if (!ok && retryable && !gone) {
        back_off(w, err);
        return;
    }
    pthread_mutex_lock(&bf->lock);
    bf_backfill *b;
    bf_table *t = own_table(bf, w, &b);
    const char *problem = ok && t ? key_problem(t, &info) : NULL;
    if (!t) {
        release_table(w, NULL);
    } else if (!ok || problem) {
        bf_table_fail_locked(bf, b, t, ok ? problem : err);
        release_table(w, t);
    } else {
        bool resumed = t->status == BF_COPYING;
        t->status = BF_COPYING;
        if (!resumed)
            t->rows_estimated = info.rows_estimated;
        if (!t->started_us) {
            /* A resumed copy's rate counts this run's rows only. */
            t->started_us = now_us();
            t->rows_at_start = t->rows_copied;
        }
        log_start(b, t, &info, resumed);
        /* The stream notes moved rows by them from now on. */
        key_column_names(&info, &t->keycols);
        w->info = info;
        w->have_info = true;
        kept = true;
        bf_status_changed_locked(bf, b, t);
        bf_save_locked(bf);
    }
    pthread_mutex_unlock(&bf->lock);
    if (ok && !kept)
        bf_table_info_clear(&info);
}

static void throttle(bf_worker *w, uint64_t rows)
{
    backfill *bf = w->bf;
    if (bf->max_rows_per_sec <= 0)
        return;
    pthread_mutex_lock(&bf->lock);
    int64_t wait = token_bucket_take(&bf->bucket, (double)rows, now_us());
    pthread_mutex_unlock(&bf->lock);
    if (wait > 0)
        stop_sleep(&bf->worker_stop, (wait + 999) / 1000);
}

static void refund(bf_worker *w, uint64_t rows)
{
    backfill *bf = w->bf;
    if (bf->max_rows_per_sec <= 0)
        return;
    pthread_mutex_lock(&bf->lock);
    token_bucket_refund(&bf->bucket, (double)rows);
    pthread_mutex_unlock(&bf->lock);
}

/* The key of a row read (its key columns' text). */
static void take_key(const bf_table_info *info, const char *line, size_t len,
                     bf_key *out)
{
    strbuf values[64];
    char *texts[64];
    int nkey = info->nkey < 64 ? info->nkey : 64;
    memset(values, 0, sizeof values);
    for (int k = 0; k < nkey; k++) {
        sbuf_append(&values[k], "", 0);
        bf_copy_field(line, len, info->key[k].col, &values[k]);
        texts[k] = values[k].data;
    }
    bf_key_set(out, texts, (size_t)nkey);
    for (int k = 0; k < nkey; k++)
        sbuf_free(&values[k]);
}

/* Each reader's transaction: it lasts one chunk's read. */
#define CHUNK_BEGIN "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

/* One statement of a chunk's read on one of its connections; *out (may be
 * NULL) takes the result. */
static bool read_sql(bf_worker *w, PGconn *conn, const char *sql,
                     ExecStatusType want, PGresult **out, char *err,
                     size_t errlen, bool *retryable)
{
    PGresult *res = bf_exec(conn, &w->bf->worker_stop, sql, -1, NULL, want,
                            "reading the chunk failed", err, errlen, retryable);
    if (out)
        *out = res;
    else
        PQclear(res);
    return res != NULL;
}

/* The same on the worker's own connection. */
static bool run_sql(bf_worker *w, const char *sql, ExecStatusType want,
                    PGresult **out, char *err, size_t errlen, bool *retryable)
{
    return read_sql(w, w->conn, sql, want, out, err, errlen, retryable);
}

/* ---- a chunk read by several connections ---- */

/* A chunk is cut for another reader only if each piece keeps at least
 * this many rows (or, in ctid ranges, a block). */
#define MIN_PIECE_ROWS 100

/* The pieces of a chunk: piece i reads after bounds[i] up to bounds[i+1]
 * inclusive (ctid ranges: the blocks [bounds[i], bounds[i+1])), keeping
 * at most limit[i] rows. One piece: the chunk's own bounds. */
typedef struct cut {
    int n;
    bf_key bounds[BF_MAX_READERS + 1];
    uint64_t limit[BF_MAX_READERS];
} cut;

static void cut_clear(cut *c)
{
    for (int i = 0; i <= BF_MAX_READERS; i++)
        bf_key_clear(&c->bounds[i]);
    memset(c, 0, sizeof *c);
}

static uint64_t block_of(const bf_key *k)
{
    return k->n ? strtoull(k->v[0], NULL, 10) : 0;
}

static int readers_wanted(const bf_worker *w, const task *tk)
{
    int n = w->bf->chunk_readers < BF_MAX_READERS ? w->bf->chunk_readers
                                                  : BF_MAX_READERS;
    if (n <= 1 || tk->keys.n)
        return 1;
    uint64_t most;
    if (w->info.nkey) {
        most = tk->limit / MIN_PIECE_ROWS;
    } else {
        uint64_t lo = block_of(&tk->lo), hi = block_of(&tk->hi);
        most = hi > lo ? hi - lo : 1;
    }
    return most < (uint64_t)n ? (most ? (int)most : 1) : n;
}

/* ctid ranges: equal block ranges. */
static void cut_blocks(const task *tk, int want, cut *c)
{
    uint64_t lo = block_of(&tk->lo), span = block_of(&tk->hi) - lo;
    for (int i = 0; i <= want; i++) {
        char text[24], *v[] = {text};
        snprintf(
            text, sizeof text, "%llu",
            (unsigned long long)(lo + span * (uint64_t)i / (uint64_t)want));
        bf_key_set(&c->bounds[i], v, 1);
    }
    c->n = want;
}

/* The key `skip` rows after `after` in the chunk's range and snapshot;
 * false with *found unset when there is none. */
static bool split_key(bf_worker *w, const task *tk, const bf_key *after,
                      uint64_t skip, bf_key *out, bool *found, char *err,
                      size_t errlen, bool *retryable)
{
    char *sql =
        bf_chunk_split_sql(w->conn, &w->info, after, &tk->hi, skip, tk->where);
    PGresult *res;
    bool ok = run_sql(w, sql, PGRES_TUPLES_OK, &res, err, errlen, retryable);
    free(sql);
    *found = ok && PQntuples(res) == 1 && PQnfields(res) == w->info.nkey;
    if (*found) {
        char *v[64];
        for (int k = 0; k < w->info.nkey && k < 64; k++)
            v[k] = PQgetvalue(res, 0, k);
        bf_key_set(out, v, (size_t)(w->info.nkey < 64 ? w->info.nkey : 64));
    }
    PQclear(res);
    return ok;
}

/* Keyed: pieces of equal rows, cut at keys found in the chunk's own
 * snapshot with the chunk's own conditions, so each piece but the last
 * holds exactly its rows; fewer when the range holds fewer rows. */
static bool cut_keys(bf_worker *w, const task *tk, int want, cut *c, char *err,
                     size_t errlen, bool *retryable)
{
    uint64_t step = tk->limit / (uint64_t)want;
    bf_key_copy(&c->bounds[0], &tk->lo);
    for (c->n = 1; c->n < want; c->n++) {
        bool found;
        if (!split_key(w, tk, &c->bounds[c->n - 1], step - 1, &c->bounds[c->n],
                       &found, err, errlen, retryable))
            return false;
        if (!found)
            break;
        c->limit[c->n - 1] = step;
    }
    bf_key_copy(&c->bounds[c->n], &tk->hi);
    c->limit[c->n - 1] = tk->limit - step * (uint64_t)(c->n - 1);
    return true;
}

static bool cut_chunk(bf_worker *w, const task *tk, int want, cut *c, char *err,
                      size_t errlen, bool *retryable)
{
    if (want > 1 && w->info.nkey == 0) {
        cut_blocks(tk, want, c);
        return true;
    }
    if (want > 1)
        return cut_keys(w, tk, want, c, err, errlen, retryable);
    c->n = 1;
    bf_key_copy(&c->bounds[0], &tk->lo);
    bf_key_copy(&c->bounds[1], &tk->hi);
    c->limit[0] = tk->limit;
    return true;
}

/* Connection i (1-based among the readers beside the worker's own),
 * connected when needed. */
static PGconn *reader_conn(bf_worker *w, int i, char *err, size_t errlen)
{
    PGconn **conn = &w->readers[i - 1];
    if (*conn && PQstatus(*conn) == CONNECTION_OK)
        return *conn;
    PQfinish(*conn);
    char why[768];
    *conn = pq_connect(w->bf->conninfo, false, &w->bf->worker_stop, NULL, why,
                       sizeof why);
    if (!*conn)
        snprintf(err, errlen, "chunk reader %d: %s", i + 1, why);
    return *conn;
}

static void drop_readers(bf_worker *w)
{
    for (int i = 0; w->readers && i < w->bf->chunk_readers - 1; i++) {
        PQfinish(w->readers[i]);
        w->readers[i] = NULL;
    }
}

static char *piece_sql(const bf_worker *w, const task *tk, const cut *c, int i)
{
    if (tk->keys.n)
        return bf_chunk_keys_sql(w->conn, &w->info, &tk->keys, tk->where);
    return bf_chunk_copy_sql(w->conn, &w->info, &c->bounds[i],
                             &c->bounds[i + 1], c->limit[i], tk->where);
}

/* Another reader's piece: its own spill file, the worker's snapshot
 * imported, its COPY started. */
static bool start_other(bf_worker *w, const task *tk, const cut *c, int i,
                        const char *snapshot_id, const char *token,
                        bf_spill_writer *sw, bf_piece *p, char *err,
                        size_t errlen, bool *retryable)
{
    *retryable = true;
    p->conn = reader_conn(w, i, err, errlen);
    char *name = xasprintf("%s.%d.spill", token, i);
    char *path = bf_spill_path(w->bf, name);
    bool ok = p->conn && bf_spill_create(sw, path, NULL, err, errlen);
    free(name);
    free(path);
    p->sw = ok ? sw : NULL;
    char *lit =
        ok ? PQescapeLiteral(p->conn, snapshot_id, strlen(snapshot_id)) : NULL;
    char *set = lit ? xasprintf("SET TRANSACTION SNAPSHOT %s", lit) : NULL;
    char *sql = set ? piece_sql(w, tk, c, i) : NULL;
    if (ok && !sql) {
        snprintf(err, errlen, "reading the chunk failed: %s",
                 PQerrorMessage(p->conn));
        ok = false;
    }
    ok =
        ok &&
        read_sql(w, p->conn, CHUNK_BEGIN, PGRES_COMMAND_OK, NULL, err, errlen,
                 retryable) &&
        read_sql(w, p->conn, set, PGRES_COMMAND_OK, NULL, err, errlen,
                 retryable) &&
        read_sql(w, p->conn, sql, PGRES_COPY_OUT, NULL, err, errlen, retryable);
    PQfreemem(lit);
    free(set);
    free(sql);
    return ok;
}

/* Every piece's COPY started: the others' first, then the worker's own
 * (piece 0, into the chunk's spill file). */
static bool start_pieces(bf_worker *w, const task *tk, const cut *c,
                         const char *snapshot_id, const char *token,
                         bf_spill_writer *sw, bf_spill_writer *other,
                         bf_piece *pieces, char *err, size_t errlen,
                         bool *retryable)
{
    for (int i = 0; i < c->n; i++) {
        pieces[i].keep_all = w->info.nkey == 0;
        pieces[i].limit = c->limit[i];
    }
    for (int i = 1; i < c->n; i++)
        if (!start_other(w, tk, c, i, snapshot_id, token, &other[i], &pieces[i],
                         err, errlen, retryable))
            return false;
    char *sql = piece_sql(w, tk, c, 0);
    pieces[0].conn = w->conn;
    pieces[0].sw = sw;
    bool ok = run_sql(w, sql, PGRES_COPY_OUT, NULL, err, errlen, retryable);
    free(sql);
    return ok;
}

/* Each transaction ends (the worker's, which exported the snapshot,
 * last) and the other pieces' rows follow the first's in the chunk's
 * spill file, so that they stay in key order. */
static bool finish_pieces(bf_worker *w, const cut *c, bf_spill_writer *sw,
                          bf_spill_writer *other, bf_piece *pieces, char *err,
                          size_t errlen, bool *retryable)
{
    for (int i = 1; i < c->n; i++)
        if (!read_sql(w, pieces[i].conn, "COMMIT", PGRES_COMMAND_OK, NULL, err,
                      errlen, retryable))
            return false;
    if (!run_sql(w, "COMMIT", PGRES_COMMAND_OK, NULL, err, errlen, retryable))
        return false;
    *retryable = true; /* the disk, a full one too, may come back */
    for (int i = 1; i < c->n; i++)
        if (!bf_spill_take(sw, &other[i], err, errlen))
            return false;
    return true;
}

/* The chunk as its pieces read it: where it ends, whether more follow. */
static void take_outcome(const bf_worker *w, const bf_piece *pieces, int n,
                         chunk_read *r)
{
    for (int i = 0; i < n; i++)
        r->rows += pieces[i].rows;
    r->more = pieces[n - 1].more;
    for (int i = n - 1; i >= 0; i--) {
        if (!pieces[i].last_line)
            continue;
        take_key(&w->info, pieces[i].last_line, (size_t)pieces[i].last_len - 1,
                 &r->last_key);
        return;
    }
}

static void end_pieces(bf_worker *w, const cut *c, bf_spill_writer *other,
                       bf_piece *pieces, bool ok)
{
    for (int i = 0; i < BF_MAX_READERS; i++) {
        bf_piece_clear(&pieces[i]);
        if (i > 0 && other[i].path)
            bf_spill_abandon(&other[i]);
    }
    /* A reader stopped mid-COPY is in no state to be used again. */
    if (!ok && c->n > 1)
        drop_readers(w);
}

/* The chunk's rows in one REPEATABLE READ transaction (the worker's; the
 * other readers' import its snapshot), with the snapshot they were read
 * with. */
static bool read_rows(bf_worker *w, task *tk, const char *token,
                      bf_spill_writer *sw, chunk_read *r, char *err,
                      size_t errlen, bool *retryable)
{
    int want = readers_wanted(w, tk);
    PGresult *res = NULL;
    bool ok =
        run_sql(w, CHUNK_BEGIN, PGRES_COMMAND_OK, NULL, err, errlen,
                retryable) &&
        run_sql(w,
                want > 1 ? "SELECT pg_catalog.pg_current_snapshot()::text, "
                           "pg_catalog.pg_export_snapshot()"
                         : "SELECT pg_catalog.pg_current_snapshot()::text",
                PGRES_TUPLES_OK, &res, err, errlen, retryable);
    char *exported = ok && want > 1 ? xstrdup(PQgetvalue(res, 0, 1)) : NULL;
    if (ok)
        r->snapshot = xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    cut c;
    bf_spill_writer other[BF_MAX_READERS];
    bf_piece pieces[BF_MAX_READERS];
    memset(&c, 0, sizeof c);
    memset(other, 0, sizeof other);
    memset(pieces, 0, sizeof pieces);
    ok = ok && cut_chunk(w, tk, want, &c, err, errlen, retryable) &&
         start_pieces(w, tk, &c, exported, token, sw, other, pieces, err,
                      errlen, retryable) &&
         bf_pieces_drain(pieces, c.n, &w->bf->worker_stop, err, errlen,
                         retryable) &&
         finish_pieces(w, &c, sw, other, pieces, err, errlen, retryable);
    if (ok)
        take_outcome(w, pieces, c.n, r);
    if (ok && c.n > 1)
        log_debug("backfill worker %d: chunk %llu of %s read by %d "
                  "connections",
                  w->index + 1, (unsigned long long)tk->number, w->info.quoted,
                  c.n);
    end_pieces(w, &c, other, pieces, ok);
    cut_clear(&c);
    free(exported);
    return ok;
}

/* ctid ranges: the blocks [lo, hi) of a chunk, about chunk_rows rows. */
static bool block_range(bf_worker *w, task *tk, bool *at_end, char *err,
                        size_t errlen, bool *retryable)
{
    uint64_t blocks;
    if (!bf_table_blocks(w->conn, &w->bf->worker_stop, w->oid, &blocks, err,
                         errlen, retryable))
        return false;
    if (tk->reread) {
        *at_end = false;
        return true;
    }
    double per_block =
        w->info.rows_per_block > 0 ? w->info.rows_per_block : 100;
    uint64_t n = (uint64_t)((double)w->bf->chunk_rows / per_block);
    uint64_t lo = tk->lo.n ? strtoull(tk->lo.v[0], NULL, 10) : 0;
    uint64_t hi = lo + (n ? n : 1);
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)hi);
    char *v[] = {text};
    bf_key_set(&tk->hi, v, 1);
    *at_end = hi >= blocks;
    return true;
}

static bool read_chunk(bf_worker *w, task *tk, const char *token, chunk_read *r,
                       char *err, size_t errlen, bool *retryable)
{
    backfill *bf = w->bf;
    bool ctid_end = false;
    if (w->info.nkey == 0 &&
        !block_range(w, tk, &ctid_end, err, errlen, retryable))
        return false;
    r->spill = xasprintf("%s.spill", token);
    char *path = bf_spill_path(bf, r->spill);
    char *header = bf_table_spill_header(&w->info);
    bf_spill_writer sw;
    *retryable = true; /* the disk, a full one too, may come back */
    bool ok = bf_spill_create(&sw, path, header, err, errlen);
    if (ok) {
        ok = read_rows(w, tk, token, &sw, r, err, errlen, retryable);
        if (ok) {
            *retryable = true;
            ok = bf_spill_finish(&sw, err, errlen);
        } else {
            bf_spill_abandon(&sw);
        }
    }
    struct stat sb;
    if (ok && stat(path, &sb) == 0)
        r->spill_bytes = (uint64_t)sb.st_size;
    /* ctid: a range read again ends where it did the first time. */
    if (w->info.nkey == 0)
        r->more = !tk->reread && !ctid_end;
    free(header);
    free(path);
    return ok;
}

/* Whether the chunk just read is the table's final range: once every
 * other chunk of the table was sent by the stream (a chunk not yet sent
 * may still be found stale and need reading again). A chunk of keys is
 * never flagged: it re-reads rows the ranges had already passed. */
static bool decide_last(backfill *bf, bf_worker *w, const task *tk,
                        const chunk_read *r, bf_chunk *range)
{
    bf_backfill *b;
    bf_table *t = own_table(bf, w, &b);
    if (tk->keys.n)
        return false;
    bool final = tk->reread ? !r->more && t && t->at_end : !r->more;
    while (final && t && !bf->stopping && unprocessed(t, range) > 0) {
        struct timespec until = clock_after_ms(CLOCK_MONOTONIC, 500);
        pthread_cond_timedwait(&bf->changed, &bf->lock, &until);
        t = own_table(bf, w, &b);
        range = NULL; /* it may have moved */
    }
    if (!final || !t)
        return false;
    for (size_t i = 0; i < t->nchunks; i++)
        if (!t->chunks[i].spill &&
            !(tk->reread && bf_key_equal(&t->chunks[i].lo, &tk->lo)))
            return false;
    return true;
}

static bf_chunk *find_range(bf_table *t, const bf_key *lo)
{
    for (size_t i = 0; t && i < t->nchunks; i++)
        if (!t->chunks[i].spill && bf_key_equal(&t->chunks[i].lo, lo))
            return &t->chunks[i];
    return NULL;
}

/* Where the chunk ends, and where the table's copy goes on from: for keys,
 * a new chunk ends at its last row (an empty one where it began), a range
 * read again at its bound unless it had to be split; ctid ranges end at
 * their block bound. */
static void chunk_bounds(bf_table *t, bf_chunk *c, bf_chunk *range,
                         const task *tk, const chunk_read *r, bool keyed)
{
    bf_key_copy(&c->lo, &tk->lo);
    bool split = keyed && range && r->more;
    if (!keyed || (range && !split))
        bf_key_copy(&c->hi, &tk->hi);
    else
        bf_key_copy(&c->hi, r->rows ? &r->last_key : &tk->lo);
    if (split) {
        bf_key_copy(&range->lo, &c->hi);
        range->claimed = false;
    } else if (range) {
        bf_table_remove_chunk(t, (size_t)(range - t->chunks));
    } else if (!tk->reread) {
        bf_key_copy(&t->cursor, keyed ? &c->hi : &tk->hi);
        t->at_end = !r->more;
    }
}

/* The chunk in the state, before its high watermark (lock held). */
static bool record_chunk(backfill *bf, bf_worker *w, const task *tk,
                         const char *token, chunk_read *r, bool last)
{
    bf_backfill *b;
    bf_table *t = own_table(bf, w, &b);
    if (!t || t->status != BF_COPYING)
        return false;
    bf_table_add_chunk(t);
    bf_chunk *c = &t->chunks[t->nchunks - 1];
    c->n = t->next_chunk++;
    c->rows = r->rows;
    c->last = last;
    c->spill = r->spill;
    r->spill = NULL;
    c->snapshot = r->snapshot;
    r->snapshot = NULL;
    snprintf(c->token, sizeof c->token, "%s", token);
    key_column_names(&w->info, &c->keycols);
    c->spill_bytes = r->spill_bytes;
    c->claimed = true; /* this worker sends its high watermark */
    if (tk->keys.n) {
        bf_moved_move_front(&c->keys, &t->moved, t->moved_claimed);
        t->moved_claimed = 0;
    } else {
        bf_chunk *range = tk->reread ? find_range(t, &tk->lo) : NULL;
        /* The range is found again after the array may have moved. */
        chunk_bounds(t, c, range, tk, r, w->info.nkey > 0);
    }
    bf_forget_token_locked(bf, token);
    return bf_save_locked(bf);
}

/* Forgets a chunk read (lock held): its low watermark (its window, if the
 * stream opened one, closes), its spill file; a range to read again is
 * free again. */
static bf_table *discard_read_locked(bf_worker *w, const task *tk,
                                     const char *token, const chunk_read *r,
                                     bf_backfill **b)
{
    backfill *bf = w->bf;
    if (r->spill) {
        char *path = bf_spill_path(bf, r->spill);
        unlink(path);
        free(path);
    }
    bf_forget_token_locked(bf, token);
    bf_drop_window_locked(bf, token);
    bf_table *t = own_table(bf, w, b);
    bf_chunk *range = tk->reread ? find_range(t, &tk->lo) : NULL;
    if (range)
        range->claimed = false;
    if (t && tk->keys.n)
        t->moved_claimed = 0;
    return t;
}

/* Gives the chunk up after trouble. */
static void give_up_chunk(bf_worker *w, const task *tk, const char *token,
                          chunk_read *r, bool retryable, const char *err)
{
    backfill *bf = w->bf;
    pthread_mutex_lock(&bf->lock);
    bf_backfill *b;
    bf_table *t = discard_read_locked(w, tk, token, r, &b);
    if (t && !retryable && !stop_requested(&bf->worker_stop))
        bf_table_fail_locked(bf, b, t, err);
    pthread_cond_broadcast(&bf->changed);
    pthread_mutex_unlock(&bf->lock);
    if (retryable)
        back_off(w, err);
}

static void register_inflight(bf_worker *w, const char *token)
{
    backfill *bf = w->bf;
    pthread_mutex_lock(&bf->lock);
    bf->inflight =
        xrealloc(bf->inflight, (bf->ninflight + 1) * sizeof *bf->inflight);
    bf_inflight *f = &bf->inflight[bf->ninflight++];
    memset(f, 0, sizeof *f);
    snprintf(f->token, sizeof f->token, "%s", token);
    f->oid = w->oid;
    for (int k = 0; k < w->info.nkey; k++) {
        f->keycols.v = xrealloc(f->keycols.v, (size_t)(k + 1) * sizeof(char *));
        f->keycols.v[k] = xstrdup(w->info.cols[w->info.key[k].col].name);
        f->keycols.n = (size_t)k + 1;
    }
    pthread_mutex_unlock(&bf->lock);
}

static void mark_hw_sent(backfill *bf, const char *token, bool sent)
{
    pthread_mutex_lock(&bf->lock);
    bf_table *t;
    bf_backfill *b;
    bf_chunk *c = bf_find_chunk(&bf->st, token, &t, &b);
    if (c) {
        c->hw_sent = c->hw_sent || sent;
        c->claimed = false;
    }
    pthread_cond_broadcast(&bf->changed);
    pthread_mutex_unlock(&bf->lock);
}

/* A stop came before the chunk of keys was read: its keys wait again. */
static void release_keys(bf_worker *w, const task *tk)
{
    pthread_mutex_lock(&w->bf->lock);
    bf_backfill *b;
    bf_table *t = own_table(w->bf, w, &b);
    if (t && tk->keys.n)
        t->moved_claimed = 0;
    pthread_mutex_unlock(&w->bf->lock);
}

static void run_chunk(bf_worker *w, task *tk)
{
    backfill *bf = w->bf;
    char token[BF_TOKEN_LEN + 1], err[1024];
    chunk_read r;
    memset(&r, 0, sizeof r);
    bool retryable = true;
    new_token(token);
    throttle(w, tk->limit);
    if (!ensure_conn(w)) {
        release_keys(w, tk);
        return;
    }
    register_inflight(w, token);
    watermark m = {"lw", token, w->id, w->info.quoted, w->oid, tk->number};
    if (!emit_watermark(w, &m, err, sizeof err, &retryable) ||
        !read_chunk(w, tk, token, &r, err, sizeof err, &retryable)) {
        give_up_chunk(w, tk, token, &r, retryable, err);
        chunk_read_clear(&r);
        return;
    }
    w->failures = 0;
    if (r.rows < tk->limit)
        refund(w, tk->limit - r.rows);
    pthread_mutex_lock(&bf->lock);
    bf_backfill *b;
    bf_table *t = own_table(bf, w, &b);
    bool last = decide_last(bf, w, tk, &r, find_range(t, &tk->lo));
    t = own_table(bf, w, &b);
    if (t && t->rewinds != tk->rewinds) {
        /* The copy went back to a stale chunk read before this one: it
         * starts there again. */
        discard_read_locked(w, tk, token, &r, &b);
        pthread_cond_broadcast(&bf->changed);
        pthread_mutex_unlock(&bf->lock);
        chunk_read_clear(&r);
        return;
    }
    bool recorded = record_chunk(bf, w, tk, token, &r, last);
    pthread_mutex_unlock(&bf->lock);
    if (!recorded) {
        snprintf(err, sizeof err, "the chunk could not be recorded");
        give_up_chunk(w, tk, token, &r, true, err);
    } else {
        m.type = "hw";
        bool sent = emit_watermark(w, &m, err, sizeof err, &retryable);
        mark_hw_sent(bf, token, sent);
        if (!sent)
            back_off(w, err);
    }
    chunk_read_clear(&r);
}

/* A recorded chunk whose high watermark this process has not seen
 * committed (after a restart, or a failed attempt): sent again; the
 * stream takes the first it meets. */
static void run_send_hw(bf_worker *w, const task *tk)
{
    backfill *bf = w->bf;
    char err[1024], *table = NULL, *id = NULL;
    watermark m = {"hw", tk->token, NULL, NULL, 0, 0};
    pthread_mutex_lock(&bf->lock);
    bf_table *t;
    bf_backfill *b;
    bf_chunk *c = bf_find_chunk(&bf->st, tk->token, &t, &b);
    if (c) {
        m.table = table = xstrdup(t->name);
        m.id = id = xstrdup(b->id);
        m.chunk = c->n;
        m.oid = t->oid;
    }
    pthread_mutex_unlock(&bf->lock);
    bool retryable;
    if (c && ensure_conn(w)) {
        bool sent = emit_watermark(w, &m, err, sizeof err, &retryable);
        mark_hw_sent(bf, tk->token, sent);
        if (!sent)
            back_off(w, err);
    } else if (c) {
        mark_hw_sent(bf, tk->token, false);
    }
    free(table);
    free(id);
}

/* A task that failed inside a transaction (a chunk read the server
 * refused: a request's bad WHERE) leaves it aborted, and every later
 * statement on the connection, the status table's writes too, would fail
 * with it. The next task starts outside any transaction, on this
 * connection if a ROLLBACK gets it there, else on a new one. */
static void leave_transaction(bf_worker *w)
{
    if (!w->conn || PQstatus(w->conn) != CONNECTION_OK)
        return;
    PGTransactionStatusType tx = PQtransactionStatus(w->conn);
    if (tx == PQTRANS_IDLE)
        return;
    char err[512];
    PGresult *res = NULL;
    if (tx == PQTRANS_INTRANS || tx == PQTRANS_INERROR)
        res = bf_exec(w->conn, &w->bf->worker_stop, "ROLLBACK", 0, NULL,
                      PGRES_COMMAND_OK, "rollback", err, sizeof err, NULL);
    if (!res || PQtransactionStatus(w->conn) != PQTRANS_IDLE)
        drop_conn(w);
    PQclear(res);
}

static void run_task(bf_worker *w, task *tk)
{
    switch (tk->kind) {
    case TASK_STATUS:
        if (ensure_conn(w))
            bf_status_flush(w->bf, w);
        else
            bf_status_flush_abandon(w->bf);
        break;
    case TASK_SEND_HW:
        run_send_hw(w, tk);
        break;
    case TASK_START:
        run_start(w);
        break;
    case TASK_CHUNK:
        run_chunk(w, tk);
        break;
    case TASK_NONE:
        break;
    }
    leave_transaction(w);
}

static void *worker_main(void *arg)
{
    bf_worker *w = arg;
    backfill *bf = w->bf;
    int64_t idle_since = now_us();
    pthread_mutex_lock(&bf->lock);
    while (!bf->stopping) {
        task tk;
        memset(&tk, 0, sizeof tk);
        bf_progress_tick_locked(bf);
        pick_task_locked(bf, w, &tk);
        if (tk.kind == TASK_NONE) {
            if (w->conn && now_us() - idle_since > IDLE_CLOSE_US)
                drop_conn(w);
            struct timespec until = clock_after_ms(CLOCK_MONOTONIC, 1000);
            pthread_cond_timedwait(&bf->changed, &bf->lock, &until);
            continue;
        }
        pthread_mutex_unlock(&bf->lock);
        run_task(w, &tk);
        task_clear(&tk);
        idle_since = now_us();
        pthread_mutex_lock(&bf->lock);
    }
    release_table(w, own_table(bf, w, NULL));
    pthread_mutex_unlock(&bf->lock);
    drop_conn(w);
    return NULL;
}

void bf_workers_start(backfill *bf)
{
    if (bf->workers_started)
        return;
    bf->workers = xcalloc((size_t)bf->nworkers, sizeof *bf->workers);
    /* Stop signals belong to the main thread, whose waits they end. */
    sigset_t stop_signals, previous;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
    for (int i = 0; i < bf->nworkers; i++) {
        bf->workers[i].bf = bf;
        bf->workers[i].index = i;
        bf->workers[i].readers =
            xcalloc((size_t)bf->chunk_readers, sizeof(PGconn *));
        if (pthread_create(&bf->workers[i].thread, NULL, worker_main,
                           &bf->workers[i]) != 0) {
            log_error("cannot start backfill worker %d", i + 1);
            free(bf->workers[i].readers);
            bf->nworkers = i;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    bf->workers_started = true;
}

/* How long stopping waits for the status table to get its last rows. */
#define FINAL_STATUS_WAIT_MS 5000

static bool status_pending(const backfill *bf)
{
    for (size_t i = 0; i < bf->st.nbackfills && !bf->status_disabled; i++)
        if (bf->st.backfills[i].status_dirty)
            return true;
    return bf->status_busy;
}

void bf_workers_stop(backfill *bf)
{
    if (!bf->workers_started)
        return;
    pthread_mutex_lock(&bf->lock);
    /* The last changes (a backfill just done) reach the status table
     * before the workers go, unless that takes too long. */
    bf->closing = true;
    bf->status_due_us = 0;
    pthread_cond_broadcast(&bf->changed);
    int64_t deadline = now_us() + (int64_t)FINAL_STATUS_WAIT_MS * 1000;
    while (status_pending(bf) && bf->nworkers > 0 && now_us() < deadline) {
        struct timespec until = clock_after_ms(CLOCK_MONOTONIC, 100);
        pthread_cond_timedwait(&bf->changed, &bf->lock, &until);
    }
    bf->stopping = true;
    pthread_cond_broadcast(&bf->changed);
    pthread_mutex_unlock(&bf->lock);
    stop_signal(&bf->worker_stop);
    for (int i = 0; i < bf->nworkers; i++) {
        pthread_join(bf->workers[i].thread, NULL);
        free(bf->workers[i].readers);
    }
    free(bf->workers);
    bf->workers = NULL;
    bf->workers_started = false;
    if (bf->tty)
        log_progress_line(NULL);
}
