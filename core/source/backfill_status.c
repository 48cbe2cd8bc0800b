/* The status table (pgspout_backfill_status, UNLOGGED: never published,
 * no WAL) that `pgspout backfill --status` and `--wait` read, the progress
 * logs, and the metrics and readiness (stats.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backfill_internal.h"
#include "log.h"
#include "lsn.h"
#include "stats.h"
#include "strbuf.h"

/* A table's row is written at least this often while it changes. */
#define STATUS_EVERY_US INT64_C(1000000)
#define PROGRESS_LOG_EVERY_US INT64_C(10000000)
#define PROGRESS_TTY_EVERY_US INT64_C(1000000)

static void publish_table(const bf_table *t)
{
    stats_backfill_table_now(&(stats_backfill_table){
        .table = t->name,
        .state = bf_status_name(t->status),
        .error = t->error,
        .rows_copied = t->rows_copied,
        .rows_estimated = t->rows_estimated,
    });
}

/* The tables of every recorded backfill, counted by state. */
static void publish_counts_locked(const backfill *bf)
{
    uint64_t counts[BF_FAILED + 1] = {0};
    for (size_t i = 0; i < bf->st.nbackfills; i++) {
        const bf_backfill *b = &bf->st.backfills[i];
        for (size_t j = 0; j < b->ntables; j++)
            counts[b->tables[j].status]++;
    }
    for (int s = BF_PENDING; s <= BF_FAILED; s++)
        stats_backfill_tables(bf_status_name((bf_status)s), counts[s]);
}

void bf_status_changed_locked(backfill *bf, bf_backfill *b, bf_table *t)
{
    b->status_dirty = true;
    if (t) {
        t->status_dirty = true;
        publish_table(t);
    }
    publish_counts_locked(bf);
    pthread_cond_broadcast(&bf->changed);
}

void bf_status_all_changed_locked(backfill *bf)
{
    for (size_t i = 0; i < bf->st.nbackfills; i++) {
        bf_backfill *b = &bf->st.backfills[i];
        for (size_t j = 0; j < b->ntables; j++)
            bf_status_changed_locked(bf, b, &b->tables[j]);
        bf_status_changed_locked(bf, b, NULL);
    }
}

void bf_status_publish_all_locked(backfill *bf)
{
    /* In request order: a table failed in one backfill and done in a
     * later one ends up done. */
    for (size_t i = 0; i < bf->st.nbackfills; i++) {
        const bf_backfill *b = &bf->st.backfills[i];
        for (size_t j = 0; j < b->ntables; j++)
            publish_table(&b->tables[j]);
    }
    publish_counts_locked(bf);
}

bool bf_status_due_locked(backfill *bf)
{
    if (bf->status_disabled || bf->status_busy || now_us() < bf->status_due_us)
        return false;
    for (size_t i = 0; i < bf->st.nbackfills; i++)
        if (bf->st.backfills[i].status_dirty)
            return true;
    return bf->forget_before != 0;
}

static void append_literal(PGconn *conn, strbuf *sql, const char *s)
{
    if (!s) {
        sbuf_append_str(sql, "NULL");
        return;
    }
    char *lit = PQescapeLiteral(conn, s, strlen(s));
    sbuf_append_str(sql, lit ? lit : "NULL");
    PQfreemem(lit);
}

static void append_row(PGconn *conn, strbuf *sql, const backfill *bf,
                       const bf_backfill *b, const char *table,
                       bf_status status, uint64_t copied, int64_t estimated,
                       const char *error)
{
    sbuf_append_str(sql, sql->data[sql->len - 1] == ')' ? ",\n(" : "(");
    append_literal(conn, sql, bf->slot);
    sbuf_append_char(sql, ',');
    append_literal(conn, sql, b->id);
    sbuf_append_char(sql, ',');
    append_literal(conn, sql, table);
    sbuf_appendf(sql, ",'%s',%llu,", bf_status_name(status),
                 (unsigned long long)copied);
    if (estimated >= 0)
        sbuf_appendf(sql, "%lld,", (long long)estimated);
    else
        sbuf_append_str(sql, "NULL,");
    append_literal(conn, sql, error);
    char lsn[LSN_FORMAT_BUFSIZE];
    sbuf_appendf(sql,
                 ",pg_catalog.to_timestamp(%lld / 1e6),"
                 "pg_catalog.clock_timestamp(),'%s')",
                 (long long)b->requested_at_us,
                 lsn_format(b->request_lsn, lsn, sizeof lsn));
}

