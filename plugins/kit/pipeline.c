#include "pipeline.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "backoff.h"
#include "clock.h"
#include "dead_letter.h"
#include "http_internal.h"
#include "report.h"

/* ---- a small uint64 -> count map (open addressing) ----
 * A key leaves the map when its count returns to zero, so the map holds
 * only keys with records in flight: its size follows the in-flight limit,
 * not the number of distinct rows ever streamed. */

typedef struct keymap {
    uint64_t *keys; /* 0 marks a free slot; order keys are never 0 */
    int *counts;
    size_t cap, used;
} keymap;

static size_t keymap_home(const keymap *m, uint64_t key)
{
    return (size_t)(key * UINT64_C(0x9E3779B97F4A7C15)) & (m->cap - 1);
}

static size_t keymap_slot(const keymap *m, uint64_t key)
{
    size_t i = keymap_home(m, key);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void keymap_grow(keymap *m)
{
    keymap old = *m;
    m->cap = old.cap ? old.cap * 2 : 64;
    m->keys = xcalloc(m->cap, sizeof *m->keys);
    m->counts = xcalloc(m->cap, sizeof *m->counts);
    m->used = 0;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.keys[i])
            continue;
        size_t j = keymap_slot(m, old.keys[i]);
        m->keys[j] = old.keys[i];
        m->counts[j] = old.counts[i];
        m->used++;
    }
    free(old.keys);
    free(old.counts);
}

static int keymap_get(const keymap *m, uint64_t key)
{
    if (!m->cap)
        return 0;
    size_t i = keymap_slot(m, key);
    return m->keys[i] ? m->counts[i] : 0;
}

/* Linear probing's backward-shift deletion: later entries of the probe run
 * move up so that every key stays reachable from its home slot. */
static void keymap_remove_at(keymap *m, size_t hole)
{
    size_t mask = m->cap - 1;
    for (size_t j = (hole + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        size_t home = keymap_home(m, m->keys[j]);
        bool stays =
            hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        m->keys[hole] = m->keys[j];
        m->counts[hole] = m->counts[j];
        hole = j;
    }
    m->keys[hole] = 0;
    m->counts[hole] = 0;
    m->used--;
}

static void keymap_add(keymap *m, uint64_t key, int delta)
{
    if ((m->used + 1) * 2 > m->cap)
        keymap_grow(m);
    size_t i = keymap_slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->counts[i] = 0;
        m->used++;
    }
    m->counts[i] += delta;
    if (m->counts[i] == 0)
        keymap_remove_at(m, i);
}

static void keymap_clear(keymap *m)
{
    if (m->cap) {
        memset(m->keys, 0, m->cap * sizeof *m->keys);
        memset(m->counts, 0, m->cap * sizeof *m->counts);
    }
    m->used = 0;
}

static void keymap_free(keymap *m)
{
    free(m->keys);
    free(m->counts);
    memset(m, 0, sizeof *m);
}

/* ---- pipeline ---- */

typedef enum entry_state {
    ENTRY_PENDING,
    ENTRY_IN_FLIGHT,
    ENTRY_DONE
} entry_state;

typedef struct entry {
    kit_record *rec;
    entry_state state;
    int64_t queued_us;
    int64_t not_before_us; /* retries wait until then */
    /* 0, or the most records its next request may hold: the service
     * refused a larger one as too large. Only ever shrinks. */
    size_t split_cap;
    /* keep_batches: the request this record must be sent again with
     * (non-zero after a retry; every member shares not_before_us). */
    uint64_t resend_group;
    struct entry *next;
} entry;

typedef struct request {
    kit_http_transfer transfer;
    kit_http_request req;
    entry **entries;
    size_t n;
    struct request *next;
} request;

struct kit_pipeline {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    kit_pipeline_config cfg;
    const kit_ops *ops;
    void *ctx;
    kit_dead_letter *dead_letter;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* space freed, entries acknowledged, failure */
    CURLM *multi;

    /* Every submitted record until it is acknowledged, in order. */
    entry *head, *tail;
    size_t queued_records, queued_bytes;
    keymap in_flight_keys; /* order key -> records in flight */
    keymap scan_blocked;   /* scratch for pick_batch */
    keymap scan_batch;
    request *requests; /* in flight */
    int in_flight;
    unsigned flush_waiters;
    uint64_t last_resend_group;
    bool stopping;
    bool failed;
};

