#include "replication.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "lsn.h"
#include "pgconn.h"
#include "strbuf.h"

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define POSTGRES_EPOCH_OFFSET_US INT64_C(946684800000000)

static int64_t postgres_now_us(void)
{
    return wall_clock_us() - POSTGRES_EPOCH_OFFSET_US;
}

static uint64_t read_be64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | u[i];
    return v;
}

static void write_be64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

/* Replication commands answer at once, except CREATE_REPLICATION_SLOT,
 * which waits for transactions running on the primary to end (that can
 * take as long as the longest one: only a stop ends that wait). */
#define REPL_COMMAND_TIMEOUT_MS 60000
/* How often --drop-slot --wait asks again for a slot another client holds. */
#define DROP_RETRY_MS 250
/* How long a clean stop waits for the server to end COPY. */
#define REPL_FINISH_TIMEOUT_MS 30000

static bool run_command(PGconn *conn, const stop_state *stop, const char *sql,
                        int timeout_ms, const char *what, char *err,
                        size_t errlen, char *sqlstate)
{
    char why[512];
    pq_outcome outcome;
    PGresult *res = pq_exec(conn, sql, 0, NULL, timeout_ms, stop, &outcome, why,
                            sizeof why);
    if (!res) {
        snprintf(err, errlen, "%s: %s", what, why);
        return false;
    }
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        pq_copy_error(conn, what, err, errlen);
    if (sqlstate) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(sqlstate, 6, "%s", state ? state : "");
    }
    PQclear(res);
    return ok;
}

bool repl_create_slot(PGconn *repl, const stop_state *stop, const char *slot,
                      bool failover, uint64_t *consistent_point, char *err,
                      size_t errlen)
{
    char sql[256], why[512];
    /* No snapshot: an initial copy goes chunk by chunk (backfill.h), never
     * in one transaction holding the slot's snapshot. FAILOVER exists only
     * in the option list syntax (PostgreSQL 15+; failover itself 17+). */
    if (failover)
        snprintf(sql, sizeof sql,
                 "CREATE_REPLICATION_SLOT \"%s\" LOGICAL pgoutput "
                 "(SNAPSHOT 'nothing', FAILOVER true)",
                 slot);
    else
        snprintf(sql, sizeof sql,
                 "CREATE_REPLICATION_SLOT \"%s\" LOGICAL pgoutput "
                 "NOEXPORT_SNAPSHOT",
                 slot);
    pq_outcome outcome;
    PGresult *res =
        pq_exec(repl, sql, 0, NULL, -1, stop, &outcome, why, sizeof why);
    if (!res) {
        snprintf(err, errlen, "cannot create replication slot: %s", why);
        return false;
    }
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) >= 2 &&
              PQntuples(res) == 1 &&
              lsn_parse(PQgetvalue(res, 0, 1), consistent_point);
    if (!ok)
        pq_copy_error(repl, "cannot create replication slot", err, errlen);
    PQclear(res);
    return ok;
}

bool repl_make_failover_slot(PGconn *repl, const stop_state *stop,
                             const char *slot, char *err, size_t errlen)
{
    char sql[160];
    snprintf(sql, sizeof sql, "ALTER_REPLICATION_SLOT \"%s\" (FAILOVER true)",
             slot);
    return run_command(repl, stop, sql, REPL_COMMAND_TIMEOUT_MS,
                       "cannot make the slot a failover slot", err, errlen,
                       NULL);
}

bool repl_identify_system(PGconn *repl, const stop_state *stop, char *system_id,
                          size_t idlen, char *dbname, size_t dblen, char *err,
                          size_t errlen)
{
    char why[512];
    pq_outcome outcome;
    PGresult *res =
        pq_exec(repl, "IDENTIFY_SYSTEM", 0, NULL, REPL_COMMAND_TIMEOUT_MS, stop,
                &outcome, why, sizeof why);
    if (!res) {
        snprintf(err, errlen, "cannot identify the server: %s", why);
        return false;
    }
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
              PQnfields(res) >= 4;
    if (ok) {
        snprintf(system_id, idlen, "%s", PQgetvalue(res, 0, 0));
        snprintf(dbname, dblen, "%s", PQgetvalue(res, 0, 3));
    } else {
        pq_copy_error(repl, "cannot identify the server", err, errlen);
    }
    PQclear(res);
    return ok;
}

