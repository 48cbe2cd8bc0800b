/* AWS Signature Version 4 for requests signed in headers (the Authorization
 * header), as every AWS JSON API such as Kinesis expects. Hashing and HMAC
 * come from OpenSSL. */
#ifndef AWS_SIGV4_H
#define AWS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct sigv4_header {
    const char *name;  /* any case; lower-cased for signing */
    const char *value; /* trimmed, inner whitespace runs folded to one space */
} sigv4_header;

typedef struct sigv4_request {
    const char *method;
    /* The path as the caller means it, not yet percent-encoded: "/" for
     * Kinesis. The signer encodes it. */
    const char *path;
    const char *query; /* what follows '?', or NULL */
    /* Every header the request will carry and that should be signed; it
     * must include Host. X-Amz-Date, X-Amz-Security-Token and
     * X-Amz-Content-Sha256 are added by the signer (see sigv4_signature). */
    const sigv4_header *headers;
    size_t nheaders;
    const void *body;
    size_t body_len;
} sigv4_request;

typedef struct sigv4_params {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL without temporary credentials */
    const char *region;
    const char *service; /* "kinesis" */
    time_t when;
    /* Remove "." and ".." segments and empty segments from the path before
     * encoding it (every service but S3). */
    bool normalize_path;
    /* Add and sign X-Amz-Content-Sha256 (S3-style services). */
    bool sign_body;
    /* Send the session token unsigned, appended after signing (the
     * convention of some services, e.g. IoT); false for Kinesis. */
    bool omit_session_token;
} sigv4_params;

typedef struct sigv4_signature {
    char amz_date[17];       /* X-Amz-Date value, 20150830T123600Z */
    char payload_sha256[65]; /* hex; X-Amz-Content-Sha256 when signed */
    char signature[65];      /* hex */
    char *authorization;     /* Authorization header value */
    char *canonical_request; /* for tests and debugging; no secret */
    char *string_to_sign;
} sigv4_signature;

/* Signs req. The caller sends X-Amz-Date: sig->amz_date,
 * X-Amz-Security-Token (when a session token is given) and
 * Authorization: sig->authorization besides req's own headers. Returns false
 * only for a request that cannot be signed (no Host header, a crypto
 * failure), with a reason in err that never contains a key. */
bool sigv4_sign(const sigv4_request *req, const sigv4_params *params,
                sigv4_signature *sig, char *err, size_t errlen);

void sigv4_signature_free(sigv4_signature *sig);

/* The derived signing key for one day (date is YYYYMMDD), region and
 * service. */
bool sigv4_signing_key(const char *secret_access_key, const char *date,
                       const char *region, const char *service,
                       unsigned char out[32]);

/* Lower-case hex SHA-256 of data into out (65 bytes). */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

#endif
