/* The sink descriptor: what a sink shared object exports.
 *
 * A sink exports exactly one function, pgspout_sink_entry(), returning a
 * pointer to a static descriptor. The host reads `magic` first, then the ABI
 * version, then `size`, and touches no field beyond `size`; it refuses the
 * sink, naming the mismatching field, when any check fails. */
#ifndef PGSPOUT_SINK_H
#define PGSPOUT_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "event.h"
#include "host.h"
#include "option.h"
#include "position.h"
#include "status.h"

typedef struct pgspout_sink_descriptor {
    uint32_t magic;     /* PGSPOUT_ABI_MAGIC */
    uint16_t abi_major; /* PGSPOUT_ABI_MAJOR the sink was built against */
    uint16_t abi_minor; /* PGSPOUT_ABI_MINOR the sink was built against */
    uint32_t size;      /* sizeof(pgspout_sink_descriptor) in the sink */

    const char *name;                  /* short name: "file", "kinesis" */
    const char *version;               /* the sink's own version */
    const char *description;           /* one line */
    const pgspout_option_def *options; /* ends with PGSPOUT_OPTION_END */

    /* --- ABI 1.0 callbacks; all required --- */

    /* Create an instance. Options are read through host->option_*. Keep
     * `host` and `sink` for later calls. On failure log why and return
     * PGSPOUT_FATAL (or PGSPOUT_RETRY when a later attempt may succeed). */
    pgspout_status (*create)(const pgspout_host_api *host,
                             pgspout_sink_handle *sink, void **state);

    /* Take a batch of events, in stream order. Returning OK means the sink
     * has taken them (it may still be buffering); durability is reported
     * through host->ack_durable. Events are valid only during the call. */
    pgspout_status (*write)(void *state, const pgspout_event *const *events,
                            size_t count);

    /* Make everything written so far durable, and acknowledge it, before
     * returning OK. Called at idle moments, when the host holds too much
     * unacknowledged data, and before a clean stop. */
    pgspout_status (*flush)(void *state);

    /* Release the instance. Called once, after the last flush. */
    void (*destroy)(void *state);

    /* Optional (may be NULL): the position up to which this sink already
     * holds events durably from an earlier run. The host skips events at or
     * before it, so a sink that can read back its own output delivers each
     * change exactly once across crashes. Return false when unknown. */
    bool (*resume_position)(void *state, pgspout_position *position);

    /* --- ABI 1.7; optional (may be NULL) --- */

    /* Judge the options beyond what the option table can say: a value's
     * form (a key in base64, a list of URLs, a library's property) or
     * options that go together. The host calls it once per instance when
     * it checks the configuration, after checking the options against the
     * table and before anything connects, so a bad value is a
     * configuration error: reported with the file, line and key it came
     * from, exit status 2. Options are read through host->option_* as in
     * create. Return true to accept; to refuse, return false with the
     * faulty option's name (a key of a prefix family for one of those; ""
     * when no single option is at fault) in `option` and a one-line reason
     * in `why`, neither holding a secret option's value. Do no network I/O
     * and keep no state. create is still called afterwards, and must still
     * refuse bad options itself: a host older than 1.7 never calls this. */
    bool (*check_options)(const pgspout_host_api *host,
                          pgspout_sink_handle *sink, char *option,
                          size_t option_size, char *why, size_t why_size);
} pgspout_sink_descriptor;

/* The entry point every sink defines. */
PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void);

/* Initialiser for the header fields of a descriptor, declaring the minor
 * of these headers. */
#define PGSPOUT_SINK_HEADER PGSPOUT_SINK_HEADER_MINOR(PGSPOUT_ABI_MINOR)

/* The same, declaring an older minor: a sink that does not handle the ops
 * of later minors keeps declaring the minor it was written for, and the
 * host never hands it those ops (abi.h). */
#define PGSPOUT_SINK_HEADER_MINOR(minor)                                       \
    .magic = PGSPOUT_ABI_MAGIC, .abi_major = PGSPOUT_ABI_MAJOR,                \
    .abi_minor = (minor), .size = sizeof(pgspout_sink_descriptor)

#endif