uint64_t kit_order_key(const char *data, size_t len)
{
    /* FNV-1a: cheap and well spread; collisions only serialise. */
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h ? h : 1;
}

kit_record *kit_record_new(pgspout_position pos, char *data, size_t len,
                           uint64_t order_key, void *meta)
{
    kit_record *r = xcalloc(1, sizeof *r);
    r->pos = pos;
    r->data = data;
    r->len = len;
    r->order_key = order_key;
    r->meta = meta;
    return r;
}

static void outcome_vset(kit_outcome *o, kit_outcome_kind kind, const char *fmt,
                         va_list ap)
{
    o->kind = kind;
    vsnprintf(o->reason, sizeof o->reason, fmt, ap);
}

void kit_outcome_set(kit_outcome *o, kit_outcome_kind kind, const char *fmt,
                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    outcome_vset(o, kind, fmt, ap);
    va_end(ap);
}

void kit_outcome_set_all(kit_outcome *outcomes, size_t n, kit_outcome_kind kind,
                         const char *fmt, ...)
{
    if (n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    outcome_vset(&outcomes[0], kind, fmt, ap);
    va_end(ap);
    for (size_t i = 1; i < n; i++)
        outcomes[i] = outcomes[0];
}

static void record_free(kit_pipeline *p, kit_record *r)
{
    if (!r)
        return;
    if (r->meta && p->ops->free_meta)
        p->ops->free_meta(r->meta);
    free(r->data);
    free(r);
}

static const char *sink_name(const kit_pipeline *p)
{
    return p->cfg.sink_name ? p->cfg.sink_name : "sink";
}

static size_t record_bytes(const kit_record *r)
{
    return r->len + r->overhead;
}

/* Called with the lock held. */
static void fail_locked(kit_pipeline *p, const char *reason)
{
    if (!p->failed)
        p->host->log(p->handle, PGSPOUT_LOG_ERROR,
                     "delivery failed for good: %s", reason);
    p->failed = true;
    pthread_cond_broadcast(&p->changed);
}

/* Acknowledges the run of delivered records at the head, up to the last
 * position all of whose records are delivered. Lock held. */
static void ack_done_prefix(kit_pipeline *p)
{
    bool removed = false, complete = false;
    pgspout_position last = {0, 0};
    while (p->head && p->head->state == ENTRY_DONE) {
        entry *e = p->head;
        p->head = e->next;
        if (!p->head)
            p->tail = NULL;
        if (!e->rec->more_at_position) {
            last = e->rec->pos;
            complete = true;
        }
        removed = true;
        p->queued_records--;
        p->queued_bytes -= record_bytes(e->rec);
        record_free(p, e->rec);
        free(e);
    }
    if (complete)
        p->host->ack_durable(p->handle, last);
    if (removed)
        pthread_cond_broadcast(&p->changed);
}

static void append_entry(kit_pipeline *p, kit_record *rec, entry_state state)
{
    entry *e = xcalloc(1, sizeof *e);
    e->rec = rec;
    e->state = state;
    e->queued_us = now_us();
    if (p->tail)
        p->tail->next = e;
    else
        p->head = e;
    p->tail = e;
    p->queued_records++;
    p->queued_bytes += record_bytes(rec);
}

static void mark_in_flight(kit_pipeline *p, entry **chosen, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        chosen[i]->state = ENTRY_IN_FLIGHT;
        if (chosen[i]->rec->order_key)
            keymap_add(&p->in_flight_keys, chosen[i]->rec->order_key, 1);
    }
}

/* The records of first's resend group, from first on, in queue order (a
 * group never exceeds max_batch_records: it was one request). Lock held. */
static size_t take_resend_group(kit_pipeline *p, entry *first, entry **chosen)
{
    size_t n = 0;
    for (entry *e = first; e && n < p->cfg.max_batch_records; e = e->next)
        if (e->state == ENTRY_PENDING && e->resend_group == first->resend_group)
            chosen[n++] = e;
    mark_in_flight(p, chosen, n);
    return n;
}

