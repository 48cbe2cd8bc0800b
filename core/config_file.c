#include "config_file.h"

#include <libconfig.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config_load.h"
#include "error.h"
#include "settings.h"
#include "strbuf.h"

typedef struct file_ctx {
    const char *path;        /* the file given with -c */
    const char *include_dir; /* where @include is resolved, or NULL */
    char *err;
    size_t errlen;
} file_ctx;

static int setting_error(file_ctx *ctx, const config_setting_t *setting,
                         const char *key_path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "FILE:LINE: KEY_PATH" of a setting. */
static void append_location(strbuf *sb, file_ctx *ctx,
                            const config_setting_t *setting,
                            const char *key_path)
{
    char *file = config_load_file_name(ctx->path, ctx->include_dir,
                                       config_setting_source_file(setting));
    sbuf_appendf(sb, "%s:%d: %s", file,
                 (int)config_setting_source_line(setting), key_path);
    free(file);
}

static int setting_error(file_ctx *ctx, const config_setting_t *setting,
                         const char *key_path, const char *fmt, ...)
{
    strbuf msg = STRBUF_INIT;
    append_location(&msg, ctx, setting, key_path);
    sbuf_append_str(&msg, ": ");
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
    strbuf sb = STRBUF_INIT;
    append_location(&sb, ctx, setting, key_path);
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

/* A list, an array, or for convenience a single string; replaces (items,
 * n) only when every element is a string. */
static int read_string_list(file_ctx *ctx, const config_setting_t *s,
                            const char *key_path, char ***items, size_t *n)
{
    char **tmp = NULL;
    size_t n_tmp = 0;
    int type = config_setting_type(s);
    if (type == CONFIG_TYPE_STRING) {
        config_list_push(&tmp, &n_tmp, config_setting_get_string(s));
    } else if (type == CONFIG_TYPE_LIST || type == CONFIG_TYPE_ARRAY) {
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *elem = config_setting_get_elem(s, i);
            if (config_setting_type(elem) != CONFIG_TYPE_STRING) {
                strbuf path = STRBUF_INIT;
                sbuf_appendf(&path, "%s.[%d]", key_path, i);
                setting_error(ctx, elem, path.data, "expected a string");
                sbuf_free(&path);
                config_list_free(&tmp, &n_tmp);
                return CONFIG_USAGE_ERROR;
            }
            config_list_push(&tmp, &n_tmp, config_setting_get_string(elem));
        }
    } else {
        return setting_error(ctx, s, key_path,
                             "expected a list of strings, e.g. [\"a\", \"b\"]");
    }
    config_list_free(items, n);
    *items = tmp;
    *n = n_tmp;
    return 0;
}

/* ---- core settings, by type ---- */

/* A string value checked as the setting's type says. */
static int read_text(file_ctx *ctx, const config_setting_t *cs,
                     const core_setting *s, pgspout_config *cfg)
{
    const char *value = NULL;
    if (read_string(ctx, cs, s->key, &value) != 0)
        return CONFIG_USAGE_ERROR;
    strbuf why = STRBUF_INIT;
    int rc = 0;
    if (setting_check_text(s, value, true, &why))
        setting_store_text(cfg, s, value, 0);
    else
        rc = setting_error(ctx, cs, s->key, "%s", why.data);
    sbuf_free(&why);
    return rc;
}

static int read_bool(file_ctx *ctx, const config_setting_t *cs,
                     const core_setting *s, pgspout_config *cfg)
{
    if (config_setting_type(cs) != CONFIG_TYPE_BOOL)
        return setting_error(ctx, cs, s->key, "expected a boolean");
    setting_store_bool(cfg, s, config_setting_get_bool(cs) != 0);
    return 0;
}

static int read_integer(file_ctx *ctx, const config_setting_t *cs,
                        const core_setting *s, pgspout_config *cfg)
{
    int type = config_setting_type(cs);
    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
        return setting_error(ctx, cs, s->key, "%s",
                             s->type == SETTING_SECONDS
                                 ? "expected an integer (seconds)"
                                 : "expected an integer");
    long long value = config_setting_get_int64(cs);
    strbuf why = STRBUF_INIT;
    int rc = 0;
    if (setting_check_integer(s, value, &why))
        setting_store_int(cfg, s, (int)value);
    else
        rc = setting_error(ctx, cs, s->key, "%s", why.data);
    sbuf_free(&why);
    return rc;
}

/* An integer, or a string with a k/M/G suffix ("256M": libconfig truncates
 * unsuffixed integers above 2^31). */
static int read_bytes(file_ctx *ctx, const config_setting_t *cs,
                      const core_setting *s, pgspout_config *cfg)
{
    int type = config_setting_type(cs);
    if (type == CONFIG_TYPE_STRING)
        return read_text(ctx, cs, s, cfg);
    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
        return setting_error(ctx, cs, s->key,
                             "expected a size in bytes (an integer, or a "
                             "string with a k, M or G suffix)");
    long long bytes = config_setting_get_int64(cs);
    strbuf why = STRBUF_INIT;
    int rc = 0;
    if (setting_check_bytes(bytes, &why))
        setting_store_bytes(cfg, s, (uint64_t)bytes);
    else
        rc = setting_error(ctx, cs, s->key, "%s", why.data);
    sbuf_free(&why);
    return rc;
}

static int read_patterns(file_ctx *ctx, const config_setting_t *cs,
                         const core_setting *s, pgspout_config *cfg)
{
    setting_store_origin(cfg, s, setting_origin(ctx, cs, s->key));
    char **items = NULL;
    size_t n = 0;
    if (read_string_list(ctx, cs, s->key, &items, &n) != 0)
        return CONFIG_USAGE_ERROR;
    setting_store_list(cfg, s, items, n);
    return 0;
}

/* Each directory is checked; an error is reported at the element when
 * there is one, else at the key. */
static int read_plugin_dirs(file_ctx *ctx, const config_setting_t *cs,
                            const core_setting *s, pgspout_config *cfg)
{
    char **items = NULL;
    size_t n = 0;
    if (read_string_list(ctx, cs, s->key, &items, &n) != 0)
        return CONFIG_USAGE_ERROR;
    setting_store_list(cfg, s, items, n);
    for (size_t i = 0; i < n; i++) {
        strbuf why = STRBUF_INIT;
        if (setting_check_text(s, items[i], true, &why))
            continue;
        const config_setting_t *at = cs;
        strbuf path = STRBUF_INIT;
        if (config_setting_type(cs) == CONFIG_TYPE_STRING) {
            sbuf_append_str(&path, s->key);
        } else {
            at = config_setting_get_elem(cs, (unsigned)i);
            sbuf_appendf(&path, "%s.[%zu]", s->key, i);
        }
        setting_error(ctx, at, path.data, "%s", why.data);
        sbuf_free(&path);
        sbuf_free(&why);
        return CONFIG_USAGE_ERROR;
    }
    return 0;
}

/* ---- sinks ---- */

/* One scalar of a sink's options group, under the key `key`. */
static int read_sink_option(file_ctx *ctx, const config_setting_t *s,
                            const char *key, const char *path,
                            sink_options *opts)
{
    char *file = config_load_file_name(ctx->path, ctx->include_dir,
                                       config_setting_source_file(s));
    int line = (int)config_setting_source_line(s);
    int rc = 0;
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_STRING:
        sink_options_add_text(opts, key, config_setting_get_string(s), file,
                              line, path);
        break;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        sink_options_add_int(opts, key, config_setting_get_int64(s), file, line,
                             path);
        break;
    case CONFIG_TYPE_FLOAT:
        sink_options_add_double(opts, key, config_setting_get_float(s), file,
                                line, path);
        break;
    case CONFIG_TYPE_BOOL:
        sink_options_add_bool(opts, key, config_setting_get_bool(s) != 0, file,
                              line, path);
        break;
    default:
        rc = setting_error(ctx, s, path,
                           "expected a string, number, boolean or group");
    }
    free(file);
    return rc;
}

