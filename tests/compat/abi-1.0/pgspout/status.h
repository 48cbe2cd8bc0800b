/* Return codes of sink callbacks. */
#ifndef PGSPOUT_STATUS_H
#define PGSPOUT_STATUS_H

typedef enum pgspout_status {
    /* Done. For write: the events were accepted (not necessarily durable). */
    PGSPOUT_OK = 0,
    /* Transient failure: the host backs off (exponential, with jitter) and
     * calls again with the same events. Nothing of the call is kept. */
    PGSPOUT_RETRY = 1,
    /* Retrying cannot help: the host stops streaming without confirming
     * anything this sink has not acknowledged, and exits non-zero. */
    PGSPOUT_FATAL = 2
} pgspout_status;

#endif
