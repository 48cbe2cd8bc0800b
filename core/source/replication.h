/* The walsender side of libpq: slots, START_REPLICATION, CopyBoth framing,
 * keepalives and standby status updates. */
#ifndef PGSPOUT_REPLICATION_H
#define PGSPOUT_REPLICATION_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgconn.h"
#include "stop.h"

/* What one CopyData message from the walsender was. */
typedef enum repl_msg_kind {
    REPL_XLOGDATA,  /* payload holds one pgoutput message */
    REPL_KEEPALIVE, /* wal_end, reply_requested */
} repl_msg_kind;

typedef struct repl_msg {
    repl_msg_kind kind;
    uint64_t wal_start; /* XLogData: LSN of the change (its WAL record) */
    uint64_t wal_end;   /* the server's current end of WAL */
    bool reply_requested;
    const char *payload; /* XLogData only; points into `buffer` */
    size_t payload_len;
    char *buffer; /* the whole CopyData buffer; free with PQfreemem */
} repl_msg;

typedef struct repl_stream {
    PGconn *conn;
    const stop_state *stop; /* ends the waits of repl_finish */
    /* Serialises libpq calls: the status thread sends standby status updates
     * while the main thread may be busy inside a slow sink. */
    pthread_mutex_t lock;
    _Atomic uint64_t received; /* highest WAL position received */
    _Atomic uint64_t flushed;  /* highest WAL position safe to confirm */
    _Atomic int64_t last_status_us;
    int status_interval_ms;
    int server_timeout_ms; /* repl_check_alive */
    pthread_t status_thread;
    pthread_mutex_t wait_lock; /* with `wake`: lets a stop end its wait */
    pthread_cond_t wake;
    bool status_thread_running;
    _Atomic bool stopping;
    bool start_retryable; /* repl_start failed in a way a reconnect cures */
    /* Main thread only: when the server last sent anything, and when
     * pgspout asked it for a sign of life (0: not asked). */
    int64_t last_received_us;
    int64_t probe_sent_us;
} repl_stream;

/* Creates the slot (failover: one the server's standbys keep in sync, to
 * go on from after a promotion; PostgreSQL 17+); *consistent_point gets
 * the position it starts at. */
bool repl_create_slot(PGconn *repl, const stop_state *stop, const char *slot,
                      bool failover, uint64_t *consistent_point, char *err,
                      size_t errlen);
/* ALTER_REPLICATION_SLOT slot (FAILOVER true): PostgreSQL 17+. */
bool repl_make_failover_slot(PGconn *repl, const stop_state *stop,
                             const char *slot, char *err, size_t errlen);
/* IDENTIFY_SYSTEM: the server's system identifier and the database of the
 * connection. */
bool repl_identify_system(PGconn *repl, const stop_state *stop, char *system_id,
                          size_t idlen, char *dbname, size_t dblen, char *err,
                          size_t errlen);
/* Drops the slot; while another client holds it, asks again for up to
 * wait_s seconds (0: fails at once), ending early on a stop request. */
bool repl_drop_slot(PGconn *repl, const stop_state *stop, const char *slot,
                    int wait_s, char *err, size_t errlen);

/* START_REPLICATION from the slot's confirmed position; protocol 2 or
 * later asks for in-progress transactions to be streamed. */
bool repl_start(repl_stream *rs, PGconn *repl, const stop_state *stop,
                const char *slot, const char *publication, int proto_version,
                int status_interval_ms, int server_timeout_ms, char *err,
                size_t errlen);

typedef enum repl_read_result {
    REPL_READ_MESSAGE, /* *msg filled */
    /* Nothing arrived in time, or wake_fd became readable, or a signal
     * interrupted the wait (the caller looks at its stop state). */
    REPL_READ_TIMEOUT,
    REPL_READ_LOST,   /* a lost connection or end of stream (err set) */
    REPL_READ_REFUSED /* the server ended the stream with an error that a
                         reconnect cannot cure (err set) */
} repl_read_result;

/* Waits up to timeout_ms for the next message, or until wake_fd (-1: none)
 * is readable. */
repl_read_result repl_read(repl_stream *rs, repl_msg *msg, int timeout_ms,
                           int wake_fd, char *err, size_t errlen);

/* Raises the position reported as received (written) to lsn. */
void repl_note_received(repl_stream *rs, uint64_t lsn);

/* Reports lsn as flushed: it and everything before it may be forgotten by
 * the server. Sends a status update at once. */
bool repl_confirm(repl_stream *rs, uint64_t lsn, char *err, size_t errlen);

/* Called when a read found nothing. A server that has said nothing for a
 * quarter of server_timeout_ms is asked for a sign of life (a status update
 * with the reply flag: the walsender answers it at once); one that has not
 * answered by the end of server_timeout_ms is taken for gone (a hung
 * server, a network path dropping packets silently): returns false with
 * err set, and the caller reconnects. */
bool repl_check_alive(repl_stream *rs, char *err, size_t errlen);

/* Sends a standby status update reporting the last confirmed position as
 * flushed (a reply to a keepalive that asked for one). */
bool repl_send_status(repl_stream *rs, bool reply_requested, char *err,
                      size_t errlen);

/* After a clean stop: sends the final status update, ends COPY and waits
 * until the server has ended its side, so the confirmation is known to have
 * arrived. Stops the status thread. */
bool repl_finish(repl_stream *rs, char *err, size_t errlen);

/* Releases what repl_start set up (the connection stays open; closing it
 * abandons the stream without further confirmation). */
void repl_stop(repl_stream *rs);

#endif