/* The rows of one backfill: "*" and its tables whose status changed. */
static void append_backfill(PGconn *conn, strbuf *sql, const backfill *bf,
                            bf_backfill *b)
{
    uint64_t copied = 0;
    int64_t estimated = 0;
    for (size_t i = 0; i < b->ntables; i++) {
        bf_table *t = &b->tables[i];
        copied += t->rows_copied;
        estimated += t->rows_estimated > 0 ? t->rows_estimated : 0;
        if (t->status_dirty)
            append_row(conn, sql, bf, b, t->name, t->status, t->rows_copied,
                       t->rows_estimated, t->error);
        t->status_dirty = false;
    }
    bf_status s = b->status;
    if (s == BF_PENDING && b->resolved && b->ntables)
        for (size_t i = 0; i < b->ntables; i++)
            if (b->tables[i].status != BF_PENDING)
                s = BF_COPYING;
    append_row(conn, sql, bf, b, "*", s, copied, b->resolved ? estimated : -1,
               b->error);
    b->status_dirty = false;
}

static char *status_table(PGconn *conn, const backfill *bf)
{
    char *schema =
        PQescapeIdentifier(conn, bf->status_schema, strlen(bf->status_schema));
    char *name = xasprintf("%s.pgspout_backfill_status", schema ? schema : "");
    PQfreemem(schema);
    return name;
}

/* Once a run (a table of an older pgspout gets request_lsn: altering it
 * locks it, so not on every write). */
static bool create_table(PGconn *conn, backfill *bf, const char *table,
                         char *err, size_t errlen, bool *retryable)
{
    if (bf->status_table_ready)
        return true;
    char *sql = xasprintf(
        "CREATE UNLOGGED TABLE IF NOT EXISTS %s (slot text NOT NULL, id text "
        "NOT NULL, table_name text NOT NULL, state text NOT NULL, "
        "rows_copied bigint NOT NULL DEFAULT 0, rows_estimated bigint, "
        "error text, requested_at timestamptz, updated_at timestamptz NOT "
        "NULL DEFAULT now(), request_lsn pg_lsn, PRIMARY KEY (slot, id, "
        "table_name))",
        table);
    char *alter = xasprintf(
        "ALTER TABLE %s ADD COLUMN IF NOT EXISTS request_lsn pg_lsn", table);
    const char *what = "cannot create the status table";
    PGresult *res = bf_exec(conn, &bf->worker_stop, sql, 0, NULL,
                            PGRES_COMMAND_OK, what, err, errlen, retryable);
    if (res) {
        PQclear(res);
        res = bf_exec(conn, &bf->worker_stop, alter, 0, NULL, PGRES_COMMAND_OK,
                      what, err, errlen, retryable);
    }
    free(sql);
    free(alter);
    PQclear(res);
    bf->status_table_ready = res != NULL;
    return res != NULL;
}

/* Whether the status table exists (a failed question: as if it did, so
 * that the write after says what went wrong). */
static bool status_table_exists(bf_worker *w, const char *table)
{
    const char *params[] = {table};
    char err[256];
    bool retryable;
    PGresult *res =
        bf_exec(w->conn, &w->bf->worker_stop,
                "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, params,
                PGRES_TUPLES_OK, "status table", err, sizeof err, &retryable);
    bool exists = !res || PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return exists;
}

