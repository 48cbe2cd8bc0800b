/* Service-account auth: the JWT verifies with the public half of a key made
 * at run time and carries the right claims; the token exchange, caching,
 * refresh ahead of expiry and invalidation run against a small token
 * endpoint on 127.0.0.1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "bq_auth.h"
#include "check.h"

static unsigned char *b64url_decode(const char *s, size_t len, size_t *out)
{
    char *std = calloc(len + 4, 1);
    size_t i;
    for (i = 0; i < len; i++)
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (i % 4)
        std[i++] = '=';
    unsigned char *buf = calloc(i + 1, 1);
    int n = EVP_DecodeBlock(buf, (unsigned char *)std, (int)i);
    size_t pad = 0;
    while (pad < 2 && i > pad && std[i - 1 - pad] == '=')
        pad++;
    free(std);
    *out = n < 0 ? 0 : (size_t)n - pad;
    return buf;
}

/* The public half only, as a verifier would hold it. */
static EVP_PKEY *public_half(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return pub;
}

static char *private_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *pem = strndup(data, (size_t)n);
    BIO_free(bio);
    return pem;
}

/* Verifies header.claims.signature; returns the claims (or NULL). */
static json_t *verify_jwt(const char *jwt, EVP_PKEY *pub, json_t **header)
{
    const char *dot1 = strchr(jwt, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot2)
        return NULL;
    size_t sig_len, hlen, clen;
    unsigned char *sig = b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig_len);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)jwt,
                              (size_t)(dot2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    free(sig);
    if (!ok)
        return NULL;
    unsigned char *h = b64url_decode(jwt, (size_t)(dot1 - jwt), &hlen);
    unsigned char *c =
        b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &clen);
    *header = json_loadb((char *)h, hlen, 0, NULL);
    json_t *claims = json_loadb((char *)c, clen, 0, NULL);
    free(h);
    free(c);
    return claims;
}

/* ---- a token endpoint ---- */

typedef struct token_server {
    int fd, port;
    int requests;
    int fail_with; /* HTTP status to answer with, 0: a token */
    char last_body[8192];
    char last_request_line[256];
    pthread_t thread;
} token_server;

