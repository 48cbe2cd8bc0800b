/* Service-account auth: the JWT verifies with the public half of a key made
 * at run time and carries the right claims; the token exchange, the
 * background refresh ahead of expiry, invalidation and a token endpoint
 * that hangs or fails run against a small token endpoint on 127.0.0.1.
 * Credentials files that are not right are refused naming the key. */
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
#include "bq_token.h"
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
    volatile int fail_with;  /* HTTP status to answer with, 0: a token */
    volatile int lifetime_s; /* expires_in of the tokens */
    volatile int hold;       /* answers wait while set */
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
        while (ts->hold)
            usleep(10000);
        char body[256], resp[512];
        if (ts->fail_with)
            snprintf(body, sizeof body,
                     "{\"error\":\"invalid_grant\",\"error_description\":"
                     "\"Invalid JWT Signature.\"}");
        else
            snprintf(body, sizeof body,
                     "{\"access_token\":\"tok-%d\",\"expires_in\":%d,"
                     "\"token_type\":\"Bearer\"}",
                     ts->requests, ts->lifetime_s ? ts->lifetime_s : 3600);
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

/* Waits (bounded) until the auth has fetched `want` tokens. */
static bool wait_fetches(bq_auth *auth, unsigned want, int seconds)
{
    for (int i = 0; i < seconds * 100; i++) {
        if (bq_auth_fetches(auth) >= want)
            return true;
        usleep(10000);
    }
    return false;
}

static bq_auth *start_key_auth(EVP_PKEY *key, int port)
{
    char *json = key_file_json(key, port);
    kit_http_settings http = {.verify_tls = true,
                              .connect_timeout_ms = 5000,
                              .request_timeout_ms = 10000};
    char err[512] = "";
    bq_cred cred;
    CHECK(bq_cred_parse(json, strlen(json), &cred, err, sizeof err));
    free(json);
    bq_auth *auth = bq_auth_start(&cred, &http, NULL, NULL, err, sizeof err);
    CHECK(auth != NULL);
    return auth;
}

static void token_server_stop(token_server *ts)
{
    shutdown(ts->fd, SHUT_RDWR);
    close(ts->fd);
    pthread_join(ts->thread, NULL);
}

static void test_exchange_and_refresh(EVP_PKEY *key, EVP_PKEY *pub)
{
    token_server ts;
    token_server_start(&ts);
    ts.lifetime_s = 4; /* refreshed a quarter of that (1 s) early */
    bq_auth *auth = start_key_auth(key, ts.port);
    char err[512] = "", header[4096];

    CHECK(bq_auth_header(auth, header, sizeof header, 10000, err, sizeof err));
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
    json_decref(h);
    json_decref(claims);
    free(assertion);

    /* Refreshed in the background, before it expires. */
    CHECK(wait_fetches(auth, 2, 20));
    CHECK(bq_auth_header(auth, header, sizeof header, 0, err, sizeof err));
    CHECK(strcmp(header, "Authorization: Bearer tok-1") != 0);

    /* While the endpoint hangs, the valid token is handed out at once: a
     * caller never waits for a refresh (here: wait_ms 0, and the answer
     * held back until after the call). */
    ts.lifetime_s = 3600;
    CHECK(wait_fetches(auth, 3, 20));
    ts.hold = 1;
    bq_auth_invalidate(auth); /* not valid: a fetch starts, and hangs */
    CHECK(!bq_auth_header(auth, header, sizeof header, 0, err, sizeof err));
    ts.hold = 0;
    CHECK(bq_auth_header(auth, header, sizeof header, 10000, err, sizeof err));
    unsigned fetched = bq_auth_fetches(auth);
    ts.hold = 1;
    CHECK(bq_auth_header(auth, header, sizeof header, 0, err, sizeof err));
    ts.hold = 0;

    /* A refused grant: no token, an error naming the endpoint's answer,
     * and no secret in it; then retried with backoff until it works. */
    ts.fail_with = 400;
    bq_auth_invalidate(auth);
    CHECK(!bq_auth_header(auth, header, sizeof header, 10000, err, sizeof err));
    CHECK(strstr(err, "invalid_grant") != NULL);
    CHECK(strstr(err, "PRIVATE") == NULL && strstr(err, "tok-") == NULL);
    ts.fail_with = 0;
    CHECK(wait_fetches(auth, fetched + 1, 20));
    CHECK(bq_auth_header(auth, header, sizeof header, 0, err, sizeof err));

    bq_auth_free(auth);
    token_server_stop(&ts);
}

