#include "slot_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "log.h"
#include "lsn.h"
#include "pgconn.h"

/* As the catalog's questions: small, so a minute means no answer. */
#define SLOT_QUERY_TIMEOUT_MS 60000

uint64_t slot_lag_bytes(const slot_state *st)
{
    if (!st->exists || !st->confirmed_lsn ||
        st->current_lsn < st->confirmed_lsn)
        return 0;
    return st->current_lsn - st->confirmed_lsn;
}

uint64_t slot_retained_bytes(const slot_state *st)
{
    if (!st->exists || !st->restart_lsn || st->current_lsn < st->restart_lsn)
        return 0;
    return st->current_lsn - st->restart_lsn;
}

/* pg_lsn differences as numeric text: exact for any LSN. On a standby
 * (logical decoding there, PostgreSQL 16+) the position is the replay's. */
static const char slot_sql_format[] =
    "SELECT s.active, coalesce(s.active_pid, 0), s.database, s.plugin, "
    "coalesce(s.wal_status, ''), "
    "coalesce(s.confirmed_flush_lsn - '0/0', 0)::text, "
    "coalesce(s.restart_lsn - '0/0', 0)::text, "
    "(CASE WHEN pg_catalog.pg_is_in_recovery() "
    "THEN pg_catalog.pg_last_wal_replay_lsn() "
    "ELSE pg_catalog.pg_current_wal_lsn() END - '0/0')::text, "
    "s.safe_wal_size, pg_catalog.pg_is_in_recovery(), %s "
    "FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1";

static void copy_text(char *dst, size_t len, const PGresult *res, int col)
{
    snprintf(dst, len, "%s", PQgetvalue(res, 0, col));
}

static void parse_slot_row(const PGresult *res, slot_state *st)
{
    st->exists = true;
    st->active = PQgetvalue(res, 0, 0)[0] == 't';
    st->active_pid = atoi(PQgetvalue(res, 0, 1));
    copy_text(st->database, sizeof st->database, res, 2);
    copy_text(st->plugin, sizeof st->plugin, res, 3);
    copy_text(st->wal_status, sizeof st->wal_status, res, 4);
    st->confirmed_lsn = strtoull(PQgetvalue(res, 0, 5), NULL, 10);
    st->restart_lsn = strtoull(PQgetvalue(res, 0, 6), NULL, 10);
    st->current_lsn = strtoull(PQgetvalue(res, 0, 7), NULL, 10);
    st->in_recovery = PQgetvalue(res, 0, 9)[0] == 't';
    copy_text(st->invalidation, sizeof st->invalidation, res, 10);
    st->failover = PQgetvalue(res, 0, 11)[0] == 't';
    st->synced = PQgetvalue(res, 0, 12)[0] == 't';
    st->has_safe_wal_size = !PQgetisnull(res, 0, 8);
    st->safe_wal_size =
        st->has_safe_wal_size ? strtoll(PQgetvalue(res, 0, 8), NULL, 10) : 0;
}

bool slot_state_read(PGconn *conn, const stop_state *stop, const char *slot,
                     slot_state *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    st->server_version = PQserverVersion(conn);
    const char *params[] = {slot};
    char why[512];
    pq_outcome outcome;
    /* The columns exist from PostgreSQL 17 on. */
    char sql[sizeof slot_sql_format + 96];
    snprintf(sql, sizeof sql, slot_sql_format,
             st->server_version >= 170000
                 ? "coalesce(s.invalidation_reason, ''), s.failover, s.synced"
                 : "'', false, false");
    PGresult *res = pq_exec(conn, sql, 1, params, SLOT_QUERY_TIMEOUT_MS, stop,
                            &outcome, why, sizeof why);
    if (!res) {
        snprintf(err, errlen, "cannot read the slot's state: %s", why);
        return false;
    }
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        pq_copy_error(conn, "cannot read the slot's state", err, errlen);
    else if (PQntuples(res) == 1)
        parse_slot_row(res, st);
    PQclear(res);
    return ok;
}

/* Why the server invalidated the slot, as a clause after "because". */
static const char *invalidation_cause(const char *reason)
{
    if (strcmp(reason, "idle_timeout") == 0)
        return "it was inactive longer than the server's "
               "idle_replication_slot_timeout (PostgreSQL 18+; keep pgspout "
               "running, or raise that setting, or set it to 0)";
    if (strcmp(reason, "rows_removed") == 0)
        return "rows it still needed were removed (on a standby: a conflict "
               "with recovery; hot_standby_feedback on the standby prevents "
               "it)";
    if (strcmp(reason, "wal_level_insufficient") == 0)
        return "the primary's wal_level is below logical";
    return "the server removed WAL it still needed (max_slot_wal_keep_size)";
}

