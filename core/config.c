#include "config.h"
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <libconfig.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_tokens.h"
#include "conninfo.h"
#include "fileio.h"
#include "strbuf.h"

#ifndef PGSPOUT_VERSION
#define PGSPOUT_VERSION "0.1.0"
#endif

/* Seconds; keeps the value in milliseconds within an int. */
#define MAX_STATUS_INTERVAL_S (INT_MAX / 1000)
/* NAMEDATALEN - 1, the longest name PostgreSQL accepts for a slot. */
#define MAX_SLOT_NAME_LEN 63

/* ---- small helpers ---- */

static void list_push(char ***items, size_t *n, const char *value)
{
    *items = xrealloc(*items, (*n + 1) * sizeof(char *));
    (*items)[(*n)++] = xstrdup(value);
}

static void list_free(char ***items, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*items)[i]);
    free(*items);
    *items = NULL;
    *n = 0;
}

static void replace_string(char **dst, const char *value)
{
    free(*dst);
    *dst = value ? xstrdup(value) : NULL;
}

static void sink_config_clear(sink_config *sink)
{
    free(sink->name);
    free(sink->type);
    list_free(&sink->include, &sink->n_include);
    list_free(&sink->exclude, &sink->n_exclude);
    sink_options_free(sink->options);
    free(sink->origin);
    free(sink->include_origin);
    free(sink->exclude_origin);
    memset(sink, 0, sizeof(*sink));
}

static void sinks_free(pgspout_config *cfg)
{
    for (size_t i = 0; i < cfg->n_sinks; i++)
        sink_config_clear(&cfg->sinks[i]);
    free(cfg->sinks);
    cfg->sinks = NULL;
    cfg->n_sinks = 0;
}

void config_free(pgspout_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->conninfo);
    free(cfg->slot);
    free(cfg->publication);
    list_free(&cfg->plugin_dirs, &cfg->n_plugin_dirs);
    list_free(&cfg->include, &cfg->n_include);
    free(cfg->include_origin);
    free(cfg->exclude_origin);
    cfg->include_origin = cfg->exclude_origin = NULL;
    list_free(&cfg->exclude, &cfg->n_exclude);
    sinks_free(cfg);
    free(cfg->config_file);
    memset(cfg, 0, sizeof(*cfg));
}

bool config_parse_lsn(const char *text, uint64_t *lsn)
{
    uint64_t parts[2] = {0, 0};
    const char *p = text;
    for (int part = 0; part < 2; part++) {
        int digits = 0;
        while (isxdigit((unsigned char)*p)) {
            if (++digits > 8)
                return false;
            int c = tolower((unsigned char)*p++);
            parts[part] = parts[part] * 16 +
                          (uint64_t)(isdigit(c) ? c - '0' : c - 'a' + 10);
        }
        if (digits == 0)
            return false;
        if (part == 0 && *p++ != '/')
            return false;
    }
    if (*p != '\0')
        return false;
    *lsn = parts[0] << 32 | parts[1];
    return true;
}

static bool all_chars_in(const char *s, bool (*ok)(int c))
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!ok((unsigned char)*s))
            return false;
    }
    return true;
}

static bool sink_name_char(int c)
{
    return isalnum(c) || c == '_' || c == '-';
}

static bool slot_name_char(int c)
{
    return islower(c) || isdigit(c) || c == '_';
}

/* PostgreSQL rejects other slot names only once connected; checking here
 * turns a typo into a usage error before anything connects. */
static const char *slot_name_problem(const char *slot)
{
    if (strlen(slot) > MAX_SLOT_NAME_LEN)
        return "is too long (at most 63 characters)";
    if (!all_chars_in(slot, slot_name_char))
        return "may contain only lower-case letters, digits and underscores";
    return NULL;
}

/* A sink type is turned into a file name, so it must not be able to reach
 * another directory; and a relative path would load from the working
 * directory, which pgspout never does. */
static const char *sink_type_problem(const char *type)
{
    if (type[0] == '/')
        return NULL;
    if (strchr(type, '/'))
        return "is a relative path; nothing is loaded from the working "
               "directory: give a sink name or an absolute path to a .so";
    if (!all_chars_in(type, sink_name_char))
        return "is not a sink name (letters, digits, '_', '-') nor an "
               "absolute path to a .so";
    return NULL;
}

/* "--sink /opt/x/pgspout_kafka.so" is named "kafka", as if given by name. */
static char *sink_name_from_type(const char *type)
{
    const char *base = strrchr(type, '/');
    base = base ? base + 1 : type;
    if (strncmp(base, "pgspout_", 8) == 0)
        base += 8;
    size_t len = strlen(base);
    if (len > 3 && strcmp(base + len - 3, ".so") == 0)
        len -= 3;
    char *name = xstrndup(base, len);
    if (!all_chars_in(name, sink_name_char)) {
        free(name);
        name = xstrdup("sink");
    }
    return name;
}

/* ---- config file ---- */

typedef struct file_ctx {
    const char *path;        /* the file given with -c */
    const char *include_dir; /* where @include is resolved, or NULL */
    char *err;
    size_t errlen;
} file_ctx;

/* libconfig names a setting's file as the @include directive spelt it,
 * relative to the including file's directory; messages name it so that it
 * can be found from the working directory. Free the result. */
static char *display_file(const char *path, const char *include_dir,
                          const char *file)
{
    if (!file)
        return xstrdup(path);
    if (file[0] == '/' || !include_dir || strcmp(file, path) == 0)
        return xstrdup(file);
    strbuf sb = STRBUF_INIT;
    sbuf_appendf(&sb, "%s%s%s", include_dir,
                 include_dir[strlen(include_dir) - 1] == '/' ? "" : "/", file);
    return sbuf_detach(&sb);
}

