#include "options.h"

#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "strbuf.h"

typedef enum raw_kind { RAW_TEXT, RAW_INT, RAW_DOUBLE, RAW_BOOL } raw_kind;

/* A value as the user wrote it, with where they wrote it, so that a
 * validation error found only after the sink is loaded can still point at
 * the right line. */
typedef struct raw_value {
    char *key;
    raw_kind kind;
    char *text;
    int64_t i;
    double d;
    bool b;
    char *file; /* NULL: from -o on the command line */
    int line;
    char *path;
} raw_value;

typedef struct resolved_value {
    char *name; /* copied: the table lives in a sink that may be unloaded */
    pgspout_option_type type;
    bool family; /* a prefix option: never set; its values are `prefixed` */
    bool set;
    char *s;
    int64_t i;
    double d;
    bool b;
} resolved_value;

/* An option of a prefix family (PGSPOUT_OPTF_PREFIX), kept as text. */
typedef struct prefixed_value {
    char *family; /* the prefix option's name, e.g. "kafka." */
    char *name;   /* the whole key, e.g. "kafka.security.protocol" */
    char *text;
} prefixed_value;

struct sink_options {
    raw_value *raw;
    size_t n_raw, cap_raw;
    resolved_value *resolved;
    size_t n_resolved;
    prefixed_value *prefixed;
    size_t n_prefixed;
};

sink_options *sink_options_new(void)
{
    return xcalloc(1, sizeof(sink_options));
}

static void raw_value_clear(raw_value *rv)
{
    free(rv->key);
    free(rv->text);
    free(rv->file);
    free(rv->path);
    memset(rv, 0, sizeof(*rv));
}

static void resolved_clear(sink_options *opts)
{
    for (size_t i = 0; i < opts->n_resolved; i++) {
        free(opts->resolved[i].name);
        free(opts->resolved[i].s);
    }
    free(opts->resolved);
    opts->resolved = NULL;
    opts->n_resolved = 0;
    for (size_t i = 0; i < opts->n_prefixed; i++) {
        free(opts->prefixed[i].family);
        free(opts->prefixed[i].name);
        free(opts->prefixed[i].text);
    }
    free(opts->prefixed);
    opts->prefixed = NULL;
    opts->n_prefixed = 0;
}

void sink_options_free(sink_options *opts)
{
    if (!opts)
        return;
    for (size_t i = 0; i < opts->n_raw; i++)
        raw_value_clear(&opts->raw[i]);
    free(opts->raw);
    resolved_clear(opts);
    free(opts);
}

size_t sink_options_count(const sink_options *opts)
{
    return opts->n_raw;
}

static raw_value *raw_slot(sink_options *opts, const char *key,
                           const char *file, int line, const char *path)
{
    raw_value *rv = NULL;
    for (size_t i = 0; i < opts->n_raw; i++) {
        if (strcmp(opts->raw[i].key, key) == 0) {
            rv = &opts->raw[i];
            raw_value_clear(rv);
            break;
        }
    }
    if (!rv) {
        if (opts->n_raw == opts->cap_raw) {
            opts->cap_raw = opts->cap_raw ? opts->cap_raw * 2 : 8;
            opts->raw = xrealloc(opts->raw, opts->cap_raw * sizeof(raw_value));
        }
        rv = &opts->raw[opts->n_raw++];
        memset(rv, 0, sizeof(*rv));
    }
    rv->key = xstrdup(key);
    if (file) {
        rv->file = xstrdup(file);
        rv->line = line;
        rv->path = xstrdup(path ? path : key);
    }
    return rv;
}

void sink_options_add_text(sink_options *opts, const char *key,
                           const char *text, const char *file, int line,
                           const char *path)
{
    raw_value *rv = raw_slot(opts, key, file, line, path);
    rv->kind = RAW_TEXT;
    rv->text = xstrdup(text);
}

void sink_options_add_int(sink_options *opts, const char *key, int64_t value,
                          const char *file, int line, const char *path)
{
    raw_value *rv = raw_slot(opts, key, file, line, path);
    rv->kind = RAW_INT;
    rv->i = value;
}

void sink_options_add_double(sink_options *opts, const char *key, double value,
                             const char *file, int line, const char *path)
{
    raw_value *rv = raw_slot(opts, key, file, line, path);
    rv->kind = RAW_DOUBLE;
    rv->d = value;
}

void sink_options_add_bool(sink_options *opts, const char *key, bool value,
                           const char *file, int line, const char *path)
{
    raw_value *rv = raw_slot(opts, key, file, line, path);
    rv->kind = RAW_BOOL;
    rv->b = value;
}

