/* Sink instances as the host runs them, and the host API table. */
#ifndef PGSPOUT_SINK_HOST_H
#define PGSPOUT_SINK_HOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "loader.h"
#include "options.h"
#include "pattern.h"
#include "pgspout/sink.h"
#include "stop.h"

struct pgspout_sink_handle {
    char *name; /* instance name from the config (or the type) */
    sink_library lib;
    const sink_options *options; /* owned by the config */
    table_filter *filter;        /* the sink's own filter, may be empty */
    void *state;
    bool created;
    stop_state *stop; /* should_stop reads it; ack_durable wakes it */

    /* Only the main thread touches these. */
    pgspout_position delivered; /* last event handed over by a write OK */
    bool has_resume;
    pgspout_position resume;    /* skip events at or before this */
    uint64_t unflushed;         /* events written since the last flush */
    int64_t unflushed_since_us; /* when the oldest of them was written */

    /* Written by ack_durable from any thread. */
    pthread_mutex_t ack_lock;
    pgspout_position acked;

    /* Written by report_records from any thread: whether the sink's last
     * report said records were accepted (its service answers) rather than
     * to be sent again. False until it reports anything. */
    _Atomic bool reported_healthy;
    /* should_stop said once that the sink may finish despite a stop. */
    _Atomic bool told_to_finish;
};

typedef struct pgspout_sink_handle sink_handle;

const pgspout_host_api *host_api(void);

/* should_stop answers stop_requested(stop), but lets a healthy sink finish
 * at the first signal while streaming; ack_durable writes to stop's
 * wake pipe, so the main loop, which waits on its read end too, acts at
 * once on an acknowledgement from a sink's own thread. */
sink_handle *sink_handle_new(const char *name, sink_library lib,
                             const sink_options *options, table_filter *filter,
                             stop_state *stop);
void sink_handle_free(sink_handle *s);

/* Calls the sink's check_options (ABI 1.7) when it has one: false with the
 * option at fault ("" for none) and the reason when it refuses the options.
 * True for a sink without the callback. */
bool sink_handle_check_options(sink_handle *s, char *option, size_t option_size,
                               char *why, size_t why_size);

/* Calls create, then resume_position. */
pgspout_status sink_handle_create(sink_handle *s);
pgspout_position sink_handle_acked(sink_handle *s);

/* After a reconnect the server resends what was not confirmed; what the
 * sink already took in this process (it owns it now) is skipped. */
void sink_handle_skip_delivered(sink_handle *s);

#endif
