/* The sink kit's HTTP (libcurl): requests, responses, and a blocking call for
 * control-plane work (creating tables, exchanging tokens). Bulk data goes
 * through the pipeline (pipeline.h), which runs many requests at once. */
#ifndef KIT_HTTP_H
#define KIT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kit_http_request {
    char *method; /* "POST", "GET", ... */
    char *url;
    char **headers; /* "Name: value", nheaders of them */
    size_t nheaders;
    char *body; /* may be NULL */
    size_t body_len;
    /* Set by kit_request_retry_later: the request is not sent; the
     * pipeline retries its records after a backoff with this reason. */
    char *retry_later;
} kit_http_request;

typedef struct kit_http_response {
    long status; /* HTTP status; 0 when no response was received */
    char *body;  /* NUL-terminated */
    size_t body_len;
    char *error;        /* transport error (status 0), else NULL */
    long retry_after_s; /* Retry-After header in seconds, -1 when absent */
} kit_http_response;

/* TLS and timeouts shared by every request of a sink. */
typedef struct kit_http_settings {
    bool verify_tls;     /* certificate and host name; on by default */
    const char *ca_file; /* NULL: the system's CA store */
    long connect_timeout_ms;
    long request_timeout_ms;
    const char *user_agent;
} kit_http_settings;

/* Builders; all copy their arguments. Allocation failure aborts. */
void kit_request_init(kit_http_request *req, const char *method,
                      const char *url);
void kit_request_header(kit_http_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Takes ownership of body (malloc'd). */
void kit_request_body(kit_http_request *req, char *body, size_t len);
/* From build_request: this request cannot be built now (credentials not
 * yet available), but may later; its records are retried after a backoff
 * and reported as retried (so the host's /ready says the sink is
 * retrying), never failed. */
void kit_request_retry_later(kit_http_request *req, const char *reason);
void kit_request_free(kit_http_request *req);
void kit_response_free(kit_http_response *resp);

/* "Authorization: Basic <base64 of user:password>", malloc'd: a secret,
 * release it with kit_secret_free. */
char *kit_basic_auth_header(const char *user, const char *password);

/* Overwrites a secret string before freeing it, so that it does not linger
 * in freed memory. NULL is fine. */
void kit_secret_free(char *secret);

/* Runs one request to completion. Returns false only when the request could
 * not be set up; a transport failure is resp->status == 0 with resp->error.
 * Credentials in URLs or headers never appear in resp->error. */
bool kit_http_perform(const kit_http_settings *settings,
                      const kit_http_request *req, kit_http_response *resp);

/* True for answers worth retrying: no response, 408, 429, 5xx. */
bool kit_http_transient(const kit_http_response *resp);

#endif
