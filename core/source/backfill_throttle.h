/* backfill_max_rows_per_sec: a token bucket shared by the backfill
 * workers. A worker takes as many tokens as rows it is about to read and
 * waits while the bucket is in debt; rows it did not read are given back.
 * Not locked: the backfill manager serialises calls. */
#ifndef PGSPOUT_BACKFILL_THROTTLE_H
#define PGSPOUT_BACKFILL_THROTTLE_H

#include <stdint.h>

typedef struct token_bucket {
    double rate;   /* tokens per second; 0: unlimited */
    double tokens; /* below zero: the debt the next taker waits off */
    double burst;  /* at most this many tokens saved up (one second's) */
    int64_t last_us;
} token_bucket;

void token_bucket_init(token_bucket *b, double rate, int64_t now_us);

/* Takes n tokens at now_us; returns how many microseconds the taker waits
 * before going on (0: at once). */
int64_t token_bucket_take(token_bucket *b, double n, int64_t now_us);

/* Gives back n tokens taken but not used. */
void token_bucket_refund(token_bucket *b, double n);

#endif
