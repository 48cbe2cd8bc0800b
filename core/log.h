/* Logging to stderr, as text lines or JSON lines (--log-format).
 * Thread-safe: sinks log from their own threads.
 *
 * Text: "pgspout: LEVEL: [SINK] MESSAGE". JSON: one object a line,
 * {"timestamp":"2026-11-21T23:55:22.123456Z","level":"warning",
 *  "message":"...","sink":"es","fields":{"attempt":3}}, with "sink" null
 * for the core's own lines and "fields" the line's structured values (an
 * empty object when it has none).
 *
 * Repeated warnings are rate-limited per sink: once a warning of a sink
 * was written, further warnings of that sink during the next
 * LOG_REPEAT_WINDOW_S seconds are only counted; when the window is over,
 * one line says how many there were and repeats the last one, and a new
 * window starts. So an outage writes one line per sink per window,
 * however many requests fail. The core's own warnings (no sink) and
 * every other level are always written. */
#ifndef PGSPOUT_LOG_H
#define PGSPOUT_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgspout/host.h"

#define LOG_REPEAT_WINDOW_S 10

typedef enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON } log_format;

/* Messages below this level are dropped; -v lowers it. */
void log_set_level(pgspout_log_level level);
pgspout_log_level log_get_level(void);

void log_set_format(log_format format);

/* "text" or "json"; false for anything else. */
bool log_format_parse(const char *text, log_format *format);

/* Called (outside the log's lock) for every line written, with its level:
 * the metrics count lines and note when the last error was. */
void log_set_observer(void (*observer)(pgspout_log_level level));

/* A structured value of a line: an integer or a string. */
typedef struct log_field {
    const char *key;
    bool is_string;
    int64_t number;
    const char *string;
} log_field;

#define LOG_INT(k, v) ((log_field){.key = (k), .number = (int64_t)(v)})
#define LOG_STR(k, v)                                                          \
    ((log_field){.key = (k), .is_string = true, .string = (v)})

/* A line with fields (JSON only; text shows the message). origin: the sink
 * the line is about, or NULL. */
void log_fields(pgspout_log_level level, const char *origin,
                const log_field *fields, size_t nfields, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

void log_msg(pgspout_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(pgspout_log_level level, const char *origin, const char *fmt,
              va_list ap);

/* Writes the count of each sink's suppressed warnings whose window is over
 * (all of them with `everything`, at exit). Cheap when there are none. */
void log_flush_repeats(bool everything);

/* On a terminal: shows `line` (NULL: clears it) as the last line of
 * stderr, rewritten in place; a log message clears it first. */
void log_progress_line(const char *line);
/* Whether log_progress_line draws anything: stderr is a terminal and the
 * lines are text (a line rewritten in place would break JSON lines apart,
 * so JSON logs get their progress as log lines, as a file does). */
bool log_progress_drawable(void);

#define log_debug(...) log_msg(PGSPOUT_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(PGSPOUT_LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(PGSPOUT_LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(PGSPOUT_LOG_ERROR, __VA_ARGS__)

/* A line about a sink: in its rate limit, and named by its "sink" key. */
#define log_sink(level, sink, ...) log_fields(level, sink, NULL, 0, __VA_ARGS__)

#endif