/* The ids of the backfills the state holds, as a JSON array. */
static char *state_ids_json(backfill *bf)
{
    json_t *ids = json_array();
    pthread_mutex_lock(&bf->lock);
    for (size_t i = 0; i < bf->st.nbackfills; i++)
        json_array_append_new(ids, json_string(bf->st.backfills[i].id));
    pthread_mutex_unlock(&bf->lock);
    char *text = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
    return xnonnull(text);
}

/* A backfill whose request the slot had confirmed before this run started
 * was recorded in the state by an earlier run; if the state does not hold
 * it (its directory was lost or set aside), no run will copy it again:
 * its rows, left as they were, would keep `--wait` waiting for ever. */
static bool mark_forgotten(backfill *bf, bf_worker *w, const char *table,
                           uint64_t before, char *err, size_t errlen,
                           bool *retryable)
{
    char lsn[LSN_FORMAT_BUFSIZE];
    char *ids = state_ids_json(bf);
    const char *params[] = {bf->slot, lsn_format(before, lsn, sizeof lsn), ids};
    char *sql = xasprintf(
        "UPDATE %s SET state = 'failed', updated_at = "
        "pg_catalog.clock_timestamp(), error = 'forgotten: pgspout''s state "
        "directory no longer holds this backfill (lost or set aside after "
        "its request was read); request it again' WHERE slot = $1 AND state "
        "NOT IN ('done', 'failed') AND request_lsn < $2::pg_catalog.pg_lsn "
        "AND id NOT IN (SELECT pg_catalog.jsonb_array_elements_text("
        "$3::pg_catalog.jsonb))",
        table);
    PGresult *res =
        bf_exec(w->conn, &bf->worker_stop, sql, 3, params, PGRES_COMMAND_OK,
                "cannot write the status table", err, errlen, retryable);
    if (res && strcmp(PQcmdTuples(res), "0") != 0)
        log_warning("backfills recorded before this run are missing from the "
                    "state directory %s; marked failed in %s (request them "
                    "again)",
                    bf->state_dir, table);
    PQclear(res);
    free(sql);
    free(ids);
    return res != NULL;
}

void bf_status_flush(backfill *bf, bf_worker *w)
{
    char *table = status_table(w->conn, bf);
    strbuf sql = STRBUF_INIT;
    sbuf_appendf(&sql,
                 "INSERT INTO %s AS s (slot, id, table_name, state, "
                 "rows_copied, rows_estimated, error, requested_at, "
                 "updated_at, request_lsn) VALUES\n",
                 table);
    size_t header = sql.len;
    pthread_mutex_lock(&bf->lock);
    for (size_t i = 0; i < bf->st.nbackfills; i++)
        if (bf->st.backfills[i].status_dirty)
            append_backfill(w->conn, &sql, bf, &bf->st.backfills[i]);
    pthread_mutex_unlock(&bf->lock);
    bool rows = sql.len > header;
    sbuf_append_str(&sql, " ON CONFLICT (slot, id, table_name) DO UPDATE SET "
                          "state = excluded.state, rows_copied = "
                          "excluded.rows_copied, rows_estimated = "
                          "excluded.rows_estimated, error = excluded.error, "
                          "updated_at = excluded.updated_at, request_lsn = "
                          "excluded.request_lsn");
    char err[1024];
    bool retryable = false;
    uint64_t taken = bf->forget_before, forget_before = taken;
    /* Nothing to write and no status table: nothing to mark either (the
     * table is made only once a backfill exists). */
    if (!rows && forget_before && !status_table_exists(w, table))
        forget_before = 0;
    bool ok = (!rows && !forget_before) ||
              create_table(w->conn, bf, table, err, sizeof err, &retryable);
    if (ok && rows) {
        PGresult *res = bf_exec(
            w->conn, &bf->worker_stop, sql.data, 0, NULL, PGRES_COMMAND_OK,
            "cannot write the status table", err, sizeof err, &retryable);
        ok = res != NULL;
        PQclear(res);
    }
    if (ok && forget_before)
        ok = mark_forgotten(bf, w, table, forget_before, err, sizeof err,
                            &retryable);
    pthread_mutex_lock(&bf->lock);
    if (ok && bf->forget_before == taken)
        bf->forget_before = 0;
    if (!ok && retryable)
        bf->status_table_ready = false;
    bf->status_busy = false;
    bf->status_due_us = now_us() + STATUS_EVERY_US;
    if (!ok && retryable) {
        /* Connection trouble (a server restart, which also empties the
         * UNLOGGED table): every row again on the next connection. */
        log_warning("%s; trying again", err);
        bf_status_all_changed_locked(bf);
    } else if (!ok && !stop_requested(&bf->worker_stop)) {
        log_warning("%s; backfills go on without %s", err, table);
        bf->status_disabled = true;
    }
    pthread_cond_broadcast(&bf->changed);
    pthread_mutex_unlock(&bf->lock);
    sbuf_free(&sql);
    free(table);
}