/* ---- text parsers ---- */

/* strtoll and strtod skip leading blanks and accept "0x"/"nan"/"inf"; config
 * values are compared literally, so only plain decimal digits get through. */
static bool parse_leading_integer(const char *text, int64_t *value,
                                  const char **rest)
{
    const char *p = text;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE)
        return false;
    *value = v;
    *rest = end;
    return true;
}

/* A unit suffix and what it multiplies by. */
typedef struct unit {
    const char *suffix;
    int64_t factor;
} unit;

static const unit size_units[] = {{"", 1},        {"k", 1024},
                                  {"K", 1024},    {"M", 1024 * 1024},
                                  {"G", 1 << 30}, {NULL, 0}};
static const unit time_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"min", 60 * 1000}, {NULL, 0}};

/* text is an integer followed by one of units' suffixes; *out gets it
 * scaled. False for another suffix or on overflow. */
static bool parse_with_unit(const char *text, const unit *units, int64_t *out)
{
    int64_t v;
    const char *suffix;
    if (!parse_leading_integer(text, &v, &suffix))
        return false;
    for (const unit *u = units; u->suffix; u++)
        if (strcmp(suffix, u->suffix) == 0)
            return !__builtin_mul_overflow(v, u->factor, out);
    return false;
}

bool option_parse_int(const char *text, int64_t *value)
{
    int64_t v;
    if (!parse_with_unit(text, size_units, &v))
        return false;
    *value = v;
    return true;
}

bool option_parse_duration(const char *text, int64_t *ms)
{
    int64_t v;
    if (!parse_with_unit(text, time_units, &v) || v < 0)
        return false;
    *ms = v;
    return true;
}

bool option_parse_bool(const char *text, bool *value)
{
    static const char *const truthy[] = {"true", "on", "yes", "1"};
    static const char *const falsy[] = {"false", "off", "no", "0"};
    for (size_t i = 0; i < sizeof(truthy) / sizeof(truthy[0]); i++) {
        if (strcasecmp(text, truthy[i]) == 0) {
            *value = true;
            return true;
        }
        if (strcasecmp(text, falsy[i]) == 0) {
            *value = false;
            return true;
        }
    }
    return false;
}

bool option_parse_double(const char *text, double *value)
{
    const char *p = text;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p) && *p != '.')
        return false;
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v))
        return false;
    *value = v;
    return true;
}

/* ---- validation ---- */

static void append_location(strbuf *sb, const raw_value *rv)
{
    if (rv->file)
        sbuf_appendf(sb, "%s:%d: %s", rv->file, rv->line, rv->path);
    else
        sbuf_appendf(sb, "command line: -o %s", rv->key);
}

bool sink_options_origin(const sink_options *opts, const char *key, char *buf,
                         size_t len)
{
    for (size_t i = opts->n_raw; i-- > 0;) {
        if (strcmp(opts->raw[i].key, key) != 0)
            continue;
        strbuf sb = STRBUF_INIT;
        append_location(&sb, &opts->raw[i]);
        snprintf(buf, len, "%s", sb.data);
        sbuf_free(&sb);
        return true;
    }
    return false;
}

const char *option_type_name(pgspout_option_type type)
{
    switch (type) {
    case PGSPOUT_OPT_STRING:
        return "string";
    case PGSPOUT_OPT_INT:
        return "int";
    case PGSPOUT_OPT_BOOL:
        return "bool";
    case PGSPOUT_OPT_DOUBLE:
        return "double";
    case PGSPOUT_OPT_DURATION:
        return "duration";
    }
    return "?";
}

static const char *type_expectation(pgspout_option_type type)
{
    switch (type) {
    case PGSPOUT_OPT_STRING:
        return "expected a string";
    case PGSPOUT_OPT_INT:
        return "expected an integer (optionally with a k, M or G suffix)";
    case PGSPOUT_OPT_BOOL:
        return "expected a boolean (true/false, on/off, yes/no, 1/0)";
    case PGSPOUT_OPT_DOUBLE:
        return "expected a number";
    case PGSPOUT_OPT_DURATION:
        return "expected a duration (milliseconds, or with an ms, s or min "
               "suffix)";
    }
    return "invalid type";
}

static bool is_secret(const pgspout_option_def *def)
{
    return (def->flags & PGSPOUT_OPTF_SECRET) != 0;
}

static bool bounded(const pgspout_option_def *def)
{
    return def->min < def->max;
}

static bool in_choices(const char *choices, const char *value)
{
    size_t len = strlen(value);
    const char *p = choices;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, value, n) == 0)
            return true;
        if (!bar)
            return false;
        p = bar + 1;
    }
}

