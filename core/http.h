/* The HTTP endpoint (--http ADDR:PORT, libmicrohttpd): GET /health,
 * /ready and /metrics, served by a thread of its own (health.h, metrics.h).
 * Off unless asked for; it binds where it is told, and serves no other
 * path and no other method. */
#ifndef PGSPOUT_HTTP_H
#define PGSPOUT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct http_server http_server;

/* Binds the address now (so that a port in use or an address that is not
 * this machine's is found before anything connects) and starts serving.
 * NULL with err set when it cannot. */
http_server *http_start(const char *listen, char *err, size_t errlen);

/* Stops serving and closes the socket. NULL is fine. */
void http_stop(http_server *s);

#endif
