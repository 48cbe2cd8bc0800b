/* Kinesis request building, answer parsing, partition keys, the KPL
 * aggregated record, and the credentials/region/endpoint chain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "../check.h"
#include "aws_config.h"
#include "kinesis_api.h"
#include "kpl.h"

static void test_partition_keys(void)
{
    char *k;
    char longkey[400];

    k = kinesis_partition_key(KINESIS_KEY_ROW, NULL, "public", "orders",
                              "{\"id\":1}");
    CHECK_STR(k, "public.orders:{\"id\":1}");
    free(k);
    k = kinesis_partition_key(KINESIS_KEY_ROW, NULL, "public", "orders", "{}");
    CHECK_STR(k, "public.orders");
    free(k);
    k = kinesis_partition_key(KINESIS_KEY_ROW, NULL, "public", "orders", NULL);
    CHECK_STR(k, "public.orders");
    free(k);
    k = kinesis_partition_key(KINESIS_KEY_TABLE, NULL, "public", "orders",
                              "{\"id\":1}");
    CHECK_STR(k, "public.orders");
    free(k);
    k = kinesis_partition_key(KINESIS_KEY_FIXED, "all", "public", "orders",
                              "{\"id\":1}");
    CHECK_STR(k, "all");
    free(k);

    /* Too long: a deterministic digest of the whole key. */
    memset(longkey, 'x', sizeof longkey);
    memcpy(longkey, "{\"t\":\"", 6);
    strcpy(longkey + 380, "\"}");
    k = kinesis_partition_key(KINESIS_KEY_ROW, NULL, "s", "t", longkey);
    CHECK(strncmp(k, "s.t:sha256:", 11) == 0);
    CHECK(strlen(k) == 11 + 64);
    {
        char *again =
            kinesis_partition_key(KINESIS_KEY_ROW, NULL, "s", "t", longkey);
        CHECK_STR(again, k);
        free(again);
    }
    free(k);
    /* The limit counts characters, not bytes: 200 two-byte characters
     * (400 bytes) are still a valid key. */
    {
        char utf8[401];

        for (int i = 0; i < 200; i++)
            memcpy(utf8 + 2 * i, "\xC3\xA9", 2);
        utf8[400] = '\0';
        CHECK(kinesis_utf8_chars(utf8) == 200);
        k = kinesis_partition_key(KINESIS_KEY_FIXED, utf8, "s", "t", NULL);
        CHECK_STR(k, utf8);
        free(k);
    }
}

/* Messages and transaction events: their own name, within Kinesis'
 * 1-256 characters; the fixed key when one is set. */
