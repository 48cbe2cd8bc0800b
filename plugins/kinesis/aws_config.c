/* Credentials, region and endpoint resolution as the AWS SDKs do it. */
#include "aws_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "strbuf.h"

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

static const char *env(const char *name)
{
    return nonempty(getenv(name));
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

typedef struct profile_keys {
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
} profile_keys;

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* Reads [profile] of an INI-style credentials file. Returns 1 when the
 * profile was found, 0 when the file or the profile is absent, -1 on a read
 * error (err set). */
static int read_profile(const char *path, const char *profile,
                        profile_keys *keys, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    bool in_profile = false, found = false;

    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read the credentials file \"%s\": %s",
                 path, strerror(errno));
        return -1;
    }
    while (getline(&line, &cap, f) >= 0) {
        char *l = trim(line), *eq, *key, *value;
        char **slot = NULL;

        if (*l == '\0' || *l == '#' || *l == ';')
            continue;
        if (*l == '[') {
            char *close = strchr(l, ']');

            if (close)
                *close = '\0';
            in_profile = strcmp(trim(l + 1), profile) == 0;
            found = found || in_profile;
            continue;
        }
        if (!in_profile || !(eq = strchr(l, '=')))
            continue;
        *eq = '\0';
        key = trim(l);
        value = trim(eq + 1);
        if (strcasecmp(key, "aws_access_key_id") == 0)
            slot = &keys->access_key_id;
        else if (strcasecmp(key, "aws_secret_access_key") == 0)
            slot = &keys->secret_access_key;
        else if (strcasecmp(key, "aws_session_token") == 0)
            slot = &keys->session_token;
        if (slot && *value) {
            wipe_free(*slot);
            *slot = xstrdup(value);
        }
    }
    if (line) {
        OPENSSL_cleanse(line, cap);
        free(line);
    }
    fclose(f);
    return found ? 1 : 0;
}

static bool resolve_credentials(const aws_explicit_settings *given,
                                aws_settings *out, char *err, size_t errlen)
{
    const char *profile, *file;
    char *default_file = NULL;
    profile_keys keys = {0};
    int found;

    if (nonempty(given->access_key_id) || nonempty(given->secret_access_key)) {
        if (!nonempty(given->access_key_id) ||
            !nonempty(given->secret_access_key)) {
            snprintf(err, errlen,
                     "access_key_id and secret_access_key must be given "
                     "together");
            return false;
        }
        out->access_key_id = xstrdup(given->access_key_id);
        out->secret_access_key = xstrdup(given->secret_access_key);
        out->session_token = dup_or_null(nonempty(given->session_token));
        snprintf(out->credential_source, sizeof out->credential_source,
                 "sink options");
        return true;
    }
    /* An explicit profile option is an explicit choice too: it wins over
     * keys in the environment (which may belong to another account). */
    if (!nonempty(given->profile) && env("AWS_ACCESS_KEY_ID") &&
        env("AWS_SECRET_ACCESS_KEY")) {
        out->access_key_id = xstrdup(env("AWS_ACCESS_KEY_ID"));
        out->secret_access_key = xstrdup(env("AWS_SECRET_ACCESS_KEY"));
        out->session_token = dup_or_null(env("AWS_SESSION_TOKEN"));
        snprintf(out->credential_source, sizeof out->credential_source,
                 "environment");
        return true;
    }

    profile = nonempty(given->profile);
    if (!profile)
        profile = env("AWS_PROFILE");
    if (!profile)
        profile = "default";
    file = env("AWS_SHARED_CREDENTIALS_FILE");
    if (!file && env("HOME")) {
        strbuf path = STRBUF_INIT;

        sbuf_appendf(&path, "%s/.aws/credentials", env("HOME"));
        default_file = sbuf_detach(&path);
        file = default_file;
    }
    found = file ? read_profile(file, profile, &keys, err, errlen) : 0;
    if (found < 0) {
        free(default_file);
        return false;
    }
    if (found > 0 && keys.access_key_id && keys.secret_access_key) {
        out->access_key_id = keys.access_key_id;
        out->secret_access_key = keys.secret_access_key;
        out->session_token = keys.session_token;
        snprintf(out->credential_source, sizeof out->credential_source,
                 "%s [%s]", file, profile);
        free(default_file);
        return true;
    }
    wipe_free(keys.access_key_id);
    wipe_free(keys.secret_access_key);
    wipe_free(keys.session_token);
    if (found > 0)
        snprintf(err, errlen,
                 "profile [%s] of \"%s\" lacks aws_access_key_id or "
                 "aws_secret_access_key",
                 profile, file);
    else
        snprintf(err, errlen,
                 "no AWS credentials: set the access_key_id and "
                 "secret_access_key options, AWS_ACCESS_KEY_ID and "
                 "AWS_SECRET_ACCESS_KEY, or profile [%s] in %s",
                 profile, file ? file : "~/.aws/credentials");
    free(default_file);
    return false;
}