void bf_status_flush_abandon(backfill *bf)
{
    pthread_mutex_lock(&bf->lock);
    bf->status_busy = false;
    bf->status_due_us = now_us() + STATUS_EVERY_US;
    pthread_cond_broadcast(&bf->changed);
    pthread_mutex_unlock(&bf->lock);
}

/* ---- progress ---- */

static void describe_progress(strbuf *out, const bf_backfill *b,
                              const bf_table *t, int64_t now)
{
    double secs = (double)(now - t->started_us) / 1e6;
    double rate =
        secs > 0 ? (double)(t->rows_copied - t->rows_at_start) / secs : 0;
    sbuf_appendf(out, "backfill %s: %s: %llu", b->id, t->name,
                 (unsigned long long)t->rows_copied);
    if (t->rows_estimated > 0)
        sbuf_appendf(
            out, " of ~%lld rows (%.0f%%)", (long long)t->rows_estimated,
            100.0 * (double)t->rows_copied / (double)t->rows_estimated);
    else
        sbuf_append_str(out, " rows");
    sbuf_appendf(out, ", %.0f rows/s", rate);
    if (t->rows_estimated > 0 && rate > 0 &&
        (double)t->rows_estimated > (double)t->rows_copied)
        sbuf_appendf(out, ", ETA %.0f s",
                     ((double)t->rows_estimated - (double)t->rows_copied) /
                         rate);
}

void bf_progress_tick_locked(backfill *bf)
{
    int64_t now = now_us();
    int64_t every = bf->tty ? PROGRESS_TTY_EVERY_US : PROGRESS_LOG_EVERY_US;
    if (now - bf->progress_us < every)
        return;
    bf->progress_us = now;
    strbuf line = STRBUF_INIT;
    for (size_t i = 0; i < bf->st.nbackfills; i++) {
        const bf_backfill *b = &bf->st.backfills[i];
        for (size_t j = 0; j < b->ntables; j++) {
            const bf_table *t = &b->tables[j];
            if (t->status != BF_COPYING || !t->started_us)
                continue;
            if (!bf->tty) {
                sbuf_reset(&line);
                describe_progress(&line, b, t, now);
                log_info("%s", line.data);
            } else {
                if (line.len)
                    sbuf_append_str(&line, "; ");
                describe_progress(&line, b, t, now);
            }
        }
    }
    if (bf->tty)
        log_progress_line(line.len ? line.data : NULL);
    sbuf_free(&line);
}

void bf_progress_table_done(const bf_backfill *b, const bf_table *t)
{
    double secs =
        t->started_us ? (double)(now_us() - t->started_us) / 1e6 : 0.0;
    if (t->rows_at_start)
        log_info("backfill %s: %s copied: %llu rows (%llu in %.1f s since "
                 "resuming)",
                 b->id, t->name, (unsigned long long)t->rows_copied,
                 (unsigned long long)(t->rows_copied - t->rows_at_start), secs);
    else
        log_info("backfill %s: %s copied: %llu rows in %.1f s", b->id, t->name,
                 (unsigned long long)t->rows_copied, secs);
}