static void refuse_lost(const char *slot, const slot_state *st)
{
    char lsn[LSN_FORMAT_BUFSIZE];
    lsn_format(st->confirmed_lsn, lsn, sizeof lsn);
    const char *reason = *st->invalidation ? st->invalidation : "wal_removed";
    log_fields(PGSPOUT_LOG_ERROR, NULL,
               (log_field[]){LOG_STR("slot", slot),
                             LOG_STR("wal_status", st->wal_status),
                             LOG_STR("invalidation_reason", reason)},
               3,
               "replication slot \"%s\" is lost (wal_status = %s, "
               "invalidation_reason = %s): the server invalidated it because "
               "%s, so changes committed after its confirmed position %s can "
               "no longer be streamed and are lost to the sinks; nothing was "
               "confirmed. To recover: drop the slot (pgspout --drop-slot "
               "--slot %s), create it again (--create-slot), and backfill the "
               "tables into the sinks",
               slot, *st->wal_status ? st->wal_status : "(none)", reason,
               invalidation_cause(reason), lsn, slot);
}

static void warn_unreserved(const char *slot, const slot_state *st)
{
    log_fields(PGSPOUT_LOG_WARNING, NULL,
               (log_field[]){
                   LOG_STR("slot", slot), LOG_STR("wal_status", st->wal_status),
                   LOG_INT("retained_bytes", slot_retained_bytes(st))},
               3,
               "replication slot \"%s\" no longer has its WAL reserved "
               "(wal_status = unreserved, %llu bytes behind): the server "
               "removes that WAL at its next checkpoint unless pgspout "
               "catches up first, and the slot is then lost; raise "
               "max_slot_wal_keep_size to keep it",
               slot, (unsigned long long)slot_retained_bytes(st));
}

/* A failover slot on a standby is the primary's, kept in sync: decoding
 * from it is refused until the standby is promoted. */
static void refuse_synced(const char *slot)
{
    log_fields(PGSPOUT_LOG_ERROR, NULL, (log_field[]){LOG_STR("slot", slot)}, 1,
               "this server is a standby, and replication slot \"%s\" on "
               "it is synchronized from its primary (a failover slot): "
               "stream from the primary; after a failover, from the promoted "
               "standby (a multi-host connection string with "
               "target_session_attrs=read-write connects to whichever is "
               "the primary)",
               slot);
}

slot_verdict slot_guard_check_start(PGconn *conn, const stop_state *stop,
                                    const char *slot, slot_state *st)
{
    char err[1024];
    if (!slot_state_read(conn, stop, slot, st, err, sizeof err) || !st->exists)
        return SLOT_USABLE;
    if (strcmp(st->wal_status, "lost") == 0 || *st->invalidation) {
        refuse_lost(slot, st);
        return SLOT_REFUSED;
    }
    if (st->in_recovery && st->synced) {
        refuse_synced(slot);
        return SLOT_NOT_YET;
    }
    if (strcmp(st->wal_status, "unreserved") == 0)
        warn_unreserved(slot, st);
    return SLOT_USABLE;
}

void slot_lag_guard_update(slot_lag_guard *g, const char *slot,
                           uint64_t lag_bytes)
{
    bool over = g->limit > 0 && lag_bytes > g->limit;
    if (over && !g->over)
        log_fields(PGSPOUT_LOG_WARNING, NULL,
                   (log_field[]){LOG_STR("slot", slot),
                                 LOG_INT("lag_bytes", lag_bytes),
                                 LOG_INT("limit_bytes", g->limit)},
                   3,
                   "replication slot \"%s\" is %llu bytes behind, over "
                   "max_slot_lag (%llu bytes): not ready until it catches up",
                   slot, (unsigned long long)lag_bytes,
                   (unsigned long long)g->limit);
    else if (!over && g->over)
        log_fields(PGSPOUT_LOG_INFO, NULL,
                   (log_field[]){LOG_STR("slot", slot),
                                 LOG_INT("lag_bytes", lag_bytes),
                                 LOG_INT("limit_bytes", g->limit)},
                   3,
                   "replication slot \"%s\" is back under max_slot_lag "
                   "(%llu bytes behind)",
                   slot, (unsigned long long)lag_bytes);
    g->over = over;
    health_slot_lag(over, lag_bytes, g->limit);
}