static char *setting_file(file_ctx *ctx, const config_setting_t *setting)
{
    return display_file(ctx->path, ctx->include_dir,
                        config_setting_source_file(setting));
}

static int setting_error(file_ctx *ctx, const config_setting_t *setting,
                         const char *key_path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int setting_error(file_ctx *ctx, const config_setting_t *setting,
                         const char *key_path, const char *fmt, ...)
{
    char *file = setting_file(ctx, setting);
    strbuf msg = STRBUF_INIT;
    sbuf_appendf(&msg, "%s:%d: %s: ", file,
                 (int)config_setting_source_line(setting), key_path);
    free(file);
    va_list ap;
    va_start(ap, fmt);
    sbuf_vappendf(&msg, fmt, ap);
    va_end(ap);
    set_error(ctx->err, ctx->errlen, "%s", msg.data);
    sbuf_free(&msg);
    return CONFIG_USAGE_ERROR;
}

static char *setting_origin(file_ctx *ctx, const config_setting_t *setting,
                            const char *key_path)
{
    char *file = setting_file(ctx, setting);
    strbuf sb = STRBUF_INIT;
    sbuf_appendf(&sb, "%s:%d: %s", file,
                 (int)config_setting_source_line(setting), key_path);
    free(file);
    return sbuf_detach(&sb);
}

static int read_string(file_ctx *ctx, const config_setting_t *s,
                       const char *key_path, const char **value)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return setting_error(ctx, s, key_path, "expected a string");
    *value = config_setting_get_string(s);
    return 0;
}

/* A list, an array, or for convenience a single string. */
static int read_string_list(file_ctx *ctx, const config_setting_t *s,
                            const char *key_path, char ***items, size_t *n)
{
    char **tmp = NULL;
    size_t n_tmp = 0;
    int type = config_setting_type(s);
    if (type == CONFIG_TYPE_STRING) {
        list_push(&tmp, &n_tmp, config_setting_get_string(s));
    } else if (type == CONFIG_TYPE_LIST || type == CONFIG_TYPE_ARRAY) {
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *elem = config_setting_get_elem(s, i);
            if (config_setting_type(elem) != CONFIG_TYPE_STRING) {
                strbuf path = STRBUF_INIT;
                sbuf_appendf(&path, "%s.[%d]", key_path, i);
                setting_error(ctx, elem, path.data, "expected a string");
                sbuf_free(&path);
                list_free(&tmp, &n_tmp);
                return CONFIG_USAGE_ERROR;
            }
            list_push(&tmp, &n_tmp, config_setting_get_string(elem));
        }
    } else {
        return setting_error(ctx, s, key_path,
                             "expected a list of strings, e.g. [\"a\", \"b\"]");
    }
    list_free(items, n);
    *items = tmp;
    *n = n_tmp;
    return 0;
}

static int read_plugin_dirs(file_ctx *ctx, const config_setting_t *s,
                            pgspout_config *cfg)
{
    if (read_string_list(ctx, s, "plugin_dir", &cfg->plugin_dirs,
                         &cfg->n_plugin_dirs) != 0)
        return CONFIG_USAGE_ERROR;
    for (size_t i = 0; i < cfg->n_plugin_dirs; i++) {
        if (cfg->plugin_dirs[i][0] != '/') {
            /* Report at the element when there is one, else the key. */
            const config_setting_t *at = s;
            strbuf path = STRBUF_INIT;
            if (config_setting_type(s) == CONFIG_TYPE_STRING) {
                sbuf_append_str(&path, "plugin_dir");
            } else {
                at = config_setting_get_elem(s, (unsigned)i);
                sbuf_appendf(&path, "plugin_dir.[%zu]", i);
            }
            setting_error(ctx, at, path.data,
                          "\"%s\" is not an absolute path; nothing is loaded "
                          "from the working directory",
                          cfg->plugin_dirs[i]);
            sbuf_free(&path);
            return CONFIG_USAGE_ERROR;
        }
    }
    return 0;
}

static int read_sink_options(file_ctx *ctx, const config_setting_t *group,
                             const char *key_path, sink_options *opts)
{
    if (config_setting_type(group) != CONFIG_TYPE_GROUP)
        return setting_error(ctx, group, key_path,
                             "expected a group: options = { key = value; }");
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *s = config_setting_get_elem(group, i);
        const char *key = config_setting_name(s);
        char *file = setting_file(ctx, s);
        int line = (int)config_setting_source_line(s);
        strbuf path = STRBUF_INIT;
        sbuf_appendf(&path, "%s.%s", key_path, key);
        switch (config_setting_type(s)) {
        case CONFIG_TYPE_STRING:
            sink_options_add_text(opts, key, config_setting_get_string(s), file,
                                  line, path.data);
            break;
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
            sink_options_add_int(opts, key, config_setting_get_int64(s), file,
                                 line, path.data);
            break;
        case CONFIG_TYPE_FLOAT:
            sink_options_add_double(opts, key, config_setting_get_float(s),
                                    file, line, path.data);
            break;
        case CONFIG_TYPE_BOOL:
            sink_options_add_bool(opts, key, config_setting_get_bool(s) != 0,
                                  file, line, path.data);
            break;
        default:
            setting_error(ctx, s, path.data,
                          "expected a string, number or boolean");
            sbuf_free(&path);
            free(file);
            return CONFIG_USAGE_ERROR;
        }
        sbuf_free(&path);
        free(file);
    }
    return 0;
}