/* Chooses the next request's records, oldest first, without letting a
 * record overtake an earlier one of its key: a key with a record in flight,
 * or with an earlier record that cannot go yet, waits. Returns the number
 * chosen (0 when nothing should be sent now; *wake_us then says when to
 * look again). Lock held. */
static size_t pick_batch(kit_pipeline *p, entry **chosen, int64_t now,
                         int64_t *wake_us)
{
    const kit_pipeline_config *c = &p->cfg;
    size_t n = 0, bytes = 0, limit = c->max_batch_records;
    bool full = false, retrying = false;
    int64_t oldest = 0;
    keymap_clear(&p->scan_blocked);
    keymap_clear(&p->scan_batch);
    for (entry *e = p->head; e && !full; e = e->next) {
        if (e->state != ENTRY_PENDING)
            continue;
        uint64_t k = e->rec->order_key;
        bool due = e->not_before_us <= now;
        if (!due && (*wake_us == 0 || e->not_before_us < *wake_us))
            *wake_us = e->not_before_us;
        if (e->resend_group) {
            /* A request to send again as it was: alone, once due. Its
             * records were the first pending ones of their keys when it
             * first went, and nothing of those keys went since. */
            if (n == 0 && due)
                return take_resend_group(p, e, chosen);
            if (k)
                keymap_add(&p->scan_blocked, k, 1);
            continue;
        }
        if (n > 0 && e->rec->batch_key != chosen[0]->rec->batch_key) {
            /* Another request's record; it must still block later records
             * of its order key, which may not overtake it. */
            if (k)
                keymap_add(&p->scan_blocked, k, 1);
            continue;
        }
        if (k) {
            if (keymap_get(&p->in_flight_keys, k) > 0 ||
                keymap_get(&p->scan_blocked, k) > 0 || !due) {
                keymap_add(&p->scan_blocked, k, 1);
                continue;
            }
            if (!c->same_key_in_request && keymap_get(&p->scan_batch, k) > 0) {
                keymap_add(&p->scan_blocked, k, 1);
                continue;
            }
        } else if (!due) {
            continue;
        }
        if (e->split_cap && n + 1 > e->split_cap) {
            /* Part of a request refused as too large: it goes first in a
             * smaller one, and blocks its key meanwhile. */
            if (k)
                keymap_add(&p->scan_blocked, k, 1);
            continue;
        }
        size_t b = record_bytes(e->rec);
        if (n > 0 && bytes + b > c->max_batch_bytes) {
            full = true;
            break;
        }
        chosen[n++] = e;
        bytes += b;
        if (e->split_cap && e->split_cap < limit)
            limit = e->split_cap;
        if (k)
            keymap_add(&p->scan_batch, k, 1);
        if (e->rec->attempts > 0)
            retrying = true;
        if (!oldest || e->queued_us < oldest)
            oldest = e->queued_us;
        if (n >= limit || bytes >= c->max_batch_bytes)
            full = true;
    }
    if (n == 0)
        return 0;
    int64_t linger_end = oldest + (int64_t)c->linger_ms * 1000;
    bool go = full || retrying || p->flush_waiters > 0 || p->stopping ||
              now >= linger_end;
    if (!go) {
        if (*wake_us == 0 || linger_end < *wake_us)
            *wake_us = linger_end;
        return 0;
    }
    mark_in_flight(p, chosen, n);
    return n;
}

static void report(kit_pipeline *p, pgspout_record_outcome what, size_t n);

/* A request the sink could not build yet (kit_request_retry_later): its
 * records wait a backoff, as after a transport failure, and count as
 * retried. Called without the lock; frees r. */
static void defer_request(kit_pipeline *p, request *r)
{
    int64_t now = now_us();

    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < r->n; i++) {
        entry *e = r->entries[i];
        if (e->rec->order_key)
            keymap_add(&p->in_flight_keys, e->rec->order_key, -1);
        e->state = ENTRY_PENDING;
        e->not_before_us = now + backoff_delay_between((int)e->rec->attempts,
                                                       p->cfg.retry_base_ms,
                                                       p->cfg.retry_cap_ms) *
                                     1000;
    }
    p->in_flight--;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    report(p, PGSPOUT_RECORDS_RETRIED, r->n);
    p->host->log(p->handle, PGSPOUT_LOG_WARNING,
                 "%zu records will be sent again (%s)", r->n,
                 r->req.retry_later);
    kit_request_free(&r->req);
    free(r->entries);
    free(r);
}

