#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

static pgspout_log_level min_level = PGSPOUT_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool progress_shown; /* under log_lock */

void log_set_level(pgspout_log_level level)
{
    min_level = level;
}

pgspout_log_level log_get_level(void)
{
    return min_level;
}

static const char *level_name(pgspout_log_level level)
{
    switch (level) {
    case PGSPOUT_LOG_DEBUG:
        return "debug";
    case PGSPOUT_LOG_INFO:
        return "info";
    case PGSPOUT_LOG_WARNING:
        return "warning";
    case PGSPOUT_LOG_ERROR:
        return "error";
    }
    return "log";
}

void log_vmsg(pgspout_log_level level, const char *origin, const char *fmt,
              va_list ap)
{
    if (level < min_level)
        return;
    /* One locked write per line so lines from sink threads never interleave. */
    pthread_mutex_lock(&log_lock);
    if (progress_shown) {
        fputs("\r\033[K", stderr);
        progress_shown = false;
    }
    if (origin)
        fprintf(stderr, "pgspout: %s: [%s] ", level_name(level), origin);
    else
        fprintf(stderr, "pgspout: %s: ", level_name(level));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

void log_msg(pgspout_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, NULL, fmt, ap);
    va_end(ap);
}

void log_progress_line(const char *line)
{
    pthread_mutex_lock(&log_lock);
    if (line || progress_shown) {
        fprintf(stderr, "\r%s\033[K", line ? line : "");
        fflush(stderr);
    }
    progress_shown = line != NULL;
    pthread_mutex_unlock(&log_lock);
}