/* Parses a text value (from -o, a config string, or a table default) into
 * `out` according to def's type. Returns false on unparseable text only;
 * range and choice checks come afterwards for every source alike. */
static bool resolve_text(const pgspout_option_def *def, const char *text,
                         resolved_value *out)
{
    switch (def->type) {
    case PGSPOUT_OPT_STRING:
        out->s = xstrdup(text);
        return true;
    case PGSPOUT_OPT_INT:
        return option_parse_int(text, &out->i);
    case PGSPOUT_OPT_DURATION:
        return option_parse_duration(text, &out->i);
    case PGSPOUT_OPT_BOOL:
        return option_parse_bool(text, &out->b);
    case PGSPOUT_OPT_DOUBLE:
        return option_parse_double(text, &out->d);
    }
    return false;
}

/* Typed libconfig scalars must already be of the declared type; an int is
 * accepted for a double because "1" for a rate is not a mistake, and 0/1
 * for a boolean because the error message itself offers them. */
static bool resolve_typed(const pgspout_option_def *def, const raw_value *rv,
                          resolved_value *out)
{
    switch (def->type) {
    case PGSPOUT_OPT_INT:
        if (rv->kind != RAW_INT)
            return false;
        out->i = rv->i;
        return true;
    case PGSPOUT_OPT_DURATION:
        if (rv->kind != RAW_INT || rv->i < 0)
            return false;
        out->i = rv->i;
        return true;
    case PGSPOUT_OPT_BOOL:
        if (rv->kind == RAW_INT && (rv->i == 0 || rv->i == 1)) {
            out->b = rv->i == 1;
            return true;
        }
        if (rv->kind != RAW_BOOL)
            return false;
        out->b = rv->b;
        return true;
    case PGSPOUT_OPT_DOUBLE:
        if (rv->kind == RAW_DOUBLE)
            out->d = rv->d;
        else if (rv->kind == RAW_INT)
            out->d = (double)rv->i;
        else
            return false;
        return isfinite(out->d);
    case PGSPOUT_OPT_STRING:
        return false;
    }
    return false;
}

/* Range and choice checks. On failure writes the reason (no location) to
 * `why`, mentioning the value only for non-secret options. */
static bool check_constraints(const pgspout_option_def *def,
                              const resolved_value *v, strbuf *why)
{
    bool secret = is_secret(def);
    if (def->type == PGSPOUT_OPT_STRING) {
        /* An empty required value is as missing as no value, and would only
         * fail later, after connecting. */
        if ((def->flags & PGSPOUT_OPTF_REQUIRED) && !*v->s) {
            sbuf_append_str(why, "must not be empty");
            return false;
        }
        if (def->choices && !in_choices(def->choices, v->s)) {
            sbuf_append_str(why, "invalid value");
            if (!secret)
                sbuf_appendf(why, " \"%s\"", v->s);
            sbuf_appendf(why, " (expected one of: %s)", def->choices);
            return false;
        }
        return true;
    }
    if (def->type == PGSPOUT_OPT_BOOL || !bounded(def))
        return true;
    double x = def->type == PGSPOUT_OPT_DOUBLE ? v->d : (double)v->i;
    if (x >= def->min && x <= def->max)
        return true;
    sbuf_append_str(why, "value");
    if (!secret) {
        if (def->type == PGSPOUT_OPT_DOUBLE)
            sbuf_appendf(why, " %g", v->d);
        else
            sbuf_appendf(why, " %lld", (long long)v->i);
    }
    sbuf_appendf(why, " is out of range (%.17g..%.17g", def->min, def->max);
    if (def->type == PGSPOUT_OPT_DURATION)
        sbuf_append_str(why, " ms");
    sbuf_append_char(why, ')');
    return false;
}

static bool is_prefix_family(const pgspout_option_def *def)
{
    return (def->flags & PGSPOUT_OPTF_PREFIX) != 0;
}

/* The option `name` stands for: the one declared with that name, else the
 * prefix family it belongs to (its name and more). */
static const pgspout_option_def *find_def(const pgspout_option_def *defs,
                                          const char *name, size_t *index)
{
    for (size_t i = 0; defs[i].name; i++) {
        if (!is_prefix_family(&defs[i]) && strcmp(defs[i].name, name) == 0) {
            *index = i;
            return &defs[i];
        }
    }
    for (size_t i = 0; defs[i].name; i++) {
        size_t len = strlen(defs[i].name);
        if (is_prefix_family(&defs[i]) &&
            strncmp(defs[i].name, name, len) == 0 && name[len] != '\0') {
            *index = i;
            return &defs[i];
        }
    }
    return NULL;
}

