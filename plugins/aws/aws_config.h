/* Where an AWS client takes its credentials, region and endpoint from, in
 * the order every AWS SDK and the CLI use (the credentials: aws_chain.h). */
#ifndef AWS_CONFIG_H
#define AWS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "aws_provider.h"

/* Settings given explicitly (sink options); NULL when not given. */
typedef struct aws_explicit_settings {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    const char *profile;
    const char *region;
    const char *endpoint;
    bool imds_v1_fallback;
    kit_http_settings http; /* TLS settings for STS */
} aws_explicit_settings;

typedef struct aws_settings {
    aws_provider *provider; /* where credentials come from */
    char *region;
    char *endpoint; /* scheme://host[:port][/path], no trailing slash */
} aws_settings;

/* Resolves everything for `service` ("kinesis"): the credential provider
 * (aws_chain.h); region from explicit, AWS_REGION, AWS_DEFAULT_REGION, the
 * config file's profile; endpoint from explicit, AWS_ENDPOINT_URL_<SERVICE>,
 * AWS_ENDPOINT_URL, else https://<service>.<region>.amazonaws.com. False
 * with a reason in err (which never holds a secret). */
bool aws_settings_resolve(const aws_explicit_settings *given,
                          const char *service, aws_settings *out, char *err,
                          size_t errlen);

void aws_settings_free(aws_settings *settings);

/* A service's endpoint: explicit (may be NULL), AWS_ENDPOINT_URL_<SERVICE>,
 * AWS_ENDPOINT_URL, else the regional default; no trailing slash. */
char *aws_service_endpoint(const char *service, const char *region,
                           const char *explicit_url);

/* Splits an endpoint URL into the Host header value (host[:port], the port
 * only when not the scheme's default) and the path ("/" when none). Returns
 * false for something that is not an http(s) URL. Both outputs malloc'd. */
bool aws_endpoint_parts(const char *endpoint, char **host_header, char **path);

#endif