/* Starts requests while the in-flight limit allows. Lock held; released
 * around the sink's build_request. */
static void start_requests(kit_pipeline *p, int64_t *wake_us)
{
    while (!p->failed && p->in_flight < p->cfg.max_in_flight) {
        entry **chosen = xmalloc(p->cfg.max_batch_records * sizeof *chosen);
        size_t n = pick_batch(p, chosen, now_us(), wake_us);
        if (n == 0) {
            free(chosen);
            return;
        }
        p->in_flight++;
        request *r = xcalloc(1, sizeof *r);
        r->entries = chosen;
        r->n = n;
        kit_record **records = xmalloc(n * sizeof *records);
        for (size_t i = 0; i < n; i++) {
            records[i] = chosen[i]->rec;
            records[i]->attempts++;
        }
        pthread_mutex_unlock(&p->lock);

        char err[512] = "";
        bool built =
            p->ops->build_request(p->ctx, records, n, &r->req, err, sizeof err);
        free(records);
        if (built && r->req.retry_later) {
            defer_request(p, r);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        bool ready = built && kit_http_transfer_setup(&r->transfer,
                                                      &p->cfg.http, &r->req);
        if (ready)
            curl_multi_add_handle(p->multi, r->transfer.easy);

        pthread_mutex_lock(&p->lock);
        if (!ready) {
            fail_locked(p, built  ? "cannot set up an HTTP transfer"
                           : *err ? err
                                  : "the sink could not build a request");
            kit_http_transfer_cleanup(&r->transfer);
            kit_request_free(&r->req);
            free(r->entries);
            free(r);
            p->in_flight--;
            return;
        }
        r->next = p->requests;
        p->requests = r;
    }
}

static void unlink_request(kit_pipeline *p, request *r)
{
    for (request **pp = &p->requests; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

static request *request_of(kit_pipeline *p, CURL *easy)
{
    for (request *r = p->requests; r; r = r->next)
        if (r->transfer.easy == easy)
            return r;
    return NULL;
}

static void report(kit_pipeline *p, pgspout_record_outcome what, size_t n)
{
    kit_report_records(p->host, p->handle, what, n);
}

/* Rejected records go to the dead-letter file before they count as
 * handled (then as done); without one, the stream stops. Returns how many
 * went there. */
static size_t dead_letter_rejected(kit_pipeline *p, kit_record **records,
                                   kit_outcome *outcomes, size_t n)
{
    size_t rejected = 0, written = 0;
    for (size_t i = 0; i < n; i++) {
        if (outcomes[i].kind != KIT_REJECTED)
            continue;
        rejected++;
        if (!p->dead_letter)
            continue;
        char err[512];
        if (kit_dead_letter_write(p->dead_letter, sink_name(p), records[i]->pos,
                                  outcomes[i].reason, records[i]->data,
                                  records[i]->len, err, sizeof err)) {
            p->host->log(p->handle, PGSPOUT_LOG_WARNING,
                         "record sent to the dead-letter file: %s",
                         outcomes[i].reason);
            outcomes[i].kind = KIT_DONE;
            written++;
        } else {
            kit_outcome_set(&outcomes[i], KIT_FATAL, "%s", err);
        }
    }
    report(p, PGSPOUT_RECORDS_REJECTED, rejected);
    report(p, PGSPOUT_RECORDS_DEAD_LETTERED, written);
    return written;
}

/* A record refused as too large on its own cannot be split further: the
 * service will never take it, so it is rejected. Returns how many records
 * of a larger refused request go again in smaller ones. */
static size_t reject_unsplittable(size_t n, kit_outcome *outcomes)
{
    size_t split = 0;
    for (size_t i = 0; i < n; i++) {
        if (outcomes[i].kind != KIT_TOO_LARGE)
            continue;
        if (n > 1) {
            split++;
            continue;
        }
        outcomes[i].kind = KIT_REJECTED;
        size_t used = strlen(outcomes[i].reason);
        snprintf(outcomes[i].reason + used, sizeof outcomes[i].reason - used,
                 " (refused as too large on its own)");
    }
    return split;
}

/* Records of one key may share a request (same_key_in_request); the
 * service answers each on its own, so a later one may have been applied
 * while an earlier one must be sent again. Sending the later ones again,
 * after the earlier one, restores the order; such services make a repeat
 * harmless (external versions). */
static void resend_after_earlier(kit_record **records, size_t n,
                                 kit_outcome *outcomes)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t k = records[i]->order_key;
        if (!k || (outcomes[i].kind != KIT_RETRY &&
                   outcomes[i].kind != KIT_TOO_LARGE))
            continue;
        for (size_t j = i + 1; j < n; j++) {
            if (records[j]->order_key != k || outcomes[j].kind != KIT_DONE)
                continue;
            kit_outcome_set(&outcomes[j], KIT_RETRY,
                            "sent again after an earlier change of its key");
        }
    }
}

/* How long a record waits before it is sent again: the backoff for its
 * attempts, or longer when the service asked for it (Retry-After). */
static int64_t retry_delay_ms(const kit_pipeline *p, const kit_record *rec,
                              const kit_http_response *resp)
{
    int64_t delay = backoff_delay_between(
        (int)rec->attempts, p->cfg.retry_base_ms, p->cfg.retry_cap_ms);
    if (resp->retry_after_s > 0 && resp->retry_after_s * 1000 > delay)
        delay = resp->retry_after_s * 1000;
    return delay;
}

/* Applies one record's outcome to its entry (of a request of n records).
 * Returns whether the record will be sent again. Lock held. */
static bool settle_entry(kit_pipeline *p, entry *e, const kit_outcome *o,
                         size_t n, int64_t delay_ms, uint64_t group,
                         int64_t now)
{
    if (e->rec->order_key)
        keymap_add(&p->in_flight_keys, e->rec->order_key, -1);
    switch (o->kind) {
    case KIT_DONE:
        e->state = ENTRY_DONE;
        return false;
    case KIT_RETRY:
        e->state = ENTRY_PENDING;
        e->not_before_us = now + delay_ms * 1000;
        e->resend_group = group;
        return true;
    case KIT_TOO_LARGE:
        /* Nothing transient: the halves go at once. Every record of the
         * request shares the cap, so the first half goes together and a
         * later record of a key waits behind it (pick_batch). */
        e->state = ENTRY_PENDING;
        e->not_before_us = now;
        e->split_cap = (n + 1) / 2;
        e->resend_group = 0; /* the halves are new requests */
        return true;
    case KIT_REJECTED:
    case KIT_FATAL:
        e->state = ENTRY_PENDING; /* never sent again: failed stops all */
        fail_locked(p, o->reason);
        return false;
    }
    return false;
}

/* The outcomes the kit knows before the sink reads the answer. */
static void prefill_outcomes(const kit_http_response *resp, size_t n,
                             kit_outcome *outcomes)
{
    if (kit_http_transient(resp) && resp->status == 0)
        kit_outcome_set_all(outcomes, n, KIT_RETRY, "%s",
                            resp->error ? resp->error : "no response");
    else if (kit_http_transient(resp))
        kit_outcome_set_all(outcomes, n, KIT_RETRY, "HTTP %ld", resp->status);
    else if (resp->status == 413)
        kit_outcome_set_all(outcomes, n, KIT_TOO_LARGE,
                            "HTTP 413: the request is too large for the "
                            "service");
}

static void log_resends(kit_pipeline *p, size_t n, size_t retries,
                        const char *retry_reason, size_t split,
                        const char *split_reason)
{
    if (split)
        p->host->log(p->handle, PGSPOUT_LOG_WARNING,
                     "a request of %zu records was refused as too large "
                     "(%s); sending them again in requests of at most %zu",
                     n, split_reason, (n + 1) / 2);
    if (retries > split)
        p->host->log(p->handle, PGSPOUT_LOG_WARNING,
                     "%zu of %zu records will be sent again (%s)",
                     retries - split, n,
                     retry_reason ? retry_reason : "transient failure");
}

/* A request ended: apply each record's outcome. Called without the lock. */
static void complete_request(kit_pipeline *p, request *r, int curl_code)
{
    kit_http_response resp;
    curl_multi_remove_handle(p->multi, r->transfer.easy);
    kit_http_transfer_finish(&r->transfer, curl_code, &resp);

    kit_outcome *outcomes = xcalloc(r->n, sizeof *outcomes); /* all DONE */
    kit_record **records = xmalloc(r->n * sizeof *records);
    for (size_t i = 0; i < r->n; i++)
        records[i] = r->entries[i]->rec;
    prefill_outcomes(&resp, r->n, outcomes);
    p->ops->handle_response(p->ctx, &resp, records, r->n, outcomes);

    size_t split = reject_unsplittable(r->n, outcomes);
    size_t dead_lettered = dead_letter_rejected(p, records, outcomes, r->n);
    resend_after_earlier(records, r->n, outcomes);

    size_t retries = 0, accepted = 0;
    const char *retry_reason = NULL, *split_reason = NULL;
    int64_t now = now_us(), group_delay_ms = -1;
    pthread_mutex_lock(&p->lock);
    uint64_t group = p->cfg.keep_batches ? ++p->last_resend_group : 0;
    for (size_t i = 0; i < r->n; i++) {
        kit_outcome *o = &outcomes[i];
        entry *e = r->entries[i];
        int64_t delay_ms = 0;
        if (o->kind == KIT_RETRY) {
            /* A kept batch waits once, as a whole. */
            if (!group || group_delay_ms < 0)
                group_delay_ms = retry_delay_ms(p, e->rec, &resp);
            delay_ms = group_delay_ms;
        }
        if (settle_entry(p, e, o, r->n, delay_ms, group, now))
            retries++;
        else if (o->kind == KIT_DONE)
            accepted++;
        if (o->kind == KIT_RETRY && !retry_reason)
            retry_reason = o->reason;
        if (o->kind == KIT_TOO_LARGE && !split_reason)
            split_reason = o->reason;
    }
    p->in_flight--;
    unlink_request(p, r);
    ack_done_prefix(p);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);

    /* Accepted first: a sink with records to send again is retrying. */
    report(p, PGSPOUT_RECORDS_ACCEPTED, accepted - dead_lettered);
    report(p, PGSPOUT_RECORDS_RETRIED, retries);
    log_resends(p, r->n, retries, retry_reason, split, split_reason);
    free(outcomes);
    free(records);
    kit_response_free(&resp);
    kit_http_transfer_cleanup(&r->transfer);
    kit_request_free(&r->req);
    free(r->entries);
    free(r);
}