static int read_sink(file_ctx *ctx, const config_setting_t *group, int index,
                     pgspout_config *cfg)
{
    strbuf base = STRBUF_INIT;
    strbuf path = STRBUF_INIT;
    sbuf_appendf(&base, "sinks.[%d]", index);
    if (config_setting_type(group) != CONFIG_TYPE_GROUP) {
        setting_error(ctx, group, base.data,
                      "expected a group: { name = \"...\"; type = \"...\"; }");
        sbuf_free(&base);
        return CONFIG_USAGE_ERROR;
    }

    /* Appended first so that config_free releases it on any error below. */
    cfg->sinks = xrealloc(cfg->sinks, (cfg->n_sinks + 1) * sizeof(sink_config));
    sink_config *sink = &cfg->sinks[cfg->n_sinks++];
    memset(sink, 0, sizeof(*sink));
    sink->options = sink_options_new();
    sink->origin = setting_origin(ctx, group, base.data);

    int rc = 0;
    for (int i = 0; i < config_setting_length(group) && rc == 0; i++) {
        const config_setting_t *s = config_setting_get_elem(group, i);
        const char *key = config_setting_name(s);
        const char *value = NULL;
        sbuf_reset(&path);
        sbuf_appendf(&path, "%s.%s", base.data, key);
        if (strcmp(key, "name") == 0) {
            rc = read_string(ctx, s, path.data, &value);
            if (rc != 0)
                break;
            if (!all_chars_in(value, sink_name_char)) {
                rc = setting_error(ctx, s, path.data,
                                   "\"%s\" is not a valid sink name (letters, "
                                   "digits, '_' and '-')",
                                   value);
                break;
            }
            for (size_t j = 0; j + 1 < cfg->n_sinks; j++) {
                if (strcmp(cfg->sinks[j].name, value) == 0) {
                    rc = setting_error(ctx, s, path.data,
                                       "duplicate sink name \"%s\" (also "
                                       "used by sinks.[%zu])",
                                       value, j);
                    break;
                }
            }
            replace_string(&sink->name, value);
        } else if (strcmp(key, "type") == 0) {
            rc = read_string(ctx, s, path.data, &value);
            if (rc != 0)
                break;
            const char *problem = sink_type_problem(value);
            if (problem)
                rc = setting_error(ctx, s, path.data, "\"%s\" %s", value,
                                   problem);
            replace_string(&sink->type, value);
        } else if (strcmp(key, "include") == 0) {
            rc = read_string_list(ctx, s, path.data, &sink->include,
                                  &sink->n_include);
            free(sink->include_origin);
            sink->include_origin = setting_origin(ctx, s, path.data);
        } else if (strcmp(key, "exclude") == 0) {
            rc = read_string_list(ctx, s, path.data, &sink->exclude,
                                  &sink->n_exclude);
            free(sink->exclude_origin);
            sink->exclude_origin = setting_origin(ctx, s, path.data);
        } else if (strcmp(key, "options") == 0) {
            rc = read_sink_options(ctx, s, path.data, sink->options);
        } else {
            rc = setting_error(ctx, s, path.data,
                               "unknown key (expected name, type, include, "
                               "exclude or options)");
        }
    }
    if (rc == 0 && !sink->name)
        rc = setting_error(ctx, group, base.data,
                           "missing required key \"name\"");
    if (rc == 0 && !sink->type)
        rc = setting_error(ctx, group, base.data,
                           "missing required key \"type\"");
    sbuf_free(&path);
    sbuf_free(&base);
    return rc;
}

static int read_sinks(file_ctx *ctx, const config_setting_t *s,
                      pgspout_config *cfg)
{
    if (config_setting_type(s) != CONFIG_TYPE_LIST)
        return setting_error(ctx, s, "sinks",
                             "expected a list of groups: sinks = ( { ... }, "
                             "{ ... } )");
    /* Otherwise the error would come later, as "no sink configured",
     * without pointing at the line that emptied the list. */
    if (config_setting_length(s) == 0)
        return setting_error(ctx, s, "sinks",
                             "the list is empty; give at least one sink");
    sinks_free(cfg);
    for (int i = 0; i < config_setting_length(s); i++) {
        if (read_sink(ctx, config_setting_get_elem(s, i), i, cfg) != 0)
            return CONFIG_USAGE_ERROR;
    }
    return 0;
}

static int read_root_setting(file_ctx *ctx, const config_setting_t *s,
                             pgspout_config *cfg)
{
    const char *key = config_setting_name(s);
    const char *value = NULL;
    if (strcmp(key, "connection") == 0) {
        if (read_string(ctx, s, key, &value) != 0)
            return CONFIG_USAGE_ERROR;
        /* Checked here too so that the error names the file and line; the
         * main program checks whatever conninfo wins (-d overrides the
         * file) with the environment's values. */
        char why[512];
        if (!conninfo_check_given(value, why, sizeof why))
            return setting_error(ctx, s, key, "%s", why);
        replace_string(&cfg->conninfo, value);
    } else if (strcmp(key, "slot") == 0) {
        if (read_string(ctx, s, key, &value) != 0)
            return CONFIG_USAGE_ERROR;
        const char *problem = slot_name_problem(value);
        if (problem)
            return setting_error(ctx, s, key, "slot name \"%s\" %s", value,
                                 problem);
        replace_string(&cfg->slot, value);
    } else if (strcmp(key, "publication") == 0) {
        if (read_string(ctx, s, key, &value) != 0)
            return CONFIG_USAGE_ERROR;
        if (!*value)
            return setting_error(ctx, s, key, "must not be empty");
        replace_string(&cfg->publication, value);
    } else if (strcmp(key, "retry_initial") == 0) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return setting_error(ctx, s, key, "expected a boolean");
        cfg->retry_initial = config_setting_get_bool(s) != 0;
    } else if (strcmp(key, "create_slot") == 0) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return setting_error(ctx, s, key, "expected a boolean");
        cfg->create_slot = config_setting_get_bool(s) != 0;
    } else if (strcmp(key, "plugin_dir") == 0) {
        return read_plugin_dirs(ctx, s, cfg);
    } else if (strcmp(key, "include") == 0) {
        free(cfg->include_origin);
        cfg->include_origin = setting_origin(ctx, s, key);
        return read_string_list(ctx, s, key, &cfg->include, &cfg->n_include);
    } else if (strcmp(key, "exclude") == 0) {
        free(cfg->exclude_origin);
        cfg->exclude_origin = setting_origin(ctx, s, key);
        return read_string_list(ctx, s, key, &cfg->exclude, &cfg->n_exclude);
    } else if (strcmp(key, "endpos") == 0) {
        if (read_string(ctx, s, key, &value) != 0)
            return CONFIG_USAGE_ERROR;
        if (!config_parse_lsn(value, &cfg->endpos))
            return setting_error(ctx, s, key,
                                 "invalid LSN \"%s\" (expected X/X, e.g. "
                                 "\"0/16B3748\")",
                                 value);
        cfg->has_endpos = true;
    } else if (strcmp(key, "status_interval") == 0) {
        int type = config_setting_type(s);
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            return setting_error(ctx, s, key, "expected an integer (seconds)");
        long long secs = config_setting_get_int64(s);
        if (secs < 0 || secs > MAX_STATUS_INTERVAL_S)
            return setting_error(ctx, s, key, "must be between 0 and %d",
                                 MAX_STATUS_INTERVAL_S);
        cfg->status_interval_s = (int)secs;
    } else if (strcmp(key, "sinks") == 0) {
        return read_sinks(ctx, s, cfg);
    } else {
        return setting_error(ctx, s, key, "unknown key");
    }
    return 0;
}

