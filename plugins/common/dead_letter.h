/* The dead-letter file: records a sink chose not to deliver (too large,
 * rejected by the service as invalid), one JSON object per line with the
 * reason, fsynced before the record counts as handled. */
#ifndef SINKKIT_DEAD_LETTER_H
#define SINKKIT_DEAD_LETTER_H

#include <stdbool.h>
#include <stddef.h>

#include <pgspout/position.h>

typedef struct sinkkit_dead_letter sinkkit_dead_letter;

/* Opens (appends to) path. NULL with a message in err on failure. */
sinkkit_dead_letter *sinkkit_dead_letter_open(const char *path, char *err,
                                              size_t errlen);

/* Appends {"reason":..,"sink":..,"commit_lsn":..,"seq":..,"record":..} and
 * fsyncs. "record" is the payload itself when it is valid JSON, else
 * {"base64": "..."}. Thread-safe. */
bool sinkkit_dead_letter_write(sinkkit_dead_letter *dl, const char *sink,
                               pgspout_position pos, const char *reason,
                               const char *payload, size_t len, char *err,
                               size_t errlen);

void sinkkit_dead_letter_close(sinkkit_dead_letter *dl);

#endif