/* Without WAIT the server refuses at once while another client holds the
 * slot; pgspout retries itself so that the wait is bounded and a stop ends
 * it without dropping a slot the user gave up on. */
bool repl_drop_slot(PGconn *repl, const stop_state *stop, const char *slot,
                    int wait_s, char *err, size_t errlen)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP_REPLICATION_SLOT \"%s\"", slot);
    int64_t deadline = now_us() + (int64_t)wait_s * 1000000;
    bool announced = false;
    for (;;) {
        char state[6];
        if (run_command(repl, stop, sql, REPL_COMMAND_TIMEOUT_MS,
                        "cannot drop replication slot", err, errlen, state))
            return true;
        if (strcmp(state, "55006") != 0)
            return false;
        if (now_us() >= deadline) {
            size_t len = strlen(err);
            snprintf(err + len, errlen - len,
                     wait_s > 0 ? " (still held after waiting %d s)"
                                : " (--wait SECONDS waits for it to be "
                                  "released)",
                     wait_s);
            return false;
        }
        if (!announced)
            log_info("%s; waiting up to %d s for it to be released", err,
                     wait_s);
        announced = true;
        if (!stop_sleep(stop, DROP_RETRY_MS)) {
            snprintf(err, errlen,
                     "stop requested while waiting for replication slot "
                     "\"%s\" to be released; the slot was not dropped",
                     slot);
            return false;
        }
    }
}

static void *status_thread_main(void *arg)
{
    repl_stream *rs = arg;
    for (;;) {
        /* A condition variable rather than a sleep: a stop wakes the thread
         * at once, so ending a run costs no tick. */
        pthread_mutex_lock(&rs->wait_lock);
        struct timespec until = clock_after_ms(CLOCK_MONOTONIC, 200);
        while (!atomic_load(&rs->stopping) &&
               pthread_cond_timedwait(&rs->wake, &rs->wait_lock, &until) == 0)
            ;
        pthread_mutex_unlock(&rs->wait_lock);
        if (atomic_load(&rs->stopping))
            break;
        if (rs->status_interval_ms <= 0)
            continue; /* periodic updates disabled: replies only */
        int64_t since = now_us() - atomic_load(&rs->last_status_us);
        if (since < (int64_t)rs->status_interval_ms * 1000)
            continue;
        char err[512];
        if (!repl_send_status(rs, false, err, sizeof err))
            log_warning("%s", err);
    }
    return NULL;
}

