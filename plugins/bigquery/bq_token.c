#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bq_token.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "base64.h"
#include "fileio.h"
#include "percent.h"
#include "strbuf.h"

void bq_token_clear(bq_token *t)
{
    if (t->value) {
        OPENSSL_cleanse(t->value, strlen(t->value));
        free(t->value);
    }
    t->value = NULL;
    t->lifetime_s = 0;
}

static char *base64url_str(const char *s)
{
    return base64url_encode(s, strlen(s));
}

/* RS256 over header.claims; NULL on failure. */
static char *rs256_signature(EVP_PKEY *key, const strbuf *input)
{
    unsigned char *sig = NULL;
    size_t siglen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok =
        md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input->data,
                       input->len) == 1;
    if (ok) {
        sig = xmalloc(siglen);
        ok =
            EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input->data,
                           input->len) == 1;
    }
    EVP_MD_CTX_free(md);
    char *sig64 = ok ? base64url_encode(sig, siglen) : NULL;
    free(sig);
    return sig64;
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

    strbuf jwt = STRBUF_INIT;
    sbuf_appendf(&jwt, "%s.%s", header, payload);
    free(header);
    free(payload);
    char *sig64 = rs256_signature(key, &jwt);
    if (!sig64) {
        sbuf_free(&jwt);
        return NULL;
    }
    sbuf_appendf(&jwt, ".%s", sig64);
    free(sig64);
    return sbuf_detach(&jwt);
}

/* ---- one request ---- */

/* Runs req (then frees it, wiping its body: it may hold a secret). false
 * with err when there was no answer at all. */
static bool perform(const kit_http_settings *http, kit_http_request *req,
                    const char *what, kit_http_response *resp, char *err,
                    size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    bool ok = kit_http_perform(http, req, resp);
    if (!ok)
        snprintf(err, errlen, "%s: cannot set up the request", what);
    else if (resp->status == 0)
        snprintf(err, errlen, "%s: %s", what,
                 resp->error ? resp->error : "no response");
    if (req->body)
        OPENSSL_cleanse(req->body, req->body_len);
    for (size_t i = 0; i < req->nheaders; i++)
        OPENSSL_cleanse(req->headers[i], strlen(req->headers[i]));
    kit_request_free(req);
    return ok && resp->status != 0;
}

/* An error answer: OAuth's {"error":"invalid_grant",
 * "error_description":...} or Google's {"error":{"message":...}}; neither
 * echoes a credential. */
static void answer_error(const kit_http_response *resp, const char *what,
                         char *err, size_t errlen)
{
    json_t *body = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
    json_t *error = json_object_get(body, "error");
    const char *code = json_string_value(error);
    const char *desc =
        json_string_value(json_object_get(body, "error_description"));
    if (!desc)
        desc = json_string_value(json_object_get(error, "message"));
    snprintf(err, errlen, "%s answered HTTP %ld%s%.60s%s%.200s", what,
             resp->status, code ? " " : "", code ? code : "", desc ? ": " : "",
             desc ? desc : "");
    json_decref(body);
}

/* {"access_token": ..., "expires_in": seconds} from a 200 answer. */
static bool take_oauth_token(const kit_http_response *resp, const char *what,
                             bq_token *out, char *err, size_t errlen)
{
    if (resp->status != 200) {
        answer_error(resp, what, err, errlen);
        return false;
    }
    json_t *body = json_loads(resp->body ? resp->body : "", 0, NULL);
    const char *token =
        json_string_value(json_object_get(body, "access_token"));
    json_t *expires = json_object_get(body, "expires_in");
    bool ok = token && *token;
    if (ok) {
        out->value = xstrdup(token);
        out->lifetime_s =
            json_is_integer(expires) && json_integer_value(expires) > 0
                ? (int64_t)json_integer_value(expires)
                : 3600;
    } else {
        snprintf(err, errlen, "%s: the answer has no access_token", what);
    }
    json_decref(body);
    return ok;
}

static void form_field(strbuf *form, const char *name, const char *value)
{
    if (form->len)
        sbuf_append_char(form, '&');
    sbuf_append_str(form, name);
    sbuf_append_char(form, '=');
    percent_encode(form, value, strlen(value), NULL);
}

/* POSTs a form (taking it) to url; the OAuth answer goes to out. */
static bool post_form(const kit_http_settings *http, const char *url,
                      strbuf *form, const char *basic_auth, bq_token *out,
                      char *err, size_t errlen)
{
    char *what = xasprintf("token endpoint %s", url);
    kit_http_request req;
    kit_request_init(&req, "POST", url);
    kit_request_header(&req, "Content-Type: application/x-www-form-urlencoded");
    if (basic_auth)
        kit_request_header(&req, "Authorization: Basic %s", basic_auth);
    size_t len = form->len;
    kit_request_body(&req, sbuf_detach(form), len);
    kit_http_response resp;
    bool ok = perform(http, &req, what, &resp, err, errlen) &&
              take_oauth_token(&resp, what, out, err, errlen);
    kit_response_free(&resp);
    free(what);
    return ok;
}

