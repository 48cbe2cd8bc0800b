#include "config_cli.h"

#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "strbuf.h"

/* getopt_long's value for a setting without a short flag: above any
 * character, then the setting's index in the table. */
#define LONG_ONLY_BASE 256

static size_t setting_index(const cli_args *cli, const core_setting *s)
{
    return (size_t)(s - cli->table);
}

static struct option *long_options(const cli_args *cli)
{
    struct option *opts = xcalloc(cli->n_table + 1, sizeof *opts);
    size_t n = 0;
    for (size_t i = 0; i < cli->n_table; i++) {
        const core_setting *s = &cli->table[i];
        if (!s->long_flag)
            continue;
        opts[n].name = s->long_flag;
        opts[n].has_arg = s->arg_name ? required_argument : no_argument;
        opts[n].val = s->short_flag ? s->short_flag : LONG_ONLY_BASE + (int)i;
        n++;
    }
    return opts;
}

/* ":" first: a missing argument is told apart from an unknown option. */
static char *short_options(const cli_args *cli)
{
    strbuf sb = STRBUF_INIT;
    sbuf_append_char(&sb, ':');
    for (size_t i = 0; i < cli->n_table; i++) {
        if (!cli->table[i].short_flag)
            continue;
        sbuf_append_char(&sb, cli->table[i].short_flag);
        if (cli->table[i].arg_name)
            sbuf_append_char(&sb, ':');
    }
    return sbuf_detach(&sb);
}

static const core_setting *setting_for_option(const cli_args *cli, int c)
{
    if (c >= LONG_ONLY_BASE && (size_t)(c - LONG_ONLY_BASE) < cli->n_table)
        return &cli->table[c - LONG_ONLY_BASE];
    for (size_t i = 0; i < cli->n_table && c > 0; i++) {
        if (cli->table[i].short_flag == c)
            return &cli->table[i];
    }
    return NULL;
}

static const core_setting *setting_named(const cli_args *cli, const char *flag)
{
    for (size_t i = 0; i < cli->n_table; i++) {
        const char *name = cli->table[i].long_flag;
        if (name && strcmp(name, flag) == 0)
            return &cli->table[i];
    }
    return NULL;
}

/* How much of a command-line word may be quoted in an error: up to an '='
 * ("password=..." must not be echoed). */
static int printable_prefix(const char *word)
{
    const char *eq = strchr(word, '=');
    return (int)(eq ? (size_t)(eq - word) : strlen(word));
}

static int unknown_option(char **argv, char *err, size_t errlen)
{
    if (optopt > 0 && optopt < 256 && isprint(optopt))
        set_error(err, errlen, "invalid option -- '%c'", optopt);
    else
        set_error(err, errlen, "unrecognized option '%.*s'",
                  printable_prefix(argv[optind - 1]), argv[optind - 1]);
    return CONFIG_USAGE_ERROR;
}

/* Checks one value and records it. */
static int take_value(cli_args *cli, const core_setting *s, const char *arg,
                      char *err, size_t errlen)
{
    if (s->type == SETTING_SINK && cli->given[setting_index(cli, s)] > 0) {
        set_error(err, errlen,
                  "--sink may be given only once; use a config file for "
                  "several sinks");
        return CONFIG_USAGE_ERROR;
    }
    if (arg) {
        strbuf why = STRBUF_INIT;
        bool ok = setting_check_text(s, arg, false, &why);
        if (!ok)
            set_error(err, errlen, "%s", why.data);
        sbuf_free(&why);
        if (!ok)
            return CONFIG_USAGE_ERROR;
    }
    if (s->type == SETTING_CONFIG_FILE)
        cli->config_file = arg;
    cli->skips_config_file = cli->skips_config_file || s->skips_config_file;
    cli->given[setting_index(cli, s)]++;
    cli->values[cli->n_values].setting = s;
    cli->values[cli->n_values].arg = arg;
    cli->n_values++;
    return 0;
}

