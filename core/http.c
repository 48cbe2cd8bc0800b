#include "http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health.h"
#include "http_listen.h"
#include "metrics.h"
#include "stats.h"
#include "strbuf.h"

/* Scrapes and probes are few; more at once are refused, not queued. */
#define HTTP_MAX_CONNECTIONS 16
#define HTTP_CONNECTION_TIMEOUT_S 10

struct http_server {
    struct MHD_Daemon *daemon;
};

/* ---- serving ---- */

static enum MHD_Result respond(struct MHD_Connection *c, int status,
                               const char *type, strbuf *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body->len, body->data ? body->data : (char *)"", MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    sbuf_free(body);
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    (void)cls, (void)version, (void)upload_data, (void)upload_data_size;
    (void)con_cls;
    strbuf body = STRBUF_INIT;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        sbuf_append_str(&body, "only GET\n");
        return respond(c, 405, "text/plain", &body);
    }
    if (strcmp(url, "/health") == 0) {
        int status = health_liveness(&body);
        return respond(c, status, "application/json", &body);
    }
    if (strcmp(url, "/ready") == 0) {
        int status = health_readiness(&body);
        return respond(c, status, "application/json", &body);
    }
    if (strcmp(url, "/metrics") == 0) {
        stats_refresh();
        metrics_render(&body);
        return respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
                       &body);
    }
    sbuf_append_str(&body, "not found: /health, /ready, /metrics\n");
    return respond(c, 404, "text/plain", &body);
}

/* ---- binding ---- */

static int bind_first(const struct addrinfo *list, int *error)
{
    *error = 0;
    for (const struct addrinfo *a = list; a; a = a->ai_next) {
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            *error = errno;
            continue;
        }
        int on = 1;
        /* A restart must not wait for the last one's TIME_WAIT sockets;
         * Linux still refuses a port another socket listens on. */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 16) == 0)
            return fd;
        *error = errno;
        close(fd);
    }
    return -1;
}

static int bind_listen(const char *listen, char *err, size_t errlen)
{
    char *host, *port;
    const char *problem = http_listen_split(listen, &host, &port);
    if (problem) {
        snprintf(err, errlen, "http_listen \"%s\" %s", listen, problem);
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(host, port, &hints, &list);
    int fd = -1, error = 0;
    if (gai != 0)
        snprintf(err, errlen,
                 "http_listen \"%s\": cannot resolve the address: %s", listen,
                 gai_strerror(gai));
    else if ((fd = bind_first(list, &error)) < 0)
        snprintf(err, errlen, "http_listen \"%s\": cannot listen there: %s%s",
                 listen, strerror(error),
                 error == EADDRINUSE ? " (another process uses the port)"
                 : error == EADDRNOTAVAIL
                     ? " (the address is not one of this machine's)"
                     : "");
    if (list)
        freeaddrinfo(list);
    free(host);
    free(port);
    return fd;
}

http_server *http_start(const char *listen, char *err, size_t errlen)
{
    int fd = bind_listen(listen, err, errlen);
    if (fd < 0)
        return NULL;
    /* Its thread inherits the mask: stop signals stay with the main one. */
    sigset_t block, previous;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &previous);
    struct MHD_Daemon *daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, handle,
        NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (!daemon) {
        snprintf(err, errlen,
                 "http_listen \"%s\": cannot start the HTTP server", listen);
        close(fd);
        return NULL;
    }
    http_server *s = xcalloc(1, sizeof *s);
    s->daemon = daemon;
    return s;
}

void http_stop(http_server *s)
{
    if (!s)
        return;
    /* It closes the listening socket too (it was never quiesced). */
    MHD_stop_daemon(s->daemon);
    free(s);
}
