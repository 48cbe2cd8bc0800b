#include "pgconn.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conninfo.h"
#include "log.h"
#include "strbuf.h"

/* How often a wait looks at the stop state: a signal that lands just
 * before poll() starts does not interrupt it. */
#define STOP_POLL_MS 100

void pq_copy_error(PGconn *conn, const char *what, char *err, size_t errlen)
{
    const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    snprintf(err, errlen, "%s: %.*s", what, (int)len, msg);
}

bool pq_sqlstate_retryable(const char *state)
{
    static const char *const retryable_classes[] = {"08", "40", "53",
                                                    "57", "58", "XX"};
    if (strcmp(state, "55006") == 0) /* the slot is still held: it frees */
        return true;
    if (strcmp(state, "58P01") == 0) /* WAL already removed: gone for good */
        return false;
    for (size_t i = 0; i < sizeof retryable_classes / sizeof *retryable_classes;
         i++)
        if (strncmp(state, retryable_classes[i], 2) == 0)
            return true;
    return false;
}

/* ---- connecting ---- */

/* What a connection attempt needs; owned by the attempt's thread once the
 * caller gave up on it (a stop), so every string is a copy. */
typedef struct connect_job {
    pthread_mutex_t lock;
    pthread_cond_t finished;
    bool done, abandoned;
    PGconn *conn;
    const char *keys[8];
    char *values[8];
} connect_job;

static void job_add(connect_job *job, size_t *n, const char *key,
                    char *owned_value)
{
    job->keys[*n] = key;
    job->values[(*n)++] = owned_value;
}

static connect_job *job_new(const char *conninfo, bool replication)
{
    connect_job *job = xcalloc(1, sizeof *job);
    size_t n = 0;
    /* dbname first: keywords after it override what it expands to. */
    job_add(job, &n, "dbname", xstrdup(conninfo ? conninfo : ""));
    job_add(job, &n, "fallback_application_name", xstrdup("pgspout"));
    /* Names and values are handled as UTF-8 throughout (JSON output,
     * pattern matching). */
    job_add(job, &n, "client_encoding", xstrdup("UTF8"));
    if (replication)
        job_add(job, &n, "replication", xstrdup("database"));
    char *user_options = conninfo_value(conninfo, "options");
    strbuf options = STRBUF_INIT;
    if (user_options)
        sbuf_appendf(&options, "%s ", user_options);
    sbuf_append_str(&options, PQ_PINNED_SETTINGS);
    free(user_options);
    job_add(job, &n, "options", sbuf_detach(&options));
    char *timeout = conninfo_value(conninfo, "connect_timeout");
    if (!timeout) {
        char text[16];
        snprintf(text, sizeof text, "%d", PGSPOUT_DEFAULT_CONNECT_TIMEOUT_S);
        job_add(job, &n, "connect_timeout", xstrdup(text));
    }
    free(timeout);
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->finished, NULL);
    return job;
}

static void job_free(connect_job *job)
{
    for (size_t i = 0; job->keys[i]; i++)
        free(job->values[i]);
    pthread_mutex_destroy(&job->lock);
    pthread_cond_destroy(&job->finished);
    free(job);
}

/* libpq's blocking connect applies connect_timeout per host exactly as
 * libpq documents it; running it on a thread of its own lets the caller
 * stop waiting when a stop is requested. */
static void *connect_thread(void *arg)
{
    connect_job *job = arg;
    PGconn *conn =
        PQconnectdbParams(job->keys, (const char *const *)job->values, 1);
    pthread_mutex_lock(&job->lock);
    bool abandoned = job->abandoned;
    job->conn = conn;
    job->done = true;
    pthread_cond_signal(&job->finished);
    pthread_mutex_unlock(&job->lock);
    if (abandoned) {
        PQfinish(conn);
        job_free(job);
    }
    return NULL;
}

static bool start_detached(connect_job *job)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Stop signals belong to the main thread, whose waits they end. */
    sigset_t stop_set, previous;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, &previous);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, connect_thread, job);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_attr_destroy(&attr);
    return rc == 0;
}

/* Waits for the attempt; on a stop leaves it to its thread. Returns the
 * connection (possibly failed), or NULL when stopped. */
static PGconn *await_job(connect_job *job, const stop_state *stop)
{
    pthread_mutex_lock(&job->lock);
    while (!job->done && !stop_requested(stop)) {
        struct timespec until = clock_after_ms(CLOCK_REALTIME, STOP_POLL_MS);
        pthread_cond_timedwait(&job->finished, &job->lock, &until);
    }
    bool done = job->done;
    job->abandoned = !done;
    pthread_mutex_unlock(&job->lock);
    if (!done)
        return NULL;
    PGconn *conn = job->conn;
    job_free(job);
    return conn;
}

/* Server notices go to pgspout's log rather than libpq's default (raw
 * lines on stderr, which would break JSON logs and alarm nobody usefully):
 * a WARNING as a warning, the rest (the NOTICE of an IF NOT EXISTS, INFO)
 * at debug level. */
static void log_server_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *severity =
        PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *text = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    bool warning = severity && strcmp(severity, "WARNING") == 0;
    log_msg(warning ? PGSPOUT_LOG_WARNING : PGSPOUT_LOG_DEBUG, "server %s: %s",
            severity ? severity : "notice", text ? text : "");
}