bool repl_start(repl_stream *rs, PGconn *repl, const stop_state *stop,
                const char *slot, const char *publication, int proto_version,
                int status_interval_ms, int server_timeout_ms, char *err,
                size_t errlen)
{
    memset(rs, 0, sizeof *rs);
    rs->conn = repl;
    rs->stop = stop;
    rs->status_interval_ms = status_interval_ms;
    rs->server_timeout_ms = server_timeout_ms;
    pthread_mutex_init(&rs->lock, NULL);
    pthread_mutex_init(&rs->wait_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&rs->wake, &attr);
    pthread_condattr_destroy(&attr);

    /* publication_names is a list of identifiers inside a string literal:
     * double quotes for the identifier, then single quotes doubled. */
    strbuf pub = STRBUF_INIT;
    sbuf_append_char(&pub, '"');
    for (const char *p = publication; *p; p++) {
        if (*p == '"')
            sbuf_append_char(&pub, '"');
        if (*p == '\'')
            sbuf_append_char(&pub, '\'');
        sbuf_append_char(&pub, *p);
    }
    sbuf_append_char(&pub, '"');
    strbuf sql = STRBUF_INIT;
    /* Logical decoding messages (14+) carry backfill requests and
     * watermarks, and pgspout's heartbeats (see slot_monitor.h). */
    sbuf_appendf(&sql,
                 "START_REPLICATION SLOT \"%s\" LOGICAL 0/0 "
                 "(proto_version '%d', publication_names '%s'%s%s)",
                 slot, proto_version, pub.data,
                 PQserverVersion(repl) >= 140000 ? ", messages 'true'" : "",
                 proto_version >= 2 ? ", streaming 'on'" : "");
    char why[512];
    pq_outcome outcome;
    PGresult *res = pq_exec(repl, sql.data, 0, NULL, REPL_COMMAND_TIMEOUT_MS,
                            stop, &outcome, why, sizeof why);
    sbuf_free(&sql);
    sbuf_free(&pub);
    if (!res) {
        snprintf(err, errlen, "cannot start streaming: %s", why);
        rs->start_retryable = outcome != PQ_STOPPED;
        return false;
    }
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        pq_copy_error(repl, "cannot start streaming", err, errlen);
        /* object_in_use: the walsender of a connection that just broke
         * still holds the slot; it lets go within moments. */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        rs->start_retryable = PQstatus(repl) != CONNECTION_OK ||
                              (state && strcmp(state, "55006") == 0);
        PQclear(res);
        return false;
    }
    PQclear(res);
    PQsetnonblocking(repl, 1);
    atomic_store(&rs->last_status_us, now_us());
    rs->last_received_us = now_us();
    /* Stop signals belong to the main thread, whose poll() they interrupt;
     * the new thread inherits this mask. */
    sigset_t stop_signals, previous;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
    int rc = pthread_create(&rs->status_thread, NULL, status_thread_main, rs);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start status thread");
        return false;
    }
    rs->status_thread_running = true;
    return true;
}

bool repl_send_status(repl_stream *rs, bool reply_requested, char *err,
                      size_t errlen)
{
    char msg[1 + 8 * 4 + 1];
    /* Read the positions under the lock, so a status update prepared by
     * the status thread cannot overtake a newer one from the main thread
     * and report an older flush position last. */
    pthread_mutex_lock(&rs->lock);
    uint64_t flushed = atomic_load(&rs->flushed);
    uint64_t received = atomic_load(&rs->received);
    msg[0] = 'r';
    write_be64(msg + 1, received > flushed ? received : flushed);
    write_be64(msg + 9, flushed);
    write_be64(msg + 17, flushed);
    write_be64(msg + 25, (uint64_t)postgres_now_us());
    msg[33] = reply_requested ? 1 : 0;
    /* The connection is non-blocking: what the socket cannot take now is
     * sent by the next read or status update, so a server that stopped
     * reading never blocks the caller (nor the stop that follows). */
    bool ok =
        PQputCopyData(rs->conn, msg, sizeof msg) == 1 && PQflush(rs->conn) >= 0;
    if (!ok)
        pq_copy_error(rs->conn, "cannot send status update", err, errlen);
    pthread_mutex_unlock(&rs->lock);
    if (ok)
        atomic_store(&rs->last_status_us, now_us());
    return ok;
}

bool repl_check_alive(repl_stream *rs, char *err, size_t errlen)
{
    int64_t now = now_us();
    int64_t probe_after_us = (int64_t)rs->server_timeout_ms * 1000 / 4;
    if (rs->probe_sent_us) {
        if (now - rs->last_received_us < (int64_t)rs->server_timeout_ms * 1000)
            return true;
        snprintf(err, errlen,
                 "the server has not answered for %lld s (not even a request "
                 "for a keepalive); taking the connection for lost",
                 (long long)((now - rs->last_received_us) / 1000000));
        return false;
    }
    if (now - rs->last_received_us < probe_after_us)
        return true;
    rs->probe_sent_us = now;
    return repl_send_status(rs, true, err, errlen);
}