static bool setting_name_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '*';
}

/* libconfig's parse errors ("syntax error", "duplicate setting name",
 * "cannot open include file") name the line but not the setting, so the
 * setting name (or the @include target) is read back from that line. Only
 * the name: the rest of the line may hold a password. Returns "" when the
 * line has no recognisable name. */
static char *parse_error_hint(const char *text, size_t len, int line)
{
    const char *start = line > 0 ? text : NULL, *end = text + len;
    for (int n = 1; n < line && start; n++) {
        start = memchr(start, '\n', (size_t)(end - start));
        start = start ? start + 1 : NULL;
    }
    strbuf hint = STRBUF_INIT;
    if (start) {
        const char *nl = memchr(start, '\n', (size_t)(end - start));
        char *copy = xstrndup(start, (size_t)((nl ? nl : end) - start));
        const char *p = copy;
        while (isspace((unsigned char)*p))
            p++;
        if (strncmp(p, "@include", 8) == 0) {
            const char *open = strchr(p + 8, '"');
            const char *close = open ? strchr(open + 1, '"') : NULL;
            if (close)
                sbuf_appendf(&hint, " (@include \"%.*s\")",
                             (int)(close - open - 1), open + 1);
        } else if (isalpha((unsigned char)*p) || *p == '*') {
            const char *name = p;
            while (setting_name_char((unsigned char)*p))
                p++;
            size_t name_len = (size_t)(p - name);
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p == '=' || *p == ':')
                sbuf_appendf(&hint, " (at setting \"%.*s\")", (int)name_len,
                             name);
        }
        free(copy);
    }
    return sbuf_detach(&hint);
}

/* libconfig's nesting limit for @include. */
#define MAX_INCLUDE_DEPTH 10

/* Where an @include directive's file name starts, as libconfig's scanner
 * sees one: at the start of a line, after blanks, "@include", at least one
 * blank, then a double quote. */
static const char *include_name_start(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p < 8 || memcmp(p, "@include", 8) != 0)
        return NULL;
    p += 8;
    const char *blanks = p;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == blanks || p >= end || *p != '"')
        return NULL;
    return p + 1;
}

static int check_file(const char *file, const char *include_dir, int depth,
                      char *err, size_t errlen);

/* What libconfig must not be given, checked in one pass over the text of
 * a config file and of each file it includes, before libconfig reads any:
 * - a token longer than CONFIG_TOKEN_MAX (config_tokens.h);
 * - an @include'd directory (an empty name included): libconfig 1.5 hands
 *   it to its scanner, which fails on the first read and exit()s the
 *   process with "input in flex scanner failed", naming nothing; a FIFO
 *   would block it. So every @include target that exists must be a
 *   regular file. Missing files are left to libconfig, which names the
 *   line. */
static int check_text(const char *file, const char *text, size_t len,
                      const char *include_dir, int depth, char *err,
                      size_t errlen)
{
    if (!config_tokens_check(file, text, len, err, errlen))
        return CONFIG_USAGE_ERROR;
    const char *end = text + len;
    int rc = 0;
    int line = 1;
    for (const char *p = text; p < end && rc == 0;) {
        const char *q = include_name_start(p, end);
        if (!q) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                break;
            line++;
            p = nl + 1;
            continue;
        }
        /* The name runs to the next unescaped quote, across lines, with
         * \\ and \" escapes, as the scanner reads it; like the scanner's
         * C string, it ends at a NUL byte. */
        strbuf name = STRBUF_INIT;
        sbuf_append(&name, "", 0);
        int directive_line = line;
        bool nul_seen = false;
        while (q < end && *q != '"') {
            char c = *q++;
            if (c == '\\' && q < end && (*q == '\\' || *q == '"'))
                c = *q++;
            if (c == '\n')
                line++;
            if (c == '\0')
                nul_seen = true;
            if (!nul_seen)
                sbuf_append_char(&name, c);
        }
        /* The rest of the directive's line cannot start another one. */
        const char *nl = q < end ? memchr(q, '\n', (size_t)(end - q)) : NULL;
        if (nl)
            line++;
        p = nl ? nl + 1 : end;
        strbuf target = STRBUF_INIT;
        if (name.data[0] == '/' || !include_dir)
            sbuf_append_str(&target, name.data);
        else
            sbuf_appendf(&target, "%s/%s", include_dir, name.data);
        struct stat st;
        if (stat(target.data, &st) == 0) {
            if (!S_ISREG(st.st_mode)) {
                set_error(err, errlen, "%s:%d: @include \"%s\": %s", file,
                          directive_line, name.data,
                          S_ISDIR(st.st_mode) ? "is a directory"
                                              : "is not a regular file");
                rc = CONFIG_USAGE_ERROR;
            } else if (depth < MAX_INCLUDE_DEPTH) {
                rc = check_file(target.data, include_dir, depth + 1, err,
                                errlen);
            }
        }
        sbuf_free(&target);
        sbuf_free(&name);
    }
    return rc;
}