/* A sink's options group. A group inside it stands for dotted keys, as
 * libconfig names cannot hold a dot: `kafka = { security = { protocol =
 * "SSL"; }; }` is the option "kafka.security.protocol" (what a sink's
 * prefix option takes). `key_prefix` is "" at the top, else the dotted
 * key so far. */
static int read_sink_options_under(file_ctx *ctx, const config_setting_t *group,
                                   const char *key_path, const char *key_prefix,
                                   sink_options *opts)
{
    int rc = 0;
    for (int i = 0; i < config_setting_length(group) && rc == 0; i++) {
        const config_setting_t *s = config_setting_get_elem(group, i);
        strbuf path = STRBUF_INIT, key = STRBUF_INIT;
        sbuf_appendf(&path, "%s.%s", key_path, config_setting_name(s));
        sbuf_appendf(&key, "%s%s%s", key_prefix, *key_prefix ? "." : "",
                     config_setting_name(s));
        if (config_setting_type(s) == CONFIG_TYPE_GROUP)
            rc = read_sink_options_under(ctx, s, path.data, key.data, opts);
        else
            rc = read_sink_option(ctx, s, key.data, path.data, opts);
        sbuf_free(&path);
        sbuf_free(&key);
    }
    return rc;
}

static int read_sink_options(file_ctx *ctx, const config_setting_t *group,
                             const char *key_path, sink_options *opts)
{
    if (config_setting_type(group) != CONFIG_TYPE_GROUP)
        return setting_error(ctx, group, key_path,
                             "expected a group: options = { key = value; }");
    return read_sink_options_under(ctx, group, key_path, "", opts);
}