static void *pipeline_main(void *arg)
{
    kit_pipeline *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        /* Stopping after a failure (or from destroy, which marks the
         * pipeline failed) abandons requests in flight: nothing they
         * carry is confirmed, so the host sends it again next time. */
        if (p->stopping && (p->failed || (!p->head && p->in_flight == 0))) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        int64_t wake_us = 0;
        start_requests(p, &wake_us);
        int64_t now = now_us();
        int timeout_ms = 1000;
        if (wake_us > 0) {
            int64_t ms = (wake_us - now + 999) / 1000;
            timeout_ms = ms < 0 ? 0 : ms > 1000 ? 1000 : (int)ms;
        }
        pthread_mutex_unlock(&p->lock);

        curl_multi_poll(p->multi, NULL, 0, timeout_ms, NULL);
        int running = 0;
        curl_multi_perform(p->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(p->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            pthread_mutex_lock(&p->lock);
            request *r = request_of(p, msg->easy_handle);
            pthread_mutex_unlock(&p->lock);
            if (r)
                complete_request(p, r, (int)msg->data.result);
        }
    }
    return NULL;
}

kit_pipeline *kit_pipeline_new(const pgspout_host_api *host,
                               pgspout_sink_handle *handle,
                               const kit_pipeline_config *config,
                               const kit_ops *ops, void *ctx, char *err,
                               size_t errlen)
{
    kit_http_global_init();
    kit_pipeline *p = xcalloc(1, sizeof *p);
    p->host = host;
    p->handle = handle;
    p->cfg = *config;
    p->ops = ops;
    p->ctx = ctx;
    if (p->cfg.max_batch_records < 1)
        p->cfg.max_batch_records = 1;
    if (p->cfg.max_in_flight < 1)
        p->cfg.max_in_flight = 1;
    if (p->cfg.queue_max_records < 1)
        p->cfg.queue_max_records = 1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->changed, &attr);
    pthread_condattr_destroy(&attr);
    if (config->dead_letter_path && *config->dead_letter_path) {
        p->dead_letter =
            kit_dead_letter_open(config->dead_letter_path, err, errlen);
        if (!p->dead_letter) {
            kit_pipeline_free(p);
            return NULL;
        }
    }
    p->multi = curl_multi_init();
    if (!p->multi) {
        snprintf(err, errlen, "cannot create a libcurl multi handle");
        kit_pipeline_free(p);
        return NULL;
    }
    if (pthread_create(&p->thread, NULL, pipeline_main, p) != 0) {
        snprintf(err, errlen, "cannot start the delivery thread");
        kit_pipeline_free(p);
        return NULL;
    }
    p->thread_started = true;
    return p;
}