static int check_file(const char *file, const char *include_dir, int depth,
                      char *err, size_t errlen)
{
    size_t len;
    char *text = read_whole_file(file, &len);
    if (!text)
        return 0;
    int rc = check_text(file, text, len, include_dir, depth, err, errlen);
    free(text);
    return rc;
}

/* The config file's own text: libconfig reads a string only up to a NUL
 * byte (and its file scanner stops there with a syntax error), so a text
 * read from a pipe must not hold one. */
static int check_main_text(const char *path, const char *text, size_t len,
                           bool regular, const char *dir, char *err,
                           size_t errlen)
{
    const char *nul = memchr(text, '\0', len);
    if (!regular && nul) {
        int line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        set_error(err, errlen, "%s:%d: syntax error (a NUL byte)", path, line);
        return CONFIG_USAGE_ERROR;
    }
    return check_text(path, text, len, dir, 0, err, errlen);
}

/* libconfig's parse error, with the name of the setting on its line: read
 * from main_text when the error is in the config file itself (libconfig
 * names no file for a text it read from memory). */
static void parse_error(const config_t *lc, const char *path, const char *dir,
                        const char *main_text, size_t main_len, char *err,
                        size_t errlen)
{
    char *file = display_file(path, dir, config_error_file(lc));
    size_t len = main_len;
    char *included = NULL;
    const char *text = main_text;
    if (strcmp(file, path) != 0 || !main_text)
        text = included = read_whole_file(file, &len);
    char *hint =
        text ? parse_error_hint(text, len, config_error_line(lc)) : xstrdup("");
    set_error(err, errlen, "%s:%d: %s%s", file, config_error_line(lc),
              config_error_text(lc), hint);
    free(hint);
    free(included);
    free(file);
}

int config_read_file_into(const char *path, pgspout_config *cfg, char *err,
                          size_t errlen)
{
    /* libconfig reports a missing file only as "file I/O error"; the reason
     * is what the user needs. */
    FILE *probe = fopen(path, "r");
    if (!probe) {
        set_error(err, errlen, "could not open config file \"%s\": %s", path,
                  strerror(errno));
        return CONFIG_USAGE_ERROR;
    }
    fclose(probe);
    struct stat st;
    bool regular = false;
    if (stat(path, &st) == 0) {
        regular = S_ISREG(st.st_mode);
        if (S_ISDIR(st.st_mode)) {
            set_error(err, errlen,
                      "could not read config file \"%s\": is a "
                      "directory",
                      path);
            return CONFIG_USAGE_ERROR;
        }
    }

    config_t lc;
    config_init(&lc);
    /* @include is resolved next to the config file, not in the working
     * directory. */
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        slash[slash == dir ? 1 : 0] = '\0';
        config_set_include_dir(&lc, dir);
    } else {
        free(dir);
        dir = NULL;
    }

    /* The file is read once here, checked, and (a pipe, -c <(...), cannot
     * be read twice) parsed from memory unless it is a regular file. */
    size_t len = 0;
    char *text = read_whole_file(path, &len);
    int rc =
        text ? check_main_text(path, text, len, regular, dir, err, errlen) : 0;
    if (rc == 0 && !(regular || !text ? config_read_file(&lc, path)
                                      : config_read_string(&lc, text))) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            set_error(err, errlen, "could not read config file \"%s\"", path);
        else
            parse_error(&lc, path, dir, text, len, err, errlen);
        rc = CONFIG_USAGE_ERROR;
    } else if (rc == 0) {
        file_ctx ctx = {path, dir, err, errlen};
        const config_setting_t *root = config_root_setting(&lc);
        for (int i = 0; i < config_setting_length(root) && rc == 0; i++)
            rc = read_root_setting(&ctx, config_setting_get_elem(root, i), cfg);
    }
    config_destroy(&lc);
    free(text);
    free(dir);
    return rc;
}

/* ---- command line ---- */