/* Parses json; false with err. */
static bool parse(const char *json, char *err, size_t errlen)
{
    bq_cred cred;
    bool ok = bq_cred_parse(json, strlen(json), &cred, err, errlen);
    if (ok)
        bq_cred_free(&cred);
    return ok;
}

static void test_bad_credentials(void)
{
    char err[512];
    CHECK(!parse("nope", err, sizeof err));
    CHECK(strstr(err, "not a JSON object") != NULL);
    CHECK(!parse("{\"client_email\":\"a\"}", err, sizeof err));
    CHECK(strstr(err, "\"type\"") != NULL);
    CHECK(
        !parse("{\"type\":\"impersonated_service_account\"}", err, sizeof err));
    CHECK(strstr(err, "impersonated_service_account") != NULL);
    CHECK(!parse("{\"type\":\"service_account\",\"client_email\":\"a\"}", err,
                 sizeof err));
    CHECK(strstr(err, "\"private_key\"") != NULL);
    CHECK(!parse("{\"type\":\"service_account\",\"client_email\":\"a\","
                 "\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nSECRETSTUFF"
                 "\\n-----END PRIVATE KEY-----\\n\"}",
                 err, sizeof err));
    CHECK(strstr(err, "SECRETSTUFF") == NULL);
    CHECK(!parse("{\"type\":\"authorized_user\",\"client_id\":\"i\","
                 "\"client_secret\":\"SECRETSTUFF\"}",
                 err, sizeof err));
    CHECK(strstr(err, "\"refresh_token\"") != NULL);
    CHECK(strstr(err, "SECRETSTUFF") == NULL);
    const char *ext = "{\"type\":\"external_account\",\"audience\":\"a\","
                      "\"subject_token_type\":\"t\",\"token_url\":\"u\"";
    char json[512];
    snprintf(json, sizeof json, "%s}", ext);
    CHECK(!parse(json, err, sizeof err));
    CHECK(strstr(err, "\"credential_source\"") != NULL);
    snprintf(json, sizeof json,
             "%s,\"credential_source\":{\"environment_id\":\"aws1\"}}", ext);
    CHECK(!parse(json, err, sizeof err));
    CHECK(strstr(err, "neither \"file\" nor \"url\"") != NULL);
    snprintf(json, sizeof json,
             "%s,\"credential_source\":{\"file\":\"f\",\"format\":"
             "{\"type\":\"json\"}}}",
             ext);
    CHECK(!parse(json, err, sizeof err));
    CHECK(strstr(err, "\"subject_token_field_name\"") != NULL);
    snprintf(json, sizeof json,
             "%s,\"credential_source\":{\"url\":\"http://x/\",\"headers\":"
             "{\"A\":\"b\"},\"format\":{\"type\":\"json\","
             "\"subject_token_field_name\":\"id_token\"}}}",
             ext);
    CHECK(parse(json, err, sizeof err));
}

int main(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    CHECK(key != NULL);
    EVP_PKEY *pub = public_half(key);
    CHECK(pub != NULL);
    test_jwt(key, pub);
    test_exchange_and_refresh(key, pub);
    test_bad_credentials();

    char header[64];
    char err[64];
    bq_auth *none = bq_auth_none();
    CHECK(bq_auth_header(none, header, sizeof header, 0, err, sizeof err));
    CHECK_STR(header, "");
    bq_auth_free(none);

    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    return check_summary();
}