static void wake(kit_pipeline *p)
{
    curl_multi_wakeup(p->multi);
}

/* The host asked to stop and no longer waits for this sink. */
static bool host_gives_up(const kit_pipeline *p)
{
    return PGSPOUT_HAS_FIELD(p->host, pgspout_host_api, should_stop) &&
           p->host->should_stop && p->host->should_stop(p->handle);
}

/* Waits on `changed` for at most 100 ms, so a waiter also notices when the
 * host gives up. Lock held. */
static void wait_changed(kit_pipeline *p)
{
    struct timespec until = clock_after_ms(CLOCK_MONOTONIC, 100);
    pthread_cond_timedwait(&p->changed, &p->lock, &until);
}

static pgspout_status append_and_wake(kit_pipeline *p, kit_record *record,
                                      entry_state state)
{
    pthread_mutex_lock(&p->lock);
    /* Backpressure: the caller (the host's main loop) waits here while the
     * queue is full, which bounds memory whatever the stream's size. */
    while (!p->failed && p->head &&
           (p->queued_records >= p->cfg.queue_max_records ||
            p->queued_bytes >= p->cfg.queue_max_bytes)) {
        if (host_gives_up(p)) {
            /* The host stops without confirming; nothing is lost. */
            pthread_mutex_unlock(&p->lock);
            record_free(p, record);
            return PGSPOUT_RETRY;
        }
        wait_changed(p);
    }
    if (p->failed) {
        pthread_mutex_unlock(&p->lock);
        record_free(p, record);
        return PGSPOUT_FATAL;
    }
    append_entry(p, record, state);
    if (state == ENTRY_DONE)
        ack_done_prefix(p);
    pthread_mutex_unlock(&p->lock);
    wake(p);
    return PGSPOUT_OK;
}

