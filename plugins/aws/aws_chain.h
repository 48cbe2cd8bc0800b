/* The default credential provider chain, in the order the AWS SDKs use:
 *
 *  1. explicit keys (sink options), or an explicit profile, which then
 *     decides alone (4.);
 *  2. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *     AWS_SESSION_TOKEN;
 *  3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN (and
 *     AWS_ROLE_SESSION_NAME), exchanged by STS AssumeRoleWithWebIdentity;
 *  4. the shared files, profile AWS_PROFILE or "default": the
 *     `credentials` file (AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials)
 *     over the `config` file (AWS_CONFIG_FILE, ~/.aws/config): keys;
 *     role_arn with source_profile, credential_source or
 *     web_identity_token_file (STS); credential_process;
 *  5. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on
 *     169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
 *     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN;
 *  6. EC2 instance metadata, IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT,
 *     off with AWS_EC2_METADATA_DISABLED=true).
 *
 * A step applies when it is configured; the first that applies decides,
 * and its errors are reported rather than skipped. */
#ifndef AWS_CHAIN_H
#define AWS_CHAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "aws_provider.h"

typedef struct aws_chain_input {
    const char *access_key_id; /* explicit settings; NULL when not given */
    const char *secret_access_key;
    const char *session_token;
    const char *profile;
    const char *region;     /* the resolved region, for STS */
    bool imds_v1_fallback;  /* allow IMDSv1 when IMDSv2 is refused */
    kit_http_settings http; /* TLS settings for STS */
} aws_chain_input;

/* The provider of the first step that applies. NULL with a reason in err
 * (naming the file, line and key, or the variable) for a configuration
 * that cannot work: a missing profile or token file, a malformed file, a
 * role without a source. */
aws_provider *aws_chain_resolve(const aws_chain_input *in, char *err,
                                size_t errlen);

/* The profile the shared files are read for: explicit, AWS_PROFILE,
 * "default"; and those files' paths (malloc'd). */
const char *aws_profile_name(const char *explicit_profile);
char *aws_shared_file_path(bool config);

/* The config file's region for that profile into *region (NULL when it
 * names none). False with err for a malformed file. */
bool aws_profile_region(const char *explicit_profile, char **region, char *err,
                        size_t errlen);

#endif
