/* Credentials kept fresh for a sink: fetched once at start, then, when
 * they expire, again on a background thread a margin before they do (so
 * the pipeline never waits for STS or a metadata service). The old set is
 * used until a new one arrives; a provider that keeps failing is retried
 * with backoff, logging each failure, forever. */
#ifndef AWS_REFRESH_H
#define AWS_REFRESH_H

#include <stdbool.h>
#include <stddef.h>

#include <pgspout/pgspout.h>

#include "aws_provider.h"

typedef struct aws_refresher aws_refresher;

/* Takes ownership of provider. margin_s: refresh this long before
 * expiry, at most half the lifetime of a set (so 30-second credentials are
 * renewed after 15 seconds). NULL with err only when the chain fell
 * through to instance metadata and nothing answered there (there are no
 * credentials anywhere); any other failure of the first fetch is logged
 * and retried in the background. */
aws_refresher *aws_refresher_new(const pgspout_host_api *host,
                                 pgspout_sink_handle *handle,
                                 aws_provider *provider, int margin_s,
                                 char *err, size_t errlen);

/* A copy of the current credentials (free with aws_credentials_clear).
 * False while none were ever obtained; err says why (no secret). */
bool aws_refresher_get(aws_refresher *r, aws_credentials *out, char *err,
                       size_t errlen);

/* The service rejected a request's credentials as expired: fetch new ones
 * now. Requests answered while a fetch runs add one more fetch at most
 * (the request is a flag, not a queue). */
void aws_refresher_expired(aws_refresher *r);

/* Replaces, in text, the secret keys and session tokens of the current
 * set and of the one before it (an answer to a request signed with the old
 * set may arrive after the renewal). */
void aws_refresher_redact(aws_refresher *r, char *text);

/* Where the credentials come from, for log lines. */
const char *aws_refresher_source(const aws_refresher *r);

void aws_refresher_free(aws_refresher *r);

#endif
