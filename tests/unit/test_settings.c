/* The table of core settings (core/settings.c): its entries are consistent,
 * their defaults are valid values that land where the table says, --help
 * shows every flag, key, doc and default, and README's Usage section (the
 * synopsis and the option table; its path is the first argument) says what
 * the table says, row for row, so neither can drift from the other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "config_usage.h"
#include "log.h"
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

static void test_table_is_consistent(void)
{
    for (size_t i = 0; i < n_core_settings; i++) {
        const core_setting *s = &core_settings[i];
        const char *name = s->long_flag ? s->long_flag : s->key;
        printf("# %s\n", name ? name : "(unnamed)");
        CHECK(s->long_flag || s->key);
        CHECK(s->doc && *s->doc && !strchr(s->doc, '\n'));
        CHECK(!s->long_flag ||
              (s->arg_name != NULL) == takes_argument(s->type));
        CHECK(!s->short_flag || s->long_flag);
        CHECK(!s->named_short || s->short_flag);
        CHECK(!s->requires || setting_by_long_flag(s->requires));
        bool unique = true;
        for (size_t j = 0; j < i; j++) {
            const core_setting *t = &core_settings[j];
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
    CHECK(cfg.heartbeat_interval_s == 60 && cfg.max_slot_lag == 0);
    CHECK(cfg.http_listen == NULL && cfg.log_format == LOG_FORMAT_TEXT);
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
                    "--http",
                    "127.0.0.1:9187",
                    "--heartbeat-interval",
                    "5",
                    "--max-slot-lag",
                    "64M",
                    "--log-format",
                    "json",
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
    CHECK_STR(cfg.http_listen, "127.0.0.1:9187");
    CHECK(cfg.heartbeat_interval_s == 5 && cfg.max_slot_lag == 64u << 20);
    CHECK(cfg.log_format == LOG_FORMAT_JSON);
    config_free(&cfg);
}

static char *usage_text(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    config_print_usage(mem);
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

static void test_usage_shows_the_table(void)
{
    char *text = usage_text();
    for (size_t i = 0; i < n_core_settings; i++) {
        const core_setting *s = &core_settings[i];
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

/* Splits "| a | b | c | d |" into four trimmed cells. */
static bool split_row(const char *row, char *cells[4])
{
    const char *p = row + 1;
    for (int i = 0; i < 4; i++) {
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

static void check_row(const core_setting *s, char *cells[4])
{
    strbuf option = STRBUF_INIT, key = STRBUF_INIT, def = STRBUF_INIT;
    expected_cells(s, &option, &key, &def);
    printf("# README row %s\n", option.len ? option.data : key.data);
    CHECK_STR(cells[0], option.data);
    CHECK_STR(cells[1], key.data);
    CHECK_STR(cells[2], def.data);
    char *meaning = without_backticks(cells[3]);
    bool starts = strncmp(meaning, s->doc, strlen(s->doc)) == 0;
    if (!starts)
        printf("# the meaning must start with: %s\n", s->doc);
    CHECK(starts);
    free(meaning);
    sbuf_free(&option);
    sbuf_free(&key);
    sbuf_free(&def);
}

static void test_readme_table(const char *readme)
{
    static const char header[] = "| option | config key | default | meaning |";
    const char *p = strstr(readme, header);
    CHECK(p != NULL);
    if (!p)
        return;
    strbuf line = STRBUF_INIT;
    next_line(&p, &line); /* the header */
    next_line(&p, &line); /* |---|---| */
    size_t row = 0;
    while (next_line(&p, &line) && line.data[0] == '|') {
        char *cells[4] = {NULL, NULL, NULL, NULL};
        bool four = split_row(line.data, cells);
        if (!four)
            printf("# not four cells: %s\n", line.data);
        CHECK(four);
        CHECK(row < n_core_settings); /* nothing else */
        if (four && row < n_core_settings)
            check_row(&core_settings[row], cells);
        for (int i = 0; i < 4; i++)
            free(cells[i]);
        row++;
    }
    CHECK(row == n_core_settings); /* every setting, in the table's order */
    sbuf_free(&line);
}

int main(int argc, char **argv)
{
    test_table_is_consistent();
    test_defaults_land();
    test_values_land();
    test_usage_shows_the_table();
    char *readme = argc > 1 ? read_file(argv[1]) : NULL;
    if (!readme)
        printf("# README.md not readable: %s\n", argc > 1 ? argv[1] : "");
    CHECK(readme != NULL);
    if (readme) {
        test_readme_synopsis(readme);
        test_readme_table(readme);
    }
    free(readme);
    return check_summary();
}
