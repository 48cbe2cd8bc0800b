/* The default credential provider chain (aws_chain.h). */
#include "aws_chain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "aws_config.h"
#include "aws_ini.h"

#define CONTAINER_HOST "http://169.254.170.2"
#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
/* source_profile may point at a profile that itself assumes a role; the
 * SDKs follow such chains but refuse loops. */
#define MAX_ROLE_DEPTH 8

typedef struct chain {
    const aws_chain_input *in;
    aws_ini creds, config;
    char *err;
    size_t errlen;
} chain;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

const char *aws_profile_name(const char *explicit_profile)
{
    if (nonempty(explicit_profile))
        return explicit_profile;
    return env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
}

char *aws_shared_file_path(bool config)
{
    const char *set =
        env(config ? "AWS_CONFIG_FILE" : "AWS_SHARED_CREDENTIALS_FILE");

    if (set)
        return xstrdup(set);
    return xasprintf("%s/.aws/%s", env("HOME") ? env("HOME") : "",
                     config ? "config" : "credentials");
}

static aws_provider *new_provider(chain *c, aws_provider_kind kind)
{
    aws_provider *p = xcalloc(1, sizeof *p);

    p->kind = kind;
    p->http = c->in->http;
    p->http.connect_timeout_ms = 5000;
    p->http.request_timeout_ms = 30000;
    return p;
}

static aws_provider *static_provider(chain *c, const char *id,
                                     const char *secret, const char *token,
                                     const char *description)
{
    aws_provider *p = new_provider(c, AWS_PROVIDER_STATIC);

    p->fixed.access_key_id = xstrdup(id);
    p->fixed.secret_access_key = xstrdup(secret);
    p->fixed.session_token = nonempty(token) ? xstrdup(token) : NULL;
    snprintf(p->description, sizeof p->description, "%s", description);
    return p;
}

/* STS settings shared by web identity and assume role. */
static void sts_settings(chain *c, aws_provider *p, const char *role_arn,
                         const char *session_name)
{
    p->role_arn = xstrdup(role_arn);
    p->session_name = nonempty(session_name)
                          ? xstrdup(session_name)
                          : xasprintf("pgspout-%ld", (long)time(NULL));
    p->region = xstrdup(c->in->region);
    p->sts_url = aws_service_endpoint("sts", c->in->region, NULL);
}

static aws_provider *web_identity_provider(chain *c, const char *token_file,
                                           const char *role_arn,
                                           const char *session_name,
                                           const char *where)
{
    aws_provider *p;

    if (access(token_file, R_OK) != 0) {
        snprintf(c->err, c->errlen,
                 "%s: the web identity token file \"%s\" cannot be read", where,
                 token_file);
        return NULL;
    }
    p = new_provider(c, AWS_PROVIDER_WEB_IDENTITY);
    p->token_file = xstrdup(token_file);
    sts_settings(c, p, role_arn, session_name);
    snprintf(p->description, sizeof p->description, "web identity (%s)", where);
    return p;
}

