/* The slot as the server sees it, and the guards on it: a slot whose WAL
 * is lost is refused at start, one whose WAL is no longer reserved is
 * warned about, and a lag over max_slot_lag makes pgspout not ready.
 *
 * Read from pg_replication_slots over an ordinary connection, by the start
 * check (main.c), the slot monitor (slot_monitor.h) and `pgspout status`
 * (status_cli.h). */
#ifndef PGSPOUT_SLOT_GUARD_H
#define PGSPOUT_SLOT_GUARD_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stop.h"

typedef struct slot_state {
    bool exists;
    bool active;
    int active_pid;         /* 0 when inactive */
    char database[64];      /* the slot's database */
    char plugin[64];        /* its output plugin */
    char wal_status[16];    /* reserved, extended, unreserved, lost */
    uint64_t confirmed_lsn; /* confirmed_flush_lsn (0: none) */
    uint64_t restart_lsn;   /* 0: none (a lost slot) */
    uint64_t current_lsn;   /* the server's WAL position now */
    bool has_safe_wal_size; /* false: max_slot_wal_keep_size = -1 */
    int64_t safe_wal_size;  /* bytes written before the slot is lost */
    int server_version;     /* PQserverVersion */
    /* invalidation_reason (PostgreSQL 17+; empty: valid or not told):
     * wal_removed, rows_removed, wal_level_insufficient, idle_timeout (18) */
    char invalidation[32];
    bool in_recovery; /* the server is a standby */
    bool failover;    /* a failover slot (17+) */
    bool synced;      /* on a standby: kept in sync from the primary (17+) */
} slot_state;

/* Bytes of WAL the slot's consumer is behind (current - confirmed), and
 * bytes the server keeps for it (current - restart); 0 when unknown. */
uint64_t slot_lag_bytes(const slot_state *st);
uint64_t slot_retained_bytes(const slot_state *st);

/* Reads the slot's state (st->exists false when there is no such slot).
 * False with err when the query failed; the connection must then be
 * checked (catalog_connection_usable) before it is used again. */
bool slot_state_read(PGconn *conn, const stop_state *stop, const char *slot,
                     slot_state *st, char *err, size_t errlen);

/* At start and at each reconnection, before streaming (st gets the slot's
 * state): refuses a slot the server invalidated (wal_status "lost"),
 * saying why (from invalidation_reason where the server tells it), that
 * changes were lost and how to recover; a failover slot on a standby is
 * not usable yet; warns about "unreserved". A slot that does not exist or
 * a failed query pass (the caller finds those). */
typedef enum slot_verdict {
    SLOT_USABLE,
    SLOT_REFUSED, /* invalidated: it will never be usable (logged) */
    /* A failover slot on a standby: usable once the standby is promoted
     * (logged). */
    SLOT_NOT_YET
} slot_verdict;
slot_verdict slot_guard_check_start(PGconn *conn, const stop_state *stop,
                                    const char *slot, slot_state *st);

/* The lag guard: remembers whether the lag is over the limit (0: no
 * limit), logs a warning when it crosses it and an info line when it is
 * back under, and tells readiness. */
typedef struct slot_lag_guard {
    uint64_t limit;
    bool over;
} slot_lag_guard;

void slot_lag_guard_update(slot_lag_guard *g, const char *slot,
                           uint64_t lag_bytes);

#endif
