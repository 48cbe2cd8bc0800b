#include "kafka_conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "redact.h"

void kafka_secrets_add(kafka_secrets *s, const char *value)
{
    if (!value || !*value)
        return;
    s->values = xrealloc(s->values, (s->n + 1) * sizeof *s->values);
    s->values[s->n++] = xstrdup(value);
}

void kafka_secrets_redact(const kafka_secrets *s, char *text)
{
    for (size_t i = 0; i < s->n; i++)
        redact(text, s->values[i]);
}

void kafka_secrets_free(kafka_secrets *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->values[i]);
    free(s->values);
    s->values = NULL;
    s->n = 0;
}

bool kafka_property_is_secret(const char *property)
{
    /* librdkafka's sensitive properties (sasl.password, ssl.key.password,
     * ssl.keystore.password, ssl.key.pem, ssl_key,
     * sasl.oauthbearer.client.secret, sasl.oauthbearer.config, ...) and
     * anything named like them. */
    static const char *const words[] = {"password", "secret", "pem",
                                        "ssl_key",  "token",  "oauthbearer"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strstr(property, words[i]))
            return true;
    return false;
}

const char *kafka_property_refusal(const char *property)
{
    static const struct {
        const char *property, *why;
    } owned[] = {
        {"bootstrap.servers", "the brokers option sets it"},
        {"metadata.broker.list", "the brokers option sets it"},
        {"compression.codec", "the compression option sets it"},
        {"compression.type", "the compression option sets it"},
        {"enable.idempotence",
         "pgspout keeps it true (no duplicates or reordering on retries)"},
        {"acks", "pgspout keeps it at all (a record is durable once every "
                 "in-sync replica has it)"},
        {"request.required.acks", "pgspout keeps it at all (a record is "
                                  "durable once every in-sync replica has "
                                  "it)"},
        {"message.timeout.ms", "pgspout keeps it at 0 (records wait for the "
                               "broker however long it is away, in order)"},
        {"delivery.timeout.ms", "pgspout keeps it at 0 (records wait for "
                                "the broker however long it is away, in "
                                "order)"},
        {"transactional.id", "the sink produces without transactions"},
    };
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        if (strcmp(property, owned[i].property) == 0)
            return owned[i].why;
    return NULL;
}

static bool conf_set(rd_kafka_conf_t *conf, const char *property,
                     const char *value, char *err, size_t errlen)
{
    char why[512];
    if (rd_kafka_conf_set(conf, property, value, why, sizeof why) ==
        RD_KAFKA_CONF_OK)
        return true;
    snprintf(err, errlen, "librdkafka property %s: %s", property, why);
    return false;
}

typedef struct user_properties {
    rd_kafka_conf_t *conf;
    kafka_secrets *secrets;
    const char *refused; /* the option refused, if any */
    char *err;
    size_t errlen;
} user_properties;

static bool set_user_property(void *ctx, const char *name, const char *value)
{
    user_properties *u = ctx;
    const char *property = name + strlen(KAFKA_PROPERTY_PREFIX);
    u->refused = name;
    const char *refusal = kafka_property_refusal(property);
    if (refusal) {
        snprintf(u->err, u->errlen, "option %s is not accepted: %s", name,
                 refusal);
        return false;
    }
    if (kafka_property_is_secret(property))
        kafka_secrets_add(u->secrets, value);
    char why[512];
    if (rd_kafka_conf_set(u->conf, property, value, why, sizeof why) ==
        RD_KAFKA_CONF_OK) {
        u->refused = NULL;
        return true;
    }
    /* librdkafka quotes the value in some messages. */
    if (kafka_property_is_secret(property))
        redact(why, value);
    snprintf(u->err, u->errlen, "option %s: %s", name, why);
    return false;
}

/* pgspout's defaults, which kafka.<property> may change. */
static bool set_defaults(rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"client.id", "pgspout"},
        /* Java's partitioner: a key lands where a Java producer (Kafka
         * Connect, Debezium) would put it. */
        {"partitioner", "murmur2_random"},
        /* librdkafka's 1 GiB would let the queue grow far past what the
         * stream needs to keep the broker busy. */
        {"queue.buffering.max.kbytes", "65536"},
        /* One request at a time per broker: a batch that failed and waits
         * for its retry then never has a later batch of its partition
         * succeed first, which librdkafka (2.0.2) takes as proof that the
         * failed one was stored ("implicit ack") even when the error said
         * it was not. The sink stops on such an acknowledgement (it has no
         * offset); this keeps it from happening. */
        {"max.in.flight.requests.per.connection", "1"},
        {"enable.ssl.certificate.verification", "true"},
        {"ssl.endpoint.identification.algorithm", "https"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
        if (!conf_set(conf, defaults[i][0], defaults[i][1], err, errlen))
            return false;
    return true;
}

/* What the sink's guarantees rest on; set last, so nothing overrides it. */
static bool set_fixed(rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    static const char *const fixed[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"message.timeout.ms", "0"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (!conf_set(conf, fixed[i][0], fixed[i][1], err, errlen))
            return false;
    return true;
}

rd_kafka_conf_t *kafka_conf_build(const pgspout_host_api *host,
                                  pgspout_sink_handle *handle,
                                  const kafka_conf_settings *settings,
                                  kafka_secrets *secrets, const char **bad,
                                  char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    user_properties u = {conf, secrets, NULL, err, errlen};
    *bad = "brokers";
    bool ok =
        set_defaults(conf, err, errlen) &&
        conf_set(conf, "bootstrap.servers", settings->brokers, err, errlen);
    if (ok)
        *bad = "compression";
    ok = ok && conf_set(conf, "compression.codec", settings->compression, err,
                        errlen);
    if (ok) {
        ok = host->option_prefixed(handle, KAFKA_PROPERTY_PREFIX,
                                   set_user_property, &u);
        *bad = u.refused;
    }
    ok = ok && set_fixed(conf, err, errlen);
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    *bad = NULL;
    return conf;
}

long long kafka_conf_int(const rd_kafka_conf_t *conf, const char *property,
                         long long fallback)
{
    char buf[64];
    size_t size = sizeof buf;
    if (rd_kafka_conf_get(conf, property, buf, &size) != RD_KAFKA_CONF_OK)
        return fallback;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return end != buf && *end == '\0' ? v : fallback;
}
