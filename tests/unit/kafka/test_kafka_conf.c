/* The Kafka sink's librdkafka configuration: kafka.<property> options
 * passed through, the properties pgspout sets itself refused, secrets
 * recognised and kept out of messages; and the acknowledgement window,
 * which turns out-of-order deliveries into in-order acknowledgements. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "kafka_acks.h"
#include "kafka_conf.h"

/* ---- a host that holds kafka.<property> options ---- */

static const char *const *fake_properties; /* name, value, ..., NULL */

static bool fake_option_prefixed(pgspout_sink_handle *sink, const char *prefix,
                                 pgspout_option_visitor visit, void *ctx)
{
    (void)sink;
    for (size_t i = 0; fake_properties[i]; i += 2)
        if (strncmp(fake_properties[i], prefix, strlen(prefix)) == 0 &&
            !visit(ctx, fake_properties[i], fake_properties[i + 1]))
            return false;
    return true;
}

static const pgspout_host_api fake_host = {
    .size = sizeof(pgspout_host_api),
    .abi_major = PGSPOUT_ABI_MAJOR,
    .abi_minor = PGSPOUT_ABI_MINOR,
    .option_prefixed = fake_option_prefixed,
};

static const kafka_conf_settings settings = {"127.0.0.1:9", "none"};

static rd_kafka_conf_t *build(const char *const *properties,
                              kafka_secrets *secrets, char *err, size_t errlen)
{
    fake_properties = properties;
    const char *bad;
    return kafka_conf_build(&fake_host, NULL, &settings, secrets, &bad, err,
                            errlen);
}

static char *conf_value(rd_kafka_conf_t *conf, const char *name)
{
    static char buf[512];
    size_t size = sizeof buf;
    if (rd_kafka_conf_get(conf, name, buf, &size) != RD_KAFKA_CONF_OK)
        return NULL;
    return buf;
}

static void test_defaults_and_fixed(void)
{
    static const char *const none[] = {NULL};
    kafka_secrets secrets = {0};
    char err[512] = "";
    rd_kafka_conf_t *conf = build(none, &secrets, err, sizeof err);
    CHECK(conf != NULL);
    if (!conf)
        return;
    CHECK_STR(conf_value(conf, "bootstrap.servers"), "127.0.0.1:9");
    CHECK_STR(conf_value(conf, "enable.idempotence"), "true");
    CHECK_STR(conf_value(conf, "acks"), "-1"); /* all */
    CHECK_STR(conf_value(conf, "message.timeout.ms"), "0");
    CHECK_STR(conf_value(conf, "partitioner"), "murmur2_random");
    CHECK_STR(conf_value(conf, "queue.buffering.max.kbytes"), "65536");
    CHECK_STR(conf_value(conf, "enable.ssl.certificate.verification"), "true");
    CHECK_STR(conf_value(conf, "ssl.endpoint.identification.algorithm"),
              "https");
    CHECK(kafka_conf_int(conf, "queue.buffering.max.messages", 0) > 0);
    CHECK(kafka_conf_int(conf, "no.such.property", 7) == 7);
    rd_kafka_conf_destroy(conf);
}

static void test_user_properties(void)
{
    static const char *const props[] = {"kafka.linger.ms",
                                        "20",
                                        "kafka.partitioner",
                                        "consistent_random",
                                        "kafka.security.protocol",
                                        "SASL_SSL",
                                        "kafka.sasl.mechanisms",
                                        "PLAIN",
                                        "kafka.sasl.username",
                                        "app",
                                        "kafka.sasl.password",
                                        "Hunter2-Kafka-Secret",
                                        NULL};
    kafka_secrets secrets = {0};
    char err[512] = "";
    rd_kafka_conf_t *conf = build(props, &secrets, err, sizeof err);
    CHECK(conf != NULL);
    if (!conf)
        return;
    CHECK_STR(conf_value(conf, "linger.ms"), "20");
    CHECK_STR(conf_value(conf, "partitioner"), "consistent_random");
    CHECK_STR(conf_value(conf, "sasl.username"), "app");
    /* The password is a secret: remembered, and redacted from text. */
    CHECK(secrets.n == 1);
    char line[] = "SASL auth with Hunter2-Kafka-Secret failed";
    kafka_secrets_redact(&secrets, line);
    CHECK_STR(line, "SASL auth with [redacted] failed");
    kafka_secrets_free(&secrets);
    rd_kafka_conf_destroy(conf);
}

static void expect_refusal(const char *name, const char *value,
                           const char *fragment, const char *absent)
{
    const char *props[] = {name, value, NULL};
    kafka_secrets secrets = {0};
    char err[512] = "";
    rd_kafka_conf_t *conf = build(props, &secrets, err, sizeof err);
    CHECK(conf == NULL);
    if (conf)
        rd_kafka_conf_destroy(conf);
    bool found = strstr(err, fragment) != NULL;
    if (!found)
        printf("# %s: got \"%s\"\n", name, err);
    CHECK(found);
    CHECK(!absent || strstr(err, absent) == NULL);
    kafka_secrets_free(&secrets);
}

