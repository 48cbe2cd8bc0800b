#include "backoff.h"

#include <stdlib.h>
#include <time.h>

int64_t backoff_delay_ms(int attempt)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)time(NULL) ^ (unsigned)clock();
    int64_t ceiling = BACKOFF_BASE_MS;
    for (int i = 1; i < attempt && ceiling < BACKOFF_CAP_MS; i++)
        ceiling *= 2;
    if (ceiling > BACKOFF_CAP_MS)
        ceiling = BACKOFF_CAP_MS;
    /* A floor keeps a run of unlucky draws from spinning on a dead sink. */
    int64_t floor = BACKOFF_BASE_MS / 2;
    return floor + (int64_t)(rand_r(&seed) % (unsigned)(ceiling - floor + 1));
}
