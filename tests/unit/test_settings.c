/* The table of core settings (core/settings.c): its entries are consistent,
 * their defaults are valid values that land where the table says, and
 * --help shows every flag, key, doc and default. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    test_table_is_consistent();
    test_defaults_land();
    test_values_land();
    test_usage_shows_the_table();
    return check_summary();
}
