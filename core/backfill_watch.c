#include "backfill_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_message.h"
#include "backoff.h"
#include "catalog.h"
#include "hex.h"
#include "log.h"
#include "pgconn.h"
#include "pgoutput.h"
#include "strbuf.h"

#define EXIT_RUNTIME_FAILURE 1
#define EXIT_BAD_INPUT 2
#define QUERY_TIMEOUT_MS 60000
/* Peeking decodes all the WAL the slot still holds, which can be much. */
#define PEEK_TIMEOUT_MS (10 * 60 * 1000)
#define POLL_MS 1000
/* While copying, --wait reports progress at most this often. */
#define PROGRESS_EVERY_US (INT64_C(10) * 1000000)

/* The columns of status_sql's result. */
enum {
    COL_ID,
    COL_TABLE,
    COL_STATE,
    COL_ROWS,
    COL_ESTIMATE,
    COL_ERROR,
    COL_UPDATED
};

typedef enum status_outcome {
    STATUS_READ,     /* *res holds the rows (maybe none) */
    STATUS_NO_TABLE, /* the schema or the table does not exist */
    STATUS_FAILED    /* err says why */
} status_outcome;

/* The slot's rows, or with `id` only that backfill's `*` row; a request
 * first, then its tables. */
static char *status_sql(PGconn *conn, const char *schema, bool one)
{
    char *ident = PQescapeIdentifier(conn, schema, strlen(schema));
    char *sql = xasprintf(
        "SELECT id, table_name, state, coalesce(rows_copied::text, ''), "
        "coalesce(rows_estimated::text, ''), coalesce(error, ''), "
        "coalesce(pg_catalog.to_char(updated_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD HH24:MI:SS'), '') FROM %s." BACKFILL_STATUS_TABLE
        " WHERE slot = $1%s ORDER BY requested_at, id, table_name <> '*', "
        "table_name",
        ident ? ident : "\"?\"",
        one ? " AND id = $2 AND table_name = '*'" : "");
    PQfreemem(ident);
    return sql;
}

static status_outcome read_status(PGconn *conn, const stop_state *stop,
                                  const pgspout_config *cfg, const char *id,
                                  PGresult **res, char *err, size_t errlen)
{
    char *sql = status_sql(conn, cfg->status_schema, id != NULL);
    const char *params[] = {cfg->slot, id};
    *res = pq_exec(conn, sql, id ? 2 : 1, params, QUERY_TIMEOUT_MS, stop, NULL,
                   err, errlen);
    free(sql);
    if (!*res)
        return STATUS_FAILED;
    if (PQresultStatus(*res) == PGRES_TUPLES_OK)
        return STATUS_READ;
    const char *state = PQresultErrorField(*res, PG_DIAG_SQLSTATE);
    bool missing = state && (strcmp(state, "42P01") == 0 || /* table */
                             strcmp(state, "3F000") == 0);  /* schema */
    if (!missing)
        pq_copy_error(conn, "cannot read the backfill status", err, errlen);
    PQclear(*res);
    *res = NULL;
    return missing ? STATUS_NO_TABLE : STATUS_FAILED;
}

/* ---- --wait ---- */

typedef struct waiter {
    const pgspout_config *cfg;
    const char *id;
    char state[16];      /* the last state seen, "" before any */
    bool told_missing;   /* said that the request is not picked up yet */
    int64_t progress_at; /* when progress was last logged */
} waiter;

/* Reports a `*` row; returns -1 to go on waiting, else the exit status. */
static int follow_row(waiter *w, const PGresult *res)
{
    const char *state = PQgetvalue(res, 0, COL_STATE);
    const char *rows = PQgetvalue(res, 0, COL_ROWS);
    if (strcmp(state, "done") == 0) {
        log_info("backfill %s done: %s rows copied", w->id, rows);
        return 0;
    }
    if (strcmp(state, "failed") == 0) {
        log_error("backfill %s failed: %s", w->id,
                  PQgetvalue(res, 0, COL_ERROR));
        return EXIT_RUNTIME_FAILURE;
    }
    bool changed = strcmp(state, w->state) != 0;
    if (changed || now_us() - w->progress_at >= PROGRESS_EVERY_US) {
        log_info("backfill %s: %s, %s of about %s rows copied", w->id, state,
                 rows, PQgetvalue(res, 0, COL_ESTIMATE));
        w->progress_at = now_us();
    }
    snprintf(w->state, sizeof w->state, "%s", state);
    return -1;
}