static void test_named_partition_keys(void)
{
    char *k, longname[300];

    k = kinesis_named_partition_key(KINESIS_KEY_ROW, NULL, "outbox");
    CHECK_STR(k, "outbox");
    free(k);
    k = kinesis_named_partition_key(KINESIS_KEY_TABLE, NULL, "0/16B3900");
    CHECK_STR(k, "0/16B3900");
    free(k);
    k = kinesis_named_partition_key(KINESIS_KEY_FIXED, "all", "outbox");
    CHECK_STR(k, "all");
    free(k);
    k = kinesis_named_partition_key(KINESIS_KEY_ROW, NULL, "");
    CHECK_STR(k, "-");
    free(k);
    memset(longname, 'p', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    k = kinesis_named_partition_key(KINESIS_KEY_ROW, NULL, longname);
    CHECK(strncmp(k, "sha256:", 7) == 0 && strlen(k) == 7 + 64);
    {
        char *again =
            kinesis_named_partition_key(KINESIS_KEY_ROW, NULL, longname);
        CHECK_STR(again, k);
        free(again);
    }
    free(k);
    longname[256] = '\0'; /* exactly the limit: kept */
    k = kinesis_named_partition_key(KINESIS_KEY_ROW, NULL, longname);
    CHECK_STR(k, longname);
    free(k);
}

static void test_body(void)
{
    kinesis_entry entries[2] = {
        {"{\"op\":\"insert\"}", 15, "public.orders"},
        {"\x00\xff", 2, "a\"b\\c"},
    };
    size_t len;
    char *body = kinesis_put_records_body("orders", entries, 2, &len);
    json_error_t jerr;
    json_t *doc = json_loads(body, 0, &jerr);

    CHECK(len == strlen(body));
    CHECK_STR(body, "{\"StreamName\":\"orders\",\"Records\":["
                    "{\"Data\":\"eyJvcCI6Imluc2VydCJ9\",\"PartitionKey\":"
                    "\"public.orders\"},"
                    "{\"Data\":\"AP8=\",\"PartitionKey\":\"a\\\"b\\\\c\"}]}");
    CHECK(doc != NULL);
    CHECK_STR(json_string_value(json_object_get(
                  json_array_get(json_object_get(doc, "Records"), 1),
                  "PartitionKey")),
              "a\"b\\c");
    json_decref(doc);
    free(body);
}

static void prefill(kit_outcome *o, size_t n, kit_outcome_kind kind)
{
    for (size_t i = 0; i < n; i++) {
        o[i].kind = kind;
        o[i].reason[0] = '\0';
    }
}

static void test_outcomes(void)
{
    kit_outcome o[3];

    prefill(o, 3, KIT_DONE);
    kinesis_put_records_outcomes(
        200,
        "{\"FailedRecordCount\":2,\"Records\":["
        "{\"SequenceNumber\":\"4968\",\"ShardId\":\"shardId-000000000000\"},"
        "{\"ErrorCode\":\"ProvisionedThroughputExceededException\","
        "\"ErrorMessage\":\"Rate exceeded for shard\"},"
        "{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":\"x\"}]}",
        "orders", 3, o);
    CHECK(o[0].kind == KIT_DONE);
    CHECK(o[1].kind == KIT_RETRY);
    CHECK(strstr(o[1].reason, "ProvisionedThroughputExceededException"));
    CHECK(o[2].kind == KIT_RETRY);
    CHECK(strstr(o[2].reason, "InternalFailure"));

    /* An answer that does not match the request: send again. */
    prefill(o, 3, KIT_DONE);
    kinesis_put_records_outcomes(
        200, "{\"FailedRecordCount\":0,\"Records\":[]}", "orders", 3, o);
    CHECK(o[0].kind == KIT_RETRY && o[2].kind == KIT_RETRY);
    prefill(o, 1, KIT_DONE);
    kinesis_put_records_outcomes(200, "not json", "orders", 1, o);
    CHECK(o[0].kind == KIT_RETRY);

    prefill(o, 2, KIT_DONE);
    kinesis_put_records_outcomes(
        400,
        "{\"__type\":\"ResourceNotFoundException\",\"message\":\"Stream "
        "orders under account 000000000000 not found.\"}",
        "orders", 2, o);
    CHECK(o[0].kind == KIT_FATAL && o[1].kind == KIT_FATAL);
    CHECK(strstr(o[0].reason, "ResourceNotFoundException") != NULL);
    CHECK(strstr(o[0].reason, "\"orders\"") != NULL);
    CHECK(strstr(o[0].reason, "not found") != NULL);

    prefill(o, 1, KIT_DONE);
    kinesis_put_records_outcomes(
        400,
        "{\"__type\":\"com.amazonaws.kinesis.v20131202#AccessDeniedException\","
        "\"Message\":\"not allowed\"}",
        "orders", 1, o);
    CHECK(o[0].kind == KIT_FATAL);
    CHECK(strstr(o[0].reason, "AccessDeniedException: not allowed") != NULL);

    prefill(o, 1, KIT_DONE);
    kinesis_put_records_outcomes(
        400, "{\"__type\":\"ValidationException\",\"message\":\"bad\"}",
        "orders", 1, o);
    CHECK(o[0].kind == KIT_FATAL);

    prefill(o, 1, KIT_DONE);
    kinesis_put_records_outcomes(
        400, "{\"__type\":\"LimitExceededException\",\"message\":\"slow\"}",
        "orders", 1, o);
    CHECK(o[0].kind == KIT_RETRY);
    prefill(o, 1, KIT_DONE);
    kinesis_put_records_outcomes(
        400,
        "{\"__type\":\"ProvisionedThroughputExceededException\",\"message\":"
        "\"slow\"}",
        "orders", 1, o);
    CHECK(o[0].kind == KIT_RETRY);
    prefill(o, 1, KIT_DONE);
    kinesis_put_records_outcomes(
        400, "{\"__type\":\"ThrottlingException\",\"message\":\"x\"}", "orders",
        1, o);
    CHECK(o[0].kind == KIT_RETRY);

    prefill(o, 1, KIT_RETRY);
    kinesis_put_records_outcomes(503, "", "orders", 1, o);
    CHECK(o[0].kind == KIT_RETRY);
    prefill(o, 1, KIT_RETRY);
    kinesis_put_records_outcomes(500, "{\"__type\":\"InternalFailure\"}",
                                 "orders", 1, o);
    CHECK(o[0].kind == KIT_RETRY);
    prefill(o, 1, KIT_DONE);
    kinesis_put_records_outcomes(404, "<html>no</html>", "orders", 1, o);
    CHECK(o[0].kind == KIT_FATAL);
    CHECK(strstr(o[0].reason, "HTTP 404") != NULL);
    /* No answer at all: left as the kit pre-filled it. */
    prefill(o, 1, KIT_RETRY);
    kinesis_put_records_outcomes(0, NULL, "orders", 1, o);
    CHECK(o[0].kind == KIT_RETRY);
}

static void test_varints(void)
{
    strbuf sb = STRBUF_INIT;

    kpl_put_varint(&sb, 0);
    kpl_put_varint(&sb, 127);
    kpl_put_varint(&sb, 128);
    kpl_put_varint(&sb, 300);
    kpl_put_varint(&sb, 1048576);
    CHECK(sb.len == 1 + 1 + 2 + 2 + 3);
    CHECK(memcmp(sb.data, "\x00\x7f\x80\x01\xac\x02\x80\x80\x40", 9) == 0);
    CHECK(kpl_varint_size(0) == 1 && kpl_varint_size(127) == 1 &&
          kpl_varint_size(128) == 2 && kpl_varint_size(1048576) == 3);
    sbuf_free(&sb);
}

static void test_kpl(void)
{
    kpl_aggregate agg = KPL_AGGREGATE_INIT;
    static const unsigned char expected[] = {
        0xF3, 0x89, 0x9A, 0xC2,                       /* magic */
        0x0A, 0x01, 'k',                              /* partition_key_table */
        0x1A, 0x05, 0x08, 0x00, 0x1A, 0x01, 'a',      /* records[0] */
        0x1A, 0x06, 0x08, 0x00, 0x1A, 0x02, 'b', 'c', /* records[1] */
        /* MD5 of the protobuf bytes (computed with Python's hashlib) */
        0x9d, 0x3f, 0x34, 0x22, 0xe3, 0x65, 0x54, 0x1b, 0x1a, 0x84, 0x56, 0x08,
        0x1d, 0x03, 0xde, 0x53};
    size_t predicted, len;
    char *out;

    kpl_aggregate_add(&agg, "a", 1);
    predicted = kpl_aggregate_size(&agg, 1, 2, 1);
    kpl_aggregate_add(&agg, "bc", 2);
    CHECK(agg.count == 2);
    CHECK(kpl_aggregate_size(&agg, 1, 0, 0) == sizeof expected);
    CHECK(predicted == sizeof expected);
    out = kpl_aggregate_finish(&agg, "k", &len);
    CHECK(len == sizeof expected);
    CHECK(memcmp(out, expected, sizeof expected) == 0);
    CHECK(agg.count == 0 && agg.records.len == 0);
    free(out);

    /* A large record needs multi-byte lengths; the prediction holds. */
    {
        size_t big = 200000;
        char *data = malloc(big);

        memset(data, 'z', big);
        predicted = kpl_aggregate_size(&agg, 13, big, 1);
        kpl_aggregate_add(&agg, data, big);
        out = kpl_aggregate_finish(&agg, "public.orders", &len);
        CHECK(len == predicted);
        CHECK(memcmp(out, KPL_MAGIC, 4) == 0);
        free(out);
        free(data);
    }
    kpl_aggregate_free(&agg);
}

static void clear_aws_env(void)
{
    static const char *const names[] = {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KINESIS",
        "AWS_CONFIG_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT"};

    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unsetenv(names[i]);
    /* Off EC2: the chain's last step must not wait for 169.254.169.254. */
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void test_aws_settings(void)
{
    aws_explicit_settings given = {0};
    aws_settings s;
    char err[512];
    char dir[] = "/tmp/kinesis-test-XXXXXX";
    char path[600], home_creds[700];
    FILE *f;

    CHECK(mkdtemp(dir) != NULL);
    clear_aws_env();
    setenv("HOME", dir, 1);

    /* No region anywhere. */
    CHECK(!aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK(strstr(err, "region") != NULL);

    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    /* No credentials anywhere. */
    CHECK(!aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK(strstr(err, "no AWS credentials") != NULL);

    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.provider->fixed.access_key_id, "AKIAENV");
    CHECK_STR(s.provider->fixed.secret_access_key, "envsecret");
    CHECK_STR(s.provider->fixed.session_token, "envtoken");
    CHECK_STR(s.region, "eu-west-1");
    CHECK_STR(s.endpoint, "https://kinesis.eu-west-1.amazonaws.com");
    CHECK_STR(s.provider->description, "environment");
    aws_settings_free(&s);

    /* AWS_REGION beats AWS_DEFAULT_REGION; the option beats both. */
    setenv("AWS_REGION", "us-west-2", 1);
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.region, "us-west-2");
    aws_settings_free(&s);
    given.region = "cn-north-1";
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.region, "cn-north-1");
    CHECK_STR(s.endpoint, "https://kinesis.cn-north-1.amazonaws.com.cn");
    aws_settings_free(&s);
    given.region = NULL;

    /* Endpoints: generic, then service-specific, then the option. */
    setenv("AWS_ENDPOINT_URL", "http://localhost:4566/", 1);
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.endpoint, "http://localhost:4566");
    aws_settings_free(&s);
    setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:4567", 1);
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.endpoint, "http://127.0.0.1:4567");
    aws_settings_free(&s);
    given.endpoint = "https://vpce-1.kinesis.us-west-2.vpce.amazonaws.com";
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.endpoint,
              "https://vpce-1.kinesis.us-west-2.vpce.amazonaws.com");
    aws_settings_free(&s);
    given.endpoint = "ftp://x";
    CHECK(!aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK(strstr(err, "ftp://x") != NULL);
    given.endpoint = NULL;

    /* Explicit keys beat the environment, and never mix with its token. */
    given.access_key_id = "AKIAOPT";
    given.secret_access_key = "optsecret";
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.provider->fixed.access_key_id, "AKIAOPT");
    CHECK_STR(s.provider->fixed.secret_access_key, "optsecret");
    CHECK(s.provider->fixed.session_token == NULL);
    CHECK_STR(s.provider->description, "sink options");
    aws_settings_free(&s);
    given.secret_access_key = NULL;
    CHECK(!aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK(strstr(err, "together") != NULL);
    given.access_key_id = NULL;

    /* The shared credentials file, default location and profile. */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    snprintf(path, sizeof path, "%s/.aws", dir);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(home_creds, sizeof home_creds, "%s/credentials", path);
    f = fopen(home_creds, "w");
    fputs("# comment\n[default]\naws_access_key_id = AKIAFILE\n"
          "aws_secret_access_key=filesecret \n\n"
          "[other]\n; another comment\nAWS_ACCESS_KEY_ID = AKIAOTHER\n"
          "aws_secret_access_key = othersecret\n"
          "aws_session_token = othertoken\n"
          "[broken]\naws_access_key_id = AKIAHALF\n",
          f);
    fclose(f);
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.provider->fixed.access_key_id, "AKIAFILE");
    CHECK_STR(s.provider->fixed.secret_access_key, "filesecret");
    CHECK(s.provider->fixed.session_token == NULL);
    CHECK(strstr(s.provider->description, "[default]") != NULL);
    aws_settings_free(&s);
    setenv("AWS_PROFILE", "other", 1);
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.provider->fixed.access_key_id, "AKIAOTHER");
    CHECK_STR(s.provider->fixed.session_token, "othertoken");
    aws_settings_free(&s);
    given.profile = "broken";
    CHECK(!aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK(strstr(err, "[broken]") != NULL);
    CHECK(strstr(err, "AKIAHALF") == NULL);
    given.profile = "missing";
    CHECK(!aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    /* An explicit profile beats keys in the environment. */
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    given.profile = "other";
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.provider->fixed.access_key_id, "AKIAOTHER");
    aws_settings_free(&s);
    given.profile = NULL;
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.provider->fixed.access_key_id, "AKIAENV");
    aws_settings_free(&s);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");

    /* AWS_SHARED_CREDENTIALS_FILE moves the file. */
    snprintf(path, sizeof path, "%s/elsewhere", dir);
    f = fopen(path, "w");
    fputs("[other]\naws_access_key_id=AKIAMOVED\n"
          "aws_secret_access_key=movedsecret\n",
          f);
    fclose(f);
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    CHECK(aws_settings_resolve(&given, "kinesis", &s, err, sizeof err));
    CHECK_STR(s.provider->fixed.access_key_id, "AKIAMOVED");
    aws_settings_free(&s);

    unlink(path);
    unlink(home_creds);
    snprintf(path, sizeof path, "%s/.aws", dir);
    rmdir(path);
    rmdir(dir);
    clear_aws_env();
}

