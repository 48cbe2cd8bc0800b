/* The stop state: what SIGINT/SIGTERM asked for, and the wake-up pipe.
 *
 * One object, made by main and passed down to whatever waits (connecting,
 * queries, the replication socket, catalog and sink retries, sinks through
 * the host API's should_stop), so that every wait obeys the same rule:
 *
 * - while streaming (STOP_STREAMING), the first signal ends every wait and
 *   asks for a clean stop (except a healthy sink's: should_stop lets it
 *   finish what it is sending, core/delivery/sink_host.c);
 * - during that clean stop (STOP_FINAL), pgspout still delivers, flushes
 *   and confirms, so waits go on until a second signal gives up on them.
 *
 * The wake pipe lets a sink's own thread (ack_durable) wake the main loop,
 * which polls its read end beside the replication socket. */
#ifndef PGSPOUT_STOP_H
#define PGSPOUT_STOP_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* How many signals end a wait. */
typedef enum stop_phase {
    STOP_STREAMING = 1,
    STOP_FINAL = 2,
} stop_phase;

typedef struct stop_state {
    /* Written only by the signal handler (stop_signal). */
    volatile sig_atomic_t signals;
    /* A stop_phase; read by sink threads through should_stop. */
    _Atomic int threshold;
    int wake_pipe[2]; /* -1 until stop_open_wake */
    /* Called by every stop_requested (NULL: none). Every wait asks that
     * question at least every 100 ms or so, which makes it the main
     * thread's pulse: liveness, the watchdog (core/ops.c). Called from
     * any thread that asks; must be cheap. */
    void (*on_check)(void);
} stop_state;

/* No signal yet, phase STOP_STREAMING, no wake pipe, no on_check. */
void stop_init(stop_state *s);

/* Counts one signal. Async-signal-safe: for the signal handler. */
void stop_signal(stop_state *s);

/* True once as many signals came as the current phase needs. */
bool stop_requested(const stop_state *s);

/* True once any signal came, whatever the phase. */
bool stop_signalled(const stop_state *s);

/* How many signals came. */
int stop_signal_count(const stop_state *s);

void stop_set_phase(stop_state *s, stop_phase phase);
stop_phase stop_get_phase(const stop_state *s);

/* Sleeps ms milliseconds unless a stop is requested first (looking every
 * 100 ms: a signal that lands just before the sleep does not end it).
 * Returns false when stopped. */
bool stop_sleep(const stop_state *s, int64_t ms);

/* Creates the wake pipe (both ends non-blocking). It is never closed: a
 * sink thread may acknowledge until its destroy returns, and a closed,
 * reused descriptor must never receive that byte. False on failure. */
bool stop_open_wake(stop_state *s);

/* The read end for poll(), or -1. */
int stop_wake_fd(const stop_state *s);

/* Writes a wake-up byte (from any thread); a full pipe already holds one. */
void stop_wake(const stop_state *s);

/* Reads away pending wake-up bytes. */
void stop_drain_wake(const stop_state *s);

#endif