static repl_read_result parse_copy_data(char *buf, int len, repl_msg *msg,
                                        char *err, size_t errlen)
{
    memset(msg, 0, sizeof *msg);
    msg->buffer = buf;
    if (len >= 25 && buf[0] == 'w') {
        msg->kind = REPL_XLOGDATA;
        msg->wal_start = read_be64(buf + 1);
        msg->wal_end = read_be64(buf + 9);
        msg->payload = buf + 25;
        msg->payload_len = (size_t)len - 25;
        return REPL_READ_MESSAGE;
    }
    if (len >= 18 && buf[0] == 'k') {
        msg->kind = REPL_KEEPALIVE;
        msg->wal_end = read_be64(buf + 1);
        msg->reply_requested = buf[17] != 0;
        return REPL_READ_MESSAGE;
    }
    snprintf(err, errlen,
             "unexpected message from the server: type '%c', %d bytes",
             len > 0 ? buf[0] : '?', len);
    PQfreemem(buf);
    msg->buffer = NULL;
    return REPL_READ_LOST;
}

repl_read_result repl_read(repl_stream *rs, repl_msg *msg, int timeout_ms,
                           int wake_fd, char *err, size_t errlen)
{
    int64_t deadline = now_us() + (int64_t)timeout_ms * 1000;
    /* Even with no time to wait, look at the socket once: libpq's buffer
     * being empty does not mean the kernel's is. */
    bool looked = false;
    for (;;) {
        char *buf = NULL;
        pthread_mutex_lock(&rs->lock);
        int len = PQgetCopyData(rs->conn, &buf, 1);
        pthread_mutex_unlock(&rs->lock);
        if (len > 0) {
            rs->last_received_us = now_us();
            rs->probe_sent_us = 0;
            return parse_copy_data(buf, len, msg, err, errlen);
        }
        if (len < 0) {
            pthread_mutex_lock(&rs->lock);
            PGresult *res = len == -1 ? PQgetResult(rs->conn) : NULL;
            bool permanent = false;
            if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
                snprintf(err, errlen, "the server ended replication");
            } else {
                pq_copy_error(rs->conn, "replication stream failed", err,
                              errlen);
                const char *state =
                    res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
                permanent = state && !pq_sqlstate_retryable(state);
            }
            PQclear(res);
            pthread_mutex_unlock(&rs->lock);
            return permanent ? REPL_READ_REFUSED : REPL_READ_LOST;
        }
        int64_t left = deadline - now_us();
        if (left < 0)
            left = 0;
        if (left == 0 && looked)
            return REPL_READ_TIMEOUT;
        looked = true;
        pthread_mutex_lock(&rs->lock);
        int unsent = PQflush(rs->conn); /* status updates queued earlier */
        if (unsent < 0)
            pq_copy_error(rs->conn, "replication connection lost", err, errlen);
        pthread_mutex_unlock(&rs->lock);
        if (unsent < 0)
            return REPL_READ_LOST;
        short events = POLLIN | (unsent ? POLLOUT : 0);
        struct pollfd fds[2] = {{.fd = PQsocket(rs->conn), .events = events},
                                {.fd = wake_fd, .events = POLLIN}};
        int n = poll(fds, wake_fd >= 0 ? 2 : 1, (int)((left + 999) / 1000));
        if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return REPL_READ_LOST;
        }
        if (n < 0)
            return REPL_READ_TIMEOUT; /* a signal: see the stop state */
        if (n == 0) {
            if (left == 0)
                return REPL_READ_TIMEOUT;
            continue;
        }
        if (fds[0].revents & POLLOUT)
            continue; /* room to send what was queued */
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
            return REPL_READ_TIMEOUT; /* only the wake-up pipe */
        pthread_mutex_lock(&rs->lock);
        int ok = PQconsumeInput(rs->conn);
        if (!ok)
            pq_copy_error(rs->conn, "replication connection lost", err, errlen);
        pthread_mutex_unlock(&rs->lock);
        if (!ok)
            return REPL_READ_LOST;
    }
}

void repl_note_received(repl_stream *rs, uint64_t lsn)
{
    /* Only the main thread raises it; the status thread reads it. */
    if (lsn > atomic_load(&rs->received))
        atomic_store(&rs->received, lsn);
}

bool repl_confirm(repl_stream *rs, uint64_t lsn, char *err, size_t errlen)
{
    atomic_store(&rs->flushed, lsn);
    return repl_send_status(rs, false, err, errlen);
}