static void test_endpoint_parts(void)
{
    char *host, *path;

    CHECK(aws_endpoint_parts("https://kinesis.us-east-1.amazonaws.com", &host,
                             &path));
    CHECK_STR(host, "kinesis.us-east-1.amazonaws.com");
    CHECK_STR(path, "/");
    free(host);
    free(path);
    CHECK(aws_endpoint_parts("http://127.0.0.1:4567", &host, &path));
    CHECK_STR(host, "127.0.0.1:4567");
    free(host);
    free(path);
    CHECK(aws_endpoint_parts("https://h:443/prefix", &host, &path));
    CHECK_STR(host, "h");
    CHECK_STR(path, "/prefix");
    free(host);
    free(path);
    CHECK(aws_endpoint_parts("http://h:80", &host, &path));
    CHECK_STR(host, "h");
    free(host);
    free(path);
    CHECK(aws_endpoint_parts("http://[::1]:4567", &host, &path));
    CHECK_STR(host, "[::1]:4567");
    free(host);
    free(path);
    CHECK(!aws_endpoint_parts("kinesis.amazonaws.com", &host, &path));
    CHECK(!aws_endpoint_parts("http://user:pw@host", &host, &path));
}

int main(void)
{
    test_partition_keys();
    test_named_partition_keys();
    test_body();
    test_outcomes();
    test_varints();
    test_kpl();
    test_aws_settings();
    test_endpoint_parts();
    return check_summary();
}
