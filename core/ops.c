#include "ops.h"

#include <pthread.h>
#include <stdio.h>

#include "clock.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "slot_monitor.h"
#include "stats.h"

/* The pulse does its work at most this often: stop_requested runs once
 * per message on a busy stream. */
#define PULSE_MIN_INTERVAL_US 100000
/* The slot is read every status_interval, or this often when that is 0. */
#define DEFAULT_POLL_INTERVAL_S 10

static struct {
    bool started;
    const pgspout_config *cfg;
    const stop_state *stop;
    pthread_t main_thread;
    int64_t last_pulse_us;
    http_server *http;
    slot_monitor *monitor;
    slot_lag_guard lag_guard;
} ops;

/* The main thread looked at its stop state: it is alive. */
static void pulse(void)
{
    if (!pthread_equal(pthread_self(), ops.main_thread))
        return;
    /* A stop is told at the first look after the signal, not at the next
     * pulse: a clean stop can be over before that. */
    if (stop_signalled(ops.stop) && health_get_phase() != HEALTH_STOPPING) {
        health_set_phase(HEALTH_STOPPING);
        notify_stopping();
    }
    int64_t now = now_us();
    if (now - ops.last_pulse_us < PULSE_MIN_INTERVAL_US)
        return;
    ops.last_pulse_us = now;
    health_alive_now();
    notify_alive();
    log_flush_repeats(false);
}

bool ops_start(const pgspout_config *cfg, stop_state *stop, char *err,
               size_t errlen)
{
    stats_init();
    log_set_observer(stats_log_line);
    if (cfg->http_listen) {
        ops.http = http_start(cfg->http_listen, err, errlen);
        if (!ops.http)
            return false;
        log_info("serving /health, /ready and /metrics on http://%s",
                 cfg->http_listen);
    }
    notify_init();
    ops.cfg = cfg;
    ops.stop = stop;
    ops.main_thread = pthread_self();
    ops.lag_guard.limit = cfg->max_slot_lag;
    ops.started = true;
    stop->on_check = pulse;
    health_alive_now();
    return true;
}

void ops_connecting(void)
{
    if (!ops.started || health_get_phase() == HEALTH_STOPPING)
        return;
    health_set_phase(HEALTH_CONNECTING);
    notify_status("connecting");
}

static void start_monitor(void)
{
    const pgspout_config *cfg = ops.cfg;
    int poll_s = cfg->status_interval_s > 0 ? cfg->status_interval_s
                                            : DEFAULT_POLL_INTERVAL_S;
    slot_monitor_settings settings = {
        .conninfo = cfg->conninfo,
        .slot = cfg->slot,
        .poll_interval_ms = poll_s * 1000,
        .heartbeat_interval_ms = cfg->heartbeat_interval_s * 1000,
        .lag_guard = &ops.lag_guard,
    };
    ops.monitor = slot_monitor_start(&settings);
}

void ops_streaming(PGconn *repl)
{
    if (!ops.started)
        return;
    stats_server_version(PQparameterStatus(repl, "server_version"));
    if (health_get_phase() != HEALTH_STOPPING)
        health_set_phase(HEALTH_STREAMING);
    char status[256];
    snprintf(status, sizeof status, "streaming from slot \"%s\"",
             ops.cfg->slot);
    notify_ready(status);
    start_monitor();
}

void ops_stream_ended(void)
{
    if (!ops.started)
        return;
    slot_monitor_stop(ops.monitor);
    ops.monitor = NULL;
}

void ops_reconnecting(int attempt)
{
    if (!ops.started)
        return;
    stats_reconnect();
    if (health_get_phase() != HEALTH_STOPPING)
        health_set_phase(HEALTH_RECONNECT_BACKOFF);
    char status[64];
    snprintf(status, sizeof status, "reconnecting (attempt %d)", attempt);
    notify_status(status);
}

void ops_finish(void)
{
    if (!ops.started)
        return;
    /* However the run ended (endpos, an error), the service is stopping;
     * sent once (a signal's stop may have said it already). */
    notify_stopping();
    slot_monitor_stop(ops.monitor);
    ops.monitor = NULL;
    http_stop(ops.http);
    ops.http = NULL;
    log_flush_repeats(true);
}
