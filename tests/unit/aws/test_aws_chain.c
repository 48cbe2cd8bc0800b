/* The AWS shared files, the default credential chain's choice of
 * provider, credential documents and expiration times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../check.h"
#include "aws_chain.h"
#include "aws_ini.h"
#include "aws_provider.h"

static char dir[] = "/tmp/aws-chain-test-XXXXXX";
static char config_path[600], creds_path[600];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    fputs(text, f);
    fclose(f);
}

static void clear_env(void)
{
    static const char *const names[] = {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
    };

    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unsetenv(names[i]);
    setenv("AWS_CONFIG_FILE", config_path, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", creds_path, 1);
    unlink(config_path);
    unlink(creds_path);
}

static aws_provider *resolve(const char *profile, char *err, size_t errlen)
{
    aws_chain_input in = {.profile = profile, .region = "eu-west-1"};

    return aws_chain_resolve(&in, err, errlen);
}

static void test_ini(void)
{
    aws_ini ini;
    char err[512];
    int line = 0;

    write_file(config_path, "# comment\n[default]\nregion = eu-west-1\n"
                            "s3 =\n  max_concurrent_requests = 10\n"
                            "[profile ci]\nrole_arn=arn:x\n"
                            "[sso-session corp]\nsso_region = us-east-1\n"
                            "[profile ci]\nrole_arn = arn:y\n");
    CHECK(aws_ini_load(config_path, true, &ini, err, sizeof err));
    CHECK_STR(aws_ini_get(&ini, "default", "region", NULL), "eu-west-1");
    CHECK(aws_ini_get(&ini, "default", "max_concurrent_requests", NULL) ==
          NULL);
    CHECK_STR(aws_ini_get(&ini, "ci", "ROLE_ARN", &line), "arn:y");
    CHECK(line == 11);
    CHECK(!aws_ini_has_profile(&ini, "sso-session corp"));
    CHECK(!aws_ini_has_profile(&ini, "corp"));
    aws_ini_free(&ini);

    write_file(config_path, "[default]\nregion = x\n[broken\n");
    CHECK(!aws_ini_load(config_path, true, &ini, err, sizeof err));
    CHECK(strstr(err, ":3: malformed section header") != NULL);
    aws_ini_free(&ini);
    write_file(config_path, "region = x\n");
    CHECK(!aws_ini_load(config_path, true, &ini, err, sizeof err));
    CHECK(strstr(err, ":1: key \"region\" before any [section]") != NULL);
    aws_ini_free(&ini);
    write_file(config_path, "[default]\njunk\n");
    CHECK(!aws_ini_load(config_path, true, &ini, err, sizeof err));
    CHECK(strstr(err, ":2: expected") != NULL);
    aws_ini_free(&ini);
    unlink(config_path);
    CHECK(aws_ini_load(config_path, true, &ini, err, sizeof err));
    CHECK(!ini.exists);
    aws_ini_free(&ini);
}

static void test_profiles(void)
{
    char err[1024];
    aws_provider *p;

    clear_env();
    /* The credentials file wins over config for the same key. */
    write_file(config_path, "[profile a]\naws_access_key_id = AKIDCONFIG\n"
                            "aws_secret_access_key = configsecret\n"
                            "[profile ci]\nrole_arn = arn:aws:iam::1:role/r\n"
                            "source_profile = a\nduration_seconds = 30\n"
                            "external_id = ext\n"
                            "[profile self]\nrole_arn = arn:r\n"
                            "source_profile = self\n"
                            "aws_access_key_id = AKIDSELF\n"
                            "aws_secret_access_key = selfsecret\n"
                            "[profile loop1]\nrole_arn = arn:r\n"
                            "source_profile = loop2\n"
                            "[profile loop2]\nrole_arn = arn:r\n"
                            "source_profile = loop1\n"
                            "[profile proc]\ncredential_process = echo x\n"
                            "[profile src]\nrole_arn = arn:r\n"
                            "credential_source = Ec2InstanceMetadata\n"
                            "[profile bad]\nrole_arn = arn:r\n"
                            "credential_source = Somewhere\n");
    write_file(creds_path, "[a]\naws_access_key_id = AKIDCREDS\n");
    p = resolve("a", err, sizeof err);
    CHECK(p && p->kind == AWS_PROVIDER_STATIC);
    CHECK_STR(p ? p->fixed.access_key_id : NULL, "AKIDCREDS");
    CHECK_STR(p ? p->fixed.secret_access_key : NULL, "configsecret");
    aws_provider_free(p);

    setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9/", 1);
    p = resolve("ci", err, sizeof err);
    CHECK(p && p->kind == AWS_PROVIDER_ASSUME_ROLE);
    CHECK(p && p->source && p->source->kind == AWS_PROVIDER_STATIC);
    CHECK(p && p->duration_s == 30);
    CHECK_STR(p ? p->external_id : NULL, "ext");
    CHECK_STR(p ? p->sts_url : NULL, "http://127.0.0.1:9");
    CHECK_STR(p ? p->region : NULL, "eu-west-1");
    aws_provider_free(p);
    unsetenv("AWS_ENDPOINT_URL_STS");
    p = resolve("ci", err, sizeof err);
    CHECK_STR(p ? p->sts_url : NULL, "https://sts.eu-west-1.amazonaws.com");
    aws_provider_free(p);

    p = resolve("self", err, sizeof err);
    CHECK(p && p->source && p->source->kind == AWS_PROVIDER_STATIC);
    CHECK_STR(p && p->source ? p->source->fixed.access_key_id : NULL,
              "AKIDSELF");
    aws_provider_free(p);
    CHECK(resolve("loop1", err, sizeof err) == NULL);
    CHECK(strstr(err, "loops") != NULL);
    p = resolve("proc", err, sizeof err);
    CHECK(p && p->kind == AWS_PROVIDER_PROCESS);
    CHECK_STR(p ? p->command : NULL, "echo x");
    aws_provider_free(p);
    p = resolve("src", err, sizeof err);
    CHECK(p && p->source && p->source->kind == AWS_PROVIDER_IMDS);
    CHECK(p && p->source && !p->source->implicit);
    aws_provider_free(p);
    CHECK(resolve("bad", err, sizeof err) == NULL);
    CHECK(strstr(err, ":27: credential_source \"Somewhere\"") != NULL);
    CHECK(resolve("nope", err, sizeof err) == NULL);
    CHECK(strstr(err, "profile \"nope\" (the profile option)") != NULL);
    /* An explicit profile wins over the environment's keys. */
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    p = resolve("proc", err, sizeof err);
    CHECK(p && p->kind == AWS_PROVIDER_PROCESS);
    aws_provider_free(p);
    /* AWS_PROFILE does not. */
    setenv("AWS_PROFILE", "proc", 1);
    p = resolve(NULL, err, sizeof err);
    CHECK(p && p->kind == AWS_PROVIDER_STATIC);
    CHECK_STR(p ? p->description : NULL, "environment");
    aws_provider_free(p);
}