/* A sink's name: valid, and not taken by an earlier sink. */
static int read_sink_name(file_ctx *ctx, const config_setting_t *s,
                          const char *path, pgspout_config *cfg,
                          sink_config *sink)
{
    const char *value = NULL;
    if (read_string(ctx, s, path, &value) != 0)
        return CONFIG_USAGE_ERROR;
    if (!config_sink_name_valid(value))
        return setting_error(ctx, s, path,
                             "\"%s\" is not a valid sink name (letters, "
                             "digits, '_' and '-')",
                             value);
    for (size_t j = 0; j + 1 < cfg->n_sinks; j++) {
        if (strcmp(cfg->sinks[j].name, value) == 0)
            return setting_error(ctx, s, path,
                                 "duplicate sink name \"%s\" (also used by "
                                 "sinks.[%zu])",
                                 value, j);
    }
    config_replace_string(&sink->name, value);
    return 0;
}

static int read_sink_type(file_ctx *ctx, const config_setting_t *s,
                          const char *path, sink_config *sink)
{
    const char *value = NULL;
    if (read_string(ctx, s, path, &value) != 0)
        return CONFIG_USAGE_ERROR;
    config_replace_string(&sink->type, value);
    const char *problem = config_sink_type_problem(value);
    if (problem)
        return setting_error(ctx, s, path, "\"%s\" %s", value, problem);
    return 0;
}

static int read_sink_patterns(file_ctx *ctx, const config_setting_t *s,
                              const char *path, char ***items, size_t *n,
                              char **origin)
{
    int rc = read_string_list(ctx, s, path, items, n);
    free(*origin);
    *origin = setting_origin(ctx, s, path);
    return rc;
}

static int read_sink_key(file_ctx *ctx, const config_setting_t *s,
                         const char *path, pgspout_config *cfg,
                         sink_config *sink)
{
    const char *key = config_setting_name(s);
    if (strcmp(key, "name") == 0)
        return read_sink_name(ctx, s, path, cfg, sink);
    if (strcmp(key, "type") == 0)
        return read_sink_type(ctx, s, path, sink);
    if (strcmp(key, "include") == 0)
        return read_sink_patterns(ctx, s, path, &sink->include,
                                  &sink->n_include, &sink->include_origin);
    if (strcmp(key, "exclude") == 0)
        return read_sink_patterns(ctx, s, path, &sink->exclude,
                                  &sink->n_exclude, &sink->exclude_origin);
    if (strcmp(key, "options") == 0)
        return read_sink_options(ctx, s, path, sink->options);
    return setting_error(ctx, s, path,
                         "unknown key (expected name, type, include, exclude "
                         "or options)");
}

