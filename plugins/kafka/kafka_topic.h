/* Topic names from a template: "{schema}.{table}" and the like, where
 * {schema} and {table} stand for the event's schema and table and every
 * other character is literal. Kafka accepts topic names of 1 to 249
 * characters from [a-zA-Z0-9._-], other than "." and "..". */
#ifndef KAFKA_TOPIC_H
#define KAFKA_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define KAFKA_TOPIC_MAX_LEN 249

typedef struct kafka_topic_template kafka_topic_template;

/* Parses a template. NULL with a message in err when it names an unknown
 * placeholder, leaves a brace unclosed, or holds a literal character that
 * no topic name may contain. */
kafka_topic_template *kafka_topic_template_parse(const char *text, char *err,
                                                 size_t errlen);

/* True when the template names no placeholder (one topic for everything). */
bool kafka_topic_template_is_fixed(const kafka_topic_template *t);

/* The topic for a table, malloc'd; NULL with a message in err when the
 * result is no valid Kafka topic name (the schema or table holds a
 * character Kafka refuses, or the name is too long). */
char *kafka_topic_expand(const kafka_topic_template *t, const char *schema,
                         const char *table, char *err, size_t errlen);

void kafka_topic_template_free(kafka_topic_template *t);

/* True when name is a valid Kafka topic name; else false with the reason
 * in err. */
bool kafka_topic_name_valid(const char *name, char *err, size_t errlen);

#endif