static aws_provider *env_web_identity(chain *c)
{
    const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE");

    if (!file)
        return NULL;
    if (!env("AWS_ROLE_ARN")) {
        snprintf(c->err, c->errlen,
                 "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
        return NULL;
    }
    return web_identity_provider(c, file, env("AWS_ROLE_ARN"),
                                 env("AWS_ROLE_SESSION_NAME"),
                                 "AWS_WEB_IDENTITY_TOKEN_FILE");
}

static aws_provider *container_provider(chain *c)
{
    const char *relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    aws_provider *p;

    if (!relative && !full)
        return NULL;
    p = new_provider(c, AWS_PROVIDER_CONTAINER);
    p->url =
        relative ? xasprintf("%s%s", CONTAINER_HOST, relative) : xstrdup(full);
    if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
        p->auth_token_file =
            xstrdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
    else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
        p->auth_token = xstrdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
    p->http.connect_timeout_ms = 2000;
    p->http.request_timeout_ms = 5000;
    snprintf(p->description, sizeof p->description,
             "container credentials (%s)",
             relative ? "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
                      : "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    return p;
}

static aws_provider *imds_provider(chain *c, bool implicit)
{
    const char *endpoint = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    aws_provider *p = new_provider(c, AWS_PROVIDER_IMDS);
    size_t n;

    p->url = xstrdup(endpoint ? endpoint : IMDS_DEFAULT_ENDPOINT);
    for (n = strlen(p->url); n > 0 && p->url[n - 1] == '/'; n--)
        p->url[n - 1] = '\0';
    p->imds_v1_fallback = c->in->imds_v1_fallback;
    p->implicit = implicit;
    /* Off EC2 nothing answers; the SDKs give up after a second too. */
    p->http.connect_timeout_ms = 1000;
    p->http.request_timeout_ms = 5000;
    snprintf(p->description, sizeof p->description,
             "EC2 instance metadata (%s)", p->url);
    return p;
}

/* ---- profiles of the shared files ---- */

typedef struct setting {
    const char *value;
    const char *file;
    int line;
} setting;

/* A profile's key: the credentials file's over the config file's. */
static setting profile_get(chain *c, const char *profile, const char *key)
{
    setting s = {NULL, NULL, 0};

    if ((s.value = aws_ini_get(&c->creds, profile, key, &s.line)))
        s.file = c->creds.path;
    else if ((s.value = aws_ini_get(&c->config, profile, key, &s.line)))
        s.file = c->config.path;
    return s;
}

static bool profile_exists(chain *c, const char *profile)
{
    return aws_ini_has_profile(&c->creds, profile) ||
           aws_ini_has_profile(&c->config, profile);
}

static aws_provider *profile_provider(chain *c, const char *profile, int depth);

static aws_provider *profile_keys(chain *c, const char *profile)
{
    setting id = profile_get(c, profile, "aws_access_key_id");
    setting secret = profile_get(c, profile, "aws_secret_access_key");
    setting token = profile_get(c, profile, "aws_session_token");
    char description[600];

    if (!id.value && !secret.value)
        return NULL;
    if (!id.value || !secret.value) {
        setting has = id.value ? id : secret;
        snprintf(c->err, c->errlen, "%s:%d: profile [%s] has %s but not %s",
                 has.file, has.line, profile,
                 id.value ? "aws_access_key_id" : "aws_secret_access_key",
                 id.value ? "aws_secret_access_key" : "aws_access_key_id");
        return NULL;
    }
    snprintf(description, sizeof description, "%s [%s]", id.file, profile);
    return static_provider(c, id.value, secret.value, token.value, description);
}

/* role_arn's source of credentials: source_profile or credential_source. */
static aws_provider *role_source(chain *c, const char *profile, int depth,
                                 setting role)
{
    setting source = profile_get(c, profile, "source_profile");
    setting named = profile_get(c, profile, "credential_source");

    if (source.value) {
        if (!profile_exists(c, source.value)) {
            snprintf(c->err, c->errlen,
                     "%s:%d: source_profile \"%s\" of profile [%s] does not "
                     "exist",
                     source.file, source.line, source.value, profile);
            return NULL;
        }
        /* A profile that names itself uses its own keys (the SDKs' rule). */
        if (strcmp(source.value, profile) == 0)
            return profile_keys(c, profile);
        return profile_provider(c, source.value, depth + 1);
    }
    if (named.value) {
        aws_provider *p = NULL;

        if (strcmp(named.value, "Environment") == 0 &&
            env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY"))
            p = static_provider(c, env("AWS_ACCESS_KEY_ID"),
                                env("AWS_SECRET_ACCESS_KEY"),
                                env("AWS_SESSION_TOKEN"), "environment");
        else if (strcmp(named.value, "Ec2InstanceMetadata") == 0)
            p = imds_provider(c, false);
        else if (strcmp(named.value, "EcsContainer") == 0)
            p = container_provider(c);
        if (!p)
            snprintf(c->err, c->errlen,
                     "%s:%d: credential_source \"%s\" of profile [%s] is not "
                     "Environment (with AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY set), Ec2InstanceMetadata or "
                     "EcsContainer (with its variables set)",
                     named.file, named.line, named.value, profile);
        return p;
    }
    snprintf(c->err, c->errlen,
             "%s:%d: role_arn of profile [%s] needs source_profile, "
             "credential_source or web_identity_token_file",
             role.file, role.line, profile);
    return NULL;
}

static bool parse_duration(chain *c, const char *profile, aws_provider *p)
{
    setting d = profile_get(c, profile, "duration_seconds");
    char *end;
    long v;

    if (!d.value)
        return true;
    v = strtol(d.value, &end, 10);
    /* STS itself enforces its range (900 s up to the role's maximum);
     * emulators take less, which tests use. */
    if (*end || v <= 0 || v > 43200) {
        snprintf(c->err, c->errlen,
                 "%s:%d: duration_seconds of profile [%s] must be a number "
                 "of seconds up to 43200",
                 d.file, d.line, profile);
        return false;
    }
    p->duration_s = (int)v;
    return true;
}

static aws_provider *role_provider(chain *c, const char *profile, int depth,
                                   setting role)
{
    setting token_file = profile_get(c, profile, "web_identity_token_file");
    setting session = profile_get(c, profile, "role_session_name");
    setting external = profile_get(c, profile, "external_id");
    char where[700];
    aws_provider *p, *source;

    snprintf(where, sizeof where, "%s [%s]", role.file, profile);
    if (token_file.value)
        return web_identity_provider(c, token_file.value, role.value,
                                     session.value, where);
    if (!(source = role_source(c, profile, depth, role)))
        return NULL;
    p = new_provider(c, AWS_PROVIDER_ASSUME_ROLE);
    p->source = source;
    sts_settings(c, p, role.value, session.value);
    p->external_id = external.value ? xstrdup(external.value) : NULL;
    snprintf(p->description, sizeof p->description, "%s role_arn", where);
    if (!parse_duration(c, profile, p)) {
        aws_provider_free(p);
        return NULL;
    }
    return p;
}

/* The provider a profile describes; NULL with err empty when it holds no
 * credentials at all. */
static aws_provider *profile_provider(chain *c, const char *profile, int depth)
{
    setting role = profile_get(c, profile, "role_arn");
    setting process = profile_get(c, profile, "credential_process");
    aws_provider *p;

    if (depth > MAX_ROLE_DEPTH) {
        snprintf(c->err, c->errlen,
                 "source_profile chain loops or is longer than %d profiles "
                 "(at [%s])",
                 MAX_ROLE_DEPTH, profile);
        return NULL;
    }
    if (role.value)
        return role_provider(c, profile, depth, role);
    if ((p = profile_keys(c, profile)) || c->err[0])
        return p;
    if (process.value) {
        p = new_provider(c, AWS_PROVIDER_PROCESS);
        p->command = xstrdup(process.value);
        snprintf(p->description, sizeof p->description,
                 "%s [%s] credential_process", process.file, profile);
        return p;
    }
    if (depth > 0 && !c->err[0])
        snprintf(c->err, c->errlen,
                 "source_profile [%s] has no credentials (aws_access_key_id, "
                 "role_arn or credential_process)",
                 profile);
    return NULL;
}

static bool load_files(chain *c)
{
    char *creds = aws_shared_file_path(false);
    char *config = aws_shared_file_path(true);
    bool ok = aws_ini_load(creds, false, &c->creds, c->err, c->errlen) &&
              aws_ini_load(config, true, &c->config, c->err, c->errlen);

    free(creds);
    free(config);
    return ok;
}

/* Step 4, the shared files. Explicit (option or AWS_PROFILE): the profile
 * must exist and hold credentials. */
static aws_provider *shared_files_provider(chain *c, const char *profile,
                                           bool explicit_profile,
                                           const char *named_by)
{
    aws_provider *p;

    if (!profile_exists(c, profile)) {
        if (explicit_profile)
            snprintf(c->err, c->errlen,
                     "profile \"%s\" (%s) is in neither \"%s\" nor \"%s\"",
                     profile, named_by, c->creds.path, c->config.path);
        return NULL;
    }
    p = profile_provider(c, profile, 0);
    if (!p && !c->err[0] && explicit_profile)
        snprintf(c->err, c->errlen,
                 "profile [%s] (%s) has no credentials in \"%s\" or \"%s\" "
                 "(aws_access_key_id, role_arn or credential_process)",
                 profile, named_by, c->creds.path, c->config.path);
    return p;
}

static aws_provider *resolve(chain *c)
{
    const aws_chain_input *in = c->in;
    const char *profile = aws_profile_name(in->profile);
    bool explicit_profile = nonempty(in->profile) || env("AWS_PROFILE");
    const char *named_by =
        nonempty(in->profile) ? "the profile option" : "AWS_PROFILE";
    aws_provider *p;

    if (nonempty(in->access_key_id) || nonempty(in->secret_access_key)) {
        if (!nonempty(in->access_key_id) || !nonempty(in->secret_access_key)) {
            snprintf(c->err, c->errlen,
                     "access_key_id and secret_access_key "
                     "must be given together");
            return NULL;
        }
        return static_provider(c, in->access_key_id, in->secret_access_key,
                               in->session_token, "sink options");
    }
    if (!load_files(c))
        return NULL;
    /* An explicit profile option is an explicit choice too: it wins over
     * keys in the environment (which may belong to another account). */
    if (nonempty(in->profile))
        return shared_files_provider(c, profile, true, named_by);
    if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY"))
        return static_provider(c, env("AWS_ACCESS_KEY_ID"),
                               env("AWS_SECRET_ACCESS_KEY"),
                               env("AWS_SESSION_TOKEN"), "environment");
    if ((p = env_web_identity(c)) || c->err[0])
        return p;
    if ((p = shared_files_provider(c, profile, explicit_profile, named_by)) ||
        c->err[0])
        return p;
    if ((p = container_provider(c)))
        return p;
    if (env("AWS_EC2_METADATA_DISABLED") &&
        strcasecmp(env("AWS_EC2_METADATA_DISABLED"), "true") == 0) {
        snprintf(c->err, c->errlen,
                 "no AWS credentials: set the access_key_id and "
                 "secret_access_key options, AWS_ACCESS_KEY_ID and "
                 "AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE, profile "
                 "[%s] in \"%s\" or \"%s\", or the container variables "
                 "(instance metadata is off: AWS_EC2_METADATA_DISABLED)",
                 profile, c->creds.path, c->config.path);
        return NULL;
    }
    return imds_provider(c, true);
}

aws_provider *aws_chain_resolve(const aws_chain_input *in, char *err,
                                size_t errlen)
{
    chain c = {.in = in, .err = err, .errlen = errlen};
    aws_provider *p;

    err[0] = '\0';
    p = resolve(&c);
    aws_ini_free(&c.creds);
    aws_ini_free(&c.config);
    return p;
}

/* The region a profile of the config file names (SDKs read it there). */
bool aws_profile_region(const char *explicit_profile, char **region, char *err,
                        size_t errlen)
{
    char *path = aws_shared_file_path(true);
    aws_ini config;
    const char *value;
    bool ok = aws_ini_load(path, true, &config, err, errlen);

    value = ok ? aws_ini_get(&config, aws_profile_name(explicit_profile),
                             "region", NULL)
               : NULL;
    *region = value ? xstrdup(value) : NULL;
    aws_ini_free(&config);
    free(path);
    return ok;
}