static int read_sink(file_ctx *ctx, const config_setting_t *group, int index,
                     pgspout_config *cfg)
{
    strbuf base = STRBUF_INIT;
    sbuf_appendf(&base, "sinks.[%d]", index);
    if (config_setting_type(group) != CONFIG_TYPE_GROUP) {
        setting_error(ctx, group, base.data,
                      "expected a group: { name = \"...\"; type = \"...\"; }");
        sbuf_free(&base);
        return CONFIG_USAGE_ERROR;
    }
    /* Added first so that config_free releases it on any error below. */
    sink_config *sink = config_add_sink(cfg);
    sink->origin = setting_origin(ctx, group, base.data);
    int rc = 0;
    strbuf path = STRBUF_INIT;
    for (int i = 0; i < config_setting_length(group) && rc == 0; i++) {
        const config_setting_t *s = config_setting_get_elem(group, i);
        sbuf_reset(&path);
        sbuf_appendf(&path, "%s.%s", base.data, config_setting_name(s));
        rc = read_sink_key(ctx, s, path.data, cfg, sink);
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
                      const core_setting *setting, pgspout_config *cfg)
{
    if (config_setting_type(s) != CONFIG_TYPE_LIST)
        return setting_error(ctx, s, setting->key,
                             "expected a list of groups: sinks = ( { ... }, "
                             "{ ... } )");
    /* Otherwise the error would come later, as "no sink configured",
     * without pointing at the line that emptied the list. */
    if (config_setting_length(s) == 0)
        return setting_error(ctx, s, setting->key,
                             "the list is empty; give at least one sink");
    config_clear_sinks(cfg);
    for (int i = 0; i < config_setting_length(s); i++) {
        if (read_sink(ctx, config_setting_get_elem(s, i), i, cfg) != 0)
            return CONFIG_USAGE_ERROR;
    }
    return 0;
}

/* ---- the file ---- */

static int read_root_setting(file_ctx *ctx, const config_setting_t *cs,
                             pgspout_config *cfg)
{
    const char *key = config_setting_name(cs);
    const core_setting *s = setting_by_key(key);
    if (!s)
        return setting_error(ctx, cs, key, "unknown key");
    switch (s->type) {
    case SETTING_CONNINFO:
    case SETTING_SLOT_NAME:
    case SETTING_NAME:
    case SETTING_LSN:
    case SETTING_LISTEN:
    case SETTING_LOG_FORMAT:
    case SETTING_CHOICE:
    case SETTING_DIR:
        return read_text(ctx, cs, s, cfg);
    case SETTING_BYTES:
        return read_bytes(ctx, cs, s, cfg);
    case SETTING_BOOL:
        return read_bool(ctx, cs, s, cfg);
    case SETTING_SECONDS:
    case SETTING_INTEGER:
        return read_integer(ctx, cs, s, cfg);
    case SETTING_PATTERNS:
        return read_patterns(ctx, cs, s, cfg);
    case SETTING_PLUGIN_DIRS:
        return read_plugin_dirs(ctx, cs, s, cfg);
    case SETTING_SINKS:
        return read_sinks(ctx, cs, s, cfg);
    default:
        /* The other types are command-line flags, which have no key. */
        return setting_error(ctx, cs, key, "unknown key");
    }
}

int config_read_file_into(const char *path, pgspout_config *cfg, char *err,
                          size_t errlen)
{
    config_t lc;
    config_init(&lc);
    char *dir = NULL;
    int rc = config_load(&lc, path, &dir, err, errlen);
    if (rc == 0) {
        file_ctx ctx = {path, dir, err, errlen};
        const config_setting_t *root = config_root_setting(&lc);
        for (int i = 0; i < config_setting_length(root) && rc == 0; i++)
            rc = read_root_setting(&ctx, config_setting_get_elem(root, i), cfg);
    }
    config_destroy(&lc);
    free(dir);
    return rc;
}