pgspout_status kit_submit(kit_pipeline *p, kit_record *record)
{
    return append_and_wake(p, record, ENTRY_PENDING);
}

/* A position handled already, queued to be acknowledged in order. */
static pgspout_status submit_marker(kit_pipeline *p, pgspout_position pos,
                                    bool more_at_position)
{
    kit_record *marker = kit_record_new(pos, NULL, 0, 0, NULL);
    marker->more_at_position = more_at_position;
    return append_and_wake(p, marker, ENTRY_DONE);
}

pgspout_status kit_submit_marker(kit_pipeline *p, pgspout_position pos)
{
    return submit_marker(p, pos, false);
}

pgspout_status kit_submit_dead_letter(kit_pipeline *p, kit_record *record,
                                      const char *reason)
{
    char err[512];
    report(p, PGSPOUT_RECORDS_REJECTED, 1);
    if (!p->dead_letter) {
        pthread_mutex_lock(&p->lock);
        fail_locked(p, reason);
        pthread_mutex_unlock(&p->lock);
        record_free(p, record);
        return PGSPOUT_FATAL;
    }
    if (!kit_dead_letter_write(p->dead_letter, sink_name(p), record->pos,
                               reason, record->data, record->len, err,
                               sizeof err)) {
        pthread_mutex_lock(&p->lock);
        fail_locked(p, err);
        pthread_mutex_unlock(&p->lock);
        record_free(p, record);
        return PGSPOUT_FATAL;
    }
    p->host->log(p->handle, PGSPOUT_LOG_WARNING,
                 "record sent to the dead-letter file: %s", reason);
    report(p, PGSPOUT_RECORDS_DEAD_LETTERED, 1);
    pgspout_position pos = record->pos;
    bool more = record->more_at_position;
    record_free(p, record);
    return submit_marker(p, pos, more);
}

