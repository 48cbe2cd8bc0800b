#include "backfill_throttle.h"

void token_bucket_init(token_bucket *b, double rate, int64_t now_us)
{
    b->rate = rate > 0 ? rate : 0;
    b->burst = b->rate;
    b->tokens = b->burst;
    b->last_us = now_us;
}

static void refill(token_bucket *b, int64_t now_us)
{
    if (now_us > b->last_us) {
        b->tokens += b->rate * (double)(now_us - b->last_us) / 1e6;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
    }
    b->last_us = now_us;
}

int64_t token_bucket_take(token_bucket *b, double n, int64_t now_us)
{
    if (b->rate <= 0)
        return 0;
    refill(b, now_us);
    b->tokens -= n;
    if (b->tokens >= 0)
        return 0;
    /* A take larger than the burst runs into debt and waits it off: the
     * long-run rate holds whatever the chunk size. */
    return (int64_t)(-b->tokens / b->rate * 1e6);
}

void token_bucket_refund(token_bucket *b, double n)
{
    if (b->rate <= 0)
        return;
    b->tokens += n;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
}
