/* Credentials, region and endpoint resolution as the AWS SDKs do it. */
#include "aws_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws_chain.h"
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

char *aws_service_endpoint(const char *service, const char *region,
                           const char *explicit_url)
{
    char *endpoint;

    if (nonempty(explicit_url))
        endpoint = xstrdup(explicit_url);
    else if (!(endpoint = service_endpoint_env(service)))
        endpoint = env("AWS_ENDPOINT_URL") ? xstrdup(env("AWS_ENDPOINT_URL"))
                                           : default_endpoint(service, region);
    for (size_t n = strlen(endpoint); n > 0 && endpoint[n - 1] == '/'; n--)
        endpoint[n - 1] = '\0';
    return endpoint;
}

static bool check_endpoint(const char *endpoint, char *err, size_t errlen)
{
    char *host, *path;

    if (!aws_endpoint_parts(endpoint, &host, &path)) {
        snprintf(err, errlen,
                 "endpoint \"%s\" is not an http:// or https:// URL with a "
                 "host",
                 endpoint);
        return false;
    }
    free(host);
    free(path);
    return true;
}

static char *resolve_region(const aws_explicit_settings *given, char *err,
                            size_t errlen)
{
    const char *region = nonempty(given->region);
    char *from_file = NULL;

    if (!region)
        region = env("AWS_REGION");
    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (region)
        return xstrdup(region);
    if (!aws_profile_region(given->profile, &from_file, err, errlen))
        return NULL;
    if (!from_file)
        snprintf(err, errlen,
                 "no AWS region: set the region option, AWS_REGION, "
                 "AWS_DEFAULT_REGION or region in profile [%s] of the config "
                 "file",
                 aws_profile_name(given->profile));
    return from_file;
}

bool aws_settings_resolve(const aws_explicit_settings *given,
                          const char *service, aws_settings *out, char *err,
                          size_t errlen)
{
    aws_chain_input in = {
        .access_key_id = given->access_key_id,
        .secret_access_key = given->secret_access_key,
        .session_token = given->session_token,
        .profile = given->profile,
        .imds_v1_fallback = given->imds_v1_fallback,
        .http = given->http,
    };

    memset(out, 0, sizeof *out);
    if (!(out->region = resolve_region(given, err, errlen)))
        return false;
    out->endpoint = aws_service_endpoint(service, out->region, given->endpoint);
    in.region = out->region;
    if (!check_endpoint(out->endpoint, err, errlen) ||
        !(out->provider = aws_chain_resolve(&in, err, errlen))) {
        aws_settings_free(out);
        return false;
    }
    return true;
}

void aws_settings_free(aws_settings *s)
{
    aws_provider_free(s->provider);
    free(s->region);
    free(s->endpoint);
    memset(s, 0, sizeof *s);
}
