/* HTTP for sinks (libcurl): requests, responses, and a blocking call for
 * control-plane work (creating tables, exchanging tokens). Bulk data goes
 * through the pipeline (pipeline.h), which runs many requests at once. */
#ifndef SINKKIT_HTTP_H
#define SINKKIT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sinkkit_http_request {
    char *method; /* "POST", "GET", ... */
    char *url;
    char **headers; /* "Name: value", nheaders of them */
    size_t nheaders;
    char *body; /* may be NULL */
    size_t body_len;
} sinkkit_http_request;

typedef struct sinkkit_http_response {
    long status; /* HTTP status; 0 when no response was received */
    char *body;  /* NUL-terminated */
    size_t body_len;
    char *error;        /* transport error (status 0), else NULL */
    long retry_after_s; /* Retry-After header in seconds, -1 when absent */
} sinkkit_http_response;

/* TLS and timeouts shared by every request of a sink. */
typedef struct sinkkit_http_settings {
    bool verify_tls;     /* certificate and host name; on by default */
    const char *ca_file; /* NULL: the system's CA store */
    long connect_timeout_ms;
    long request_timeout_ms;
    const char *user_agent;
} sinkkit_http_settings;

/* Builders; all copy their arguments. Allocation failure aborts. */
void sinkkit_request_init(sinkkit_http_request *req, const char *method,
                          const char *url);
void sinkkit_request_header(sinkkit_http_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Takes ownership of body (malloc'd). */
void sinkkit_request_body(sinkkit_http_request *req, char *body, size_t len);
void sinkkit_request_free(sinkkit_http_request *req);
void sinkkit_response_free(sinkkit_http_response *resp);

/* Runs one request to completion. Returns false only when the request could
 * not be set up; a transport failure is resp->status == 0 with resp->error.
 * Credentials in URLs or headers never appear in resp->error. */
bool sinkkit_http_perform(const sinkkit_http_settings *settings,
                          const sinkkit_http_request *req,
                          sinkkit_http_response *resp);

/* True for answers worth retrying: no response, 408, 429, 5xx. */
bool sinkkit_http_transient(const sinkkit_http_response *resp);

#endif
