#include "slot_monitor.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "clock.h"
#include "log.h"
#include "pgconn.h"
#include "stats.h"
#include "stop.h"
#include "strbuf.h"

/* How often the thread looks whether a poll or a heartbeat is due. */
#define TICK_MS 1000
#define HEARTBEAT_TIMEOUT_MS 60000

struct slot_monitor {
    char *conninfo, *slot;
    int poll_interval_ms, heartbeat_interval_ms;
    slot_lag_guard *guard;
    stop_state stop; /* raised by slot_monitor_stop: ends every wait */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_bool stopping;

    /* The thread's own. */
    PGconn *conn;
    int64_t next_connect_us, next_poll_us, last_heartbeat_us;
    bool heartbeats_refused; /* the server refused one for good */
    bool connect_warned;
};

static void disconnect(slot_monitor *m)
{
    PQfinish(m->conn);
    m->conn = NULL;
    m->next_connect_us = now_us() + (int64_t)m->poll_interval_ms * 1000;
}

static void connect_now(slot_monitor *m)
{
    char err[1024];
    m->conn = pq_connect(m->conninfo, false, &m->stop, NULL, err, sizeof err);
    if (m->conn) {
        m->connect_warned = false;
        return;
    }
    /* Once per outage: the main connection reports the server's state. */
    if (!m->connect_warned && !atomic_load(&m->stopping))
        log_warning("slot monitor: %s; trying again every %d s", err,
                    m->poll_interval_ms / 1000);
    m->connect_warned = true;
    m->next_connect_us = now_us() + (int64_t)m->poll_interval_ms * 1000;
}

static void poll_slot(slot_monitor *m)
{
    slot_state st;
    char err[1024];
    m->next_poll_us = now_us() + (int64_t)m->poll_interval_ms * 1000;
    if (!slot_state_read(m->conn, &m->stop, m->slot, &st, err, sizeof err)) {
        if (!atomic_load(&m->stopping))
            log_warning("slot monitor: %s", err);
        if (!catalog_connection_usable(m->conn))
            disconnect(m);
        return;
    }
    if (!st.exists)
        return; /* the stream reports a dropped slot */
    stats_slot(&st);
    if (m->guard)
        slot_lag_guard_update(m->guard, m->slot, slot_lag_bytes(&st));
}

/* A heartbeat once no event was read for the interval (nor a heartbeat
 * written): as long as events flow, their own confirmations move the
 * slot. */
static bool heartbeat_due(const slot_monitor *m, int64_t now)
{
    if (m->heartbeat_interval_ms <= 0 || m->heartbeats_refused)
        return false;
    int64_t last = stats_last_event_us();
    if (m->last_heartbeat_us > last)
        last = m->last_heartbeat_us;
    return now - last >= (int64_t)m->heartbeat_interval_ms * 1000;
}

static void write_heartbeat(slot_monitor *m)
{
    static const char sql[] =
        "SELECT pg_catalog.pg_logical_emit_message("
        "false, '" HEARTBEAT_PREFIX "', '" HEARTBEAT_CONTENT "')";
    char why[512];
    pq_outcome outcome;
    m->last_heartbeat_us = now_us();
    PGresult *res = pq_exec(m->conn, sql, 0, NULL, HEARTBEAT_TIMEOUT_MS,
                            &m->stop, &outcome, why, sizeof why);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
        stats_heartbeat();
    } else if (res && catalog_connection_usable(m->conn)) {
        /* Refused (a role without the right, a standby): it would be
         * refused again; the stream goes on without heartbeats. */
        pq_copy_error(m->conn, "cannot write a heartbeat", why, sizeof why);
        log_warning("%s; heartbeats are off until pgspout restarts (see "
                    "README, \"Heartbeats\")",
                    why);
        m->heartbeats_refused = true;
    } else if (!atomic_load(&m->stopping)) {
        log_warning("slot monitor: cannot write a heartbeat: %s",
                    res ? PQerrorMessage(m->conn) : why);
    }
    PQclear(res);
    if (!catalog_connection_usable(m->conn))
        disconnect(m);
}

static void wait_tick(slot_monitor *m)
{
    pthread_mutex_lock(&m->lock);
    struct timespec until = clock_after_ms(CLOCK_MONOTONIC, TICK_MS);
    if (!atomic_load(&m->stopping))
        pthread_cond_timedwait(&m->wake, &m->lock, &until);
    pthread_mutex_unlock(&m->lock);
}

static void *monitor_main(void *arg)
{
    slot_monitor *m = arg;
    while (!atomic_load(&m->stopping)) {
        int64_t now = now_us();
        if (!m->conn && now >= m->next_connect_us)
            connect_now(m);
        if (m->conn && now >= m->next_poll_us)
            poll_slot(m);
        if (m->conn && heartbeat_due(m, now_us()))
            write_heartbeat(m);
        wait_tick(m);
    }
    PQfinish(m->conn);
    m->conn = NULL;
    return NULL;
}

slot_monitor *slot_monitor_start(const slot_monitor_settings *settings)
{
    slot_monitor *m = xcalloc(1, sizeof *m);
    m->conninfo = settings->conninfo ? xstrdup(settings->conninfo) : NULL;
    m->slot = xstrdup(settings->slot);
    m->poll_interval_ms = settings->poll_interval_ms;
    m->heartbeat_interval_ms = settings->heartbeat_interval_ms;
    m->guard = settings->lag_guard;
    m->last_heartbeat_us = now_us();
    stop_init(&m->stop);
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &attr);
    pthread_condattr_destroy(&attr);
    /* Stop signals stay with the main thread. */
    sigset_t block, previous;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &previous);
    int rc = pthread_create(&m->thread, NULL, monitor_main, m);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (rc != 0) {
        log_warning("cannot start the slot monitor; the slot's metrics and "
                    "heartbeats are off");
        pthread_cond_destroy(&m->wake);
        pthread_mutex_destroy(&m->lock);
        free(m->conninfo);
        free(m->slot);
        free(m);
        return NULL;
    }
    return m;
}

void slot_monitor_stop(slot_monitor *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    atomic_store(&m->stopping, true);
    stop_signal(&m->stop);
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->lock);
    free(m->conninfo);
    free(m->slot);
    free(m);
}
