/* Where an AWS client takes its credentials, region and endpoint from, in
 * the order every AWS SDK and the CLI use: explicit settings first, then the
 * environment, then the shared credentials file. */
#ifndef KINESIS_AWS_CONFIG_H
#define KINESIS_AWS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Settings given explicitly (sink options); NULL when not given. */
typedef struct aws_explicit_settings {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    const char *profile;
    const char *region;
    const char *endpoint;
} aws_explicit_settings;

typedef struct aws_settings {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL without temporary credentials */
    char *region;
    char *endpoint; /* scheme://host[:port][/path], no trailing slash */
    /* Where the credentials came from, for log lines (never a key):
     * "sink options", "environment", "/root/.aws/credentials [default]". */
    char credential_source[600];
} aws_settings;

/* Resolves everything for `service` ("kinesis"): credentials from explicit
 * settings, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN,
 * else the profile (explicit, else AWS_PROFILE, else "default") of the
 * shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
 * ~/.aws/credentials); region from explicit, AWS_REGION, AWS_DEFAULT_REGION;
 * endpoint from explicit, AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, else
 * https://<service>.<region>.amazonaws.com. False with a reason in err
 * (which never holds a secret). */
bool aws_settings_resolve(const aws_explicit_settings *given,
                          const char *service, aws_settings *out, char *err,
                          size_t errlen);

void aws_settings_free(aws_settings *settings);

/* Splits an endpoint URL into the Host header value (host[:port], the port
 * only when not the scheme's default) and the path ("/" when none). Returns
 * false for something that is not an http(s) URL. Both outputs malloc'd. */
bool aws_endpoint_parts(const char *endpoint, char **host_header, char **path);

#endif
