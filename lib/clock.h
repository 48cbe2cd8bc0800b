/* Reading the clocks, deadlines for timed waits, and a sleep that a stop
 * request cuts short. */
#ifndef PGSPOUT_CLOCK_H
#define PGSPOUT_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Microseconds on the monotonic clock: for intervals and deadlines, never
 * moved by changes of the system time. */
int64_t now_us(void);

/* The monotonic clock as of the last timer tick (a few milliseconds behind
 * now_us at most, never ahead): far cheaper to read, for what is noted per
 * event and compared with now_us only at the scale of seconds. */
int64_t now_coarse_us(void);

/* Microseconds since the Unix epoch on the system (wall) clock. */
int64_t wall_clock_us(void);

/* The time `ms` milliseconds from now on `clock`, for a timed wait such as
 * pthread_cond_timedwait (whose condition variable measures CLOCK_REALTIME
 * unless its attributes chose CLOCK_MONOTONIC). */
struct timespec clock_after_ms(clockid_t clock, int64_t ms);

/* How often sleep_unless looks at its stop condition: a stop is noticed
 * within this long. */
#define SLEEP_STOP_CHECK_MS 100

/* Sleeps `ms` milliseconds, asking stop(ctx) every SLEEP_STOP_CHECK_MS and
 * ending early once it answers true. Returns true when the whole time
 * passed without a stop, false when stop(ctx) holds (then at once, without
 * sleeping, if it already held). A signal that interrupts the sleep only
 * makes it look at stop(ctx) sooner. */
bool sleep_unless(int64_t ms, bool (*stop)(void *ctx), void *ctx);

#endif
