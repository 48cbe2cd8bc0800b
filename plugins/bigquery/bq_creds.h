/* Google credentials as read from a credentials file (service_account,
 * authorized_user, external_account) or chosen without one (the metadata
 * server), and Google's discovery order for them (application default
 * credentials). Reading only: bq_token.h fetches the tokens. */
#ifndef BQ_CREDS_H
#define BQ_CREDS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#define BQ_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define BQ_DEFAULT_METADATA_HOST "metadata.google.internal"
/* gcloud's application default credentials, under its config directory
 * ($CLOUDSDK_CONFIG, else ~/.config/gcloud). */
#define BQ_WELL_KNOWN_FILE "application_default_credentials.json"

typedef enum bq_cred_kind {
    BQ_CRED_SERVICE_ACCOUNT,
    BQ_CRED_AUTHORIZED_USER,
    BQ_CRED_EXTERNAL_ACCOUNT,
    BQ_CRED_METADATA,
} bq_cred_kind;

/* Where an external account's subject token comes from. */
typedef struct bq_subject_source {
    char *file; /* or */
    char *url;  /* with headers ("Name: value") */
    char **headers;
    size_t nheaders;
    char *json_field; /* format json: the field holding the token; NULL:
                         format text (the whole content, trimmed) */
} bq_subject_source;

typedef struct bq_cred {
    bq_cred_kind kind;
    char *token_uri; /* token endpoint (external_account: STS token_url) */
    /* service_account */
    EVP_PKEY *key; /* secret */
    char *client_email;
    /* authorized_user (and external_account's optional client) */
    char *client_id, *client_secret, *refresh_token; /* secrets */
    /* external_account */
    char *audience, *subject_token_type;
    char *impersonation_url; /* NULL: the STS token is used as it is */
    long impersonation_lifetime_s;
    bq_subject_source source;
    /* metadata */
    char *metadata_base; /* "http://host[:port]" */
} bq_cred;

/* Parses a credentials file's contents. false with err naming the missing
 * or bad key (never quoting a secret); err does not name the file, which
 * the caller adds. */
bool bq_cred_parse(const char *json, size_t len, bq_cred *out, char *err,
                   size_t errlen);

/* The metadata server: base if given, else $GCE_METADATA_HOST, else
 * BQ_DEFAULT_METADATA_HOST. */
void bq_cred_metadata(const char *base, bq_cred *out);

void bq_cred_free(bq_cred *c);

/* The type names of the kinds ("service_account", ...; "metadata"). */
const char *bq_cred_kind_name(bq_cred_kind kind);

/* Application default credentials, in Google's order: explicit (a path, or
 * NULL), $GOOGLE_APPLICATION_CREDENTIALS, gcloud's well-known file when it
 * exists, else NULL (the metadata server is the caller's last resort).
 * Caller frees; *source says which ("credentials_file",
 * "GOOGLE_APPLICATION_CREDENTIALS", "gcloud's well-known file"). */
char *bq_cred_discover_file(const char *explicit_path, bool well_known,
                            const char **source);

/* Reads and parses a credentials file. false with err naming the file. */
bool bq_cred_load(const char *path, bq_cred *out, char *err, size_t errlen);

#endif