enum long_only_option {
    OPT_PUBLICATION = 256,
    OPT_CREATE_SLOT,
    OPT_RETRY_INITIAL,
    OPT_DROP_SLOT,
    OPT_WAIT,
    OPT_SINK,
    OPT_PLUGIN_DIR,
    OPT_LIST_TABLES,
    OPT_LIST_SINKS,
    OPT_HELP,
    OPT_VERSION
};

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"dbname", required_argument, NULL, 'd'},
    {"slot", required_argument, NULL, 'S'},
    {"publication", required_argument, NULL, OPT_PUBLICATION},
    {"create-slot", no_argument, NULL, OPT_CREATE_SLOT},
    {"retry-initial", no_argument, NULL, OPT_RETRY_INITIAL},
    {"drop-slot", no_argument, NULL, OPT_DROP_SLOT},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"table", required_argument, NULL, 't'},
    {"exclude-table", required_argument, NULL, 'T'},
    {"sink", required_argument, NULL, OPT_SINK},
    {"option", required_argument, NULL, 'o'},
    {"endpos", required_argument, NULL, 'E'},
    {"plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR},
    {"list-tables", no_argument, NULL, OPT_LIST_TABLES},
    {"list-sinks", no_argument, NULL, OPT_LIST_SINKS},
    {"status-interval", required_argument, NULL, 's'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* What the command line said, kept apart from the file's values so that the
 * file can be read (wherever -c appears) before flags override it. Strings
 * point into argv. */
typedef struct cli_args {
    const char *config_file, *conninfo, *slot, *publication, *sink;
    bool create_slot, retry_initial, drop_slot, list_tables, list_sinks, help,
        version;
    bool has_endpos;
    uint64_t endpos;
    bool has_status_interval;
    int status_interval_s;
    bool has_wait;
    int wait_s;
    int verbosity;
    const char **include, **exclude, **options, **plugin_dirs;
    size_t n_include, n_exclude, n_options, n_plugin_dirs;
} cli_args;

static void cli_args_free(cli_args *cli)
{
    free(cli->include);
    free(cli->exclude);
    free(cli->options);
    free(cli->plugin_dirs);
}

/* How much of a command-line word may be quoted in an error: up to an '='
 * ("password=..." must not be echoed). */
static int printable_prefix(const char *word)
{
    const char *eq = strchr(word, '=');
    return (int)(eq ? (size_t)(eq - word) : strlen(word));
}

static int usage_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int usage_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return CONFIG_USAGE_ERROR;
}

static bool parse_seconds(const char *text, int *value)
{
    if (!isdigit((unsigned char)text[0]))
        return false;
    errno = 0;
    char *end;
    long v = strtol(text, &end, 10);
    if (errno == ERANGE || *end != '\0' || v > MAX_STATUS_INTERVAL_S)
        return false;
    *value = (int)v;
    return true;
}

static int parse_argv(int argc, char **argv, cli_args *cli, char *err,
                      size_t errlen)
{
    /* Every repeatable flag occurs at most argc times. */
    size_t cap = (size_t)(argc > 0 ? argc : 1);
    cli->include = xcalloc(cap, sizeof(char *));
    cli->exclude = xcalloc(cap, sizeof(char *));
    cli->options = xcalloc(cap, sizeof(char *));
    cli->plugin_dirs = xcalloc(cap, sizeof(char *));

    /* 0 rather than 1 makes glibc reinitialise its scanning state, so the
     * parser can run more than once in a process (the unit tests do). */
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:d:S:t:T:o:E:s:vV", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'c':
            cli->config_file = optarg;
            break;
        case 'd':
            cli->conninfo = optarg;
            break;
        case 'S': {
            const char *problem = slot_name_problem(optarg);
            if (problem)
                return usage_error(err, errlen, "slot name \"%s\" %s", optarg,
                                   problem);
            cli->slot = optarg;
            break;
        }
        case OPT_PUBLICATION:
            if (!*optarg)
                return usage_error(err, errlen,
                                   "--publication must not be empty");
            cli->publication = optarg;
            break;
        case OPT_RETRY_INITIAL:
            cli->retry_initial = true;
            break;
        case OPT_CREATE_SLOT:
            cli->create_slot = true;
            break;
        case OPT_DROP_SLOT:
            cli->drop_slot = true;
            break;
        case OPT_WAIT:
            if (!parse_seconds(optarg, &cli->wait_s))
                return usage_error(err, errlen,
                                   "invalid --wait \"%s\" (seconds, 0 to %d)",
                                   optarg, MAX_STATUS_INTERVAL_S);
            cli->has_wait = true;
            break;
        case 't':
            cli->include[cli->n_include++] = optarg;
            break;
        case 'T':
            cli->exclude[cli->n_exclude++] = optarg;
            break;
        case OPT_SINK: {
            if (cli->sink)
                return usage_error(err, errlen,
                                   "--sink may be given only once; use a "
                                   "config file for several sinks");
            const char *problem = sink_type_problem(optarg);
            if (problem)
                return usage_error(err, errlen, "--sink \"%s\" %s", optarg,
                                   problem);
            cli->sink = optarg;
            break;
        }
        case 'o': {
            /* The value may be a secret, so no message quotes it. */
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return usage_error(err, errlen,
                                   "-o expects KEY=VALUE (the key is missing "
                                   "or there is no '=')");
            cli->options[cli->n_options++] = optarg;
            break;
        }
        case 'E':
            if (!config_parse_lsn(optarg, &cli->endpos))
                return usage_error(err, errlen,
                                   "invalid --endpos \"%s\" (expected an LSN "
                                   "like 0/16B3748)",
                                   optarg);
            cli->has_endpos = true;
            break;
        case OPT_PLUGIN_DIR:
            if (optarg[0] != '/')
                return usage_error(err, errlen,
                                   "--plugin-dir \"%s\" is not an absolute "
                                   "path; nothing is loaded from the working "
                                   "directory",
                                   optarg);
            cli->plugin_dirs[cli->n_plugin_dirs++] = optarg;
            break;
        case OPT_LIST_TABLES:
            cli->list_tables = true;
            break;
        case OPT_LIST_SINKS:
            cli->list_sinks = true;
            break;
        case 's':
            if (!parse_seconds(optarg, &cli->status_interval_s))
                return usage_error(err, errlen,
                                   "invalid --status-interval \"%s\" "
                                   "(seconds, 0 to %d)",
                                   optarg, MAX_STATUS_INTERVAL_S);
            cli->has_status_interval = true;
            break;
        case 'v':
            cli->verbosity++;
            break;
        case OPT_HELP:
            cli->help = true;
            break;
        case 'V':
        case OPT_VERSION:
            cli->version = true;
            break;
        case ':':
            return usage_error(err, errlen, "option '%s' requires an argument",
                               argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < 256 && isprint(optopt))
                return usage_error(err, errlen, "invalid option -- '%c'",
                                   optopt);
            return usage_error(err, errlen, "unrecognized option '%.*s'",
                               printable_prefix(argv[optind - 1]),
                               argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error(err, errlen,
                           "too many command-line arguments (first is "
                           "\"%.*s%s\"; a connection string with spaces "
                           "needs quotes)",
                           printable_prefix(argv[optind]), argv[optind],
                           strchr(argv[optind], '=') ? "=..." : "");
    return 0;
}

static int check_modes(const cli_args *cli, char *err, size_t errlen)
{
    struct {
        bool on;
        const char *flag;
    } modes[] = {
        {cli->drop_slot, "--drop-slot"},   {cli->list_tables, "--list-tables"},
        {cli->list_sinks, "--list-sinks"}, {cli->help, "--help"},
        {cli->version, "--version"},
    };
    const char *mode = NULL;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (!modes[i].on)
            continue;
        if (mode)
            return usage_error(err, errlen, "%s and %s cannot be used together",
                               mode, modes[i].flag);
        mode = modes[i].flag;
    }
    if (cli->n_options > 0 && !cli->sink)
        return usage_error(err, errlen, "-o can only be used with --sink");
    if (cli->has_wait && !cli->drop_slot)
        return usage_error(err, errlen,
                           "--wait can only be used with --drop-slot");
    if (!mode)
        return 0;
    struct {
        bool on;
        const char *flag;
    } stream_only[] = {
        {cli->create_slot, "--create-slot"},
        {cli->retry_initial, "--retry-initial"},
        {cli->sink != NULL, "--sink"},
        {cli->has_endpos, "--endpos"},
    };
    for (size_t i = 0; i < sizeof(stream_only) / sizeof(stream_only[0]); i++) {
        if (stream_only[i].on)
            return usage_error(err, errlen, "%s cannot be used with %s",
                               stream_only[i].flag, mode);
    }
    return 0;
}

static void replace_list(char ***items, size_t *n, const char **values,
                         size_t n_values)
{
    list_free(items, n);
    for (size_t i = 0; i < n_values; i++)
        list_push(items, n, values[i]);
}

static void apply_cli_sink(const cli_args *cli, pgspout_config *cfg)
{
    sinks_free(cfg);
    cfg->sinks = xcalloc(1, sizeof(sink_config));
    cfg->n_sinks = 1;
    sink_config *sink = &cfg->sinks[0];
    sink->type = xstrdup(cli->sink);
    sink->name = sink_name_from_type(cli->sink);
    sink->options = sink_options_new();
    strbuf origin = STRBUF_INIT;
    sbuf_appendf(&origin, "command line: --sink %s", cli->sink);
    sink->origin = sbuf_detach(&origin);
    for (size_t i = 0; i < cli->n_options; i++) {
        const char *kv = cli->options[i];
        const char *eq = strchr(kv, '=');
        char *key = xstrndup(kv, (size_t)(eq - kv));
        sink_options_add_text(sink->options, key, eq + 1, NULL, 0, NULL);
        free(key);
    }
}

static void apply_cli(const cli_args *cli, pgspout_config *cfg)
{
    if (cli->conninfo)
        replace_string(&cfg->conninfo, cli->conninfo);
    if (cli->slot)
        replace_string(&cfg->slot, cli->slot);
    if (cli->publication)
        replace_string(&cfg->publication, cli->publication);
    cfg->create_slot = cfg->create_slot || cli->create_slot;
    cfg->retry_initial = cfg->retry_initial || cli->retry_initial;
    cfg->drop_slot = cli->drop_slot;
    cfg->drop_slot_wait_s = cli->wait_s;
    cfg->list_tables = cli->list_tables;
    cfg->list_sinks = cli->list_sinks;
    cfg->show_help = cli->help;
    cfg->show_version = cli->version;
    if (cli->n_include > 0) {
        replace_list(&cfg->include, &cfg->n_include, cli->include,
                     cli->n_include);
        replace_string(&cfg->include_origin, "command line: -t");
    }
    if (cli->n_exclude > 0) {
        replace_list(&cfg->exclude, &cfg->n_exclude, cli->exclude,
                     cli->n_exclude);
        replace_string(&cfg->exclude_origin, "command line: -T");
    }
    if (cli->n_plugin_dirs > 0) {
        /* Command-line directories are searched before the file's. */
        char **from_file = cfg->plugin_dirs;
        size_t n_from_file = cfg->n_plugin_dirs;
        cfg->plugin_dirs = NULL;
        cfg->n_plugin_dirs = 0;
        for (size_t i = 0; i < cli->n_plugin_dirs; i++)
            list_push(&cfg->plugin_dirs, &cfg->n_plugin_dirs,
                      cli->plugin_dirs[i]);
        for (size_t i = 0; i < n_from_file; i++)
            list_push(&cfg->plugin_dirs, &cfg->n_plugin_dirs, from_file[i]);
        list_free(&from_file, &n_from_file);
    }
    if (cli->has_endpos) {
        cfg->has_endpos = true;
        cfg->endpos = cli->endpos;
    }
    if (cli->has_status_interval)
        cfg->status_interval_s = cli->status_interval_s;
    cfg->verbosity = cli->verbosity;
    if (cli->sink)
        apply_cli_sink(cli, cfg);
}

int config_from_args(int argc, char **argv, pgspout_config *cfg, char *err,
                     size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    if (err && errlen)
        err[0] = '\0';
    cli_args cli;
    memset(&cli, 0, sizeof(cli));

    int rc = parse_argv(argc, argv, &cli, err, errlen);
    if (rc == 0)
        rc = check_modes(&cli, err, errlen);
    if (rc != 0)
        goto done;

    cfg->slot = xstrdup(CONFIG_DEFAULT_SLOT);
    cfg->publication = xstrdup(CONFIG_DEFAULT_PUBLICATION);
    cfg->status_interval_s = CONFIG_DEFAULT_STATUS_INTERVAL_S;
    if (cli.config_file && !cli.help && !cli.version) {
        cfg->config_file = xstrdup(cli.config_file);
        rc = config_read_file_into(cli.config_file, cfg, err, errlen);
        if (rc != 0)
            goto done;
    }
    apply_cli(&cli, cfg);

    bool streaming = !(cfg->drop_slot || cfg->list_tables || cfg->list_sinks ||
                       cfg->show_help || cfg->show_version);
    if (streaming && cfg->n_sinks == 0)
        rc = usage_error(err, errlen,
                         "no sink configured: give --sink NAME, or -c FILE "
                         "with a sinks list");

done:
    cli_args_free(&cli);
    if (rc != 0)
        config_free(cfg);
    return rc;
}

int config_validate_sink(sink_config *sink, const pgspout_option_def *defs,
                         char *err, size_t errlen)
{
    if (sink_options_validate(sink->options, defs, sink->origin, err, errlen) !=
        0)
        return CONFIG_USAGE_ERROR;
    return 0;
}

void config_print_usage(FILE *out)
{
    fputs(
        "pgspout streams PostgreSQL changes (logical replication) to sinks.\n"
        "\n"
        "Usage:\n"
        "  pgspout [-c FILE] [-d CONNINFO] [--slot NAME] [--publication NAME]\n"
        "          [--create-slot] [-t PATTERN]... [-T PATTERN]...\n"
        "          --sink NAME [-o KEY=VALUE]... [--endpos LSN]\n"
        "  pgspout [-d CONNINFO] [--slot NAME] --drop-slot [--wait SECS]\n"
        "  pgspout [-d CONNINFO] [--publication NAME] [-t PATTERN]...\n"
        "          [-T PATTERN]... --list-tables\n"
        "  pgspout --list-sinks | --help | --version\n"
        "\n"
        "Options:\n"
        "  -c, --config=FILE          read settings from a libconfig file;\n"
        "                             command-line flags override it\n"
        "  -d, --dbname=CONNINFO      connection string or URI (PG* "
        "variables apply)\n"
        "  -S, --slot=NAME            replication slot (default: pgspout)\n"
        "      --publication=NAME     publication (default: pgspout)\n"
        "      --create-slot          create the slot and publication if "
        "missing\n"
        "      --retry-initial        keep retrying when the first connection "
        "fails\n"
        "                             (a lost connection is always retried)\n"
        "      --drop-slot            drop the slot and exit\n"
        "      --wait=SECS            with --drop-slot: wait up to SECS for "
        "another\n"
        "                             client to release the slot (default: "
        "0)\n"
        "  -t, --table=PATTERN        stream only matching tables "
        "(repeatable)\n"
        "  -T, --exclude-table=PATTERN\n"
        "                             do not stream matching tables "
        "(repeatable)\n"
        "      --sink=NAME            sink name, or absolute path to a .so\n"
        "  -o, --option=KEY=VALUE     option for the --sink sink "
        "(repeatable)\n"
        "  -E, --endpos=LSN           stop once everything up to LSN is "
        "durable\n"
        "      --plugin-dir=DIR       also look for sinks in DIR "
        "(repeatable)\n"
        "      --list-tables          print the tables that will stream, as "
        "their\n"
        "                             events name them, and exit\n"
        "      --list-sinks           print the available sinks and exit\n"
        "  -s, --status-interval=SECS time between status packets sent to "
        "server\n"
        "                             (default: 10)\n"
        "  -v, --verbose              more log output (repeatable)\n"
        "  -V, --version              print the version and exit\n"
        "      --help                 print this help and exit\n",
        out);
}

/* ---- conninfo redaction ---- */

/* libpq marks its secret keywords with dispchar "*"; the names are checked
 * as well in case an older libpq leaves sslpassword unmarked. */
static bool is_secret_keyword(const PQconninfoOption *o)
{
    return (o->dispchar && o->dispchar[0] == '*') ||
           strcmp(o->keyword, "password") == 0 ||
           strcmp(o->keyword, "sslpassword") == 0;
}

/* Quotes as libpq's key=value syntax requires, so the output can be pasted
 * back (with the password filled in). */
static void append_conninfo_value(strbuf *sb, const char *value)
{
    bool plain = *value != '\0';
    for (const char *p = value; *p && plain; p++) {
        if (isspace((unsigned char)*p) || *p == '\'' || *p == '\\' || *p == '=')
            plain = false;
    }
    if (plain) {
        sbuf_append_str(sb, value);
        return;
    }
    sbuf_append_char(sb, '\'');
    for (const char *p = value; *p; p++) {
        if (*p == '\'' || *p == '\\')
            sbuf_append_char(sb, '\\');
        sbuf_append_char(sb, *p);
    }
    sbuf_append_char(sb, '\'');
}

char *conninfo_redacted(const char *conninfo)
{
    if (!conninfo)
        return xstrdup("");
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &errmsg);
    if (!opts) {
        /* The error text may quote the input, password and all. */
        if (errmsg)
            PQfreemem(errmsg);
        return xstrdup("(unparseable conninfo)");
    }
    strbuf sb = STRBUF_INIT;
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (sb.len > 0)
            sbuf_append_char(&sb, ' ');
        sbuf_appendf(&sb, "%s=", o->keyword);
        if (is_secret_keyword(o))
            sbuf_append_str(&sb, "********");
        else
            append_conninfo_value(&sb, o->val);
    }
    PQconninfoFree(opts);
    return sbuf_detach(&sb);
}