/* ---- the kinds ---- */

static bool fetch_service_account(const bq_cred *c,
                                  const kit_http_settings *http, bq_token *out,
                                  char *err, size_t errlen)
{
    char *jwt = bq_jwt_assertion(c->key, c->client_email, BQ_SCOPE,
                                 c->token_uri, (int64_t)time(NULL), 3600);
    if (!jwt) {
        snprintf(err, errlen, "cannot sign the token request (OpenSSL)");
        return false;
    }
    strbuf form = STRBUF_INIT;
    form_field(&form, "grant_type",
               "urn:ietf:params:oauth:grant-type:jwt-bearer");
    form_field(&form, "assertion", jwt);
    OPENSSL_cleanse(jwt, strlen(jwt));
    free(jwt);
    return post_form(http, c->token_uri, &form, NULL, out, err, errlen);
}

static bool fetch_authorized_user(const bq_cred *c,
                                  const kit_http_settings *http, bq_token *out,
                                  char *err, size_t errlen)
{
    strbuf form = STRBUF_INIT;
    form_field(&form, "grant_type", "refresh_token");
    form_field(&form, "client_id", c->client_id);
    form_field(&form, "client_secret", c->client_secret);
    form_field(&form, "refresh_token", c->refresh_token);
    return post_form(http, c->token_uri, &form, NULL, out, err, errlen);
}

static bool fetch_metadata(const bq_cred *c, const kit_http_settings *http,
                           bq_token *out, char *err, size_t errlen)
{
    char *url = xasprintf("%s/computeMetadata/v1/instance/service-accounts/"
                          "default/token",
                          c->metadata_base);
    char *what = xasprintf("metadata server %s", c->metadata_base);
    kit_http_request req;
    kit_request_init(&req, "GET", url);
    free(url);
    kit_request_header(&req, "Metadata-Flavor: Google");
    kit_http_response resp;
    bool ok = perform(http, &req, what, &resp, err, errlen) &&
              take_oauth_token(&resp, what, out, err, errlen);
    kit_response_free(&resp);
    free(what);
    return ok;
}

/* ---- external accounts ---- */

/* The subject token in raw (the file's or the URL's whole answer). */
static char *read_subject_raw(const bq_subject_source *s,
                              const kit_http_settings *http, size_t *len,
                              char *err, size_t errlen)
{
    if (s->file) {
        char *data = read_whole_file(s->file, len);
        if (!data)
            snprintf(err, errlen, "cannot read the subject token file %s: %s",
                     s->file, strerror(errno));
        return data;
    }
    char *what = xasprintf("subject token URL %s", s->url);
    kit_http_request req;
    kit_request_init(&req, "GET", s->url);
    for (size_t i = 0; i < s->nheaders; i++)
        kit_request_header(&req, "%s", s->headers[i]);
    kit_http_response resp;
    char *data = NULL;
    if (perform(http, &req, what, &resp, err, errlen)) {
        if (resp.status == 200) {
            data = resp.body ? resp.body : xstrdup("");
            *len = resp.body ? resp.body_len : 0;
            resp.body = NULL;
        } else {
            snprintf(err, errlen, "%s answered HTTP %ld", what, resp.status);
        }
    }
    kit_response_free(&resp);
    free(what);
    return data;
}

/* The subject token as the format says: text (trimmed) or a JSON field. */
static char *subject_token(const bq_subject_source *s,
                           const kit_http_settings *http, char *err,
                           size_t errlen)
{
    size_t len = 0;
    char *raw = read_subject_raw(s, http, &len, err, errlen);
    if (!raw)
        return NULL;
    const char *origin = s->file ? s->file : s->url;
    char *token = NULL;
    if (s->json_field) {
        json_t *root = json_loadb(raw, len, 0, NULL);
        const char *v = json_string_value(json_object_get(root, s->json_field));
        if (v && *v)
            token = xstrdup(v);
        else
            snprintf(err, errlen,
                     "the subject token from %s is not a JSON object with "
                     "a string \"%.60s\"",
                     origin, s->json_field);
        json_decref(root);
    } else {
        size_t start = 0, end = len;
        while (start < end && isspace((unsigned char)raw[start]))
            start++;
        while (end > start && isspace((unsigned char)raw[end - 1]))
            end--;
        if (end > start)
            token = xstrndup(raw + start, end - start);
        else
            snprintf(err, errlen, "the subject token from %s is empty", origin);
    }
    OPENSSL_cleanse(raw, len);
    free(raw);
    return token;
}

