/* Credentials from credential_process, the container endpoint (ECS, EKS
 * Pod Identity) and EC2 instance metadata, and the pieces every provider
 * shares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "alloc.h"
#include "aws_provider.h"
#include "strbuf.h"

/* The token IMDSv2 hands out lives this long (the SDKs' default). */
#define IMDS_TOKEN_TTL_S 21600
/* A credential_process that prints more than this is not a credential
 * document. */
#define PROCESS_OUTPUT_MAX (64 * 1024)

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void aws_credentials_clear(aws_credentials *c)
{
    wipe_free(c->access_key_id);
    wipe_free(c->secret_access_key);
    wipe_free(c->session_token);
    memset(c, 0, sizeof *c);
}

void aws_credentials_copy(aws_credentials *to, const aws_credentials *from)
{
    to->access_key_id =
        from->access_key_id ? xstrdup(from->access_key_id) : NULL;
    to->secret_access_key =
        from->secret_access_key ? xstrdup(from->secret_access_key) : NULL;
    to->session_token =
        from->session_token ? xstrdup(from->session_token) : NULL;
    to->expiration = from->expiration;
}

time_t aws_parse_time(const char *text)
{
    struct tm tm = {0};
    int consumed = 0;

    if (!text || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year,
                        &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                        &tm.tm_sec, &consumed) != 6)
        return (time_t)-1;
    text += consumed;
    if (*text == '.')
        text += 1 + strspn(text + 1, "0123456789");
    if (strcmp(text, "Z") != 0 && strcmp(text, "+00:00") != 0)
        return (time_t)-1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static const char *json_text(json_t *doc, const char *a, const char *b)
{
    const char *v = json_string_value(json_object_get(doc, a));

    return v || !b ? v : json_string_value(json_object_get(doc, b));
}

bool aws_credentials_from_json(const char *body, const char *what,
                               aws_credentials *out, char *err, size_t errlen)
{
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    const char *id = json_text(doc, "AccessKeyId", NULL);
    const char *secret = json_text(doc, "SecretAccessKey", NULL);
    const char *token = json_text(doc, "Token", "SessionToken");
    const char *expiration = json_text(doc, "Expiration", NULL);

    memset(out, 0, sizeof *out);
    if (!json_is_object(doc) || !id || !secret) {
        /* The body is never quoted: it may hold a secret. */
        snprintf(err, errlen,
                 "%s did not answer a JSON object with AccessKeyId and "
                 "SecretAccessKey",
                 what);
        json_decref(doc);
        return false;
    }
    if (expiration && aws_parse_time(expiration) == (time_t)-1) {
        snprintf(err, errlen,
                 "%s answered an Expiration that is not an "
                 "ISO 8601 UTC time",
                 what);
        json_decref(doc);
        return false;
    }
    out->access_key_id = xstrdup(id);
    out->secret_access_key = xstrdup(secret);
    out->session_token = token && *token ? xstrdup(token) : NULL;
    out->expiration = expiration ? aws_parse_time(expiration) : 0;
    json_decref(doc);
    return true;
}

bool aws_process_fetch(aws_provider *p, aws_credentials *out, char *err,
                       size_t errlen)
{
    FILE *f = popen(p->command, "r");
    strbuf sb = STRBUF_INIT;
    char buf[4096];
    size_t n;
    int status;
    bool ok;

    if (!f) {
        snprintf(err, errlen, "%s: cannot run credential_process",
                 p->description);
        return false;
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 &&
           sb.len < PROCESS_OUTPUT_MAX)
        sbuf_append(&sb, buf, n);
    while (fread(buf, 1, sizeof buf, f) > 0)
        ; /* let it finish writing */
    OPENSSL_cleanse(buf, sizeof buf);
    status = pclose(f);
    if (status != 0) {
        snprintf(err, errlen, "%s: credential_process exited with status %d",
                 p->description,
                 WIFEXITED(status) ? WEXITSTATUS(status) : status);
        OPENSSL_cleanse(sb.data ? sb.data : buf, sb.len);
        sbuf_free(&sb);
        return false;
    }
    sbuf_append_char(&sb, '\0');
    {
        char what[1100];

        snprintf(what, sizeof what, "%s: credential_process", p->description);
        ok = aws_credentials_from_json(sb.data, what, out, err, errlen);
    }
    OPENSSL_cleanse(sb.data, sb.len);
    sbuf_free(&sb);
    return ok;
}

