/* The sink kit's dead-letter file: records a sink chose not to deliver (too
 * large, rejected by the service as invalid), one JSON object per line with the
 * reason, fsynced before the record counts as handled. */
#ifndef KIT_DEAD_LETTER_H
#define KIT_DEAD_LETTER_H

#include <stdbool.h>
#include <stddef.h>

#include <pgspout/option.h>
#include <pgspout/position.h>

/* The option table entry of the dead-letter file, the same in every sink
 * that has one (KIT_PIPELINE_OPTIONS includes it). */
#define KIT_DEAD_LETTER_OPTION                                                 \
    {                                                                          \
        .name = "dead_letter", .type = PGSPOUT_OPT_STRING,                     \
        .doc = "file for records the service rejects for good (default: "      \
               "stop the stream)"                                              \
    }

typedef struct kit_dead_letter kit_dead_letter;

/* Opens (appends to) path. NULL with a message in err on failure. */
kit_dead_letter *kit_dead_letter_open(const char *path, char *err,
                                      size_t errlen);

/* Appends {"reason":..,"sink":..,"commit_lsn":..,"seq":..,"record":..} and
 * fsyncs. "record" is the payload itself when it is valid JSON, else
 * {"base64": "..."}. Thread-safe. */
bool kit_dead_letter_write(kit_dead_letter *dl, const char *sink,
                           pgspout_position pos, const char *reason,
                           const char *payload, size_t len, char *err,
                           size_t errlen);

void kit_dead_letter_close(kit_dead_letter *dl);

#endif
