#include "kafka_acks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"

typedef struct ack_entry {
    pgspout_position pos;
    unsigned pending; /* parts not yet done */
} ack_entry;

struct kafka_acks {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    ack_entry *ring;
    size_t capacity;
    uint64_t head; /* id of the oldest entry not passed */
    uint64_t next; /* id the next entry gets */
    bool advanced; /* the done prefix grew since kafka_acks_take */
    pgspout_position last_done;
    bool failed;
    char reason[512];
};

kafka_acks *kafka_acks_new(size_t capacity)
{
    kafka_acks *a = xcalloc(1, sizeof *a);
    a->capacity = capacity ? capacity : 1;
    a->ring = xcalloc(a->capacity, sizeof *a->ring);
    pthread_mutex_init(&a->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&a->changed, &attr);
    pthread_condattr_destroy(&attr);
    return a;
}

void kafka_acks_free(kafka_acks *a)
{
    if (!a)
        return;
    pthread_cond_destroy(&a->changed);
    pthread_mutex_destroy(&a->lock);
    free(a->ring);
    free(a);
}

static ack_entry *entry_of(kafka_acks *a, uint64_t id)
{
    return &a->ring[id % a->capacity];
}

/* Passes the done entries at the head. Lock held. */
static void pass_done_prefix(kafka_acks *a)
{
    bool moved = false;
    while (a->head < a->next && entry_of(a, a->head)->pending == 0) {
        a->last_done = entry_of(a, a->head)->pos;
        a->head++;
        moved = true;
    }
    if (moved) {
        a->advanced = true;
        pthread_cond_broadcast(&a->changed);
    }
}

/* Waits up to 100 ms for a change, so that give_up is asked often enough.
 * Lock held. */
static void wait_changed(kafka_acks *a)
{
    struct timespec until = clock_after_ms(CLOCK_MONOTONIC, 100);
    pthread_cond_timedwait(&a->changed, &a->lock, &until);
}

bool kafka_acks_open(kafka_acks *a, pgspout_position pos, unsigned parts,
                     uint64_t *id, bool (*give_up)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&a->lock);
    while (!a->failed && a->next - a->head >= a->capacity) {
        if (give_up && give_up(ctx)) {
            pthread_mutex_unlock(&a->lock);
            return false;
        }
        wait_changed(a);
    }
    bool ok = !a->failed;
    if (ok) {
        *id = a->next++;
        *entry_of(a, *id) = (ack_entry){pos, parts};
        pass_done_prefix(a);
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

void kafka_acks_complete(kafka_acks *a, uint64_t id)
{
    pthread_mutex_lock(&a->lock);
    if (id >= a->head && id < a->next && entry_of(a, id)->pending > 0) {
        entry_of(a, id)->pending--;
        pass_done_prefix(a);
    }
    pthread_mutex_unlock(&a->lock);
}

pgspout_position kafka_acks_position(kafka_acks *a, uint64_t id)
{
    pthread_mutex_lock(&a->lock);
    pgspout_position pos = entry_of(a, id)->pos;
    pthread_mutex_unlock(&a->lock);
    return pos;
}

bool kafka_acks_take(kafka_acks *a, pgspout_position *upto)
{
    pthread_mutex_lock(&a->lock);
    bool advanced = a->advanced;
    if (advanced)
        *upto = a->last_done;
    a->advanced = false;
    pthread_mutex_unlock(&a->lock);
    return advanced;
}

void kafka_acks_fail(kafka_acks *a, const char *reason)
{
    pthread_mutex_lock(&a->lock);
    if (!a->failed)
        snprintf(a->reason, sizeof a->reason, "%s", reason);
    a->failed = true;
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->lock);
}

bool kafka_acks_failed(kafka_acks *a, char *buf, size_t buflen)
{
    pthread_mutex_lock(&a->lock);
    bool failed = a->failed;
    if (failed && buf)
        snprintf(buf, buflen, "%s", a->reason);
    pthread_mutex_unlock(&a->lock);
    return failed;
}

bool kafka_acks_wait_all(kafka_acks *a, bool (*give_up)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&a->lock);
    while (!a->failed && a->head < a->next && !(give_up && give_up(ctx)))
        wait_changed(a);
    bool all = !a->failed && a->head == a->next;
    pthread_mutex_unlock(&a->lock);
    return all;
}

size_t kafka_acks_open_count(kafka_acks *a)
{
    pthread_mutex_lock(&a->lock);
    size_t n = (size_t)(a->next - a->head);
    pthread_mutex_unlock(&a->lock);
    return n;
}
