/* One libcurl transfer, shared by the blocking call and the pipeline's
 * multi handle. Internal to the sink kit. */
#ifndef KIT_HTTP_INTERNAL_H
#define KIT_HTTP_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "http.h"
#include "strbuf.h"

typedef struct kit_http_transfer {
    CURL *easy;
    struct curl_slist *headers;
    strbuf body; /* the response body as it arrives */
    long retry_after_s;
    char error[CURL_ERROR_SIZE];
} kit_http_transfer;

void kit_http_global_init(void);

/* A Retry-After header's value (delta-seconds or an HTTP-date) as seconds
 * from now; -1 when it is neither. Exposed for unit tests. */
long kit_retry_after_seconds(const char *value, time_t now);

/* Prepares t->easy for req; req must outlive the transfer (libcurl reads
 * the URL and body in place). */
bool kit_http_transfer_setup(kit_http_transfer *t,
                             const kit_http_settings *settings,
                             const kit_http_request *req);

/* Moves the outcome into resp (curl_code is the transfer's CURLcode). */
void kit_http_transfer_finish(kit_http_transfer *t, int curl_code,
                              kit_http_response *resp);

void kit_http_transfer_cleanup(kit_http_transfer *t);

#endif
