/* One libcurl transfer, shared by the blocking call and the pipeline's
 * multi handle. Internal to the kit. */
#ifndef SINKKIT_HTTP_INTERNAL_H
#define SINKKIT_HTTP_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "strbuf.h"

typedef struct http_transfer {
    CURL *easy;
    struct curl_slist *headers;
    strbuf body; /* the response body as it arrives */
    long retry_after_s;
    char error[CURL_ERROR_SIZE];
} http_transfer;

void http_global_init(void);

/* Prepares t->easy for req; req must outlive the transfer (libcurl reads
 * the URL and body in place). */
bool http_transfer_setup(http_transfer *t,
                         const sinkkit_http_settings *settings,
                         const sinkkit_http_request *req);

/* Moves the outcome into resp (curl_code is the transfer's CURLcode). */
void http_transfer_finish(http_transfer *t, int curl_code,
                          sinkkit_http_response *resp);

void http_transfer_cleanup(http_transfer *t);

#endif