pgspout_status kit_flush(kit_pipeline *p)
{
    pthread_mutex_lock(&p->lock);
    p->flush_waiters++;
    pthread_mutex_unlock(&p->lock);
    wake(p);
    pthread_mutex_lock(&p->lock);
    bool gave_up = false;
    while (!p->failed && p->head && !(gave_up = host_gives_up(p)))
        wait_changed(p);
    p->flush_waiters--;
    bool failed = p->failed;
    pthread_mutex_unlock(&p->lock);
    return failed ? PGSPOUT_FATAL : gave_up ? PGSPOUT_RETRY : PGSPOUT_OK;
}

size_t kit_pipeline_tracked_keys(kit_pipeline *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->in_flight_keys.used;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void kit_pipeline_free(kit_pipeline *p)
{
    if (!p)
        return;
    if (p->thread_started) {
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        /* What is not acknowledged is not confirmed either: the host sends
         * it again next time, so there is no need to wait for it. */
        p->failed = true;
        pthread_mutex_unlock(&p->lock);
        wake(p);
        pthread_join(p->thread, NULL);
    }
    for (request *r = p->requests, *next; r; r = next) {
        next = r->next;
        curl_multi_remove_handle(p->multi, r->transfer.easy);
        kit_http_transfer_cleanup(&r->transfer);
        kit_request_free(&r->req);
        free(r->entries);
        free(r);
    }
    for (entry *e = p->head, *next; e; e = next) {
        next = e->next;
        record_free(p, e->rec);
        free(e);
    }
    if (p->multi)
        curl_multi_cleanup(p->multi);
    kit_dead_letter_close(p->dead_letter);
    keymap_free(&p->in_flight_keys);
    keymap_free(&p->scan_blocked);
    keymap_free(&p->scan_batch);
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Reads options that KIT_PIPELINE_OPTIONS declares with a default,
 * remembering the first one the host has no value for. */
typedef struct option_reader {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    const char *missing;
} option_reader;

static int64_t read_int(option_reader *r, const char *name)
{
    int64_t value = 0;
    if (!r->host->option_int(r->handle, name, &value) && !r->missing)
        r->missing = name;
    return value;
}

static bool read_bool(option_reader *r, const char *name)
{
    bool value = false;
    if (!r->host->option_bool(r->handle, name, &value) && !r->missing)
        r->missing = name;
    return value;
}

/* An option declared without a default (NULL when unset). */
static const char *read_optional_string(option_reader *r, const char *name)
{
    const char *value = NULL;
    return r->host->option_string(r->handle, name, &value) ? value : NULL;
}

bool kit_pipeline_config_from_options(const pgspout_host_api *host,
                                      pgspout_sink_handle *handle,
                                      const char *sink_name,
                                      kit_pipeline_config *c, char *err,
                                      size_t errlen)
{
    option_reader r = {host, handle, NULL};
    memset(c, 0, sizeof *c);
    c->sink_name = sink_name;
    c->max_batch_records = (size_t)read_int(&r, "batch_records");
    c->max_batch_bytes = (size_t)read_int(&r, "batch_bytes");
    c->linger_ms = (int)read_int(&r, "linger");
    c->max_in_flight = (int)read_int(&r, "in_flight");
    c->queue_max_records = (size_t)read_int(&r, "queue_records");
    c->queue_max_bytes = (size_t)read_int(&r, "queue_bytes");
    c->retry_base_ms = (int)read_int(&r, "retry_base");
    c->retry_cap_ms = (int)read_int(&r, "retry_max");
    c->dead_letter_path = read_optional_string(&r, "dead_letter");
    c->http.ca_file = read_optional_string(&r, "ca_file");
    c->http.verify_tls = read_bool(&r, "tls_verify");
    c->http.connect_timeout_ms = (long)read_int(&r, "connect_timeout");
    c->http.request_timeout_ms = (long)read_int(&r, "request_timeout");
    c->http.user_agent = "pgspout";
    if (r.missing) {
        snprintf(err, errlen,
                 "option \"%s\" has no value: the sink's option table must "
                 "include KIT_PIPELINE_OPTIONS",
                 r.missing);
        return false;
    }
    return true;
}
