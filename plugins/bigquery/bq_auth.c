#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bq_auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base64.h"
#include "percent.h"
#include "strbuf.h"

typedef enum auth_kind { AUTH_NONE, AUTH_KEY, AUTH_METADATA } auth_kind;

struct bq_auth {
    auth_kind kind;
    kit_http_settings http;
    EVP_PKEY *key;
    char *client_email;
    char *token_uri;
    char *metadata_base;

    pthread_mutex_t lock;
    char *token; /* secret */
    int64_t expires_at;
    unsigned fetches;
    int64_t (*now)(void);
};

static int64_t wall_clock(void)
{
    return (int64_t)time(NULL);
}

static bq_auth *auth_new(auth_kind kind)
{
    bq_auth *a = xcalloc(1, sizeof *a);
    a->kind = kind;
    a->now = wall_clock;
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

bq_auth *bq_auth_none(void)
{
    return auth_new(AUTH_NONE);
}

bq_auth *bq_auth_from_key(const char *key_json, size_t len,
                          const kit_http_settings *http, char *err,
                          size_t errlen)
{
    json_t *root = json_loadb(key_json, len, 0, NULL);
    const char *type = json_string_value(json_object_get(root, "type"));
    const char *email =
        json_string_value(json_object_get(root, "client_email"));
    const char *pem = json_string_value(json_object_get(root, "private_key"));
    const char *uri = json_string_value(json_object_get(root, "token_uri"));

    if (!root) {
        snprintf(err, errlen, "the credentials file is not valid JSON");
        return NULL;
    }
    if (type && strcmp(type, "service_account") != 0) {
        snprintf(err, errlen,
                 "credentials of type \"%.40s\" are not supported (a "
                 "service-account key is)",
                 type);
        json_decref(root);
        return NULL;
    }
    if (!email || !pem) {
        snprintf(err, errlen,
                 "the credentials file lacks client_email or private_key");
        json_decref(root);
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!key || EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
        snprintf(err, errlen,
                 "the credentials file's private_key is not an RSA key in "
                 "PEM form");
        EVP_PKEY_free(key);
        json_decref(root);
        return NULL;
    }
    bq_auth *a = auth_new(AUTH_KEY);
    a->key = key;
    a->client_email = xstrdup(email);
    a->token_uri = xstrdup(uri ? uri : BQ_DEFAULT_TOKEN_URI);
    a->http = *http;
    json_decref(root);
    return a;
}

bq_auth *bq_auth_metadata(const char *base, const kit_http_settings *http)
{
    bq_auth *a = auth_new(AUTH_METADATA);
    a->metadata_base = xstrdup(base);
    a->http = *http;
    return a;
}

static void forget_token(bq_auth *a)
{
    if (a->token) {
        OPENSSL_cleanse(a->token, strlen(a->token));
        free(a->token);
    }
    a->token = NULL;
    a->expires_at = 0;
}

void bq_auth_free(bq_auth *a)
{
    if (!a)
        return;
    forget_token(a);
    EVP_PKEY_free(a->key);
    free(a->client_email);
    free(a->token_uri);
    free(a->metadata_base);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static char *base64url_str(const char *s)
{
    return base64url_encode(s, strlen(s));
}

char *bq_jwt_assertion(EVP_PKEY *key, const char *client_email,
                       const char *scope, const char *audience, int64_t iat,
                       int64_t lifetime_s)
{
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", client_email, "scope",
                  scope, "aud", audience, "iat", (json_int_t)iat, "exp",
                  (json_int_t)(iat + lifetime_s));
    char *claims_text =
        xnonnull(json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER));
    json_decref(claims);
    char *header = base64url_str("{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
    char *payload = base64url_str(claims_text);
    free(claims_text);

    strbuf signing_input = STRBUF_INIT;
    sbuf_appendf(&signing_input, "%s.%s", header, payload);
    free(header);
    free(payload);

    unsigned char *sig = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md &&
              EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestSign(md, NULL, &siglen,
                             (const unsigned char *)signing_input.data,
                             signing_input.len) == 1;
    if (ok) {
        sig = xmalloc(siglen);
        ok = EVP_DigestSign(md, sig, &siglen,
                            (const unsigned char *)signing_input.data,
                            signing_input.len) == 1;
    }
    EVP_MD_CTX_free(md);
    if (!ok) {
        free(sig);
        sbuf_free(&signing_input);
        return NULL;
    }
    char *sig64 = base64url_encode(sig, siglen);
    free(sig);
    sbuf_appendf(&signing_input, ".%s", sig64);
    free(sig64);
    return sbuf_detach(&signing_input);
}

/* Takes access_token and expires_in from a token answer. */
static bool take_token(bq_auth *a, const kit_http_response *resp,
                       bool *transient, char *err, size_t errlen)
{
    if (resp->status != 200) {
        *transient = kit_http_transient(resp);
        json_t *body = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
        /* OAuth errors are {"error":"invalid_grant","error_description":..};
         * neither echoes the assertion. */
        const char *code = json_string_value(json_object_get(body, "error"));
        const char *desc =
            json_string_value(json_object_get(body, "error_description"));
        if (resp->status == 0)
            snprintf(err, errlen, "token request failed: %s",
                     resp->error ? resp->error : "no response");
        else
            snprintf(err, errlen,
                     "token request answered HTTP %ld%s%.60s%s%.200s",
                     resp->status, code ? " " : "", code ? code : "",
                     desc ? ": " : "", desc ? desc : "");
        json_decref(body);
        return false;
    }
    json_t *body = json_loads(resp->body ? resp->body : "", 0, NULL);
    const char *token =
        json_string_value(json_object_get(body, "access_token"));
    json_t *expires = json_object_get(body, "expires_in");
    if (!token || !*token) {
        *transient = true;
        snprintf(err, errlen, "the token answer has no access_token");
        json_decref(body);
        return false;
    }
    forget_token(a);
    a->token = xstrdup(token);
    a->expires_at = a->now() + (json_is_integer(expires)
                                    ? (int64_t)json_integer_value(expires)
                                    : 3600);
    a->fetches++;
    json_decref(body);
    return true;
}

/* Form-encodes a value (a JWT, the grant type). */
static void append_form_value(strbuf *sb, const char *s)
{
    percent_encode(sb, s, strlen(s), NULL);
}

static bool fetch_with_key(bq_auth *a, bool *transient, char *err,
                           size_t errlen)
{
    char *jwt = bq_jwt_assertion(a->key, a->client_email, BQ_SCOPE,
                                 a->token_uri, a->now(), 3600);
    if (!jwt) {
        *transient = false;
        snprintf(err, errlen, "cannot sign the token request (OpenSSL)");
        return false;
    }
    strbuf form = STRBUF_INIT;
    sbuf_append_str(&form, "grant_type=");
    append_form_value(&form, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    sbuf_append_str(&form, "&assertion=");
    append_form_value(&form, jwt);
    OPENSSL_cleanse(jwt, strlen(jwt));
    free(jwt);

    kit_http_request req;
    kit_http_response resp;
    memset(&resp, 0, sizeof resp);
    kit_request_init(&req, "POST", a->token_uri);
    kit_request_header(&req, "Content-Type: application/x-www-form-urlencoded");
    size_t len = form.len;
    kit_request_body(&req, sbuf_detach(&form), len);
    bool ok = kit_http_perform(&a->http, &req, &resp);
    if (!ok) {
        *transient = false;
        snprintf(err, errlen, "cannot set up the token request");
    } else {
        ok = take_token(a, &resp, transient, err, errlen);
    }
    OPENSSL_cleanse(req.body, req.body_len);
    kit_request_free(&req);
    kit_response_free(&resp);
    return ok;
}

static bool fetch_from_metadata(bq_auth *a, bool *transient, char *err,
                                size_t errlen)
{
    char *url = xasprintf("%s/computeMetadata/v1/instance/service-accounts/"
                          "default/token",
                          a->metadata_base);
    kit_http_request req;
    kit_http_response resp;
    memset(&resp, 0, sizeof resp);
    kit_request_init(&req, "GET", url);
    free(url);
    kit_request_header(&req, "Metadata-Flavor: Google");
    bool ok = kit_http_perform(&a->http, &req, &resp);
    if (!ok) {
        *transient = false;
        snprintf(err, errlen, "cannot set up the metadata server request");
    } else {
        ok = take_token(a, &resp, transient, err, errlen);
        if (!ok && resp.status == 0)
            *transient = true;
    }
    kit_request_free(&req);
    kit_response_free(&resp);
    return ok;
}

bool bq_auth_header(bq_auth *a, char *buf, size_t buflen, bool *transient,
                    char *err, size_t errlen)
{
    *transient = false;
    if (a->kind == AUTH_NONE) {
        if (buflen)
            buf[0] = '\0';
        return true;
    }
    pthread_mutex_lock(&a->lock);
    bool ok = true;
    if (!a->token || a->now() >= a->expires_at - BQ_TOKEN_EARLY_S)
        ok = a->kind == AUTH_KEY
                 ? fetch_with_key(a, transient, err, errlen)
                 : fetch_from_metadata(a, transient, err, errlen);
    if (ok) {
        int n = snprintf(buf, buflen, "Authorization: Bearer %s", a->token);
        if (n < 0 || (size_t)n >= buflen) {
            ok = false;
            snprintf(err, errlen, "the access token is too long");
        }
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

void bq_auth_invalidate(bq_auth *a)
{
    pthread_mutex_lock(&a->lock);
    forget_token(a);
    pthread_mutex_unlock(&a->lock);
}

unsigned bq_auth_fetches(bq_auth *a)
{
    pthread_mutex_lock(&a->lock);
    unsigned n = a->fetches;
    pthread_mutex_unlock(&a->lock);
    return n;
}

void bq_auth_set_clock(bq_auth *a, int64_t (*now)(void))
{
    a->now = now;
}
