/* A small registry of counters, gauges and histograms, and their
 * Prometheus text exposition (format 0.0.4).
 *
 * A family has a name, a help line, a type and up to METRICS_MAX_LABELS
 * label names; each distinct set of label values is one series. Looking a
 * series up takes the family's lock and, the first time, allocates it;
 * updating a series is one atomic operation, so the layers that count keep
 * the series they update often and never lock on the hot path. Series live
 * until metrics_reset (process end, or between unit tests): a pointer to
 * one stays valid that long.
 *
 * Memory is bounded: a family holds at most METRICS_MAX_SERIES series, and
 * label values past that (a database with more tables than that) all land
 * in one series whose every label value is METRICS_OVERFLOW_LABEL. */
#ifndef PGSPOUT_METRICS_H
#define PGSPOUT_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define METRICS_MAX_LABELS 3
#define METRICS_MAX_SERIES 10000
#define METRICS_OVERFLOW_LABEL "_overflow"

typedef enum metric_type {
    METRIC_COUNTER,  /* only goes up; its name ends in _total */
    METRIC_GAUGE,    /* a value that goes up and down */
    METRIC_HISTOGRAM /* observations counted in buckets, with their sum */
} metric_type;

typedef struct metric_family metric_family;
typedef struct metric_series metric_series;

/* Registers a family (once per name; registering a name again returns the
 * family registered first). labels: NULL-terminated, may be NULL. buckets:
 * a histogram's upper bounds, ascending (+Inf is implied), nbuckets of
 * them; NULL for other types. The strings must outlive the registry. */
metric_family *metrics_family(const char *name, const char *help,
                              metric_type type, const char *const *labels,
                              const double *buckets, size_t nbuckets);

/* The series with these label values (as many as the family has labels;
 * NULL values read as ""), created on first use. */
metric_series *metrics_series(metric_family *f, const char *const *values);

/* The family's series without labels. */
metric_series *metrics_series0(metric_family *f);

/* Counters (and gauges holding counts). */
void metrics_add(metric_series *s, uint64_t n);

/* Gauges. */
void metrics_set(metric_series *s, double value);
void metrics_gauge_add(metric_series *s, double delta);
double metrics_value(const metric_series *s);

/* Histograms: `count` observations of `value`. */
void metrics_observe(metric_series *s, double value, uint64_t count);

/* Drops every series of the family (pointers to them become invalid):
 * for a family whose label values change as a whole (build information).
 * The caller makes sure nobody holds one of its series. */
void metrics_family_clear(metric_family *f);

/* Appends the exposition of every family, in registration order. */
void metrics_render(strbuf *out);

/* Frees every family and series. */
void metrics_reset(void);

#endif
