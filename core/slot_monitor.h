/* The slot monitor: a thread with an ordinary connection of its own that,
 * while pgspout streams, reads the slot's state every poll interval (lag,
 * retained WAL, wal_status, safe_wal_size: the metrics and the max_slot_lag
 * guard) and writes heartbeats.
 *
 * A heartbeat is a non-transactional logical decoding message with
 * pgspout's prefix (HEARTBEAT_PREFIX, content HEARTBEAT_CONTENT), written
 * when no event for a sink has been read for the heartbeat interval. The
 * walsender sends it to pgspout like a change (pgoutput's `messages`
 * option), which takes its position as reached and confirms it once
 * nothing is pending, and delivers it to no sink: so the slot's confirmed
 * and restart positions move on while every write goes to tables pgspout
 * does not stream or to other databases, and the server can recycle the
 * WAL in between.
 *
 * Its own thread and connection, so that a sink outage, which holds the
 * main loop, neither freezes the slot's metrics nor stops heartbeats. */
#ifndef PGSPOUT_SLOT_MONITOR_H
#define PGSPOUT_SLOT_MONITOR_H

#include <stdint.h>

#include "slot_guard.h"

#define HEARTBEAT_PREFIX "pgspout"
#define HEARTBEAT_CONTENT "{\"type\":\"heartbeat\"}"

typedef struct slot_monitor_settings {
    const char *conninfo; /* copied */
    const char *slot;     /* copied */
    int poll_interval_ms;
    int heartbeat_interval_ms; /* 0: no heartbeats */
    /* The max_slot_lag guard; it outlives the monitor, so that a
     * reconnect does not count as a new crossing. */
    slot_lag_guard *lag_guard;
} slot_monitor_settings;

typedef struct slot_monitor slot_monitor;

/* Starts the thread (it connects on its own, and again after a failure).
 * NULL when the thread cannot start (logged). */
slot_monitor *slot_monitor_start(const slot_monitor_settings *settings);

/* Stops the thread, ending any wait of its at once, and closes its
 * connection. NULL is fine. */
void slot_monitor_stop(slot_monitor *m);

#endif
