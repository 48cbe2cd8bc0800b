/* The service manager's notifications (systemd's sd_notify, Type=notify):
 * READY=1 once streaming, STATUS= lines, STOPPING=1, and WATCHDOG=1 while
 * the main thread is alive. Without NOTIFY_SOCKET every call does
 * nothing. */
#ifndef PGSPOUT_NOTIFY_H
#define PGSPOUT_NOTIFY_H

#include <stdbool.h>

/* Reads the watchdog's interval (WATCHDOG_USEC) and takes the calling
 * thread as the main thread: only it pets the watchdog. */
void notify_init(void);

/* READY=1 (the first time only) with STATUS=... */
void notify_ready(const char *status);

/* STATUS=... */
void notify_status(const char *status);

/* STOPPING=1 (once). */
void notify_stopping(void);

/* From the main thread: WATCHDOG=1 at half the watchdog's interval. Cheap
 * (a clock read) when not due, and nothing from other threads. */
void notify_alive(void);

#endif
