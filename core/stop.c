#include "stop.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

void stop_init(stop_state *s)
{
    s->signals = 0;
    atomic_store(&s->threshold, STOP_STREAMING);
    s->wake_pipe[0] = s->wake_pipe[1] = -1;
    s->on_check = NULL;
}

void stop_signal(stop_state *s)
{
    s->signals = s->signals + 1;
}

bool stop_requested(const stop_state *s)
{
    if (s->on_check)
        s->on_check();
    return s->signals >= atomic_load(&s->threshold);
}

bool stop_signalled(const stop_state *s)
{
    return s->signals > 0;
}

int stop_signal_count(const stop_state *s)
{
    return s->signals;
}

void stop_set_phase(stop_state *s, stop_phase phase)
{
    atomic_store(&s->threshold, (int)phase);
}

stop_phase stop_get_phase(const stop_state *s)
{
    return (stop_phase)atomic_load(&s->threshold);
}

static bool stop_raised(void *state)
{
    return stop_requested(state);
}

bool stop_sleep(const stop_state *s, int64_t ms)
{
    /* sleep_unless takes a mutable context; the state is only read. */
    return sleep_unless(ms, stop_raised, (void *)s);
}

bool stop_open_wake(stop_state *s)
{
    if (s->wake_pipe[0] >= 0)
        return true;
    if (pipe(s->wake_pipe) != 0) {
        s->wake_pipe[0] = s->wake_pipe[1] = -1;
        return false;
    }
    fcntl(s->wake_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(s->wake_pipe[1], F_SETFL, O_NONBLOCK);
    return true;
}

int stop_wake_fd(const stop_state *s)
{
    return s->wake_pipe[0];
}

void stop_wake(const stop_state *s)
{
    if (s->wake_pipe[1] < 0)
        return;
    char byte = 1;
    ssize_t ignored = write(s->wake_pipe[1], &byte, 1);
    (void)ignored;
}

void stop_drain_wake(const stop_state *s)
{
    char drain[64];
    while (s->wake_pipe[0] >= 0 &&
           read(s->wake_pipe[0], drain, sizeof drain) > 0)
        ;
}