int cli_parse(int argc, char **argv, const core_setting *table, size_t n_table,
              cli_args *cli, char *err, size_t errlen)
{
    memset(cli, 0, sizeof(*cli));
    cli->table = table;
    cli->n_table = n_table;
    /* Each value takes at least one word of argv. */
    cli->values = xcalloc((size_t)(argc > 0 ? argc : 1), sizeof(cli_value));
    cli->given = xcalloc(n_table, sizeof(size_t));
    struct option *longopts = long_options(cli);
    char *shortopts = short_options(cli);

    /* 0 rather than 1 makes glibc reinitialise its scanning state, so the
     * parser can run more than once in a process (the unit tests do). */
    optind = 0;
    opterr = 0;
    int rc = 0, c;
    while (rc == 0 &&
           (c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const core_setting *s = setting_for_option(cli, c);
        if (c == ':') {
            set_error(err, errlen, "option '%s' requires an argument",
                      argv[optind - 1]);
            rc = CONFIG_USAGE_ERROR;
        } else if (!s) {
            rc = unknown_option(argv, err, errlen);
        } else {
            rc = take_value(cli, s, optarg, err, errlen);
        }
    }
    if (rc == 0 && optind < argc) {
        set_error(err, errlen,
                  "too many command-line arguments (first is \"%.*s%s\"; a "
                  "connection string with spaces needs quotes)",
                  printable_prefix(argv[optind]), argv[optind],
                  strchr(argv[optind], '=') ? "=..." : "");
        rc = CONFIG_USAGE_ERROR;
    }
    free(longopts);
    free(shortopts);
    return rc;
}

static bool given(const cli_args *cli, const core_setting *s)
{
    return s && cli->given[setting_index(cli, s)] > 0;
}

/* "A<middle>B<end>", naming both settings as they are written. */
static int combination_error(const core_setting *a, const char *middle,
                             const core_setting *b, const char *end, char *err,
                             size_t errlen)
{
    strbuf msg = STRBUF_INIT;
    setting_append_flag(&msg, a);
    sbuf_append_str(&msg, middle);
    setting_append_flag(&msg, b);
    sbuf_append_str(&msg, end);
    set_error(err, errlen, "%s", msg.data);
    sbuf_free(&msg);
    return CONFIG_USAGE_ERROR;
}

int cli_check_combinations(cli_args *cli, char *err, size_t errlen)
{
    for (size_t i = 0; i < cli->n_table; i++) {
        const core_setting *s = &cli->table[i];
        if (s->type != SETTING_MODE || !given(cli, s))
            continue;
        if (cli->mode)
            return combination_error(cli->mode, " and ", s,
                                     " cannot be used together", err, errlen);
        cli->mode = s;
    }
    for (size_t i = 0; i < cli->n_table; i++) {
        const core_setting *s = &cli->table[i];
        const core_setting *needed =
            s->requires ? setting_named(cli, s->requires) : NULL;
        if (needed && given(cli, s) && !given(cli, needed))
            return combination_error(s, " can only be used with ", needed, "",
                                     err, errlen);
    }
    for (size_t i = 0; i < cli->n_table && cli->mode; i++) {
        const core_setting *s = &cli->table[i];
        if (s->stream_only && given(cli, s))
            return combination_error(s, " cannot be used with ", cli->mode, "",
                                     err, errlen);
    }
    return 0;
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
    if (!config_sink_name_valid(name)) {
        free(name);
        name = xstrdup("sink");
    }
    return name;
}

/* The --sink sink, with every -o option wherever it was given. */
static void apply_sink(const cli_args *cli, const char *type,
                       pgspout_config *cfg)
{
    config_clear_sinks(cfg);
    sink_config *sink = config_add_sink(cfg);
    sink->type = xstrdup(type);
    sink->name = sink_name_from_type(type);
    strbuf origin = STRBUF_INIT;
    sbuf_appendf(&origin, "command line: --sink %s", type);
    sink->origin = sbuf_detach(&origin);
    for (size_t i = 0; i < cli->n_values; i++) {
        const char *kv = cli->values[i].arg;
        if (cli->values[i].setting->type != SETTING_SINK_OPTION)
            continue;
        const char *eq = strchr(kv, '=');
        char *key = xstrndup(kv, (size_t)(eq - kv));
        sink_options_add_text(sink->options, key, eq + 1, NULL, 0, NULL);
        free(key);
    }
}

void cli_apply(const cli_args *cli, pgspout_config *cfg)
{
    size_t *stored = xcalloc(cli->n_table, sizeof(size_t));
    const char *sink = NULL;
    for (size_t i = 0; i < cli->n_values; i++) {
        const core_setting *s = cli->values[i].setting;
        if (s->type == SETTING_SINK)
            sink = cli->values[i].arg;
        else
            setting_store_text(cfg, s, cli->values[i].arg,
                               stored[setting_index(cli, s)]++);
    }
    free(stored);
    if (sink)
        apply_sink(cli, sink, cfg);
}

void cli_free(cli_args *cli)
{
    free(cli->values);
    free(cli->given);
    memset(cli, 0, sizeof(*cli));
}
