#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "json_string.h"
#include "lsn.h"
#include "strbuf.h"

/* Sinks are at most 64 (SELECTION_MAX_SINKS); warnings of origins past
 * this many are written without a limit rather than tracked. */
#define MAX_ORIGINS 128
/* The last suppressed warning is repeated in the count's line, cut here. */
#define LAST_MESSAGE_MAX 1024

static pgspout_log_level min_level = PGSPOUT_LOG_INFO;
static log_format line_format = LOG_FORMAT_TEXT;
static void (*line_observer)(pgspout_log_level level);
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static bool progress_shown; /* under log_lock */

/* One sink's rate limit; under log_lock. */
typedef struct repeat_state {
    char *origin;
    int64_t last_written_us; /* 0: nothing written yet */
    uint64_t suppressed;
    char last[LAST_MESSAGE_MAX];
} repeat_state;

static repeat_state repeats[MAX_ORIGINS];
static size_t nrepeats;
/* Origins with suppressed warnings: lets log_flush_repeats return at once,
 * since it runs from the main loop many times a second. */
static atomic_int pending_repeats;

void log_set_level(pgspout_log_level level)
{
    min_level = level;
}

pgspout_log_level log_get_level(void)
{
    return min_level;
}

void log_set_format(log_format format)
{
    line_format = format;
}

bool log_format_parse(const char *text, log_format *format)
{
    if (strcmp(text, "text") == 0)
        *format = LOG_FORMAT_TEXT;
    else if (strcmp(text, "json") == 0)
        *format = LOG_FORMAT_JSON;
    else
        return false;
    return true;
}

