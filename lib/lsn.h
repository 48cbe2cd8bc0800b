/* Text forms of WAL positions and commit timestamps, as they appear in the
 * canonical JSON and on the command line. */
#ifndef PGSPOUT_LSN_H
#define PGSPOUT_LSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for any formatted LSN ("FFFFFFFF/FFFFFFFF") and its NUL. */
#define LSN_FORMAT_BUFSIZE 20

/* Parses PostgreSQL's "X/X" form (1 to 8 hex digits each side, any case).
 * Returns false, leaving *lsn alone, for anything else. */
bool lsn_parse(const char *text, uint64_t *lsn);

/* Formats as PostgreSQL does: "%X/%X", upper case, no padding
 * ("0/16B3748"). buf must hold LSN_FORMAT_BUFSIZE bytes; returns buf. */
char *lsn_format(uint64_t lsn, char *buf, size_t buflen);

/* Room for the widest timestamp_format_utc output and its NUL. */
#define TIMESTAMP_FORMAT_BUFSIZE 40

/* Formats microseconds since the Unix epoch as ISO 8601 UTC with exactly six
 * fraction digits: "2026-11-21T23:55:22.123456Z". Times before 1970 work;
 * years before 1 print with a minus sign (astronomical numbering). */
void timestamp_format_utc(int64_t unix_us, char *buf, size_t buflen);

#endif
