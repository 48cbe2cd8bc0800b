/* AWS credential providers: each step of the default chain (aws_chain.c
 * decides which applies) and how it obtains a set of credentials. Any AWS
 * sink uses them through aws_refresh.h, which keeps temporary credentials
 * fresh. */
#ifndef AWS_PROVIDER_H
#define AWS_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "http.h"

typedef struct aws_credentials {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL for long-term keys */
    time_t expiration;   /* 0: never expires */
} aws_credentials;

typedef enum aws_provider_kind {
    AWS_PROVIDER_STATIC,       /* options, environment, a profile's keys */
    AWS_PROVIDER_WEB_IDENTITY, /* STS AssumeRoleWithWebIdentity */
    AWS_PROVIDER_ASSUME_ROLE,  /* STS AssumeRole with source's credentials */
    AWS_PROVIDER_PROCESS,      /* a profile's credential_process */
    AWS_PROVIDER_CONTAINER,    /* ECS/EKS container credentials endpoint */
    AWS_PROVIDER_IMDS          /* EC2 instance metadata (IMDSv2) */
} aws_provider_kind;

typedef struct aws_provider aws_provider;

struct aws_provider {
    aws_provider_kind kind;
    /* Where the credentials come from, for log lines (never a key):
     * "environment", "/root/.aws/config [profile ci] role_arn". */
    char description[1024];
    aws_credentials fixed; /* AWS_PROVIDER_STATIC */
    /* STS (web identity, assume role). */
    char *role_arn;
    char *session_name;
    char *external_id;
    int duration_s; /* 0: STS' default */
    char *token_file;
    char *sts_url;
    char *region;
    aws_provider *source; /* AWS_PROVIDER_ASSUME_ROLE */
    char *command;        /* AWS_PROVIDER_PROCESS, run by /bin/sh -c */
    /* Container: the full URL and the Authorization header's value (or
     * the file holding it, read at each fetch as it may be rotated).
     * IMDS: the endpoint, and whether IMDSv1 may be used when the token
     * request fails. */
    char *url;
    char *auth_token;
    char *auth_token_file;
    bool imds_v1_fallback;
    bool implicit; /* IMDS reached by falling through the whole chain */
    kit_http_settings http;
};

/* Obtains credentials. False with a reason in err (no secret) when it
 * cannot now; a later attempt may succeed. */
bool aws_provider_fetch(aws_provider *p, aws_credentials *out, char *err,
                        size_t errlen);

void aws_provider_free(aws_provider *p);

void aws_credentials_copy(aws_credentials *to, const aws_credentials *from);
void aws_credentials_clear(aws_credentials *c);

/* Parses an ISO 8601 UTC time ("2026-12-01T06:00:00Z", fractions and a
 * +00:00 offset allowed). (time_t)-1 when it is not one. */
time_t aws_parse_time(const char *text);

/* Fetchers by kind (aws_sts.c, aws_fetch.c). */
bool aws_sts_fetch(aws_provider *p, aws_credentials *out, char *err,
                   size_t errlen);
bool aws_process_fetch(aws_provider *p, aws_credentials *out, char *err,
                       size_t errlen);
bool aws_container_fetch(aws_provider *p, aws_credentials *out, char *err,
                         size_t errlen);
bool aws_imds_fetch(aws_provider *p, aws_credentials *out, char *err,
                    size_t errlen);

/* Reads the JSON credential document of credential_process, the container
 * endpoint and IMDS (AccessKeyId, SecretAccessKey, Token or SessionToken,
 * Expiration). False with err naming `what` when a field is missing. */
bool aws_credentials_from_json(const char *body, const char *what,
                               aws_credentials *out, char *err, size_t errlen);

#endif
