#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_BUCKETS 256

struct metric_series {
    metric_series *next;      /* in the family, in creation order */
    metric_series *hash_next; /* in its hash bucket */
    const metric_family *family;
    char *values[METRICS_MAX_LABELS];
    _Atomic uint64_t value;    /* counter: the count; gauge: double bits */
    _Atomic uint64_t *buckets; /* histogram: per bucket, not cumulative */
    _Atomic uint64_t count;    /* histogram: observations */
    _Atomic uint64_t sum_bits; /* histogram: their sum, double bits */
};

struct metric_family {
    metric_family *next;
    const char *name, *help;
    metric_type type;
    const char *labels[METRICS_MAX_LABELS];
    size_t nlabels;
    const double *bounds;
    size_t nbounds;
    pthread_mutex_t lock; /* the series lists */
    metric_series *first, *last;
    metric_series *hash[HASH_BUCKETS];
    size_t nseries;
    metric_series *overflow;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static metric_family *families, *families_last;

/* ---- doubles in atomics ---- */

static uint64_t double_bits(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

static double bits_double(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static void atomic_add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load(bits);
    while (!atomic_compare_exchange_weak(bits, &old,
                                         double_bits(bits_double(old) + delta)))
        ;
}

/* ---- the registry ---- */

metric_family *metrics_family(const char *name, const char *help,
                              metric_type type, const char *const *labels,
                              const double *buckets, size_t nbuckets)
{
    pthread_mutex_lock(&registry_lock);
    metric_family *f = families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (!f) {
        f = xcalloc(1, sizeof *f);
        f->name = name;
        f->help = help;
        f->type = type;
        for (size_t i = 0; labels && labels[i] && i < METRICS_MAX_LABELS; i++)
            f->labels[f->nlabels++] = labels[i];
        f->bounds = buckets;
        f->nbounds = buckets ? nbuckets : 0;
        pthread_mutex_init(&f->lock, NULL);
        if (families_last)
            families_last->next = f;
        else
            families = f;
        families_last = f;
    }
    pthread_mutex_unlock(&registry_lock);
    return f;
}

static size_t hash_values(const metric_family *f, const char *const *values)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < f->nlabels; i++) {
        for (const char *p = values[i] ? values[i] : ""; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211u;
        h = (h ^ 0xff) *
            1099511628211u; /* ("a","bc") differs from ("ab","c") */
    }
    return (size_t)(h % HASH_BUCKETS);
}

static bool same_values(const metric_family *f, const metric_series *s,
                        const char *const *values)
{
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
            return false;
    return true;
}

/* A new series, linked into the creation-order list. Lock held. */
static metric_series *new_series(metric_family *f, const char *const *values)
{
    metric_series *s = xcalloc(1, sizeof *s);
    s->family = f;
    for (size_t i = 0; i < f->nlabels; i++)
        s->values[i] = xstrdup(values[i] ? values[i] : "");
    if (f->type == METRIC_HISTOGRAM)
        s->buckets = xcalloc(f->nbounds + 1, sizeof *s->buckets);
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    return s;
}

metric_series *metrics_series(metric_family *f, const char *const *values)
{
    size_t h = hash_values(f, values);
    pthread_mutex_lock(&f->lock);
    metric_series *s = f->hash[h];
    while (s && !same_values(f, s, values))
        s = s->hash_next;
    if (!s && f->nseries >= METRICS_MAX_SERIES) {
        if (!f->overflow) {
            const char *overflow[METRICS_MAX_LABELS];
            for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
                overflow[i] = METRICS_OVERFLOW_LABEL;
            f->overflow = new_series(f, overflow);
        }
        s = f->overflow;
    } else if (!s) {
        s = new_series(f, values);
        s->hash_next = f->hash[h];
        f->hash[h] = s;
        f->nseries++;
    }
    pthread_mutex_unlock(&f->lock);
    return s;
}

metric_series *metrics_series0(metric_family *f)
{
    const char *none[METRICS_MAX_LABELS] = {NULL};
    return metrics_series(f, none);
}

static void free_series(metric_series *s)
{
    for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
        free(s->values[i]);
    free(s->buckets);
    free(s);
}

void metrics_family_clear(metric_family *f)
{
    pthread_mutex_lock(&f->lock);
    for (metric_series *s = f->first, *next; s; s = next) {
        next = s->next;
        free_series(s);
    }
    f->first = f->last = f->overflow = NULL;
    memset(f->hash, 0, sizeof f->hash);
    f->nseries = 0;
    pthread_mutex_unlock(&f->lock);
}

void metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    for (metric_family *f = families, *next; f; f = next) {
        next = f->next;
        metrics_family_clear(f);
        pthread_mutex_destroy(&f->lock);
        free(f);
    }
    families = families_last = NULL;
    pthread_mutex_unlock(&registry_lock);
}