static void test_refusals(void)
{
    expect_refusal("kafka.enable.idempotence", "false",
                   "option kafka.enable.idempotence is not accepted", NULL);
    expect_refusal("kafka.acks", "1", "kafka.acks is not accepted", NULL);
    expect_refusal("kafka.request.required.acks", "0", "not accepted", NULL);
    expect_refusal("kafka.message.timeout.ms", "5000", "not accepted", NULL);
    expect_refusal("kafka.delivery.timeout.ms", "5000", "not accepted", NULL);
    expect_refusal("kafka.transactional.id", "x", "not accepted", NULL);
    expect_refusal("kafka.bootstrap.servers", "b:1", "brokers option", NULL);
    expect_refusal("kafka.compression.type", "lz4", "compression option", NULL);
    /* librdkafka's own refusals name the option. */
    expect_refusal("kafka.no.such.property", "1",
                   "option kafka.no.such.property:", NULL);
    expect_refusal("kafka.linger.ms", "soon", "option kafka.linger.ms:", NULL);
    /* A secret's value never appears, even where librdkafka quotes it. */
    expect_refusal(
        "kafka.sasl.oauthbearer.method", "Top-Secret-Method",
        "option kafka.sasl.oauthbearer.method:", "Top-Secret-Method");
}

static void test_secret_names(void)
{
    CHECK(kafka_property_is_secret("sasl.password"));
    CHECK(kafka_property_is_secret("ssl.key.password"));
    CHECK(kafka_property_is_secret("ssl.keystore.password"));
    CHECK(kafka_property_is_secret("ssl.key.pem"));
    CHECK(kafka_property_is_secret("ssl.certificate.pem"));
    CHECK(kafka_property_is_secret("sasl.oauthbearer.client.secret"));
    CHECK(kafka_property_is_secret("sasl.oauthbearer.config"));
    CHECK(!kafka_property_is_secret("sasl.username"));
    CHECK(!kafka_property_is_secret("ssl.ca.location"));
    CHECK(!kafka_property_is_secret("linger.ms"));
    CHECK(kafka_property_refusal("linger.ms") == NULL);
}

/* ---- the acknowledgement window ---- */

static void test_acks_in_order(void)
{
    kafka_acks *a = kafka_acks_new(8);
    uint64_t id[4];
    pgspout_position upto;
    CHECK(kafka_acks_open(a, (pgspout_position){10, 1}, 1, &id[0], NULL, NULL));
    CHECK(kafka_acks_open(a, (pgspout_position){10, 2}, 2, &id[1], NULL, NULL));
    CHECK(kafka_acks_open(a, (pgspout_position){10, 3}, 0, &id[2], NULL, NULL));
    CHECK(kafka_acks_open(a, (pgspout_position){20, 1}, 1, &id[3], NULL, NULL));
    CHECK(!kafka_acks_take(a, &upto));
    /* A later delivery first: nothing to acknowledge yet. */
    kafka_acks_complete(a, id[3]);
    kafka_acks_complete(a, id[1]);
    CHECK(!kafka_acks_take(a, &upto));
    kafka_acks_complete(a, id[0]);
    /* Entry 1 still waits for its second record (a tombstone). */
    CHECK(kafka_acks_take(a, &upto) && upto.commit_lsn == 10 && upto.seq == 1);
    CHECK(kafka_acks_open_count(a) == 3);
    kafka_acks_complete(a, id[1]);
    /* The rest of the prefix at once, the empty entry included. */
    CHECK(kafka_acks_take(a, &upto) && upto.commit_lsn == 20 && upto.seq == 1);
    CHECK(!kafka_acks_take(a, &upto));
    CHECK(kafka_acks_open_count(a) == 0);
    CHECK(kafka_acks_wait_all(a, NULL, NULL));
    /* Completions of entries already passed, or never opened, are ignored. */
    kafka_acks_complete(a, id[0]);
    kafka_acks_complete(a, 999);
    CHECK(!kafka_acks_take(a, &upto));
    kafka_acks_free(a);
}

static int give_up_calls;

static bool give_up_after_two(void *ctx)
{
    (void)ctx;
    return ++give_up_calls > 2;
}

static void *complete_later(void *arg)
{
    kafka_acks *a = arg;
    usleep(150 * 1000);
    kafka_acks_complete(a, 0);
    return NULL;
}

static void test_acks_bounded(void)
{
    kafka_acks *a = kafka_acks_new(2);
    uint64_t id;
    CHECK(kafka_acks_open(a, (pgspout_position){1, 1}, 1, &id, NULL, NULL));
    CHECK(kafka_acks_open(a, (pgspout_position){1, 2}, 1, &id, NULL, NULL));
    /* Full: opening waits, and gives up when told to. */
    give_up_calls = 0;
    CHECK(!kafka_acks_open(a, (pgspout_position){1, 3}, 1, &id,
                           give_up_after_two, NULL));
    CHECK(give_up_calls == 3);
    /* A delivery frees room for a waiting writer. */
    pthread_t t;
    pthread_create(&t, NULL, complete_later, a);
    CHECK(kafka_acks_open(a, (pgspout_position){1, 3}, 1, &id, NULL, NULL));
    pthread_join(t, NULL);
    CHECK(id == 2 && kafka_acks_open_count(a) == 2);
    /* Waiting for everything gives up too, and a failure ends every wait. */
    give_up_calls = 0;
    CHECK(!kafka_acks_wait_all(a, give_up_after_two, NULL));
    kafka_acks_fail(a, "first reason");
    kafka_acks_fail(a, "second reason");
    char why[64];
    CHECK(kafka_acks_failed(a, why, sizeof why));
    CHECK_STR(why, "first reason");
    CHECK(!kafka_acks_wait_all(a, NULL, NULL));
    CHECK(!kafka_acks_open(a, (pgspout_position){1, 4}, 1, &id, NULL, NULL));
    kafka_acks_free(a);
}

int main(void)
{
    test_defaults_and_fixed();
    test_user_properties();
    test_refusals();
    test_secret_names();
    test_acks_in_order();
    test_acks_bounded();
    return check_summary();
}
