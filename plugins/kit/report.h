/* The sink kit's report of what became of the records a sink sent to its
 * service (host API report_records, ABI 1.3): pgspout's per-sink record
 * metrics and the `sink_retrying` readiness reason come from it. The kit's
 * pipeline reports for the HTTP sinks; a sink with a client library of its
 * own (Kafka) reports from its delivery callbacks. */
#ifndef KIT_REPORT_H
#define KIT_REPORT_H

#include <stddef.h>

#include <pgspout/host.h>

/* Tells the host that n records had outcome `what`; nothing when n is 0 or
 * the host is older than ABI 1.3 (it has no such function). Thread-safe as
 * report_records is. A rejected record that went to the dead-letter file
 * is reported twice: REJECTED, then DEAD_LETTERED. */
void kit_report_records(const pgspout_host_api *host,
                        pgspout_sink_handle *handle,
                        pgspout_record_outcome what, size_t n);

#endif
