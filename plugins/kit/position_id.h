/* A stable text id for an event position, shared by the sinks that must
 * name what they store so that a replay finds the same name again (a
 * BigQuery insertId, an Elasticsearch document _id). */
#ifndef KIT_POSITION_ID_H
#define KIT_POSITION_ID_H

#include <stddef.h>

#include <pgspout/position.h>

/* Longest id kit_position_id writes, with its NUL: 16 hex digits, '-', 20
 * decimal digits. */
#define KIT_POSITION_ID_MAX 38

/* "<commit_lsn in hex>-<seq>" (e.g. "16B3900-2") into buf: the same
 * position always gives the same id, and distinct positions distinct ids
 * ((commit_lsn, seq) is unique over the stream). */
void kit_position_id(pgspout_position pos, char *buf, size_t buflen);

#endif