/* One look at the status; -1 to go on waiting, -2 when the connection is
 * lost, else the exit status. */
static int poll_once(waiter *w, PGconn *conn, const stop_state *stop)
{
    char err[1024];
    PGresult *res;
    status_outcome o =
        read_status(conn, stop, w->cfg, w->id, &res, err, sizeof err);
    if (o == STATUS_FAILED) {
        if (stop_requested(stop))
            return -1; /* the caller says that the wait ended */
        if (!catalog_connection_usable(conn)) {
            log_warning("%s; connecting again", err);
            return -2;
        }
        log_error("%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    int rc = -1;
    if (o == STATUS_READ && PQntuples(res) > 0) {
        rc = follow_row(w, res);
    } else if (!w->told_missing) {
        log_info("waiting for pgspout to pick up backfill %s (%s)", w->id,
                 o == STATUS_NO_TABLE ? "its status table does not exist yet"
                                      : "it is not in the status table yet");
        w->told_missing = true;
    }
    PQclear(res);
    return rc;
}

static PGconn *reconnect(const pgspout_config *cfg, const stop_state *stop,
                         int attempt)
{
    if (!stop_sleep(stop, backoff_delay_ms(attempt)))
        return NULL;
    char err[1024];
    PGconn *conn =
        pq_connect(cfg->conninfo, false, stop, NULL, err, sizeof err);
    if (!conn)
        log_warning("%s", err);
    return conn;
}

int backfill_wait(PGconn **conn, const stop_state *stop,
                  const pgspout_config *cfg, const char *id)
{
    waiter w = {.cfg = cfg, .id = id};
    int attempt = 0;
    for (;;) {
        int rc = *conn ? poll_once(&w, *conn, stop) : -2;
        if (rc >= 0)
            return rc;
        if (rc == -2) {
            PQfinish(*conn);
            *conn = reconnect(cfg, stop, ++attempt);
        } else {
            attempt = 0;
        }
        if (stop_requested(stop) || (rc == -1 && !stop_sleep(stop, POLL_MS))) {
            log_info("stopped waiting; backfill %s goes on (pgspout backfill "
                     "--status shows it)",
                     id);
            return EXIT_RUNTIME_FAILURE;
        }
    }
}

/* ---- --status ---- */

typedef struct slot_info {
    bool exists, active;
    char pid[16];
} slot_info;

static bool read_slot(PGconn *conn, const stop_state *stop, const char *slot,
                      slot_info *info)
{
    char err[512];
    const char *params[] = {slot};
    PGresult *res =
        pq_exec(conn,
                "SELECT active, coalesce(active_pid::text, '') "
                "FROM pg_catalog.pg_replication_slots "
                "WHERE slot_name = $1",
                1, params, QUERY_TIMEOUT_MS, stop, NULL, err, sizeof err);
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        log_error("cannot look up the replication slot: %s",
                  res ? PQresultErrorMessage(res) : err);
    memset(info, 0, sizeof *info);
    if (ok && PQntuples(res) == 1) {
        info->exists = true;
        info->active = PQgetvalue(res, 0, 0)[0] == 't';
        snprintf(info->pid, sizeof info->pid, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return ok;
}

typedef struct widths {
    int id, table;
} widths;

/* Requests found in the WAL, not picked up yet. */
typedef struct pending_list {
    backfill_request *items;
    size_t n;
    const char *unlisted; /* why they could not be listed; NULL: they were */
    char why[512];
} pending_list;

static void print_row(const widths *w, const char *id, const char *table,
                      const char *state, const char *rows, const char *estimate,
                      const char *updated)
{
    char line[1024];
    int len =
        snprintf(line, sizeof line, "%-*s  %-*s  %-8s  %11s  %11s  %s", w->id,
                 id, w->table, table, state, rows, estimate, updated);
    len = len < 0 ? 0 : len >= (int)sizeof line ? (int)sizeof line - 1 : len;
    while (len > 0 && line[len - 1] == ' ')
        len--;
    printf("%.*s\n", len, line);
}

static void widen(widths *w, const char *id, const char *table)
{
    int i = (int)strlen(id), t = (int)strlen(table);
    w->id = i > w->id ? i : w->id;
    w->table = t > w->table ? t : w->table;
}

static void print_pending(const backfill_request *r, const widths *w)
{
    print_row(w, r->id, "*", "pending", "", "", "");
    strbuf what = STRBUF_INIT;
    for (size_t i = 0; i < r->n_include; i++)
        sbuf_appendf(&what, " -t %s", r->include[i]);
    for (size_t i = 0; i < r->n_exclude; i++)
        sbuf_appendf(&what, " -T %s", r->exclude[i]);
    if (r->where)
        sbuf_appendf(&what, " --where %s", r->where);
    printf("    requested:%s\n", what.len ? what.data : " every table");
    sbuf_free(&what);
}

/* The status rows, then the pending requests, under one header. */
static void print_table(const PGresult *res, const pending_list *pending)
{
    int n = res ? PQntuples(res) : 0;
    widths w = {(int)strlen("backfill"), (int)strlen("table")};
    for (int i = 0; i < n; i++)
        widen(&w, PQgetvalue(res, i, COL_ID), PQgetvalue(res, i, COL_TABLE));
    for (size_t i = 0; i < pending->n; i++)
        widen(&w, pending->items[i].id, "*");
    print_row(&w, "backfill", "table", "state", "rows copied", "estimated",
              "updated (UTC)");
    for (int i = 0; i < n; i++) {
        print_row(&w, PQgetvalue(res, i, COL_ID), PQgetvalue(res, i, COL_TABLE),
                  PQgetvalue(res, i, COL_STATE), PQgetvalue(res, i, COL_ROWS),
                  PQgetvalue(res, i, COL_ESTIMATE),
                  PQgetvalue(res, i, COL_UPDATED));
        if (*PQgetvalue(res, i, COL_ERROR))
            printf("    error: %s\n", PQgetvalue(res, i, COL_ERROR));
    }
    for (size_t i = 0; i < pending->n; i++)
        print_pending(&pending->items[i], &w);
}

static bool listed(const PGresult *res, const char *id)
{
    for (int i = 0; res && i < PQntuples(res); i++)
        if (strcmp(PQgetvalue(res, i, COL_ID), id) == 0)
            return true;
    return false;
}

/* bytea's text form (\x and hex digits) back into bytes, in place. */
static size_t unhex(char *text)
{
    size_t n = 0;
    for (const char *p = text + 2; p[0] && p[1]; p += 2)
        text[n++] = (char)(hex_digit_value(p[0]) << 4 | hex_digit_value(p[1]));
    return n;
}

/* Keeps a pgoutput Message that is this slot's backfill request, unless
 * the status table already lists it. */
static void keep_if_request(char *data, const PGresult *status,
                            const pgspout_config *cfg, pending_list *pending)
{
    pgoutput_parser parser = {.proto_version = 1};
    pgoutput_msg m;
    char err[256];
    size_t len = unhex(data);
    if (!pgoutput_parse(&parser, data, len, &m, err, sizeof err))
        return;
    backfill_request r;
    if (m.type == PGO_MESSAGE && m.u.message.transactional &&
        strcmp(m.u.message.prefix, BACKFILL_MESSAGE_PREFIX) == 0 &&
        backfill_message_parse(m.u.message.content, m.u.message.content_len, &r,
                               err, sizeof err) == BACKFILL_MESSAGE_REQUEST) {
        if (strcmp(r.slot, cfg->slot) == 0 && !listed(status, r.id)) {
            pending->items = xrealloc(
                pending->items, (pending->n + 1) * sizeof *pending->items);
            pending->items[pending->n++] = r;
        } else {
            backfill_request_free(&r);
        }
    }
    pgoutput_msg_free(&m);
}

/* publication_names takes a list of identifiers: quoted, so any name
 * reads back as itself. */
static char *quoted_name(const char *name)
{
    strbuf sb = STRBUF_INIT;
    sbuf_append_char(&sb, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            sbuf_append_char(&sb, '"');
        sbuf_append_char(&sb, *p);
    }
    sbuf_append_char(&sb, '"');
    return sbuf_detach(&sb);
}

/* Requests after the slot's confirmed position: the daemon has not picked
 * them up. Only messages ('M', byte 77) come back from the server. */
static void find_pending(PGconn *conn, const stop_state *stop,
                         const pgspout_config *cfg, const PGresult *status,
                         pending_list *pending)
{
    char *pubs = quoted_name(cfg->publication);
    const char *params[] = {cfg->slot, pubs};
    PGresult *res = pq_exec(
        conn,
        "SELECT data FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, "
        "NULL, NULL, 'proto_version', '1', 'publication_names', $2, "
        "'messages', 'true') WHERE pg_catalog.get_byte(data, 0) = 77",
        2, params, PEEK_TIMEOUT_MS, stop, NULL, pending->why,
        sizeof pending->why);
    free(pubs);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(res); i++)
            keep_if_request(PQgetvalue(res, i, 0), status, cfg, pending);
    } else {
        if (res)
            snprintf(pending->why, sizeof pending->why, "%s",
                     PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
        pending->unlisted = pending->why;
    }
    PQclear(res);
}

static void pending_free(pending_list *pending)
{
    for (size_t i = 0; i < pending->n; i++)
        backfill_request_free(&pending->items[i]);
    free(pending->items);
}

static void print_slot(const pgspout_config *cfg, const slot_info *slot)
{
    if (!slot->exists)
        printf("replication slot \"%s\" does not exist\n", cfg->slot);
    else if (slot->active)
        printf("replication slot \"%s\": streamed by pid %s\n", cfg->slot,
               slot->pid);
    else
        printf("replication slot \"%s\": nothing streams from it; requests "
               "not picked up yet are listed as pending\n",
               cfg->slot);
}

static void print_no_table(const pgspout_config *cfg, const slot_info *slot)
{
    printf("the status table %s." BACKFILL_STATUS_TABLE " does not exist%s\n",
           cfg->status_schema,
           slot->active ? ": pgspout could not create it (its log says why), "
                          "so no backfill state is known"
                        : " (pgspout creates it when it starts)");
}

int backfill_print_status(PGconn *conn, const stop_state *stop,
                          const pgspout_config *cfg)
{
    char err[1024];
    slot_info slot;
    if (!read_slot(conn, stop, cfg->slot, &slot))
        return EXIT_RUNTIME_FAILURE;
    PGresult *res;
    status_outcome o =
        read_status(conn, stop, cfg, NULL, &res, err, sizeof err);
    if (o == STATUS_FAILED) {
        log_error("%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    pending_list pending = {0};
    bool inactive = slot.exists && !slot.active;
    if (inactive)
        find_pending(conn, stop, cfg, res, &pending);
    print_slot(cfg, &slot);
    if (o == STATUS_NO_TABLE)
        print_no_table(cfg, &slot);
    if ((res && PQntuples(res) > 0) || pending.n > 0)
        print_table(res, &pending);
    else if (res)
        printf("no backfill of this slot is recorded\n");
    if (pending.unlisted)
        printf("requests waiting in the WAL cannot be listed: %s\n",
               pending.unlisted);
    else if (inactive && pending.n == 0)
        printf("no request is waiting in the WAL\n");
    pending_free(&pending);
    PQclear(res);
    return slot.exists ? 0 : EXIT_BAD_INPUT;
}
