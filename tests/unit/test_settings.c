/* The table of core settings (core/settings.c) and the one of pgspout
 * backfill (core/backfill_cli.c): their entries are consistent, their
 * defaults are valid values that land where the table says, --help shows
 * every flag, key, doc and default, and README's Usage section (the
 * synopsis and the option tables; its path is the first argument) says
 * what the tables say, row for row, so neither can drift from the other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_cli.h"
#include "check.h"
#include "config.h"
#include "config_usage.h"
#include "settings.h"
#include "strbuf.h"

static bool contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle) != NULL;
}

static bool takes_argument(setting_type type)
{
    return type != SETTING_BOOL && type != SETTING_MODE &&
           type != SETTING_COUNT && type != SETTING_SINKS;
}

static const core_setting *by_long_flag(const core_setting *table, size_t n,
                                        const char *flag)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].long_flag && strcmp(table[i].long_flag, flag) == 0)
            return &table[i];
    return NULL;
}

static void test_table_is_consistent(const core_setting *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const core_setting *s = &table[i];
        const char *name = s->long_flag ? s->long_flag : s->key;
        printf("# %s\n", name ? name : "(unnamed)");
        CHECK(s->long_flag || s->key);
        CHECK(s->doc && *s->doc && !strchr(s->doc, '\n'));
        CHECK(!s->long_flag ||
              (s->arg_name != NULL) == takes_argument(s->type));
        CHECK(!s->short_flag || s->long_flag);
        CHECK(!s->named_short || s->short_flag);
        CHECK(!s->requires || by_long_flag(table, n, s->requires));
        bool unique = true;
        for (size_t j = 0; j < i; j++) {
            const core_setting *t = &table[j];
            unique =
                unique && (!s->short_flag || s->short_flag != t->short_flag);
            unique = unique && (!s->long_flag || !t->long_flag ||
                                strcmp(s->long_flag, t->long_flag) != 0);
            unique =
                unique && (!s->key || !t->key || strcmp(s->key, t->key) != 0);
        }
        CHECK(unique);
        /* A default is a value the command line would accept. */
        strbuf why = STRBUF_INIT;
        CHECK(!s->default_text ||
              setting_check_text(s, s->default_text, false, &why));
        sbuf_free(&why);
    }
}

static void test_lookups(void)
{
    CHECK(setting_by_key("connection") == setting_by_long_flag("dbname"));
    CHECK(setting_by_key("nope") == NULL && setting_by_long_flag("x") == NULL);
}

static void test_defaults_land(void)
{
    pgspout_config cfg;
    memset(&cfg, 0, sizeof cfg);
    settings_apply_defaults(&cfg);
    CHECK_STR(cfg.slot, "pgspout");
    CHECK_STR(cfg.publication, "pgspout");
    CHECK(cfg.status_interval_s == 10);
    CHECK(cfg.drop_slot_wait_s == 0);
    CHECK(cfg.conninfo == NULL && !cfg.has_endpos && !cfg.create_slot);
    config_free(&cfg);
}

