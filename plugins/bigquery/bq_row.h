/* Changelog rows: a change event becomes one or two insertAll rows, with
 * values converted to what BigQuery's JSON input accepts; and what an
 * insertAll answer says about a request. */
#ifndef BQ_ROW_H
#define BQ_ROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bq_schema.h"
#include "pipeline.h"

/* Appends to rows (a JSON array) the insertAll rows {"insertId":..,
 * "json":{..}} for one parsed canonical event (insert, update, delete or
 * truncate) at pos, converting values by the table's columns. An update
 * that changes the row's key adds a delete row for the old key first, so
 * the view drops it. Returns false, with a reason, when a value cannot be
 * represented (the event then goes to the dead-letter file or stops). */
bool bq_event_rows(json_t *event, pgspout_position pos, const bq_columns *table,
                   json_t *rows, char *err, size_t errlen);

/* One value converted for a column; a new reference, or NULL with err. */
json_t *bq_convert_value(const bq_column *col, json_t *value, char *err,
                         size_t errlen);

/* "<commit_lsn hex>-<seq>[suffix]": the same event always gets the same id,
 * so BigQuery drops a resent copy (best effort, about a minute). */
void bq_insert_id(pgspout_position pos, const char *suffix, char *buf,
                  size_t buflen);

/* A timestamptz as PostgreSQL prints it ("2026-11-21 23:55:22.12+01",
 * possibly BC or infinity) in UTC as RFC 3339, into buf. False when it
 * cannot be read. */
bool bq_timestamptz(const char *pg, char *buf, size_t buflen);

/* Each record's outcome from an insertAll answer; record i carried
 * record_rows[i] rows, in request order, so insertErrors' row indexes tell
 * which records they concern (records with no errors were stored). An
 * answer about the whole request (an HTTP error) gives every record the
 * same outcome; a request over insertAll's size limit is TOO_LARGE. The
 * pipeline pre-filled RETRY for a transient HTTP status.
 * Sets *auth_failed on 401 so the caller drops its cached token. */
void bq_insert_outcomes(const kit_http_response *resp,
                        const size_t *record_rows, size_t n,
                        kit_outcome *outcomes, bool *auth_failed);

/* A control-plane answer's error message ("reason: message"), or the
 * status. */
void bq_error_message(const kit_http_response *resp, char *buf, size_t buflen);

/* The first error reason of a Google API error body, or "". */
const char *bq_error_reason(json_t *body);

#endif