static void *serve(void *arg)
{
    token_server *ts = arg;
    for (;;) {
        int c = accept(ts->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[16384];
        size_t got = 0;
        long want = -1;
        for (;;) {
            ssize_t n = read(c, buf + got, sizeof buf - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (end) {
                char *cl = strcasestr(buf, "Content-Length:");
                want = cl ? atol(cl + 15) : 0;
                if ((long)(got - (size_t)(end + 4 - buf)) >= want)
                    break;
            }
        }
        char *end = strstr(buf, "\r\n\r\n");
        snprintf(ts->last_body, sizeof ts->last_body, "%s", end ? end + 4 : "");
        snprintf(ts->last_request_line, sizeof ts->last_request_line, "%.*s",
                 (int)strcspn(buf, "\r"), buf);
        ts->requests++;
        char body[256], resp[512];
        if (ts->fail_with)
            snprintf(body, sizeof body,
                     "{\"error\":\"invalid_grant\",\"error_description\":"
                     "\"Invalid JWT Signature.\"}");
        else
            snprintf(body, sizeof body,
                     "{\"access_token\":\"tok-%d\",\"expires_in\":3600,"
                     "\"token_type\":\"Bearer\"}",
                     ts->requests);
        int n =
            snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     ts->fail_with ? ts->fail_with : 200, strlen(body), body);
        if (write(c, resp, (size_t)n) < 0)
            perror("write");
        close(c);
    }
}

static void token_server_start(token_server *ts)
{
    memset(ts, 0, sizeof *ts);
    ts->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(ts->fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(ts->fd, (struct sockaddr *)&a, &len);
    ts->port = ntohs(a.sin_port);
    listen(ts->fd, 8);
    pthread_create(&ts->thread, NULL, serve, ts);
}

static int64_t fake_now = 1800000000;
static int64_t fake_clock(void)
{
    return fake_now;
}

static void test_jwt(EVP_PKEY *key, EVP_PKEY *pub)
{
    char *jwt =
        bq_jwt_assertion(key, "sa@proj.iam.gserviceaccount.com", BQ_SCOPE,
                         "https://oauth2.example/token", 1800000000, 3600);
    CHECK(jwt != NULL);
    json_t *header = NULL;
    json_t *claims = verify_jwt(jwt, pub, &header);
    CHECK(claims != NULL);
    CHECK_STR(json_string_value(json_object_get(header, "alg")), "RS256");
    CHECK_STR(json_string_value(json_object_get(header, "typ")), "JWT");
    CHECK_STR(json_string_value(json_object_get(claims, "iss")),
              "sa@proj.iam.gserviceaccount.com");
    CHECK_STR(json_string_value(json_object_get(claims, "scope")),
              "https://www.googleapis.com/auth/bigquery");
    CHECK_STR(json_string_value(json_object_get(claims, "aud")),
              "https://oauth2.example/token");
    CHECK(json_integer_value(json_object_get(claims, "iat")) == 1800000000);
    CHECK(json_integer_value(json_object_get(claims, "exp")) ==
          1800000000 + 3600);
    CHECK(strchr(jwt, '=') == NULL && strchr(jwt, '+') == NULL &&
          strchr(jwt, '/') == NULL);

    /* A tampered assertion does not verify. */
    char *bad = strdup(jwt);
    bad[strchr(bad, '.') - bad + 3] ^= 1;
    json_t *h2 = NULL;
    json_t *c2 = verify_jwt(bad, pub, &h2);
    CHECK(c2 == NULL);
    free(bad);
    json_decref(header);
    json_decref(claims);
    free(jwt);
}

static char *key_file_json(EVP_PKEY *key, int port)
{
    char *pem = private_pem(key);
    char uri[100];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/token", port);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "type", "service_account",
                          "client_email", "sa@proj.iam.gserviceaccount.com",
                          "private_key", pem, "token_uri", uri);
    char *text = json_dumps(j, 0);
    json_decref(j);
    free(pem);
    return text;
}

static char *form_value(const char *form, const char *name)
{
    const char *p = strstr(form, name);
    if (!p)
        return NULL;
    p += strlen(name) + 1;
    size_t n = strcspn(p, "&");
    char *out = malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' && i + 2 < n) {
            char hex[3] = {p[i + 1], p[i + 2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void test_exchange_and_refresh(EVP_PKEY *key, EVP_PKEY *pub)
{
    token_server ts;
    token_server_start(&ts);
    char *json = key_file_json(key, ts.port);
    kit_http_settings http = {.verify_tls = true,
                              .connect_timeout_ms = 5000,
                              .request_timeout_ms = 10000};
    char err[512] = "", header[4096];
    bool transient;
    bq_auth *auth =
        bq_auth_from_key(json, strlen(json), &http, err, sizeof err);
    CHECK(auth != NULL);
    bq_auth_set_clock(auth, fake_clock);

    CHECK(bq_auth_header(auth, header, sizeof header, &transient, err,
                         sizeof err));
    CHECK_STR(header, "Authorization: Bearer tok-1");
    CHECK_STR(ts.last_request_line, "POST /token HTTP/1.1");
    char *grant = form_value(ts.last_body, "grant_type");
    CHECK_STR(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    free(grant);
    char *assertion = form_value(ts.last_body, "assertion");
    json_t *h = NULL;
    json_t *claims = assertion ? verify_jwt(assertion, pub, &h) : NULL;
    CHECK(claims != NULL);
    char uri[100];
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d/token", ts.port);
    CHECK_STR(json_string_value(json_object_get(claims, "aud")), uri);
    CHECK(json_integer_value(json_object_get(claims, "iat")) == fake_now);
    json_decref(h);
    json_decref(claims);
    free(assertion);

    /* Cached while far from expiry. */
    fake_now += 3600 - BQ_TOKEN_EARLY_S - 1;
    CHECK(bq_auth_header(auth, header, sizeof header, &transient, err,
                         sizeof err));
    CHECK_STR(header, "Authorization: Bearer tok-1");
    CHECK(bq_auth_fetches(auth) == 1);
    /* Refreshed within five minutes of expiry. */
    fake_now += 2;
    CHECK(bq_auth_header(auth, header, sizeof header, &transient, err,
                         sizeof err));
    CHECK_STR(header, "Authorization: Bearer tok-2");
    CHECK(bq_auth_fetches(auth) == 2);
    /* A 401 from the service drops it. */
    bq_auth_invalidate(auth);
    CHECK(bq_auth_header(auth, header, sizeof header, &transient, err,
                         sizeof err));
    CHECK_STR(header, "Authorization: Bearer tok-3");

    /* A refused grant is permanent, and the message holds no secret. */
    ts.fail_with = 400;
    bq_auth_invalidate(auth);
    CHECK(!bq_auth_header(auth, header, sizeof header, &transient, err,
                          sizeof err));
    CHECK(!transient);
    CHECK(strstr(err, "invalid_grant") != NULL);
    CHECK(strstr(err, "PRIVATE") == NULL && strstr(err, "tok-") == NULL);
    /* An unavailable endpoint is worth retrying. */
    ts.fail_with = 503;
    CHECK(!bq_auth_header(auth, header, sizeof header, &transient, err,
                          sizeof err));
    CHECK(transient);

    bq_auth_free(auth);
    free(json);
    shutdown(ts.fd, SHUT_RDWR);
    close(ts.fd);
    pthread_join(ts.thread, NULL);
}

static void test_bad_keys(void)
{
    kit_http_settings http = {0};
    char err[512];
    CHECK(bq_auth_from_key("nope", 4, &http, err, sizeof err) == NULL);
    CHECK(strstr(err, "not valid JSON") != NULL);
    const char *no_key =
        "{\"type\":\"service_account\",\"client_email\":\"a\"}";
    CHECK(bq_auth_from_key(no_key, strlen(no_key), &http, err, sizeof err) ==
          NULL);
    const char *bad_pem = "{\"type\":\"service_account\",\"client_email\":"
                          "\"a\",\"private_key\":\"-----BEGIN PRIVATE KEY-----"
                          "\\nSECRETSTUFF\\n-----END PRIVATE KEY-----\\n\"}";
    CHECK(bq_auth_from_key(bad_pem, strlen(bad_pem), &http, err, sizeof err) ==
          NULL);
    CHECK(strstr(err, "SECRETSTUFF") == NULL);
    const char *user = "{\"type\":\"authorized_user\"}";
    CHECK(bq_auth_from_key(user, strlen(user), &http, err, sizeof err) == NULL);
    CHECK(strstr(err, "authorized_user") != NULL);
}

int main(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    CHECK(key != NULL);
    EVP_PKEY *pub = public_half(key);
    CHECK(pub != NULL);
    test_jwt(key, pub);
    test_exchange_and_refresh(key, pub);
    test_bad_keys();

    char header[64];
    bool transient;
    char err[64];
    bq_auth *none = bq_auth_none();
    CHECK(bq_auth_header(none, header, sizeof header, &transient, err,
                         sizeof err));
    CHECK_STR(header, "");
    bq_auth_free(none);

    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    return check_summary();
}