static char *default_endpoint(const char *service, const char *region)
{
    /* The China partition lives under its own domain. */
    const char *domain =
        strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
    strbuf sb = STRBUF_INIT;

    sbuf_appendf(&sb, "https://%s.%s.%s", service, region, domain);
    return sbuf_detach(&sb);
}

static char *service_endpoint_env(const char *service)
{
    char name[128];
    size_t n =
        (size_t)snprintf(name, sizeof name, "AWS_ENDPOINT_URL_%s", service);

    for (size_t i = 0; i < n && i < sizeof name; i++)
        name[i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
    return dup_or_null(env(name));
}

bool aws_endpoint_parts(const char *endpoint, char **host_header, char **path)
{
    const char *rest, *slash, *colon;
    bool https;
    size_t host_len;

    *host_header = *path = NULL;
    if (strncasecmp(endpoint, "https://", 8) == 0) {
        https = true;
        rest = endpoint + 8;
    } else if (strncasecmp(endpoint, "http://", 7) == 0) {
        https = false;
        rest = endpoint + 7;
    } else {
        return false;
    }
    slash = strchr(rest, '/');
    host_len = slash ? (size_t)(slash - rest) : strlen(rest);
    if (host_len == 0 || memchr(rest, '@', host_len))
        return false;
    colon = memchr(rest, ':', host_len);
    /* IPv6 literals carry colons inside brackets. */
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', host_len);

        colon = close && close + 1 < rest + host_len && close[1] == ':'
                    ? close + 1
                    : NULL;
    }
    if (colon) {
        size_t port_len = host_len - (size_t)(colon + 1 - rest);
        const char *default_port = https ? "443" : "80";

        /* curl leaves a default port out of Host; so must the signature. */
        if (port_len == strlen(default_port) &&
            strncmp(colon + 1, default_port, port_len) == 0)
            host_len = (size_t)(colon - rest);
    }
    *host_header = xstrndup(rest, host_len);
    *path = xstrdup(slash && slash[1] ? slash : "/");
    return true;
}

bool aws_settings_resolve(const aws_explicit_settings *given,
                          const char *service, aws_settings *out, char *err,
                          size_t errlen)
{
    const char *region;
    char *endpoint;

    memset(out, 0, sizeof *out);
    region = nonempty(given->region);
    if (!region)
        region = env("AWS_REGION");
    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (!region) {
        snprintf(err, errlen,
                 "no AWS region: set the region option, AWS_REGION or "
                 "AWS_DEFAULT_REGION");
        return false;
    }
    if (nonempty(given->endpoint))
        endpoint = xstrdup(given->endpoint);
    else if (!(endpoint = service_endpoint_env(service)))
        endpoint = env("AWS_ENDPOINT_URL") ? xstrdup(env("AWS_ENDPOINT_URL"))
                                           : default_endpoint(service, region);
    for (size_t n = strlen(endpoint); n > 0 && endpoint[n - 1] == '/'; n--)
        endpoint[n - 1] = '\0';
    {
        char *host, *path;

        if (!aws_endpoint_parts(endpoint, &host, &path)) {
            snprintf(err, errlen,
                     "endpoint \"%s\" is not an http:// or https:// URL with "
                     "a host",
                     endpoint);
            free(endpoint);
            return false;
        }
        free(host);
        free(path);
    }
    if (!resolve_credentials(given, out, err, errlen)) {
        free(endpoint);
        aws_settings_free(out);
        return false;
    }
    out->region = xstrdup(region);
    out->endpoint = endpoint;
    return true;
}

void aws_settings_free(aws_settings *s)
{
    wipe_free(s->access_key_id);
    wipe_free(s->secret_access_key);
    wipe_free(s->session_token);
    free(s->region);
    free(s->endpoint);
    s->access_key_id = s->secret_access_key = s->session_token = NULL;
    s->region = s->endpoint = NULL;
}