/* Every value given on the command line lands where the table says. */
static void test_values_land(void)
{
    char *argv[] = {"pgspout",
                    "-d",
                    "dbname=x",
                    "-S",
                    "s1",
                    "--publication=p1",
                    "--create-slot",
                    "--retry-initial",
                    "-t",
                    "a",
                    "-T",
                    "b",
                    "-E",
                    "1/2",
                    "--plugin-dir",
                    "/p",
                    "-s",
                    "7",
                    "-v",
                    "--sink",
                    "file",
                    "-o",
                    "k=v",
                    NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    pgspout_config cfg;
    char err[512] = "";
    CHECK(config_from_args(argc, argv, &cfg, err, sizeof err) == 0);
    CHECK_STR(err, "");
    CHECK_STR(cfg.conninfo, "dbname=x");
    CHECK_STR(cfg.slot, "s1");
    CHECK_STR(cfg.publication, "p1");
    CHECK(cfg.create_slot && cfg.retry_initial);
    CHECK(cfg.n_include == 1 && cfg.n_exclude == 1);
    CHECK_STR(cfg.include_origin, "command line: -t");
    CHECK_STR(cfg.exclude_origin, "command line: -T");
    CHECK(cfg.has_endpos && cfg.endpos == ((uint64_t)1 << 32 | 2));
    CHECK(cfg.n_plugin_dirs == 1 && cfg.status_interval_s == 7);
    CHECK(cfg.verbosity == 1 && cfg.n_sinks == 1);
    config_free(&cfg);
}

static void print_backfill_usage(FILE *out)
{
    config_print_synopsis(out, BACKFILL_SYNOPSIS);
    config_print_options(out, backfill_cli_settings, n_backfill_cli_settings);
}

/* pgspout backfill's flags land where its table says; the config file's
 * include/exclude (the daemon's filters) never become the request's. */
static void test_backfill_values_land(void)
{
    char *argv[] = {"backfill", "-d",
                    "dbname=x", "-S",
                    "s1",       "--publication=p1",
                    "-t",       "a",
                    "-t",       "b",
                    "-T",       "c",
                    "--where",  "id > 1",
                    "--wait",   "--status-schema",
                    "ops",      NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    pgspout_config cfg;
    char err[512] = "";
    CHECK(backfill_config_from_args(argc, argv, &cfg, err, sizeof err) == 0);
    CHECK_STR(err, "");
    CHECK_STR(cfg.conninfo, "dbname=x");
    CHECK_STR(cfg.slot, "s1");
    CHECK_STR(cfg.publication, "p1");
    CHECK(cfg.n_include == 2 && cfg.n_exclude == 1);
    CHECK_STR(cfg.backfill_where, "id > 1");
    CHECK_STR(cfg.status_schema, "ops");
    CHECK(cfg.backfill_wait && !cfg.backfill_status);
    config_free(&cfg);

    char *status[] = {"backfill", "--status", NULL};
    CHECK(backfill_config_from_args(2, status, &cfg, err, sizeof err) == 0);
    CHECK(cfg.backfill_status && cfg.n_include == 0);
    CHECK_STR(cfg.slot, "pgspout");
    CHECK_STR(cfg.status_schema, "public");
    config_free(&cfg);

    static const char *const bad[][4] = {
        {"backfill", "--wait", NULL, "-t PATTERN is required"},
        {"backfill", "--status", "--wait",
         "--wait cannot be used with "
         "--status"},
        {"backfill", "-tx", "--slot=A", "slot name \"A\""},
        {"backfill", "--where=", "-t", "--where must not be empty"},
        {"backfill", "--sink", "file", "unrecognized option '--sink'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *args[4] = {(char *)bad[i][0], (char *)bad[i][1],
                         (char *)bad[i][2], NULL};
        int n = bad[i][2] ? 3 : 2;
        err[0] = '\0';
        CHECK(backfill_config_from_args(n, args, &cfg, err, sizeof err) ==
              CONFIG_USAGE_ERROR);
        if (!strstr(err, bad[i][3]))
            printf("# got: %s\n", err);
        CHECK(strstr(err, bad[i][3]) != NULL);
        config_free(&cfg);
    }
}

static char *usage_text(void (*print)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    print(mem);
    fclose(mem);
    /* Wrapped lines joined, so that a doc reads as one run of words. */
    strbuf flat = STRBUF_INIT;
    for (const char *p = buf; *p; p++) {
        if (*p == '\n' || *p == ' ') {
            while (p[1] == ' ' || p[1] == '\n')
                p++;
            sbuf_append_char(&flat, ' ');
        } else {
            sbuf_append_char(&flat, *p);
        }
    }
    free(buf);
    return sbuf_detach(&flat);
}

static void test_usage_shows_the_table(void (*print)(FILE *),
                                       const core_setting *table, size_t n)
{
    char *text = usage_text(print);
    for (size_t i = 0; i < n; i++) {
        const core_setting *s = &table[i];
        strbuf want = STRBUF_INIT;
        if (s->long_flag) {
            sbuf_appendf(&want, "--%s%s%s ", s->long_flag,
                         s->arg_name ? "=" : "",
                         s->arg_name ? s->arg_name : "");
            sbuf_append_str(&want, s->doc);
            if (s->default_text)
                sbuf_appendf(&want, " (default: %s)", s->default_text);
        } else {
            sbuf_appendf(&want, " %s,", s->key);
        }
        if (!contains(text, want.data))
            printf("# not in --help: %s\n", want.data);
        CHECK(contains(text, want.data));
        if (s->key && s->long_flag) {
            sbuf_reset(&want);
            sbuf_appendf(&want, " %s (--%s)", s->key, s->long_flag);
            CHECK(contains(text, want.data));
        }
        if (s->short_flag) {
            sbuf_reset(&want);
            sbuf_appendf(&want, "-%c, --%s", s->short_flag, s->long_flag);
            CHECK(contains(text, want.data));
        }
        sbuf_free(&want);
    }
    free(text);
}

/* ---- README ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    strbuf sb = STRBUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sbuf_append(&sb, chunk, n);
    fclose(f);
    return sbuf_detach(&sb);
}

/* The next line of *p (without its newline) into line; false at the end. */
static bool next_line(const char **p, strbuf *line)
{
    if (!**p)
        return false;
    size_t len = strcspn(*p, "\n");
    sbuf_reset(line);
    sbuf_append(line, *p, len);
    *p += len + ((*p)[len] == '\n');
    return true;
}

static void test_readme_synopsis(const char *readme)
{
    const char *usage = strstr(readme, "\n## Usage\n\n```\n");
    CHECK(usage != NULL);
    if (!usage)
        return;
    usage += strlen("\n## Usage\n\n```\n");
    const char *end = strstr(usage, "```\n");
    CHECK(end && (size_t)(end - usage) == strlen(config_usage_synopsis) &&
          strncmp(usage, config_usage_synopsis, (size_t)(end - usage)) == 0);
}

static char *trimmed(const char *s, size_t len)
{
    while (len > 0 && *s == ' ') {
        s++;
        len--;
    }
    while (len > 0 && s[len - 1] == ' ')
        len--;
    return xstrndup(s, len);
}

/* Splits "| a | b | ... |" into exactly n trimmed cells. */
static bool split_row(const char *row, char **cells, int n)
{
    const char *p = row + 1;
    for (int i = 0; i < n; i++) {
        const char *bar = strchr(p, '|');
        if (!bar)
            return false;
        cells[i] = trimmed(p, (size_t)(bar - p));
        p = bar + 1;
    }
    return *p == '\0';
}

static char *without_backticks(const char *s)
{
    strbuf sb = STRBUF_INIT;
    sbuf_append(&sb, "", 0);
    for (; *s; s++) {
        if (*s != '`')
            sbuf_append_char(&sb, *s);
    }
    return sbuf_detach(&sb);
}

/* The cells the table says a setting's row has. */
static void expected_cells(const core_setting *s, strbuf *option, strbuf *key,
                           strbuf *def)
{
    if (s->short_flag)
        sbuf_appendf(option, "`-%c`, ", s->short_flag);
    if (s->long_flag)
        sbuf_appendf(option, "`--%s%s%s`", s->long_flag, s->arg_name ? " " : "",
                     s->arg_name ? s->arg_name : "");
    sbuf_append(option, "", 0);
    if (s->key)
        sbuf_appendf(key, "`%s`", s->key);
    sbuf_append(key, "", 0);
    if (s->default_text)
        sbuf_appendf(def, "`%s`", s->default_text);
    sbuf_append(def, "", 0);
}

/* A README table of settings: pgspout's own has a config key column,
 * pgspout backfill's has none (its flags are command-line only). */
typedef struct readme_table {
    const char *header;
    const core_setting *table;
    size_t n;
    bool with_key;
} readme_table;

/* cells: option, [key,] default, meaning. */
static void check_row(const readme_table *t, const core_setting *s,
                      char **cells)
{
    strbuf option = STRBUF_INIT, key = STRBUF_INIT, def = STRBUF_INIT;
    expected_cells(s, &option, &key, &def);
    printf("# README row %s\n", option.len ? option.data : key.data);
    int c = 0;
    CHECK_STR(cells[c++], option.data);
    if (t->with_key)
        CHECK_STR(cells[c++], key.data);
    CHECK_STR(cells[c++], def.data);
    char *meaning = without_backticks(cells[c]);
    bool starts = strncmp(meaning, s->doc, strlen(s->doc)) == 0;
    if (!starts)
        printf("# the meaning must start with: %s\n", s->doc);
    CHECK(starts);
    free(meaning);
    sbuf_free(&option);
    sbuf_free(&key);
    sbuf_free(&def);
}

static void test_readme_table(const char *readme, const readme_table *t)
{
    const char *p = strstr(readme, t->header);
    CHECK(p != NULL);
    if (!p)
        return;
    int ncells = t->with_key ? 4 : 3;
    strbuf line = STRBUF_INIT;
    next_line(&p, &line); /* the header */
    next_line(&p, &line); /* |---|---| */
    size_t row = 0;
    while (next_line(&p, &line) && line.data[0] == '|') {
        char *cells[4] = {NULL, NULL, NULL, NULL};
        bool split = split_row(line.data, cells, ncells);
        if (!split)
            printf("# not %d cells: %s\n", ncells, line.data);
        CHECK(split);
        CHECK(row < t->n); /* nothing else */
        if (split && row < t->n)
            check_row(t, &t->table[row], cells);
        for (int i = 0; i < 4; i++)
            free(cells[i]);
        row++;
    }
    CHECK(row == t->n); /* every setting, in the table's order */
    sbuf_free(&line);
}

int main(int argc, char **argv)
{
    static const readme_table readme_tables[] = {
        {"| option | config key | default | meaning |", core_settings, 0, true},
        {"| `pgspout backfill` option | default | meaning |",
         backfill_cli_settings, 0, false},
    };
    readme_table tables[2];
    memcpy(tables, readme_tables, sizeof tables);
    tables[0].n = n_core_settings;
    tables[1].n = n_backfill_cli_settings;
    test_table_is_consistent(core_settings, n_core_settings);
    test_table_is_consistent(backfill_cli_settings, n_backfill_cli_settings);
    test_lookups();
    test_defaults_land();
    test_values_land();
    test_backfill_values_land();
    test_usage_shows_the_table(config_print_usage, core_settings,
                               n_core_settings);
    test_usage_shows_the_table(print_backfill_usage, backfill_cli_settings,
                               n_backfill_cli_settings);
    char *readme = argc > 1 ? read_file(argv[1]) : NULL;
    if (!readme)
        printf("# README.md not readable: %s\n", argc > 1 ? argv[1] : "");
    CHECK(readme != NULL);
    if (readme) {
        test_readme_synopsis(readme);
        for (size_t i = 0; i < 2; i++)
            test_readme_table(readme, &tables[i]);
    }
    free(readme);
    return check_summary();
}