/* A raw value as the text a config file would show for it. */
static char *raw_as_text(const raw_value *rv)
{
    strbuf sb = STRBUF_INIT;
    switch (rv->kind) {
    case RAW_TEXT:
        sbuf_append_str(&sb, rv->text);
        break;
    case RAW_INT:
        sbuf_appendf(&sb, "%lld", (long long)rv->i);
        break;
    case RAW_DOUBLE:
        sbuf_appendf(&sb, "%.17g", rv->d);
        break;
    case RAW_BOOL:
        sbuf_append_str(&sb, rv->b ? "true" : "false");
        break;
    }
    return sbuf_detach(&sb);
}

static void add_prefixed(sink_options *opts, const pgspout_option_def *def,
                         const raw_value *rv)
{
    opts->prefixed = xrealloc(opts->prefixed,
                              (opts->n_prefixed + 1) * sizeof *opts->prefixed);
    opts->prefixed[opts->n_prefixed++] =
        (prefixed_value){xstrdup(def->name), xstrdup(rv->key), raw_as_text(rv)};
}

static void append_known_options(strbuf *msg, const pgspout_option_def *defs)
{
    if (!defs[0].name) {
        sbuf_append_str(msg, " (this sink takes no options)");
        return;
    }
    sbuf_append_str(msg, " (known options:");
    for (size_t i = 0; defs[i].name; i++)
        sbuf_appendf(msg, "%s %s%s", i ? "," : "", defs[i].name,
                     is_prefix_family(&defs[i]) ? "<name>" : "");
    sbuf_append_char(msg, ')');
}

static int fail(strbuf *msg, char *err, size_t errlen)
{
    set_error(err, errlen, "%s", msg->data ? msg->data : "invalid option");
    sbuf_free(msg);
    return -1;
}

static int validate_raw(sink_options *opts, const raw_value *rv,
                        const pgspout_option_def *defs, char *err,
                        size_t errlen)
{
    strbuf msg = STRBUF_INIT;
    size_t index;
    const pgspout_option_def *def = find_def(defs, rv->key, &index);
    if (!def) {
        append_location(&msg, rv);
        sbuf_append_str(&msg, ": unknown option");
        append_known_options(&msg, defs);
        return fail(&msg, err, errlen);
    }
    if (is_prefix_family(def)) {
        /* Passed through as text; what it means is the sink's business. */
        add_prefixed(opts, def, rv);
        return 0;
    }

    resolved_value *out = &opts->resolved[index];
    free(out->s);
    out->s = NULL;
    bool ok = rv->kind == RAW_TEXT ? resolve_text(def, rv->text, out)
                                   : resolve_typed(def, rv, out);
    if (!ok) {
        append_location(&msg, rv);
        sbuf_appendf(&msg, ": %s", type_expectation(def->type));
        if (rv->kind == RAW_TEXT && !is_secret(def))
            sbuf_appendf(&msg, ", got \"%s\"", rv->text);
        return fail(&msg, err, errlen);
    }
    strbuf why = STRBUF_INIT;
    if (!check_constraints(def, out, &why)) {
        append_location(&msg, rv);
        sbuf_appendf(&msg, ": %s", why.data);
        sbuf_free(&why);
        return fail(&msg, err, errlen);
    }
    out->set = true;
    return 0;
}

int sink_options_validate(sink_options *opts, const pgspout_option_def *defs,
                          const char *where, char *err, size_t errlen)
{
    static const pgspout_option_def no_options[] = {PGSPOUT_OPTION_END};
    if (!defs)
        defs = no_options;
    resolved_clear(opts);
    size_t n_defs = 0;
    while (defs[n_defs].name)
        n_defs++;
    opts->resolved = xcalloc(n_defs ? n_defs : 1, sizeof(resolved_value));
    opts->n_resolved = n_defs;
    for (size_t i = 0; i < n_defs; i++) {
        opts->resolved[i].name = xstrdup(defs[i].name);
        opts->resolved[i].type = defs[i].type;
        opts->resolved[i].family = is_prefix_family(&defs[i]);
    }

    for (size_t i = 0; i < opts->n_raw; i++) {
        if (validate_raw(opts, &opts->raw[i], defs, err, errlen) != 0)
            goto failed;
    }

    for (size_t i = 0; i < n_defs; i++) {
        resolved_value *v = &opts->resolved[i];
        const pgspout_option_def *def = &defs[i];
        if (v->set || is_prefix_family(def))
            continue;
        if (def->default_value) {
            strbuf why = STRBUF_INIT;
            if (!resolve_text(def, def->default_value, v) ||
                !check_constraints(def, v, &why)) {
                /* A sink bug, not a user error, but still must not start. */
                set_error(err, errlen,
                          "%s: the sink's default for option \"%s\" is invalid",
                          where, def->name);
                sbuf_free(&why);
                goto failed;
            }
            v->set = true;
        } else if (def->flags & PGSPOUT_OPTF_REQUIRED) {
            set_error(err, errlen, "%s: missing required option \"%s\"", where,
                      def->name);
            goto failed;
        }
    }
    return 0;

failed:
    resolved_clear(opts);
    return -1;
}

