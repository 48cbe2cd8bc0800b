#include "notify.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "clock.h"

static pthread_t main_thread;
static bool initialised;
static uint64_t watchdog_us; /* 0: no watchdog */
static int64_t last_pet_us;
static bool ready_sent, stopping_sent;

void notify_init(void)
{
    main_thread = pthread_self();
    initialised = true;
    uint64_t usec = 0;
    /* > 0 only when systemd set WATCHDOG_USEC for this very process. */
    if (sd_watchdog_enabled(0, &usec) > 0)
        watchdog_us = usec;
}

static void send_status(const char *prefix, const char *status)
{
    if (status)
        sd_notifyf(0, "%sSTATUS=%s", prefix, status);
    else if (*prefix)
        sd_notify(0, prefix);
}

void notify_ready(const char *status)
{
    if (!initialised)
        return;
    send_status(ready_sent ? "" : "READY=1\n", status);
    ready_sent = true;
}

void notify_status(const char *status)
{
    if (initialised)
        send_status("", status);
}

void notify_stopping(void)
{
    if (!initialised || stopping_sent)
        return;
    stopping_sent = true;
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void notify_alive(void)
{
    if (!watchdog_us || !pthread_equal(pthread_self(), main_thread))
        return;
    int64_t now = now_us();
    if (now - last_pet_us < (int64_t)(watchdog_us / 2))
        return;
    last_pet_us = now;
    sd_notify(0, "WATCHDOG=1");
}