static bool exchange_at_sts(const bq_cred *c, const kit_http_settings *http,
                            const char *subject, bq_token *out, char *err,
                            size_t errlen)
{
    strbuf form = STRBUF_INIT;
    form_field(&form, "grant_type",
               "urn:ietf:params:oauth:grant-type:token-exchange");
    form_field(&form, "audience", c->audience);
    form_field(&form, "scope",
               c->impersonation_url ? BQ_CLOUD_PLATFORM_SCOPE : BQ_SCOPE);
    form_field(&form, "requested_token_type",
               "urn:ietf:params:oauth:token-type:access_token");
    form_field(&form, "subject_token", subject);
    form_field(&form, "subject_token_type", c->subject_token_type);
    char *basic = NULL;
    if (c->client_id && c->client_secret) {
        char *pair = xasprintf("%s:%s", c->client_id, c->client_secret);
        basic = base64_encode(pair, strlen(pair));
        OPENSSL_cleanse(pair, strlen(pair));
        free(pair);
    }
    bool ok = post_form(http, c->token_uri, &form, basic, out, err, errlen);
    if (basic) {
        OPENSSL_cleanse(basic, strlen(basic));
        free(basic);
    }
    return ok;
}

/* Seconds from now until an RFC 3339 time ("2030-01-02T03:04:05.6Z");
 * 0 when it cannot be read. */
static int64_t seconds_until(const char *rfc3339)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest =
        rfc3339 ? strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return 0;
    int64_t left = (int64_t)timegm(&tm) - (int64_t)time(NULL);
    return left > 0 ? left : 0;
}

/* generateAccessToken, authorized by the STS token. */
static bool impersonate(const bq_cred *c, const kit_http_settings *http,
                        const bq_token *sts, bq_token *out, char *err,
                        size_t errlen)
{
    const char *what = "service_account_impersonation_url";
    kit_http_request req;
    kit_request_init(&req, "POST", c->impersonation_url);
    kit_request_header(&req, "Content-Type: application/json");
    kit_request_header(&req, "Authorization: Bearer %s", sts->value);
    char *body = xasprintf("{\"scope\":[\"%s\"],\"lifetime\":\"%lds\"}",
                           BQ_SCOPE, c->impersonation_lifetime_s);
    kit_request_body(&req, body, strlen(body));
    kit_http_response resp;
    bool ok = perform(http, &req, what, &resp, err, errlen);
    if (ok && resp.status != 200) {
        answer_error(&resp, what, err, errlen);
        ok = false;
    } else if (ok) {
        json_t *root = json_loads(resp.body ? resp.body : "", 0, NULL);
        const char *token =
            json_string_value(json_object_get(root, "accessToken"));
        int64_t left = seconds_until(
            json_string_value(json_object_get(root, "expireTime")));
        ok = token && *token && left > 0;
        if (ok) {
            out->value = xstrdup(token);
            out->lifetime_s = left;
        } else {
            snprintf(err, errlen,
                     "%s: the answer lacks accessToken or a future "
                     "expireTime",
                     what);
        }
        json_decref(root);
    }
    kit_response_free(&resp);
    return ok;
}

static bool fetch_external_account(const bq_cred *c,
                                   const kit_http_settings *http, bq_token *out,
                                   char *err, size_t errlen)
{
    char *subject = subject_token(&c->source, http, err, errlen);
    if (!subject)
        return false;
    bq_token sts = {0};
    bool ok = exchange_at_sts(c, http, subject, &sts, err, errlen);
    OPENSSL_cleanse(subject, strlen(subject));
    free(subject);
    if (!ok || !c->impersonation_url) {
        if (ok)
            *out = sts;
        return ok;
    }
    ok = impersonate(c, http, &sts, out, err, errlen);
    bq_token_clear(&sts);
    return ok;
}

bool bq_token_fetch(const bq_cred *c, const kit_http_settings *http,
                    bq_token *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    switch (c->kind) {
    case BQ_CRED_SERVICE_ACCOUNT:
        return fetch_service_account(c, http, out, err, errlen);
    case BQ_CRED_AUTHORIZED_USER:
        return fetch_authorized_user(c, http, out, err, errlen);
    case BQ_CRED_EXTERNAL_ACCOUNT:
        return fetch_external_account(c, http, out, err, errlen);
    case BQ_CRED_METADATA:
        break;
    }
    return fetch_metadata(c, http, out, err, errlen);
}
