#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bq_creds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "alloc.h"
#include "fileio.h"

const char *bq_cred_kind_name(bq_cred_kind kind)
{
    switch (kind) {
    case BQ_CRED_SERVICE_ACCOUNT:
        return "service_account";
    case BQ_CRED_AUTHORIZED_USER:
        return "authorized_user";
    case BQ_CRED_EXTERNAL_ACCOUNT:
        return "external_account";
    case BQ_CRED_METADATA:
        break;
    }
    return "metadata";
}

/* A string member, copied; NULL when absent or empty. */
static char *opt_string(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v && *v ? xstrdup(v) : NULL;
}

/* A string member that must be there; false with err naming it. */
static bool need_string(json_t *obj, const char *key, const char *where,
                        char **out, char *err, size_t errlen)
{
    *out = opt_string(obj, key);
    if (!*out)
        snprintf(err, errlen, "\"%s\" is missing or empty (needed %s)", key,
                 where);
    return *out != NULL;
}

static bool parse_service_account(json_t *root, bq_cred *c, char *err,
                                  size_t errlen)
{
    const char *where = "for type service_account";
    char *pem = NULL;
    if (!need_string(root, "client_email", where, &c->client_email, err,
                     errlen) ||
        !need_string(root, "private_key", where, &pem, err, errlen))
        return false;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    c->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
    if (!c->key || EVP_PKEY_base_id(c->key) != EVP_PKEY_RSA) {
        snprintf(err, errlen, "\"private_key\" is not an RSA key in PEM form");
        return false;
    }
    c->token_uri = opt_string(root, "token_uri");
    return true;
}

static bool parse_authorized_user(json_t *root, bq_cred *c, char *err,
                                  size_t errlen)
{
    const char *where = "for type authorized_user";
    c->token_uri = opt_string(root, "token_uri");
    return need_string(root, "client_id", where, &c->client_id, err, errlen) &&
           need_string(root, "client_secret", where, &c->client_secret, err,
                       errlen) &&
           need_string(root, "refresh_token", where, &c->refresh_token, err,
                       errlen);
}

/* credential_source.headers: {"Name": "value", ...}. */
static bool parse_source_headers(json_t *headers, bq_subject_source *s,
                                 char *err, size_t errlen)
{
    if (!headers)
        return true;
    if (!json_is_object(headers)) {
        snprintf(err, errlen,
                 "\"credential_source.headers\" is not an "
                 "object");
        return false;
    }
    s->headers = xcalloc(json_object_size(headers) + 1, sizeof *s->headers);
    const char *name;
    json_t *value;
    json_object_foreach(headers, name, value)
    {
        if (!json_is_string(value)) {
            snprintf(err, errlen,
                     "\"credential_source.headers.%.60s\" is not a string",
                     name);
            return false;
        }
        s->headers[s->nheaders++] =
            xasprintf("%s: %s", name, json_string_value(value));
    }
    return true;
}

static bool parse_source_format(json_t *format, bq_subject_source *s, char *err,
                                size_t errlen)
{
    const char *type = json_string_value(json_object_get(format, "type"));
    if (!format || !type || strcmp(type, "text") == 0)
        return true;
    if (strcmp(type, "json") != 0) {
        snprintf(err, errlen,
                 "\"credential_source.format.type\" is \"%.20s\" (text or "
                 "json are supported)",
                 type);
        return false;
    }
    return need_string(format, "subject_token_field_name",
                       "in credential_source.format of type json",
                       &s->json_field, err, errlen);
}

static bool parse_credential_source(json_t *src, bq_subject_source *s,
                                    char *err, size_t errlen)
{
    if (!json_is_object(src)) {
        snprintf(err, errlen,
                 "\"credential_source\" is missing or not an object "
                 "(needed for type external_account)");
        return false;
    }
    s->file = opt_string(src, "file");
    s->url = opt_string(src, "url");
    if (!s->file && !s->url) {
        snprintf(err, errlen,
                 "\"credential_source\" has neither \"file\" nor \"url\" "
                 "(AWS, executable and certificate sources are not "
                 "supported)");
        return false;
    }
    return parse_source_headers(json_object_get(src, "headers"), s, err,
                                errlen) &&
           parse_source_format(json_object_get(src, "format"), s, err, errlen);
}