/* ---- updates ---- */

void metrics_add(metric_series *s, uint64_t n)
{
    if (s)
        atomic_fetch_add(&s->value, n);
}

void metrics_set(metric_series *s, double value)
{
    if (s)
        atomic_store(&s->value, double_bits(value));
}

void metrics_gauge_add(metric_series *s, double delta)
{
    if (s)
        atomic_add_double(&s->value, delta);
}

double metrics_value(const metric_series *s)
{
    return s ? bits_double(atomic_load(&s->value)) : 0;
}

void metrics_observe(metric_series *s, double value, uint64_t count)
{
    if (!s || !s->buckets)
        return;
    const metric_family *f = s->family;
    size_t i = 0;
    while (i < f->nbounds && value > f->bounds[i])
        i++;
    atomic_fetch_add(&s->buckets[i], count);
    atomic_fetch_add(&s->count, count);
    atomic_add_double(&s->sum_bits, value * (double)count);
}

/* ---- exposition ---- */

static void append_escaped(strbuf *out, const char *s, bool in_label)
{
    for (; *s; s++) {
        if (*s == '\\')
            sbuf_append_str(out, "\\\\");
        else if (*s == '\n')
            sbuf_append_str(out, "\\n");
        else if (*s == '"' && in_label)
            sbuf_append_str(out, "\\\"");
        else
            sbuf_append_char(out, *s);
    }
}

/* The shortest of %.15g..%.17g that reads back as v: 0.090945, not
 * 0.090944999999999998. */
static void append_shortest(strbuf *out, double v)
{
    char text[32];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    sbuf_append_str(out, text);
}

static void append_number(strbuf *out, double v)
{
    if (isnan(v))
        sbuf_append_str(out, "NaN");
    else if (isinf(v))
        sbuf_append_str(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        sbuf_appendf(out, "%.0f", v);
    else
        append_shortest(out, v);
}

/* name{labels[,le="bound"]} */
static void append_sample_name(strbuf *out, const metric_family *f,
                               const metric_series *s, const char *suffix,
                               const char *le)
{
    sbuf_append_str(out, f->name);
    sbuf_append_str(out, suffix);
    if (f->nlabels == 0 && !le)
        return;
    sbuf_append_char(out, '{');
    for (size_t i = 0; i < f->nlabels; i++) {
        sbuf_appendf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        append_escaped(out, s->values[i], true);
        sbuf_append_char(out, '"');
    }
    if (le)
        sbuf_appendf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    sbuf_append_char(out, '}');
}

static void render_histogram(strbuf *out, const metric_family *f,
                             const metric_series *s)
{
    uint64_t cumulative = 0;
    char le[32];
    for (size_t i = 0; i <= f->nbounds; i++) {
        cumulative += atomic_load(&s->buckets[i]);
        if (i < f->nbounds)
            snprintf(le, sizeof le, "%g", f->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        append_sample_name(out, f, s, "_bucket", le);
        sbuf_appendf(out, " %llu\n", (unsigned long long)cumulative);
    }
    append_sample_name(out, f, s, "_sum", NULL);
    sbuf_append_char(out, ' ');
    append_number(out, bits_double(atomic_load(&s->sum_bits)));
    sbuf_append_char(out, '\n');
    append_sample_name(out, f, s, "_count", NULL);
    sbuf_appendf(out, " %llu\n", (unsigned long long)atomic_load(&s->count));
}

static const char *type_name(metric_type type)
{
    switch (type) {
    case METRIC_COUNTER:
        return "counter";
    case METRIC_GAUGE:
        return "gauge";
    case METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

static void render_family(strbuf *out, metric_family *f)
{
    sbuf_appendf(out, "# HELP %s ", f->name);
    append_escaped(out, f->help, false);
    sbuf_appendf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
    pthread_mutex_lock(&f->lock);
    for (const metric_series *s = f->first; s; s = s->next) {
        if (f->type == METRIC_HISTOGRAM) {
            render_histogram(out, f, s);
            continue;
        }
        append_sample_name(out, f, s, "", NULL);
        sbuf_append_char(out, ' ');
        uint64_t raw = atomic_load(&s->value);
        if (f->type == METRIC_COUNTER)
            sbuf_appendf(out, "%llu", (unsigned long long)raw);
        else
            append_number(out, bits_double(raw));
        sbuf_append_char(out, '\n');
    }
    pthread_mutex_unlock(&f->lock);
}

void metrics_render(strbuf *out)
{
    pthread_mutex_lock(&registry_lock);
    for (metric_family *f = families; f; f = f->next)
        render_family(out, f);
    pthread_mutex_unlock(&registry_lock);
}
