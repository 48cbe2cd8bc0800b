#include "http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base64.h"
#include "http_internal.h"
#include "strbuf.h"

void kit_request_init(kit_http_request *req, const char *method,
                      const char *url)
{
    memset(req, 0, sizeof *req);
    req->method = xstrdup(method);
    req->url = xstrdup(url);
}

void kit_request_header(kit_http_request *req, const char *fmt, ...)
{
    strbuf line = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    sbuf_vappendf(&line, fmt, ap);
    va_end(ap);
    req->headers = xrealloc(req->headers, (req->nheaders + 1) * sizeof(char *));
    req->headers[req->nheaders++] = sbuf_detach(&line);
}

void kit_request_body(kit_http_request *req, char *body, size_t len)
{
    free(req->body);
    req->body = body;
    req->body_len = len;
}

void kit_request_retry_later(kit_http_request *req, const char *reason)
{
    free(req->retry_later);
    req->retry_later = xstrdup(reason);
}

void kit_request_free(kit_http_request *req)
{
    free(req->retry_later);
    free(req->method);
    free(req->url);
    for (size_t i = 0; i < req->nheaders; i++)
        free(req->headers[i]);
    free(req->headers);
    free(req->body);
    memset(req, 0, sizeof *req);
}

void kit_response_free(kit_http_response *resp)
{
    free(resp->body);
    free(resp->error);
    memset(resp, 0, sizeof *resp);
    resp->retry_after_s = -1;
}

char *kit_basic_auth_header(const char *user, const char *password)
{
    char *plain = xasprintf("%s:%s", user, password);
    char *encoded = base64_encode(plain, strlen(plain));
    kit_secret_free(plain);
    char *header = xasprintf("Authorization: Basic %s", encoded);
    kit_secret_free(encoded);
    return header;
}

void kit_secret_free(char *secret)
{
    if (!secret)
        return;
    /* volatile: the compiler may not drop a store to memory freed next. */
    volatile char *p = secret;
    while (*p)
        *p++ = '\0';
    free(secret);
}

bool kit_http_transient(const kit_http_response *resp)
{
    return resp->status == 0 || resp->status == 408 || resp->status == 429 ||
           resp->status >= 500;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void kit_http_global_init(void)
{
    pthread_once(&curl_once, curl_init_once);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    kit_http_transfer *t = userdata;
    size_t n = size * nmemb;
    sbuf_append(&t->body, data, n);
    return n;
}

long kit_retry_after_seconds(const char *value, time_t now)
{
    char *end;
    while (*value == ' ' || *value == '\t')
        value++;
    long s = strtol(value, &end, 10);
    if (end != value && s >= 0 &&
        (*end == '\0' || isspace((unsigned char)*end)))
        return s;
    /* The HTTP-date form (RFC 9110 10.2.3), which libcurl parses with
     * the obsolete forms a recipient must accept; a date already past
     * means "now". */
    char date[64];
    size_t len = strcspn(value, "\r\n");
    if (len >= sizeof date)
        return -1;
    memcpy(date, value, len);
    date[len] = '\0';
    time_t at = curl_getdate(date, NULL);
    if (at == (time_t)-1)
        return -1;
    return at > now ? (long)(at - now) : 0;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *userdata)
{
    kit_http_transfer *t = userdata;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        char value[64] = {0};
        size_t len = n - (sizeof name - 1);
        if (len >= sizeof value)
            len = sizeof value - 1;
        memcpy(value, data + sizeof name - 1, len);
        t->retry_after_s = kit_retry_after_seconds(value, time(NULL));
    }
    return n;
}

bool kit_http_transfer_setup(kit_http_transfer *t,
                             const kit_http_settings *settings,
                             const kit_http_request *req)
{
    kit_http_global_init();
    memset(t, 0, sizeof *t);
    t->retry_after_s = -1;
    t->easy = curl_easy_init();
    if (!t->easy)
        return false;
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    /* Sink threads must never get SIGALRM from name resolution. */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, settings->verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, settings->verify_tls ? 2L : 0L);
    if (settings->ca_file && *settings->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, settings->ca_file);
    if (settings->connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         settings->connect_timeout_ms);
    if (settings->request_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, settings->request_timeout_ms);
    curl_easy_setopt(e, CURLOPT_USERAGENT,
                     settings->user_agent ? settings->user_agent : "pgspout");
    /* Redirects could carry credentials elsewhere; APIs do not need them. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");

    for (size_t i = 0; i < req->nheaders; i++)
        t->headers = curl_slist_append(t->headers, req->headers[i]);
    /* libcurl adds "Expect: 100-continue" to large POSTs, costing a round
     * trip per request. */
    t->headers = curl_slist_append(t->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);

    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    return true;
}

void kit_http_transfer_finish(kit_http_transfer *t, int curl_code,
                              kit_http_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after_s = t->retry_after_s;
    if (curl_code == CURLE_OK) {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &resp->status);
    } else {
        resp->status = 0;
        const char *why =
            t->error[0] ? t->error : curl_easy_strerror((CURLcode)curl_code);
        resp->error = xstrdup(why);
    }
    resp->body_len = t->body.len;
    resp->body = sbuf_detach(&t->body);
}

void kit_http_transfer_cleanup(kit_http_transfer *t)
{
    if (t->easy)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    sbuf_free(&t->body);
    memset(t, 0, sizeof *t);
}

bool kit_http_perform(const kit_http_settings *settings,
                      const kit_http_request *req, kit_http_response *resp)
{
    kit_http_transfer t;
    if (!kit_http_transfer_setup(&t, settings, req)) {
        kit_http_transfer_cleanup(&t);
        return false;
    }
    CURLcode rc = curl_easy_perform(t.easy);
    kit_http_transfer_finish(&t, (int)rc, resp);
    kit_http_transfer_cleanup(&t);
    return true;
}