static bool parse_external_account(json_t *root, bq_cred *c, char *err,
                                   size_t errlen)
{
    const char *where = "for type external_account";
    if (!need_string(root, "audience", where, &c->audience, err, errlen) ||
        !need_string(root, "subject_token_type", where, &c->subject_token_type,
                     err, errlen) ||
        !need_string(root, "token_url", where, &c->token_uri, err, errlen))
        return false;
    c->impersonation_url =
        opt_string(root, "service_account_impersonation_url");
    json_t *lifetime =
        json_object_get(json_object_get(root, "service_account_impersonation"),
                        "token_lifetime_seconds");
    c->impersonation_lifetime_s =
        json_is_integer(lifetime) ? (long)json_integer_value(lifetime) : 3600;
    if (c->impersonation_lifetime_s < 600 ||
        c->impersonation_lifetime_s > 43200) {
        snprintf(err, errlen,
                 "\"service_account_impersonation.token_lifetime_seconds\" "
                 "must be from 600 to 43200");
        return false;
    }
    c->client_id = opt_string(root, "client_id");
    c->client_secret = opt_string(root, "client_secret");
    return parse_credential_source(json_object_get(root, "credential_source"),
                                   &c->source, err, errlen);
}

bool bq_cred_parse(const char *json, size_t len, bq_cred *c, char *err,
                   size_t errlen)
{
    memset(c, 0, sizeof *c);
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!json_is_object(root)) {
        /* json_error_t's text may quote the input, so it is not used. */
        snprintf(err, errlen, "not a JSON object");
        json_decref(root);
        return false;
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    bool ok = false;
    if (!type) {
        snprintf(err, errlen,
                 "\"type\" is missing (service_account, "
                 "authorized_user or external_account)");
    } else if (strcmp(type, "service_account") == 0) {
        c->kind = BQ_CRED_SERVICE_ACCOUNT;
        ok = parse_service_account(root, c, err, errlen);
    } else if (strcmp(type, "authorized_user") == 0) {
        c->kind = BQ_CRED_AUTHORIZED_USER;
        ok = parse_authorized_user(root, c, err, errlen);
    } else if (strcmp(type, "external_account") == 0) {
        c->kind = BQ_CRED_EXTERNAL_ACCOUNT;
        ok = parse_external_account(root, c, err, errlen);
    } else {
        snprintf(err, errlen,
                 "\"type\" is \"%.40s\", which is not supported "
                 "(service_account, authorized_user and external_account "
                 "are)",
                 type);
    }
    if (ok && !c->token_uri)
        c->token_uri = xstrdup(BQ_DEFAULT_TOKEN_URI);
    json_decref(root);
    if (!ok)
        bq_cred_free(c);
    return ok;
}

void bq_cred_metadata(const char *base, bq_cred *c)
{
    memset(c, 0, sizeof *c);
    c->kind = BQ_CRED_METADATA;
    const char *host = getenv("GCE_METADATA_HOST");
    if (base && *base)
        c->metadata_base = xstrdup(base);
    else
        c->metadata_base = xasprintf(
            "http://%s", host && *host ? host : BQ_DEFAULT_METADATA_HOST);
}

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void bq_cred_free(bq_cred *c)
{
    EVP_PKEY_free(c->key);
    free(c->token_uri);
    free(c->client_email);
    free_secret(c->client_id);
    free_secret(c->client_secret);
    free_secret(c->refresh_token);
    free(c->audience);
    free(c->subject_token_type);
    free(c->impersonation_url);
    free(c->source.file);
    free(c->source.url);
    for (size_t i = 0; i < c->source.nheaders; i++)
        free_secret(c->source.headers[i]);
    free(c->source.headers);
    free(c->source.json_field);
    free(c->metadata_base);
    memset(c, 0, sizeof *c);
}

/* gcloud's file, when it exists. */
static char *well_known_path(void)
{
    const char *dir = getenv("CLOUDSDK_CONFIG");
    char *path;
    if (dir && *dir) {
        path = xasprintf("%s/%s", dir, BQ_WELL_KNOWN_FILE);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return NULL;
        path = xasprintf("%s/.config/gcloud/%s", home, BQ_WELL_KNOWN_FILE);
    }
    if (access(path, F_OK) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

char *bq_cred_discover_file(const char *explicit_path, bool well_known,
                            const char **source)
{
    const char *env = getenv("GOOGLE_APPLICATION_CREDENTIALS");
    if (explicit_path && *explicit_path) {
        *source = "credentials_file";
        return xstrdup(explicit_path);
    }
    if (env && *env) {
        *source = "GOOGLE_APPLICATION_CREDENTIALS";
        return xstrdup(env);
    }
    *source = "gcloud's well-known file";
    return well_known ? well_known_path() : NULL;
}

bool bq_cred_load(const char *path, bq_cred *out, char *err, size_t errlen)
{
    size_t len = 0;
    char *data = read_whole_file(path, &len);
    if (!data) {
        snprintf(err, errlen, "cannot read the credentials file %s: %s", path,
                 strerror(errno));
        return false;
    }
    char why[300];
    bool ok = bq_cred_parse(data, len, out, why, sizeof why);
    OPENSSL_cleanse(data, len);
    free(data);
    if (!ok)
        snprintf(err, errlen, "credentials file %s: %s", path, why);
    return ok;
}