void pq_library_init(void)
{
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

PGconn *pq_connect(const char *conninfo, bool replication,
                   const stop_state *stop, pq_outcome *outcome, char *err,
                   size_t errlen)
{
    pq_outcome ignored;
    outcome = outcome ? outcome : &ignored;
    const char *what =
        replication ? "replication connection failed" : "connection failed";
    if (stop_requested(stop)) {
        *outcome = PQ_STOPPED;
        snprintf(err, errlen, "%s: stop requested", what);
        return NULL;
    }
    connect_job *job = job_new(conninfo, replication);
    if (!start_detached(job)) {
        job_free(job);
        *outcome = PQ_FAILED;
        snprintf(err, errlen, "%s: cannot start a thread", what);
        return NULL;
    }
    PGconn *conn = await_job(job, stop);
    if (!conn) {
        *outcome = PQ_STOPPED;
        snprintf(err, errlen, "%s: stop requested while connecting", what);
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        *outcome = PQ_FAILED;
        pq_copy_error(conn, what, err, errlen);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeReceiver(conn, log_server_notice, NULL);
    *outcome = PQ_OK;
    return conn;
}

/* ---- waiting and queries ---- */

int pq_wait_socket(PGconn *conn, bool for_write, int64_t deadline_us,
                   const stop_state *stop)
{
    for (;;) {
        if (stop_requested(stop))
            return -1;
        int64_t step = STOP_POLL_MS;
        if (deadline_us > 0) {
            int64_t left = (deadline_us - now_us() + 999) / 1000;
            if (left <= 0)
                return 0;
            if (left < step)
                step = left;
        }
        struct pollfd pfd = {.fd = PQsocket(conn),
                             .events = for_write ? POLLOUT : POLLIN};
        int n = poll(&pfd, 1, (int)step);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -2;
    }
}

static PGresult *wait_failed(int wait, pq_outcome *outcome, char *err,
                             size_t errlen)
{
    *outcome = wait == 0 ? PQ_TIMED_OUT : wait == -1 ? PQ_STOPPED : PQ_FAILED;
    snprintf(err, errlen, "%s",
             wait == 0    ? "the server did not answer in time"
             : wait == -1 ? "stop requested while waiting for the server"
                          : strerror(errno));
    return NULL;
}

static bool is_copy(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COPY_BOTH || st == PGRES_COPY_OUT || st == PGRES_COPY_IN;
}

/* Takes the results libpq has parsed; *finished once the last one (or a
 * COPY start) arrived. */
static void collect_ready(PGconn *conn, PGresult **last, bool *finished)
{
    while (!PQisBusy(conn)) {
        PGresult *res = PQgetResult(conn);
        if (!res || is_copy(res)) {
            if (res) {
                PQclear(*last);
                *last = res;
            }
            *finished = true;
            return;
        }
        PQclear(*last);
        *last = res;
    }
}

/* Waits for the results of the query just sent; returns the last. */
static PGresult *await_last(PGconn *conn, int timeout_ms,
                            const stop_state *stop, pq_outcome *outcome,
                            char *err, size_t errlen)
{
    int64_t deadline =
        timeout_ms >= 0 ? now_us() + (int64_t)timeout_ms * 1000 : 0;
    PGresult *last = NULL;
    bool finished = false;
    for (;;) {
        collect_ready(conn, &last, &finished);
        if (finished) {
            *outcome = PQ_OK;
            return last;
        }
        int wait = pq_wait_socket(conn, false, deadline, stop);
        if (wait != 1) {
            PQclear(last);
            return wait_failed(wait, outcome, err, errlen);
        }
        if (!PQconsumeInput(conn)) {
            PQclear(last);
            *outcome = PQ_FAILED;
            pq_copy_error(conn, "connection lost", err, errlen);
            return NULL;
        }
    }
}

static PGresult *send_failed(PGconn *conn, pq_outcome *outcome, char *err,
                             size_t errlen)
{
    *outcome = PQ_FAILED;
    pq_copy_error(conn, "cannot send query", err, errlen);
    return NULL;
}

PGresult *pq_exec(PGconn *conn, const char *sql, int nparams,
                  const char *const *params, int timeout_ms,
                  const stop_state *stop, pq_outcome *outcome, char *err,
                  size_t errlen)
{
    pq_outcome ignored;
    outcome = outcome ? outcome : &ignored;
    /* Replication commands only work through the simple query protocol. */
    int sent = nparams > 0 ? PQsendQueryParams(conn, sql, nparams, NULL, params,
                                               NULL, NULL, 0)
                           : PQsendQuery(conn, sql);
    if (!sent)
        return send_failed(conn, outcome, err, errlen);
    return await_last(conn, timeout_ms, stop, outcome, err, errlen);
}

PGresult *pq_exec_one(PGconn *conn, const char *sql, int timeout_ms,
                      const stop_state *stop, pq_outcome *outcome, char *err,
                      size_t errlen)
{
    pq_outcome ignored;
    outcome = outcome ? outcome : &ignored;
    if (!PQsendQueryParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0))
        return send_failed(conn, outcome, err, errlen);
    return await_last(conn, timeout_ms, stop, outcome, err, errlen);
}
