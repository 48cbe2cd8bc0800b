/* Allocation with the one out-of-memory policy of everything pgspout
 * builds: the daemon, the sink kit and every sink.
 *
 * The policy: an allocation that fails writes "pgspout: out of memory" to
 * stderr and ends the process with abort(). Why not report the failure and
 * unwind instead:
 * - Nothing is lost. pgspout confirms a position only once every sink has
 *   acknowledged everything up to it, so a process that dies confirms
 *   nothing new: the slot keeps its position and the next start sends the
 *   unconfirmed changes again, as after a crash or a kill -9.
 * - A path that runs only when memory is exhausted is never exercised, may
 *   itself need memory (a formatted message, a log line), and spreads NULL
 *   checks over every caller; a sink returning FATAL would end the process
 *   just the same, a little later.
 * - abort(), not exit(): nothing (atexit handlers, sink destructors, a final
 *   confirmation) runs in a process without memory, and a core dump, where
 *   enabled, shows what held the memory. The message is a constant written
 *   with fputs, which allocates nothing.
 * On Linux, with overcommit, malloc itself seldom fails: the kernel's OOM
 * killer ends the process instead, with the same outcome for delivery. */
#ifndef PGSPOUT_ALLOC_H
#define PGSPOUT_ALLOC_H

#include <stddef.h>

/* Says "pgspout: out of memory" on stderr and aborts. */
_Noreturn void out_of_memory(void);

/* malloc, calloc, realloc and strdup that never return NULL. A size of 0
 * still returns a pointer of its own (to free). */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
/* Copies exactly n bytes of s (which must hold them) and a terminator. */
char *xstrndup(const char *s, size_t n);
/* A malloc'd string formatted as by printf. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* p itself; out_of_memory() when p is NULL. For what other libraries
 * allocate and return NULL only for want of memory (jansson's json_dumps
 * of a value built in memory, json_object, OpenSSL's buffers). */
void *xnonnull(void *p);

#endif
