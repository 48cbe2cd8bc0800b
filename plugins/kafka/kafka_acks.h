/* The Kafka sink's acknowledgements: librdkafka reports each message's
 * delivery on its own, in order within a partition but in any order
 * across partitions, while the host must hear of positions strictly in
 * stream order. Each event opens an entry, done once every message it
 * became (none, one, or a record and a tombstone) was delivered; the
 * position of the last entry of the done prefix is what the sink may
 * acknowledge. The window has a fixed capacity, so memory stays bounded:
 * opening waits while it is full. Thread-safe. */
#ifndef KAFKA_ACKS_H
#define KAFKA_ACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pgspout/position.h>

typedef struct kafka_acks kafka_acks;

kafka_acks *kafka_acks_new(size_t capacity);
void kafka_acks_free(kafka_acks *a);

/* Opens the entry of the event at pos, done after `parts` completions (0:
 * done at once), and returns its id in *id. Waits while the window is
 * full; returns false without opening when give_up(ctx) holds meanwhile
 * (asked every 100 ms) or the window failed. */
bool kafka_acks_open(kafka_acks *a, pgspout_position pos, unsigned parts,
                     uint64_t *id, bool (*give_up)(void *ctx), void *ctx);

/* One part of entry id is done (delivered, or handled for good). */
void kafka_acks_complete(kafka_acks *a, uint64_t id);

/* The position entry id was opened with (any id still open). */
pgspout_position kafka_acks_position(kafka_acks *a, uint64_t id);

/* The newest position of the done prefix not yet taken: true with it in
 * *upto when the prefix grew since the last call. */
bool kafka_acks_take(kafka_acks *a, pgspout_position *upto);

/* Marks the window failed (the first reason is kept); waiters return. */
void kafka_acks_fail(kafka_acks *a, const char *reason);

/* True, with the reason copied into buf, once the window failed. */
bool kafka_acks_failed(kafka_acks *a, char *buf, size_t buflen);

/* Waits until every open entry is done (true), the window failed or
 * give_up(ctx) holds (false). */
bool kafka_acks_wait_all(kafka_acks *a, bool (*give_up)(void *ctx), void *ctx);

/* Entries open and not yet done-and-passed (for tests). */
size_t kafka_acks_open_count(kafka_acks *a);

#endif
