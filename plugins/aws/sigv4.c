/* AWS Signature Version 4, header form: canonical request, string to sign,
 * derived signing key, signature. */
#include "sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hex.h"
#include "percent.h"
#include "strbuf.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;

    if (!EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL) ||
        digest_len != 32) {
        /* Only a broken OpenSSL gets here; a wrong hash would make every
         * request fail loudly at the service, never silently succeed. */
        memset(out, '0', 64);
        out[64] = '\0';
        return;
    }
    hex_encode(digest, 32, out);
    out[64] = '\0';
}

static bool hmac_sha256(const void *key, size_t key_len, const char *msg,
                        unsigned char out[32])
{
    unsigned int out_len = 0;

    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg,
                strlen(msg), out, &out_len) != NULL &&
           out_len == 32;
}

bool sigv4_signing_key(const char *secret_access_key, const char *date,
                       const char *region, const char *service,
                       unsigned char out[32])
{
    size_t secret_len = strlen(secret_access_key);
    char *secret_key = xmalloc(secret_len + 5);
    unsigned char k_date[32], k_region[32], k_service[32];
    bool ok;

    memcpy(secret_key, "AWS4", 4);
    memcpy(secret_key + 4, secret_access_key, secret_len + 1);
    ok = hmac_sha256(secret_key, secret_len + 4, date, k_date) &&
         hmac_sha256(k_date, 32, region, k_region) &&
         hmac_sha256(k_region, 32, service, k_service) &&
         hmac_sha256(k_service, 32, "aws4_request", out);
    /* Keys must not linger in freed heap memory any longer than needed. */
    OPENSSL_cleanse(secret_key, secret_len + 4);
    free(secret_key);
    OPENSSL_cleanse(k_date, sizeof k_date);
    OPENSSL_cleanse(k_region, sizeof k_region);
    OPENSSL_cleanse(k_service, sizeof k_service);
    return ok;
}

/* RFC 3986 dot-segment removal, plus dropping empty segments ("//"), as
 * the AWS SDKs normalise paths for every service but S3. */
static void canonical_path(strbuf *out, const char *path, bool normalize)
{
    size_t len = strlen(path);
    const char **segs;
    size_t *seg_lens;
    size_t nsegs = 0;
    bool trailing_slash = false;
    const char *p = path, *end = path + len;

    if (!normalize || len == 0) {
        if (len == 0)
            sbuf_append_char(out, '/');
        else
            percent_encode(out, path, len, "/");
        return;
    }
    segs = xcalloc(len + 1, sizeof *segs);
    seg_lens = xcalloc(len + 1, sizeof *seg_lens);
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);

        trailing_slash = slash != NULL;
        if (n == 1 && p[0] == '.') {
            trailing_slash = true;
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (nsegs > 0)
                nsegs--;
            trailing_slash = true;
        } else if (n > 0) {
            segs[nsegs] = p;
            seg_lens[nsegs++] = n;
            trailing_slash = slash != NULL;
        }
        p += n + (slash ? 1 : 0);
    }
    sbuf_append_char(out, '/');
    for (size_t i = 0; i < nsegs; i++) {
        if (i > 0)
            sbuf_append_char(out, '/');
        percent_encode(out, segs[i], seg_lens[i], NULL);
    }
    if (nsegs > 0 && trailing_slash)
        sbuf_append_char(out, '/');
    free(segs);
    free(seg_lens);
}

typedef struct query_param {
    char *key; /* encoded */
    char *value;
} query_param;

static int compare_params(const void *a, const void *b)
{
    const query_param *pa = a, *pb = b;
    int c = strcmp(pa->key, pb->key);

    return c ? c : strcmp(pa->value, pb->value);
}

/* Query parameters arrive in wire form; decoding first makes "%e1%88%b4",
 * "%E1%88%B4" and the raw UTF-8 sign the same way. */
static char *encode_component(const char *s, size_t len)
{
    char *decoded = percent_decode(s, len);
    strbuf sb = STRBUF_INIT;

    percent_encode(&sb, decoded, strlen(decoded), NULL);
    free(decoded);
    return sbuf_detach(&sb);
}

static void canonical_query(strbuf *out, const char *query)
{
    query_param *params;
    size_t n = 0, cap = 1;
    const char *p = query;

    if (!query || !*query)
        return;
    for (const char *q = query; *q; q++)
        cap += *q == '&';
    params = xcalloc(cap, sizeof *params);
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);

        if (len > 0) {
            size_t klen = eq ? (size_t)(eq - p) : len;

            params[n].key = encode_component(p, klen);
            params[n].value =
                eq ? encode_component(eq + 1, len - klen - 1) : xstrdup("");
            n++;
        }
        p += len + (amp ? 1 : 0);
    }
    qsort(params, n, sizeof *params, compare_params);
    for (size_t i = 0; i < n; i++) {
        sbuf_appendf(out, "%s%s=%s", i ? "&" : "", params[i].key,
                     params[i].value);
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
}

typedef struct canon_header {
    char *name; /* lower case */
    strbuf value;
    size_t order; /* first appearance, to keep sorting stable */
} canon_header;

/* Trims and folds every whitespace run (including folded continuation
 * lines) to one space, as the signing rules require. */
