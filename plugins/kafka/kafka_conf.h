/* The librdkafka configuration of the Kafka sink: pgspout's defaults, the
 * user's kafka.<property> options, and the settings its guarantees rest on
 * (idempotence, acks=all, no message timeout), which no option may
 * change. Values of secret properties are collected so that no log line
 * shows them. */
#ifndef KAFKA_CONF_H
#define KAFKA_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>
#include <pgspout/pgspout.h>

/* The prefix option: kafka.<property> sets a librdkafka property. */
#define KAFKA_PROPERTY_PREFIX "kafka."

/* Values never to be logged; the sink owns the copies. */
typedef struct kafka_secrets {
    char **values;
    size_t n;
} kafka_secrets;

void kafka_secrets_add(kafka_secrets *s, const char *value);
/* Replaces every secret in the NUL-terminated text, in place. */
void kafka_secrets_redact(const kafka_secrets *s, char *text);
void kafka_secrets_free(kafka_secrets *s);

/* Whether a librdkafka property holds a secret (passwords, keys, tokens,
 * OAuth configuration): its value is never logged. */
bool kafka_property_is_secret(const char *property);

/* Why a kafka.<property> option is refused (pgspout sets that property
 * itself, or another option does), or NULL when the user may set it. */
const char *kafka_property_refusal(const char *property);

typedef struct kafka_conf_settings {
    const char *brokers;
    const char *compression;
} kafka_conf_settings;

/* Builds the configuration: defaults, then every kafka.<property> the
 * host holds for this sink (host->option_prefixed), then the fixed
 * settings. NULL with a message in err naming the option on any refusal
 * (no secret value in it), and the option in *bad (a string of the host's
 * or a literal). */
rd_kafka_conf_t *kafka_conf_build(const pgspout_host_api *host,
                                  pgspout_sink_handle *handle,
                                  const kafka_conf_settings *settings,
                                  kafka_secrets *secrets, const char **bad,
                                  char *err, size_t errlen);

/* A property's value in conf as an integer, or fallback. */
long long kafka_conf_int(const rd_kafka_conf_t *conf, const char *property,
                         long long fallback);

#endif
