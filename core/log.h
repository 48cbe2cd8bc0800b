/* Logging to stderr. Thread-safe: sinks log from their own threads. */
#ifndef PGSPOUT_LOG_H
#define PGSPOUT_LOG_H

#include <stdarg.h>

#include "pgspout/host.h"

/* Messages below this level are dropped; -v lowers it. */
void log_set_level(pgspout_log_level level);
pgspout_log_level log_get_level(void);

void log_msg(pgspout_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(pgspout_log_level level, const char *origin, const char *fmt,
              va_list ap);

/* On a terminal: shows `line` (NULL: clears it) as the last line of
 * stderr, rewritten in place; a log message clears it first. */
void log_progress_line(const char *line);

#define log_debug(...) log_msg(PGSPOUT_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(PGSPOUT_LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(PGSPOUT_LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(PGSPOUT_LOG_ERROR, __VA_ARGS__)

#endif
