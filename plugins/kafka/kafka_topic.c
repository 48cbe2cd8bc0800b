#include "kafka_topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

typedef enum part_kind { PART_LITERAL, PART_SCHEMA, PART_TABLE } part_kind;

typedef struct part {
    part_kind kind;
    char *text; /* PART_LITERAL only */
} part;

struct kafka_topic_template {
    part *parts;
    size_t n;
};

static bool topic_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool kafka_topic_name_valid(const char *name, char *err, size_t errlen)
{
    size_t len = strlen(name);
    if (len == 0 || len > KAFKA_TOPIC_MAX_LEN) {
        snprintf(err, errlen, "a topic name has 1 to %d characters, not %zu",
                 KAFKA_TOPIC_MAX_LEN, len);
        return false;
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(err, errlen, "\"%s\" is not a valid topic name", name);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!topic_char(name[i])) {
            snprintf(err, errlen,
                     "a topic name may hold only ASCII letters, digits, '.', "
                     "'_' and '-' (found byte 0x%02X at offset %zu)",
                     (unsigned char)name[i], i);
            return false;
        }
    }
    return true;
}

static void add_part(kafka_topic_template *t, part_kind kind, const char *text,
                     size_t len)
{
    t->parts = xrealloc(t->parts, (t->n + 1) * sizeof *t->parts);
    t->parts[t->n++] =
        (part){kind, kind == PART_LITERAL ? xstrndup(text, len) : NULL};
}

/* The placeholder starting at p ("{schema}"...); its length in *len, or
 * false when it is none of those. */
static bool placeholder_at(const char *p, part_kind *kind, size_t *len)
{
    static const struct {
        const char *name;
        part_kind kind;
    } known[] = {{"{schema}", PART_SCHEMA}, {"{table}", PART_TABLE}};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        size_t n = strlen(known[i].name);
        if (strncmp(p, known[i].name, n) == 0) {
            *kind = known[i].kind;
            *len = n;
            return true;
        }
    }
    return false;
}

static bool parse_parts(kafka_topic_template *t, const char *text, char *err,
                        size_t errlen)
{
    const char *p = text, *literal = text;
    while (*p) {
        part_kind kind;
        size_t len;
        if (*p == '{') {
            if (!placeholder_at(p, &kind, &len)) {
                snprintf(err, errlen,
                         "unknown placeholder at \"%.20s\" (known: {schema}, "
                         "{table})",
                         p);
                return false;
            }
            if (p > literal)
                add_part(t, PART_LITERAL, literal, (size_t)(p - literal));
            add_part(t, kind, NULL, 0);
            p += len;
            literal = p;
            continue;
        }
        if (!topic_char(*p)) {
            snprintf(err, errlen,
                     "byte 0x%02X at offset %zu cannot be part of a topic "
                     "name (only ASCII letters, digits, '.', '_' and '-')",
                     (unsigned char)*p, (size_t)(p - text));
            return false;
        }
        p++;
    }
    if (p > literal)
        add_part(t, PART_LITERAL, literal, (size_t)(p - literal));
    return true;
}

kafka_topic_template *kafka_topic_template_parse(const char *text, char *err,
                                                 size_t errlen)
{
    kafka_topic_template *t = xcalloc(1, sizeof *t);
    if (!parse_parts(t, text, err, errlen)) {
        kafka_topic_template_free(t);
        return NULL;
    }
    if (t->n == 0) {
        snprintf(err, errlen, "the topic template is empty");
        kafka_topic_template_free(t);
        return NULL;
    }
    /* A fixed name is checked whole now, rather than at the first event. */
    if (kafka_topic_template_is_fixed(t) &&
        !kafka_topic_name_valid(text, err, errlen)) {
        kafka_topic_template_free(t);
        return NULL;
    }
    return t;
}

bool kafka_topic_template_is_fixed(const kafka_topic_template *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->parts[i].kind != PART_LITERAL)
            return false;
    return true;
}

char *kafka_topic_expand(const kafka_topic_template *t, const char *schema,
                         const char *table, char *err, size_t errlen)
{
    strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < t->n; i++) {
        const part *pt = &t->parts[i];
        sbuf_append_str(&sb, pt->kind == PART_SCHEMA  ? schema
                             : pt->kind == PART_TABLE ? table
                                                      : pt->text);
    }
    char *name = sbuf_detach(&sb);
    if (!kafka_topic_name_valid(name, err, errlen)) {
        free(name);
        return NULL;
    }
    return name;
}

void kafka_topic_template_free(kafka_topic_template *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->parts[i].text);
    free(t->parts);
    free(t);
}