/* GET/PUT url with headers; the body on 200, else false with err. */
static char *http_text(aws_provider *p, const char *method, const char *url,
                       const char *header, const char *what, char *err,
                       size_t errlen)
{
    kit_http_request req;
    kit_http_response resp = {0};
    char *body = NULL;

    kit_request_init(&req, method, url);
    if (header)
        kit_request_header(&req, "%s", header);
    if (!kit_http_perform(&p->http, &req, &resp)) {
        snprintf(err, errlen, "%s: cannot set up a request to %s", what, url);
    } else if (resp.status != 200) {
        if (resp.status == 0)
            snprintf(err, errlen, "%s at %s: %s", what, url,
                     resp.error ? resp.error : "no answer");
        else
            snprintf(err, errlen, "%s at %s answered HTTP %ld", what, url,
                     resp.status);
    } else {
        body = resp.body;
        resp.body = NULL;
    }
    kit_request_free(&req);
    kit_response_free(&resp);
    return body;
}

/* The container endpoint's Authorization value into *token (NULL when
 * none is configured): the file (re-read each time, the agent rotates it)
 * else the variable. False when the file cannot be read. */
static bool container_authorization(aws_provider *p, char **token, char *err,
                                    size_t errlen)
{
    char buf[8192];
    size_t n;
    FILE *f;

    *token = NULL;
    if (!p->auth_token_file) {
        *token = p->auth_token ? xstrdup(p->auth_token) : NULL;
        return true;
    }
    if (!(f = fopen(p->auth_token_file, "r"))) {
        snprintf(err, errlen,
                 "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \"%s\"",
                 p->auth_token_file);
        return false;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    *token = xstrdup(buf);
    OPENSSL_cleanse(buf, sizeof buf);
    return true;
}

bool aws_container_fetch(aws_provider *p, aws_credentials *out, char *err,
                         size_t errlen)
{
    char *token, *header = NULL, *body;
    bool ok;

    if (!container_authorization(p, &token, err, errlen))
        return false;
    if (token) {
        header = xasprintf("Authorization: %s", token);
        wipe_free(token);
    }
    body = http_text(p, "GET", p->url, header,
                     "the container credentials endpoint", err, errlen);
    wipe_free(header);
    if (!body)
        return false;
    ok = aws_credentials_from_json(body, "the container credentials endpoint",
                                   out, err, errlen);
    wipe_free(body);
    return ok;
}

/* IMDSv2's session token, or NULL (err set). */
static char *imds_token(aws_provider *p, char *err, size_t errlen)
{
    char url[1200], header[80];

    snprintf(url, sizeof url, "%s/latest/api/token", p->url);
    snprintf(header, sizeof header, "X-aws-ec2-metadata-token-ttl-seconds: %d",
             IMDS_TOKEN_TTL_S);
    return http_text(p, "PUT", url, header, "instance metadata (IMDSv2 token)",
                     err, errlen);
}

bool aws_imds_fetch(aws_provider *p, aws_credentials *out, char *err,
                    size_t errlen)
{
    char url[1400], *token = imds_token(p, err, errlen), *header = NULL;
    char *roles, *body;
    bool ok;

    if (!token && !p->imds_v1_fallback)
        return false;
    if (token)
        header = xasprintf("X-aws-ec2-metadata-token: %s", token);
    wipe_free(token);
    snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/",
             p->url);
    roles = http_text(p, "GET", url, header, "instance metadata", err, errlen);
    if (!roles || !*roles) {
        if (roles)
            snprintf(err, errlen,
                     "instance metadata at %s: the instance has "
                     "no IAM role",
                     p->url);
        free(roles);
        wipe_free(header);
        return false;
    }
    roles[strcspn(roles, "\r\n")] = '\0';
    snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/%s",
             p->url, roles);
    free(roles);
    body = http_text(p, "GET", url, header, "instance metadata", err, errlen);
    wipe_free(header);
    if (!body)
        return false;
    ok = aws_credentials_from_json(body, "instance metadata", out, err, errlen);
    wipe_free(body);
    return ok;
}

bool aws_provider_fetch(aws_provider *p, aws_credentials *out, char *err,
                        size_t errlen)
{
    memset(out, 0, sizeof *out);
    switch (p->kind) {
    case AWS_PROVIDER_STATIC:
        aws_credentials_copy(out, &p->fixed);
        return true;
    case AWS_PROVIDER_WEB_IDENTITY:
    case AWS_PROVIDER_ASSUME_ROLE:
        return aws_sts_fetch(p, out, err, errlen);
    case AWS_PROVIDER_PROCESS:
        return aws_process_fetch(p, out, err, errlen);
    case AWS_PROVIDER_CONTAINER:
        return aws_container_fetch(p, out, err, errlen);
    case AWS_PROVIDER_IMDS:
        return aws_imds_fetch(p, out, err, errlen);
    }
    snprintf(err, errlen, "unknown credential provider");
    return false;
}

void aws_provider_free(aws_provider *p)
{
    if (!p)
        return;
    aws_credentials_clear(&p->fixed);
    aws_provider_free(p->source);
    free(p->role_arn);
    free(p->session_name);
    free(p->external_id);
    free(p->token_file);
    free(p->sts_url);
    free(p->region);
    free(p->command);
    free(p->url);
    wipe_free(p->auth_token);
    free(p->auth_token_file);
    free(p);
}
