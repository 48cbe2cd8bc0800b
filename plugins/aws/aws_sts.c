/* AWS STS (Query API, version 2011-06-15): AssumeRole, signed with the
 * source credentials, and AssumeRoleWithWebIdentity, unsigned (the token
 * is the proof). Both answer XML with the new credentials. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "aws_config.h"
#include "aws_provider.h"
#include "percent.h"
#include "sigv4.h"
#include "strbuf.h"

#define STS_FORM_TYPE "application/x-www-form-urlencoded; charset=utf-8"
/* A web identity token (a JWT) is a few kilobytes at most. */
#define TOKEN_FILE_MAX (64 * 1024)

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void form_field(strbuf *sb, const char *name, const char *value)
{
    if (!value)
        return;
    sbuf_appendf(sb, "%s%s=", sb->len ? "&" : "", name);
    percent_encode(sb, value, strlen(value), NULL);
}

/* The text of the first <tag> element of xml (malloc'd), or NULL. */
static char *xml_text(const char *xml, const char *tag)
{
    char open[64], close[64];
    const char *start, *end;

    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    if (!xml || !(start = strstr(xml, open)))
        return NULL;
    start += strlen(open);
    if (!(end = strstr(start, close)))
        return NULL;
    return xstrndup(start, (size_t)(end - start));
}

static char *read_token_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;

    if (!f) {
        snprintf(err, errlen,
                 "cannot read the web identity token file "
                 "\"%s\"",
                 path);
        return NULL;
    }
    buf = xmalloc(TOKEN_FILE_MAX + 1);
    n = fread(buf, 1, TOKEN_FILE_MAX, f);
    fclose(f);
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        snprintf(err, errlen, "the web identity token file \"%s\" is empty",
                 path);
        free(buf);
        return NULL;
    }
    return buf;
}

/* The request body; NULL with err when the web identity token cannot be
 * read. */
static char *sts_body(aws_provider *p, char *err, size_t errlen)
{
    strbuf sb = STRBUF_INIT;
    char duration[16];
    bool web = p->kind == AWS_PROVIDER_WEB_IDENTITY;
    char *token = web ? read_token_file(p->token_file, err, errlen) : NULL;

    if (web && !token)
        return NULL;
    form_field(&sb, "Action", web ? "AssumeRoleWithWebIdentity" : "AssumeRole");
    form_field(&sb, "Version", "2011-06-15");
    form_field(&sb, "RoleArn", p->role_arn);
    form_field(&sb, "RoleSessionName", p->session_name);
    if (p->duration_s > 0) {
        snprintf(duration, sizeof duration, "%d", p->duration_s);
        form_field(&sb, "DurationSeconds", duration);
    }
    form_field(&sb, "ExternalId", p->external_id);
    form_field(&sb, "WebIdentityToken", token);
    wipe_free(token);
    sbuf_append_char(&sb, '\0');
    sb.len--;
    return sbuf_detach(&sb);
}

/* Adds X-Amz-Date, the session token and Authorization for AssumeRole,
 * signed with the source profile's credentials. */
static bool sign_assume_role(aws_provider *p, kit_http_request *req,
                             const char *body, char *err, size_t errlen)
{
    aws_credentials src;
    char *host, *path;
    sigv4_signature sig;
    bool ok;

    if (!aws_provider_fetch(p->source, &src, err, errlen))
        return false;
    if (!aws_endpoint_parts(p->sts_url, &host, &path)) {
        snprintf(err, errlen, "bad STS endpoint \"%s\"", p->sts_url);
        aws_credentials_clear(&src);
        return false;
    }
    sigv4_header headers[] = {{"Host", host}, {"Content-Type", STS_FORM_TYPE}};
    sigv4_request sreq = {.method = "POST",
                          .path = path,
                          .headers = headers,
                          .nheaders = 2,
                          .body = body,
                          .body_len = strlen(body)};
    sigv4_params params = {.access_key_id = src.access_key_id,
                           .secret_access_key = src.secret_access_key,
                           .session_token = src.session_token,
                           .region = p->region,
                           .service = "sts",
                           .when = time(NULL),
                           .normalize_path = true};
    ok = sigv4_sign(&sreq, &params, &sig, err, errlen);
    if (ok) {
        kit_request_header(req, "X-Amz-Date: %s", sig.amz_date);
        if (src.session_token)
            kit_request_header(req, "X-Amz-Security-Token: %s",
                               src.session_token);
        kit_request_header(req, "Authorization: %s", sig.authorization);
        sigv4_signature_free(&sig);
    }
    free(host);
    free(path);
    aws_credentials_clear(&src);
    return ok;
}

static bool sts_answer(aws_provider *p, const kit_http_response *resp,
                       aws_credentials *out, char *err, size_t errlen)
{
    char *expiration;

    if (resp->status != 200) {
        char *code = xml_text(resp->body, "Code");
        char *message = xml_text(resp->body, "Message");

        if (resp->status == 0)
            snprintf(err, errlen, "%s: STS at %s: %s", p->description,
                     p->sts_url, resp->error ? resp->error : "no answer");
        else
            snprintf(err, errlen, "%s: STS at %s answered HTTP %ld %s: %.300s",
                     p->description, p->sts_url, resp->status, code ? code : "",
                     message ? message : "");
        free(code);
        free(message);
        return false;
    }
    out->access_key_id = xml_text(resp->body, "AccessKeyId");
    out->secret_access_key = xml_text(resp->body, "SecretAccessKey");
    out->session_token = xml_text(resp->body, "SessionToken");
    expiration = xml_text(resp->body, "Expiration");
    out->expiration = aws_parse_time(expiration);
    free(expiration);
    if (!out->access_key_id || !out->secret_access_key || !out->session_token ||
        out->expiration == (time_t)-1) {
        snprintf(err, errlen,
                 "%s: STS at %s answered without complete "
                 "Credentials",
                 p->description, p->sts_url);
        aws_credentials_clear(out);
        return false;
    }
    return true;
}

bool aws_sts_fetch(aws_provider *p, aws_credentials *out, char *err,
                   size_t errlen)
{
    kit_http_request req;
    kit_http_response resp = {0};
    char *body = sts_body(p, err, errlen);
    bool ok = false;

    memset(out, 0, sizeof *out);
    if (!body)
        return false;
    kit_request_init(&req, "POST", p->sts_url);
    kit_request_header(&req, "Content-Type: %s", STS_FORM_TYPE);
    if (p->kind == AWS_PROVIDER_ASSUME_ROLE &&
        !sign_assume_role(p, &req, body, err, errlen)) {
        kit_request_free(&req);
        wipe_free(body);
        return false;
    }
    kit_request_body(&req, xstrdup(body), strlen(body));
    if (!kit_http_perform(&p->http, &req, &resp))
        snprintf(err, errlen, "cannot set up a request to STS");
    else
        ok = sts_answer(p, &resp, out, err, errlen);
    if (req.body)
        OPENSSL_cleanse(req.body, req.body_len);
    kit_request_free(&req);
    kit_response_free(&resp);
    wipe_free(body);
    return ok;
}