static void test_chain_order(void)
{
    char err[1024], token[700];
    aws_provider *p;

    clear_env();
    snprintf(token, sizeof token, "%s/token", dir);
    /* Web identity before the shared files. */
    write_file(config_path, "[default]\naws_access_key_id = AKIDDEF\n"
                            "aws_secret_access_key = defsecret\n");
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token, 1);
    CHECK(resolve(NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "AWS_ROLE_ARN") != NULL);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/w", 1);
    CHECK(resolve(NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, token) != NULL);
    write_file(token, "jwt\n");
    p = resolve(NULL, err, sizeof err);
    CHECK(p && p->kind == AWS_PROVIDER_WEB_IDENTITY);
    aws_provider_free(p);
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    p = resolve(NULL, err, sizeof err);
    CHECK(p && p->kind == AWS_PROVIDER_STATIC);
    aws_provider_free(p);

    /* Then the container, then instance metadata. */
    write_file(config_path, "[default]\nregion = eu-west-1\n");
    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds/abc", 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok", 1);
    p = resolve(NULL, err, sizeof err);
    CHECK(p && p->kind == AWS_PROVIDER_CONTAINER);
    CHECK_STR(p ? p->url : NULL, "http://169.254.170.2/v2/creds/abc");
    CHECK_STR(p ? p->auth_token : NULL, "tok");
    aws_provider_free(p);
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    p = resolve(NULL, err, sizeof err);
    CHECK(p && p->kind == AWS_PROVIDER_IMDS && p->implicit);
    CHECK_STR(p ? p->url : NULL, "http://169.254.169.254");
    CHECK(p && !p->imds_v1_fallback);
    aws_provider_free(p);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://[fd00:ec2::254]/", 1);
    p = resolve(NULL, err, sizeof err);
    CHECK_STR(p ? p->url : NULL, "http://[fd00:ec2::254]");
    aws_provider_free(p);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    CHECK(resolve(NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "no AWS credentials") != NULL);
    unlink(token);
}

static void test_documents(void)
{
    aws_credentials c;
    char err[512];

    CHECK(aws_parse_time("2026-12-01T06:00:00Z") == 1796104800);
    CHECK(aws_parse_time("2026-12-01T06:00:00.123456Z") == 1796104800);
    CHECK(aws_parse_time("2026-12-01T06:00:00+00:00") == 1796104800);
    CHECK(aws_parse_time("2026-12-01T06:00:00+02:00") == (time_t)-1);
    CHECK(aws_parse_time("tomorrow") == (time_t)-1);
    CHECK(aws_credentials_from_json(
        "{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\","
        "\"SessionToken\":\"T\",\"Expiration\":\"2026-12-01T06:00:00Z\"}",
        "doc", &c, err, sizeof err));
    CHECK_STR(c.session_token, "T");
    CHECK(c.expiration == 1796104800);
    aws_credentials_clear(&c);
    CHECK(aws_credentials_from_json(
        "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"U\"}",
        "doc", &c, err, sizeof err));
    CHECK_STR(c.session_token, "U");
    CHECK(c.expiration == 0);
    aws_credentials_clear(&c);
    CHECK(!aws_credentials_from_json("{\"AccessKeyId\":\"SECRETPART\"}",
                                     "the endpoint", &c, err, sizeof err));
    CHECK(strstr(err, "the endpoint") && !strstr(err, "SECRETPART"));
    CHECK(!aws_credentials_from_json("not json", "x", &c, err, sizeof err));
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    snprintf(config_path, sizeof config_path, "%s/config", dir);
    snprintf(creds_path, sizeof creds_path, "%s/credentials", dir);
    test_ini();
    test_profiles();
    test_chain_order();
    test_documents();
    unlink(config_path);
    unlink(creds_path);
    rmdir(dir);
    return check_summary();
}
