#include "clock.h"

static int64_t clock_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t now_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

int64_t now_coarse_us(void)
{
    return clock_us(CLOCK_MONOTONIC_COARSE);
}

int64_t wall_clock_us(void)
{
    return clock_us(CLOCK_REALTIME);
}

struct timespec clock_after_ms(clockid_t clock, int64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

bool sleep_unless(int64_t ms, bool (*stop)(void *ctx), void *ctx)
{
    while (ms > 0 && !stop(ctx)) {
        int64_t step = ms < SLEEP_STOP_CHECK_MS ? ms : SLEEP_STOP_CHECK_MS;
        struct timespec ts = {(time_t)(step / 1000),
                              (long)(step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !stop(ctx);
}
