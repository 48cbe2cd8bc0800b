#include "health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "json_string.h"

#define MAX_SINKS 64
/* Failed backfills named at once in /ready; more are counted. */
#define MAX_FAILED_TABLES 16

typedef struct sink_health {
    char *name;
    bool core_retrying, reported_retrying;
} sink_health;

typedef struct failed_table {
    char *table, *error;
} failed_table;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int phase = HEALTH_CONNECTING;
static _Atomic int64_t alive_us;
static sink_health sinks[MAX_SINKS];
static bool lag_over;
static uint64_t lag_bytes, lag_limit;
static failed_table failed[MAX_FAILED_TABLES];
static size_t nfailed, nfailed_unnamed;

static void clear_failed(failed_table *f)
{
    free(f->table);
    free(f->error);
    f->table = f->error = NULL;
}

void health_reset(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < MAX_SINKS; i++) {
        free(sinks[i].name);
        memset(&sinks[i], 0, sizeof sinks[i]);
    }
    for (size_t i = 0; i < nfailed; i++)
        clear_failed(&failed[i]);
    nfailed = nfailed_unnamed = 0;
    lag_over = false;
    atomic_store(&phase, HEALTH_CONNECTING);
    atomic_store(&alive_us, 0);
    pthread_mutex_unlock(&lock);
}

void health_set_phase(health_phase p)
{
    atomic_store(&phase, (int)p);
}

health_phase health_get_phase(void)
{
    return (health_phase)atomic_load(&phase);
}

void health_alive_now(void)
{
    atomic_store(&alive_us, now_us());
}

void health_sink_named(size_t index, const char *name)
{
    if (index >= MAX_SINKS)
        return;
    pthread_mutex_lock(&lock);
    free(sinks[index].name);
    sinks[index].name = xstrdup(name);
    pthread_mutex_unlock(&lock);
}

void health_sink_retrying(size_t index, bool core, bool retrying)
{
    if (index >= MAX_SINKS)
        return;
    pthread_mutex_lock(&lock);
    if (core)
        sinks[index].core_retrying = retrying;
    else
        sinks[index].reported_retrying = retrying;
    pthread_mutex_unlock(&lock);
}

void health_slot_lag(bool over, uint64_t bytes, uint64_t limit)
{
    pthread_mutex_lock(&lock);
    lag_over = over;
    lag_bytes = bytes;
    lag_limit = limit;
    pthread_mutex_unlock(&lock);
}

static size_t failed_index(const char *table)
{
    size_t i = 0;
    while (i < nfailed && strcmp(failed[i].table, table) != 0)
        i++;
    return i;
}

void health_backfill_failed(const char *table, const char *why)
{
    pthread_mutex_lock(&lock);
    size_t i = failed_index(table);
    if (!why && i < nfailed) {
        clear_failed(&failed[i]);
        failed[i] = failed[--nfailed];
    } else if (why && i < nfailed) {
        free(failed[i].error);
        failed[i].error = xstrdup(why);
    } else if (why && nfailed < MAX_FAILED_TABLES) {
        failed[nfailed].table = xstrdup(table);
        failed[nfailed++].error = xstrdup(why);
    } else if (why) {
        nfailed_unnamed++;
    }
    pthread_mutex_unlock(&lock);
}

int health_liveness(strbuf *body)
{
    int64_t seen = atomic_load(&alive_us);
    /* Before the main loop first looked (startup), the process counts as
     * alive: startup is bounded by the connection timeouts. */
    int64_t stalled = seen ? now_us() - seen : 0;
    if (stalled < (int64_t)HEALTH_STALL_S * 1000000) {
        sbuf_append_str(body, "{\"alive\":true}\n");
        return 200;
    }
    sbuf_appendf(body, "{\"alive\":false,\"stalled_seconds\":%lld}\n",
                 (long long)(stalled / 1000000));
    return 503;
}

static const char *phase_reason(health_phase p)
{
    switch (p) {
    case HEALTH_CONNECTING:
        return "connecting";
    case HEALTH_RECONNECT_BACKOFF:
        return "reconnect_backoff";
    case HEALTH_STOPPING:
        return "stopping";
    case HEALTH_STREAMING:
        break;
    }
    return NULL;
}

static void add_reason(strbuf *body, size_t *n, const char *reason)
{
    sbuf_appendf(body, "%s{\"reason\":\"%s\"", (*n)++ ? "," : "", reason);
}

static void add_string(strbuf *body, const char *key, const char *value)
{
    sbuf_appendf(body, ",\"%s\":", key);
    json_append_string(body, value, strlen(value));
}

/* Appends each reason not to be ready; returns how many. Lock held. */
static size_t append_reasons(strbuf *body)
{
    size_t n = 0;
    const char *p = phase_reason(health_get_phase());
    if (p) {
        add_reason(body, &n, p);
        sbuf_append_char(body, '}');
    }
    for (size_t i = 0; i < MAX_SINKS; i++) {
        if (!sinks[i].core_retrying && !sinks[i].reported_retrying)
            continue;
        add_reason(body, &n, "sink_retrying");
        add_string(body, "sink", sinks[i].name ? sinks[i].name : "");
        sbuf_append_char(body, '}');
    }
    if (lag_over) {
        add_reason(body, &n, "slot_lag");
        sbuf_appendf(body, ",\"lag_bytes\":%llu,\"limit_bytes\":%llu}",
                     (unsigned long long)lag_bytes,
                     (unsigned long long)lag_limit);
    }
    for (size_t i = 0; i < nfailed; i++) {
        add_reason(body, &n, "backfill_failed");
        add_string(body, "table", failed[i].table);
        add_string(body, "error", failed[i].error);
        sbuf_append_char(body, '}');
    }
    if (nfailed_unnamed) {
        add_reason(body, &n, "backfill_failed");
        sbuf_appendf(body, ",\"more_tables\":%zu}", nfailed_unnamed);
    }
    return n;
}

int health_readiness(strbuf *body)
{
    strbuf reasons = STRBUF_INIT;
    pthread_mutex_lock(&lock);
    size_t n = append_reasons(&reasons);
    pthread_mutex_unlock(&lock);
    if (n == 0)
        sbuf_append_str(body, "{\"ready\":true}\n");
    else
        sbuf_appendf(body, "{\"ready\":false,\"reasons\":[%s]}\n",
                     reasons.data);
    sbuf_free(&reasons);
    return n == 0 ? 200 : 503;
}

bool health_ready(void)
{
    strbuf body = STRBUF_INIT;
    int code = health_readiness(&body);
    sbuf_free(&body);
    return code == 200;
}