/* ---- lookups ---- */

static const resolved_value *lookup(const sink_options *opts, const char *name)
{
    for (size_t i = 0; i < opts->n_resolved; i++) {
        if (strcmp(opts->resolved[i].name, name) == 0)
            return opts->resolved[i].set ? &opts->resolved[i] : NULL;
    }
    return NULL;
}

/* Copies a set option's value of the type asked for into *out (the C
 * type that option type uses; a duration is read as an int). False when
 * the option is unset or of another type. */
static bool get_typed(const sink_options *opts, const char *name,
                      pgspout_option_type type, void *out)
{
    const resolved_value *v = lookup(opts, name);
    pgspout_option_type have = v && v->type == PGSPOUT_OPT_DURATION
                                   ? PGSPOUT_OPT_INT
                                   : (v ? v->type : 0);
    if (!v || have != type)
        return false;
    switch (type) {
    case PGSPOUT_OPT_STRING:
        *(const char **)out = v->s;
        return true;
    case PGSPOUT_OPT_INT:
        *(int64_t *)out = v->i;
        return true;
    case PGSPOUT_OPT_BOOL:
        *(bool *)out = v->b;
        return true;
    case PGSPOUT_OPT_DOUBLE:
        *(double *)out = v->d;
        return true;
    default:
        return false;
    }
}

bool sink_options_get_string(const sink_options *opts, const char *name,
                             const char **value)
{
    return get_typed(opts, name, PGSPOUT_OPT_STRING, value);
}

bool sink_options_get_int(const sink_options *opts, const char *name,
                          int64_t *value)
{
    return get_typed(opts, name, PGSPOUT_OPT_INT, value);
}

bool sink_options_get_bool(const sink_options *opts, const char *name,
                           bool *value)
{
    return get_typed(opts, name, PGSPOUT_OPT_BOOL, value);
}

bool sink_options_get_double(const sink_options *opts, const char *name,
                             double *value)
{
    return get_typed(opts, name, PGSPOUT_OPT_DOUBLE, value);
}

bool sink_options_each_prefixed(const sink_options *opts, const char *family,
                                pgspout_option_visitor visit, void *ctx)
{
    bool declared = false;
    for (size_t i = 0; i < opts->n_resolved; i++)
        declared |= strcmp(opts->resolved[i].name, family) == 0 &&
                    opts->resolved[i].family;
    if (!declared)
        return false;
    for (size_t i = 0; i < opts->n_prefixed; i++) {
        const prefixed_value *p = &opts->prefixed[i];
        if (strcmp(p->family, family) == 0 && !visit(ctx, p->name, p->text))
            return false;
    }
    return true;
}

/* ---- help output ---- */

void option_table_print(FILE *out, const pgspout_option_def *defs,
                        const char *indent)
{
    if (!indent)
        indent = "";
    if (!defs || !defs[0].name) {
        fprintf(out, "%s(no options)\n", indent);
        return;
    }
    for (const pgspout_option_def *def = defs; def->name; def++) {
        strbuf status = STRBUF_INIT;
        strbuf name = STRBUF_INIT;
        sbuf_appendf(&name, "%s%s", def->name,
                     is_prefix_family(def) ? "<name>" : "");
        if (def->flags & PGSPOUT_OPTF_REQUIRED)
            sbuf_append_str(&status, "required");
        else if (def->default_value && is_secret(def))
            sbuf_append_str(&status, "default: (secret)");
        else if (def->default_value)
            sbuf_appendf(&status, "default: %s",
                         def->default_value[0] ? def->default_value : "\"\"");
        else
            sbuf_append_str(&status, "optional");
        fprintf(out, "%s%-18s %-9s %-22s %s", indent, name.data,
                option_type_name(def->type), status.data,
                def->doc ? def->doc : "");
        if (def->type == PGSPOUT_OPT_STRING && def->choices)
            fprintf(out, " (one of: %s)", def->choices);
        fputc('\n', out);
        sbuf_free(&status);
        sbuf_free(&name);
    }
}
