#include "backoff.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

int64_t backoff_delay_between(int attempt, int64_t base_ms, int64_t cap_ms)
{
    /* Per thread: sinks retry from their own threads. */
    static _Thread_local unsigned seed;
    if (!seed)
        seed = (unsigned)time(NULL) ^ (unsigned)clock() ^
               (unsigned)(uintptr_t)&seed;
    if (base_ms < 1)
        base_ms = 1;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    int64_t ceiling = base_ms;
    for (int i = 1; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    /* A floor keeps a run of unlucky draws from spinning on a dead
     * service. */
    int64_t floor = base_ms / 2;
    return floor +
           (int64_t)((uint64_t)rand_r(&seed) % (uint64_t)(ceiling - floor + 1));
}

int64_t backoff_delay_ms(int attempt)
{
    return backoff_delay_between(attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS);
}