static void append_folded(strbuf *out, const char *value)
{
    bool pending_space = false;
    bool any = false;

    for (const char *v = value; *v; v++) {
        if (isspace((unsigned char)*v)) {
            pending_space = any;
            continue;
        }
        if (pending_space)
            sbuf_append_char(out, ' ');
        pending_space = false;
        sbuf_append_char(out, *v);
        any = true;
    }
    if (!out->data)
        sbuf_append(out, "", 0);
}

static int compare_headers(const void *a, const void *b)
{
    const canon_header *ha = a, *hb = b;
    int c = strcmp(ha->name, hb->name);

    if (c)
        return c;
    return ha->order < hb->order ? -1 : ha->order > hb->order;
}

static void add_header(canon_header *headers, size_t *n, const char *name,
                       const char *value)
{
    char *lower = xstrdup(name);

    for (char *c = lower; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    /* Repeated names sign as one header, values joined by commas in the
     * order they appear. */
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(headers[i].name, lower) == 0) {
            sbuf_append_char(&headers[i].value, ',');
            append_folded(&headers[i].value, value);
            free(lower);
            return;
        }
    }
    headers[*n].name = lower;
    headers[*n].value = (strbuf)STRBUF_INIT;
    headers[*n].order = *n;
    append_folded(&headers[*n].value, value);
    (*n)++;
}

bool sigv4_sign(const sigv4_request *req, const sigv4_params *params,
                sigv4_signature *sig, char *err, size_t errlen)
{
    struct tm tm;
    char date[9];
    canon_header *headers;
    size_t nheaders = 0;
    bool have_host = false;
    strbuf canon = STRBUF_INIT, signed_names = STRBUF_INIT;
    strbuf sts = STRBUF_INIT, auth = STRBUF_INIT;
    char canon_hash[65];
    unsigned char k_signing[32];
    unsigned char raw_signature[32];
    bool ok;

    memset(sig, 0, sizeof *sig);
    if (!gmtime_r(&params->when, &tm)) {
        snprintf(err, errlen, "cannot convert the signing time");
        return false;
    }
    strftime(sig->amz_date, sizeof sig->amz_date, "%Y%m%dT%H%M%SZ", &tm);
    memcpy(date, sig->amz_date, 8);
    date[8] = '\0';
    sigv4_sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0,
                     sig->payload_sha256);

    headers = xcalloc(req->nheaders + 3, sizeof *headers);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, "host") == 0)
            have_host = true;
        add_header(headers, &nheaders, req->headers[i].name,
                   req->headers[i].value);
    }
    add_header(headers, &nheaders, "x-amz-date", sig->amz_date);
    if (params->session_token && *params->session_token &&
        !params->omit_session_token)
        add_header(headers, &nheaders, "x-amz-security-token",
                   params->session_token);
    if (params->sign_body)
        add_header(headers, &nheaders, "x-amz-content-sha256",
                   sig->payload_sha256);
    qsort(headers, nheaders, sizeof *headers, compare_headers);

    sbuf_appendf(&canon, "%s\n", req->method);
    canonical_path(&canon, req->path ? req->path : "/", params->normalize_path);
    sbuf_append_char(&canon, '\n');
    canonical_query(&canon, req->query);
    sbuf_append_char(&canon, '\n');
    for (size_t i = 0; i < nheaders; i++) {
        sbuf_appendf(&canon, "%s:%s\n", headers[i].name, headers[i].value.data);
        sbuf_appendf(&signed_names, "%s%s", i ? ";" : "", headers[i].name);
        free(headers[i].name);
        sbuf_free(&headers[i].value);
    }
    free(headers);
    sbuf_appendf(&canon, "\n%s\n%s", signed_names.data, sig->payload_sha256);
    sigv4_sha256_hex(canon.data, canon.len, canon_hash);

    sbuf_appendf(&sts, "%s\n%s\n%s/%s/%s/aws4_request\n%s", SIGV4_ALGORITHM,
                 sig->amz_date, date, params->region, params->service,
                 canon_hash);

    ok = sigv4_signing_key(params->secret_access_key, date, params->region,
                           params->service, k_signing) &&
         hmac_sha256(k_signing, 32, sts.data, raw_signature);
    OPENSSL_cleanse(k_signing, sizeof k_signing);
    if (!ok) {
        snprintf(err, errlen, "HMAC-SHA256 failed in OpenSSL");
        sbuf_free(&canon);
        sbuf_free(&signed_names);
        sbuf_free(&sts);
        return false;
    }
    hex_encode(raw_signature, 32, sig->signature);
    sig->signature[64] = '\0';

    sbuf_appendf(&auth,
                 "%s Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                 "Signature=%s",
                 SIGV4_ALGORITHM, params->access_key_id, date, params->region,
                 params->service, signed_names.data, sig->signature);
    sbuf_free(&signed_names);
    sig->authorization = sbuf_detach(&auth);
    sig->canonical_request = sbuf_detach(&canon);
    sig->string_to_sign = sbuf_detach(&sts);
    if (!have_host) {
        snprintf(err, errlen, "the request to sign has no Host header");
        sigv4_signature_free(sig);
        return false;
    }
    return true;
}

void sigv4_signature_free(sigv4_signature *sig)
{
    free(sig->authorization);
    free(sig->canonical_request);
    free(sig->string_to_sign);
    sig->authorization = sig->canonical_request = sig->string_to_sign = NULL;
}