static void stop_status_thread(repl_stream *rs)
{
    pthread_mutex_lock(&rs->wait_lock);
    atomic_store(&rs->stopping, true);
    pthread_cond_signal(&rs->wake);
    pthread_mutex_unlock(&rs->wait_lock);
    if (rs->status_thread_running) {
        pthread_join(rs->status_thread, NULL);
        rs->status_thread_running = false;
    }
}

/* Sends what libpq holds for the server; false when the deadline passed,
 * a stop was requested or the connection broke (err set). */
static bool flush_before(PGconn *conn, const stop_state *stop, int64_t deadline,
                         char *err, size_t errlen)
{
    for (;;) {
        int unsent = PQflush(conn);
        if (unsent == 0)
            return true;
        if (unsent < 0) {
            pq_copy_error(conn, "cannot end streaming", err, errlen);
            return false;
        }
        int wait = pq_wait_socket(conn, true, deadline, stop);
        if (wait != 1) {
            snprintf(err, errlen, "cannot end streaming: %s",
                     wait == 0 ? "the server did not take the data in time"
                               : "stop requested");
            return false;
        }
    }
}

/* Waits for more input from the server and reads it. */
static bool read_more(PGconn *conn, const stop_state *stop, int64_t deadline,
                      char *err, size_t errlen)
{
    int wait = pq_wait_socket(conn, false, deadline, stop);
    if (wait == 1 && PQconsumeInput(conn))
        return true;
    snprintf(err, errlen, "streaming did not end cleanly: %s",
             wait == 0    ? "the server did not answer in time"
             : wait == -1 ? "stop requested"
                          : PQerrorMessage(conn));
    return false;
}

/* Reads until the server has ended its side of COPY: what it still sent
 * before it saw CopyDone is dropped. */
static bool await_copy_end(PGconn *conn, const stop_state *stop,
                           int64_t deadline, char *err, size_t errlen)
{
    for (;;) {
        char *buf = NULL;
        int len = PQgetCopyData(conn, &buf, 1);
        PQfreemem(buf);
        if (len == -1)
            return true;
        if (len == -2) {
            pq_copy_error(conn, "streaming did not end cleanly", err, errlen);
            return false;
        }
        if (len == 0 && !read_more(conn, stop, deadline, err, errlen))
            return false;
    }
}

/* Takes the command's final results; false unless all of them succeeded. */
static bool await_results(PGconn *conn, const stop_state *stop,
                          int64_t deadline, char *err, size_t errlen)
{
    bool ok = true;
    for (;;) {
        if (PQisBusy(conn)) {
            if (!read_more(conn, stop, deadline, err, errlen))
                return false;
            continue;
        }
        PGresult *res = PQgetResult(conn);
        if (!res)
            return ok;
        ExecStatusType st = PQresultStatus(res);
        if (ok && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            pq_copy_error(conn, "streaming did not end cleanly", err, errlen);
            ok = false;
        }
        PQclear(res);
    }
}

bool repl_finish(repl_stream *rs, char *err, size_t errlen)
{
    stop_status_thread(rs);
    /* The last status update only counts once the server has read it: end
     * COPY after it and wait for the server to end its side too. A server
     * that has gone away (wal_sender_timeout, a restart) or stopped
     * answering fails here instead of the stop being reported as
     * confirmed; so does a second stop signal. */
    int64_t deadline = now_us() + (int64_t)REPL_FINISH_TIMEOUT_MS * 1000;
    if (!repl_send_status(rs, false, err, errlen))
        return false;
    if (PQputCopyEnd(rs->conn, NULL) != 1) {
        pq_copy_error(rs->conn, "cannot end streaming", err, errlen);
        return false;
    }
    return flush_before(rs->conn, rs->stop, deadline, err, errlen) &&
           await_copy_end(rs->conn, rs->stop, deadline, err, errlen) &&
           await_results(rs->conn, rs->stop, deadline, err, errlen);
}

void repl_stop(repl_stream *rs)
{
    stop_status_thread(rs);
    pthread_mutex_destroy(&rs->lock);
    pthread_mutex_destroy(&rs->wait_lock);
    pthread_cond_destroy(&rs->wake);
}