void log_set_observer(void (*observer)(pgspout_log_level level))
{
    line_observer = observer;
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

/* ---- writing one line ---- */

static void append_json_fields(strbuf *line, const log_field *fields,
                               size_t nfields, uint64_t repeated)
{
    sbuf_append_str(line, ",\"fields\":{");
    for (size_t i = 0; i < nfields; i++) {
        if (i)
            sbuf_append_char(line, ',');
        json_append_string(line, fields[i].key, strlen(fields[i].key));
        sbuf_append_char(line, ':');
        if (fields[i].is_string)
            json_append_string(line, fields[i].string,
                               strlen(fields[i].string));
        else
            sbuf_appendf(line, "%lld", (long long)fields[i].number);
    }
    if (repeated)
        sbuf_appendf(line, "%s\"repeated\":%llu", nfields ? "," : "",
                     (unsigned long long)repeated);
    sbuf_append_str(line, "}}\n");
}

static void format_json(strbuf *line, pgspout_log_level level,
                        const char *origin, const log_field *fields,
                        size_t nfields, const char *message, uint64_t repeated)
{
    char ts[TIMESTAMP_FORMAT_BUFSIZE];
    timestamp_format_utc(wall_clock_us(), ts, sizeof ts);
    sbuf_appendf(line,
                 "{\"timestamp\":\"%s\",\"level\":\"%s\",\"message\":", ts,
                 level_name(level));
    json_append_string(line, message, strlen(message));
    sbuf_append_str(line, ",\"sink\":");
    if (origin)
        json_append_string(line, origin, strlen(origin));
    else
        sbuf_append_str(line, "null");
    append_json_fields(line, fields, nfields, repeated);
}

/* Writes one line with a single write, so lines from sink threads never
 * interleave. Lock held. */
static void write_line(pgspout_log_level level, const char *origin,
                       const log_field *fields, size_t nfields,
                       const char *message, uint64_t repeated)
{
    strbuf line = STRBUF_INIT;
    if (progress_shown) {
        /* The progress line goes away before a message takes its place. */
        sbuf_append_str(&line, "\r\033[K");
        progress_shown = false;
    }
    if (line_format == LOG_FORMAT_JSON) {
        format_json(&line, level, origin, fields, nfields, message, repeated);
    } else {
        sbuf_appendf(&line, "pgspout: %s: ", level_name(level));
        if (origin)
            sbuf_appendf(&line, "[%s] ", origin);
        sbuf_append_str(&line, message);
        sbuf_append_char(&line, '\n');
    }
    fwrite(line.data, 1, line.len, stderr);
    fflush(stderr);
    sbuf_free(&line);
}

/* ---- the rate limit ---- */

static repeat_state *repeat_state_of(const char *origin)
{
    for (size_t i = 0; i < nrepeats; i++)
        if (strcmp(repeats[i].origin, origin) == 0)
            return &repeats[i];
    if (nrepeats == MAX_ORIGINS)
        return NULL;
    repeat_state *r = &repeats[nrepeats++];
    r->origin = xstrdup(origin);
    return r;
}

/* The line that counts what a window suppressed. Lock held. */
static void write_repeats(repeat_state *r, int64_t now)
{
    strbuf msg = STRBUF_INIT;
    sbuf_appendf(
        &msg, "%llu more warning%s in the last %lld s; the last: %s",
        (unsigned long long)r->suppressed, r->suppressed == 1 ? "" : "s",
        (long long)((now - r->last_written_us + 999999) / 1000000), r->last);
    write_line(PGSPOUT_LOG_WARNING, r->origin, NULL, 0, msg.data,
               r->suppressed);
    sbuf_free(&msg);
    r->suppressed = 0;
    r->last_written_us = now;
    atomic_fetch_sub(&pending_repeats, 1);
}

/* Whether a warning of origin is only counted. Lock held. */
static bool suppress(const char *origin, const char *message)
{
    repeat_state *r = repeat_state_of(origin);
    if (!r)
        return false;
    int64_t now = now_us();
    int64_t window = (int64_t)LOG_REPEAT_WINDOW_S * 1000000;
    if (r->last_written_us && now - r->last_written_us < window) {
        if (r->suppressed++ == 0)
            atomic_fetch_add(&pending_repeats, 1);
        snprintf(r->last, sizeof r->last, "%s", message);
        return true;
    }
    /* The window is over: what it counted is said first. */
    if (r->suppressed)
        write_repeats(r, now);
    r->last_written_us = now;
    return false;
}

void log_flush_repeats(bool everything)
{
    if (atomic_load(&pending_repeats) == 0)
        return;
    pthread_mutex_lock(&log_lock);
    int64_t now = now_us();
    int64_t window = (int64_t)LOG_REPEAT_WINDOW_S * 1000000;
    for (size_t i = 0; i < nrepeats; i++) {
        repeat_state *r = &repeats[i];
        if (r->suppressed && (everything || now - r->last_written_us >= window))
            write_repeats(r, now);
    }
    pthread_mutex_unlock(&log_lock);
}

/* ---- entry points ---- */

static void log_emit(pgspout_log_level level, const char *origin,
                     const log_field *fields, size_t nfields, const char *fmt,
                     va_list ap)
{
    if (level < min_level)
        return;
    strbuf message = STRBUF_INIT;
    sbuf_vappendf(&message, fmt, ap);
    pthread_mutex_lock(&log_lock);
    bool limited = level == PGSPOUT_LOG_WARNING && origin &&
                   suppress(origin, message.data ? message.data : "");
    if (!limited)
        write_line(level, origin, fields, nfields,
                   message.data ? message.data : "", 0);
    pthread_mutex_unlock(&log_lock);
    sbuf_free(&message);
    if (line_observer)
        line_observer(level);
}

void log_vmsg(pgspout_log_level level, const char *origin, const char *fmt,
              va_list ap)
{
    log_emit(level, origin, NULL, 0, fmt, ap);
}

void log_fields(pgspout_log_level level, const char *origin,
                const log_field *fields, size_t nfields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, origin, fields, nfields, fmt, ap);
    va_end(ap);
}

void log_msg(pgspout_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, NULL, NULL, 0, fmt, ap);
    va_end(ap);
}

bool log_progress_drawable(void)
{
    return line_format == LOG_FORMAT_TEXT && isatty(STDERR_FILENO);
}

void log_progress_line(const char *line)
{
    if (line_format == LOG_FORMAT_JSON)
        return;
    pthread_mutex_lock(&log_lock);
    if (line || progress_shown) {
        fprintf(stderr, "\r%s\033[K", line ? line : "");
        fflush(stderr);
    }
    progress_shown = line != NULL;
    pthread_mutex_unlock(&log_lock);
}
