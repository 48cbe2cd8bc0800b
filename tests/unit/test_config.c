/* Command line and config file parsing: good configs, every error class
 * (each message must name the file, the line and the key), command-line
 * overrides and mode checks. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "config_usage.h"
#include "log.h"
#include "strbuf.h"

static char tmpdir[] = "/tmp/pgspout-test-config-XXXXXX";
static char conf_path[256];

static const pgspout_option_def file_like_defs[] = {
    {"path", PGSPOUT_OPT_STRING, NULL, PGSPOUT_OPTF_REQUIRED, "output", 1, 0,
     NULL},
    {"fsync", PGSPOUT_OPT_BOOL, "true", 0, "fsync", 1, 0, NULL},
    {"rotate_size", PGSPOUT_OPT_INT, "0", 0, "rotate", 0, 1e15, NULL},
    {"ratio", PGSPOUT_OPT_DOUBLE, "1", 0, "ratio", 0, 1, NULL},
    {"password", PGSPOUT_OPT_STRING, NULL, PGSPOUT_OPTF_SECRET, "secret", 1, 0,
     NULL},
    PGSPOUT_OPTION_END,
};

static bool contains(const char *haystack, const char *needle)
{
    return haystack && strstr(haystack, needle) != NULL;
}

/* Writes the config file used by the next parse; returns its path. */
static const char *write_conf(const char *text)
{
    FILE *f = fopen(conf_path, "w");
    if (!f) {
        perror(conf_path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return conf_path;
}

/* Runs config_from_args on a NULL-terminated list of arguments. */
static int run(pgspout_config *cfg, char *err, size_t errlen, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = strdup("pgspout");
    va_list ap;
    va_start(ap, errlen);
    const char *arg;
    while ((arg = va_arg(ap, const char *)) != NULL && argc < 63)
        argv[argc++] = strdup(arg);
    va_end(ap);
    argv[argc] = NULL;
    char *copies[64];
    memcpy(copies, argv, sizeof(argv));
    int rc = config_from_args(argc, argv, cfg, err, errlen);
    /* getopt permutes argv, so free through an untouched copy. */
    for (int i = 0; i < argc; i++)
        free(copies[i]);
    return rc;
}

/* Reads a config text through -c and expects a config error whose message
 * contains the file, ":LINE:" and every given fragment. */
static void expect_file_error(const char *text, int line, const char *frag1,
                              const char *frag2)
{
    pgspout_config cfg;
    char err[1024] = "";
    const char *path = write_conf(text);
    int rc = run(&cfg, err, sizeof(err), "-c", path, NULL);
    CHECK(rc == CONFIG_USAGE_ERROR);
    char where[300];
    snprintf(where, sizeof(where), "%s:%d: ", path, line);
    if (!contains(err, where))
        printf("# expected \"%s\" in: %s\n", where, err);
    CHECK(contains(err, where));
    if (frag1 && !contains(err, frag1))
        printf("# expected \"%s\" in: %s\n", frag1, err);
    CHECK(!frag1 || contains(err, frag1));
    if (frag2 && !contains(err, frag2))
        printf("# expected \"%s\" in: %s\n", frag2, err);
    CHECK(!frag2 || contains(err, frag2));
    CHECK(cfg.sinks == NULL && cfg.slot == NULL);
    config_free(&cfg);
}

static const char good_conf[] =
    "# a complete config\n"                                      /* 1 */
    "connection = \"host=db1 dbname=shop password=pw\";\n"       /* 2 */
    "slot = \"shop_slot\";\n"                                    /* 3 */
    "publication = \"shop_pub\";\n"                              /* 4 */
    "create_slot = true;\n"                                      /* 5 */
    "plugin_dir = [\"/opt/pgspout/sinks\", \"/usr/local/s\"];\n" /* 6 */
    "include = [\"public.*\", \"\\\"Sales\\\".orders\"];\n"      /* 7 */
    "exclude = [\"public.tmp_*\"];\n"                            /* 8 */
    "endpos = \"1/ABCDEF00\";\n"                                 /* 9 */
    "status_interval = 3;\n"                                     /* 10 */
    "sinks = (\n"                                                /* 11 */
    "  {\n"                                                      /* 12 */
    "    name = \"all\";\n"                                      /* 13 */
    "    type = \"file\";\n"                                     /* 14 */
    "    options = {\n"                                          /* 15 */
    "      path = \"/var/lib/pgspout/all.jsonl\";\n"             /* 16 */
    "      fsync = false;\n"                                     /* 17 */
    "      rotate_size = \"64M\";\n"                             /* 18 */
    "      ratio = 0.25;\n"                                      /* 19 */
    "    };\n"                                                   /* 20 */
    "  },\n"                                                     /* 21 */
    "  {\n"                                                      /* 22 */
    "    name = \"orders-only\";\n"                              /* 23 */
    "    type = \"/opt/pgspout/sinks/pgspout_file.so\";\n"       /* 24 */
    "    include = [\"*.orders\"];\n"                            /* 25 */
    "    exclude = \"archive.*\";\n"                             /* 26 */
    "    options = { path = \"/tmp/o.jsonl\"; rotate_size = 1000000; };\n"
    "  }\n" /* 28 */
    ");\n";

static void test_good_config(void)
{
    pgspout_config cfg;
    char err[1024] = "";
    const char *path = write_conf(good_conf);
    int rc = run(&cfg, err, sizeof(err), "-c", path, NULL);
    CHECK(rc == 0);
    CHECK_STR(err, "");
    CHECK_STR(cfg.config_file, path);
    CHECK_STR(cfg.conninfo, "host=db1 dbname=shop password=pw");
    CHECK_STR(cfg.slot, "shop_slot");
    CHECK_STR(cfg.publication, "shop_pub");
    CHECK(cfg.create_slot);
    CHECK(!cfg.drop_slot && !cfg.list_tables && !cfg.list_sinks);
    CHECK(!cfg.show_help && !cfg.show_version);
    CHECK(cfg.n_plugin_dirs == 2);
    CHECK_STR(cfg.plugin_dirs[0], "/opt/pgspout/sinks");
    CHECK_STR(cfg.plugin_dirs[1], "/usr/local/s");
    CHECK(cfg.n_include == 2);
    CHECK_STR(cfg.include[0], "public.*");
    CHECK_STR(cfg.include[1], "\"Sales\".orders");
    CHECK(cfg.n_exclude == 1);
    CHECK_STR(cfg.exclude[0], "public.tmp_*");
    CHECK(cfg.has_endpos && cfg.endpos == ((uint64_t)1 << 32 | 0xABCDEF00u));
    CHECK(cfg.status_interval_s == 3);
    CHECK(cfg.verbosity == 0);
    CHECK(cfg.n_sinks == 2);
    if (cfg.n_sinks != 2) {
        config_free(&cfg);
        return;
    }

    sink_config *all = &cfg.sinks[0], *orders = &cfg.sinks[1];
    CHECK_STR(all->name, "all");
    CHECK_STR(all->type, "file");
    CHECK(all->n_include == 0 && all->n_exclude == 0);
    CHECK(contains(all->origin, ":12: sinks.[0]"));
    CHECK(sink_options_count(all->options) == 4);
    CHECK(config_validate_sink(all, file_like_defs, err, sizeof(err)) == 0);
    const char *s;
    bool b;
    int64_t i;
    double d;
    CHECK(sink_options_get_string(all->options, "path", &s));
    CHECK_STR(s, "/var/lib/pgspout/all.jsonl");
    CHECK(sink_options_get_bool(all->options, "fsync", &b) && !b);
    CHECK(sink_options_get_int(all->options, "rotate_size", &i) &&
          i == 64 << 20);
    CHECK(sink_options_get_double(all->options, "ratio", &d) && d == 0.25);

    CHECK_STR(orders->name, "orders-only");
    CHECK_STR(orders->type, "/opt/pgspout/sinks/pgspout_file.so");
    CHECK(orders->n_include == 1 && orders->n_exclude == 1);
    CHECK_STR(orders->include[0], "*.orders");
    CHECK_STR(orders->exclude[0], "archive.*");
    CHECK(config_validate_sink(orders, file_like_defs, err, sizeof(err)) == 0);
    CHECK(sink_options_get_string(orders->options, "path", &s));
    CHECK_STR(s, "/tmp/o.jsonl");
    CHECK(sink_options_get_bool(orders->options, "fsync", &b) && b);
    CHECK(sink_options_get_int(orders->options, "rotate_size", &i) &&
          i == 1000000);
    config_free(&cfg);
    /* config_free leaves an empty struct, so a second call is harmless. */
    config_free(&cfg);
}

/* The production keys from a file: a size as an integer or with a
 * suffix. */
static void test_production_keys(void)
{
    pgspout_config cfg;
    char err[1024] = "";
    const char *path =
        write_conf("http_listen = \"[::1]:9187\";\nheartbeat_interval = 0;\n"
                   "max_slot_lag = \"2G\";\nlog_format = \"json\";\n"
                   "sinks = ( { name = \"out\"; type = \"file\"; } );\n");
    CHECK(run(&cfg, err, sizeof(err), "-c", path, NULL) == 0);
    CHECK_STR(cfg.http_listen, "[::1]:9187");
    CHECK(cfg.heartbeat_interval_s == 0);
    CHECK(cfg.max_slot_lag == (uint64_t)2 << 30);
    CHECK(cfg.log_format == LOG_FORMAT_JSON);
    config_free(&cfg);
    path = write_conf("max_slot_lag = 1048576;\n"
                      "sinks = ( { name = \"out\"; type = \"file\"; } );\n");
    CHECK(run(&cfg, err, sizeof(err), "-c", path, "--log-format", "text",
              NULL) == 0);
    CHECK(cfg.max_slot_lag == 1048576 && cfg.log_format == LOG_FORMAT_TEXT);
    config_free(&cfg);
}

static void test_minimal_config_and_defaults(void)
{
    pgspout_config cfg;
    char err[1024] = "";
    const char *path =
        write_conf("sinks = ( { name = \"out\"; type = \"file\"; } );\n");
    CHECK(run(&cfg, err, sizeof(err), "-c", path, NULL) == 0);
    CHECK(cfg.conninfo == NULL); /* libpq will use PG* variables */
    CHECK_STR(cfg.slot, "pgspout");
    CHECK_STR(cfg.publication, "pgspout");
    CHECK(!cfg.create_slot && !cfg.has_endpos);
    CHECK(cfg.status_interval_s == 10);
    CHECK(cfg.n_include == 0 && cfg.n_exclude == 0 && cfg.n_plugin_dirs == 0);
    CHECK(cfg.n_sinks == 1);
    /* The sink's required path is missing: reported at the sink's entry. */
    CHECK(config_validate_sink(&cfg.sinks[0], file_like_defs, err,
                               sizeof(err)) == CONFIG_USAGE_ERROR);
    char where[300];
    snprintf(where, sizeof(where),
             "%s:1: sinks.[0]: missing required option "
             "\"path\"",
             path);
    CHECK(contains(err, where));
    config_free(&cfg);
}

static void test_file_errors(void)
{
    /* Syntax error, reported with libconfig's own line and text. */
    expect_file_error("slot = \"a\";\nsinks = ( { name = ; } );\n", 2, NULL,
                      NULL);
    expect_file_error("a = 1;\na = 2;\n", 2, "duplicate setting", NULL);

    /* Unknown keys at each level. */
    expect_file_error("slot = \"a\";\n\nsolt = \"b\";\n", 3,
                      "solt: unknown key", NULL);
    expect_file_error("sinks = (\n { name = \"a\";\n   type = \"file\";\n"
                      "   colour = \"red\"; }\n);\n",
                      4, "sinks.[0].colour: unknown key", NULL);

    /* Wrong types. */
    expect_file_error("slot = 5;\n", 1, "slot: expected a string", NULL);
    expect_file_error("\ncreate_slot = \"yes\";\n", 2,
                      "create_slot: expected a boolean", NULL);
    expect_file_error("status_interval = \"10\";\n", 1,
                      "status_interval: expected an integer", NULL);
    expect_file_error("status_interval = -1;\n", 1, "status_interval: must be",
                      NULL);
    expect_file_error("include = 5;\n", 1, "include: expected a list", NULL);
    expect_file_error("exclude = (\"a\",\n  \"b\",\n  3);\n", 3,
                      "exclude.[2]: expected a string", NULL);
    expect_file_error("connection = [\"x\"];\n", 1,
                      "connection: expected a string", NULL);

    /* Invalid values. */
    expect_file_error("endpos = \"16B3748\";\n", 1, "endpos: invalid LSN",
                      NULL);
    expect_file_error("slot = \"Bad-Slot\";\n", 1, "slot: slot name", NULL);
    expect_file_error("plugin_dir = \"sinks\";\n", 1,
                      "plugin_dir: \"sinks\" is not an absolute path", NULL);
    expect_file_error("plugin_dir = [\"/ok\",\n \"rel/dir\"];\n", 2,
                      "plugin_dir.[1]", "absolute");
    expect_file_error("publication = \"\";\n", 1, "publication: must not",
                      NULL);

    /* Sink list structure. */
    expect_file_error("sinks = { name = \"a\"; };\n", 1,
                      "sinks: expected a list of groups", NULL);
    expect_file_error("sinks = ( \"file\" );\n", 1,
                      "sinks.[0]: expected a group", NULL);
    expect_file_error("sinks = (\n  { type = \"file\"; }\n);\n", 2,
                      "sinks.[0]: missing required key \"name\"", NULL);
    expect_file_error("sinks = (\n { name = \"a\"; type = \"file\"; },\n"
                      " { name = \"b\"; }\n);\n",
                      3, "sinks.[1]: missing required key \"type\"", NULL);
    expect_file_error("sinks = (\n { name = \"a\"; type = \"file\"; },\n"
                      " { name = \"b\"; type = \"file\"; },\n"
                      " { type = \"file\";\n   name = \"a\"; }\n);\n",
                      5, "sinks.[2].name: duplicate sink name \"a\"", NULL);
    expect_file_error("sinks = ( { name = \"a b\"; type = \"file\"; } );\n", 1,
                      "sinks.[0].name: \"a b\" is not a valid sink name", NULL);
    expect_file_error("sinks = ( { name = 7; type = \"file\"; } );\n", 1,
                      "sinks.[0].name: expected a string", NULL);
    expect_file_error("sinks = (\n { name = \"a\";\n"
                      "   type = \"plugins/x.so\"; }\n);\n",
                      3, "sinks.[0].type:", "relative path");
    expect_file_error("sinks = ( { name = \"a\"; type = \"x.so\"; } );\n", 1,
                      "sinks.[0].type:", "not a sink name");
    expect_file_error("sinks = (\n { name = \"a\"; type = \"file\";\n"
                      "   include = [1]; }\n);\n",
                      3, "sinks.[0].include.[0]: expected a string", NULL);
    expect_file_error("sinks = (\n { name = \"a\"; type = \"file\";\n"
                      "   options = [\"x\"]; }\n);\n",
                      3, "sinks.[0].options: expected a group", NULL);
    expect_file_error("sinks = (\n { name = \"a\"; type = \"file\";\n"
                      "   options = {\n     path = \"/x\";\n"
                      "     fsync = [true]; }; }\n);\n",
                      5,
                      "sinks.[0].options.fsync: expected a string, number, "
                      "boolean or group",
                      NULL);
}

/* A config text of `before`, `fill` repeated n times, then `after`. */
static char *repeated(const char *before, char fill, size_t n,
                      const char *after)
{
    size_t a = strlen(before), b = strlen(after);
    char *text = malloc(a + n + b + 1);
    memcpy(text, before, a);
    memset(text + a, fill, n);
    memcpy(text + a + n, after, b + 1);
    return text;
}

#define ONE_SINK "sinks = ( { name = \"o\"; type = \"file\"; } );\n"

/* Read with a sink list after it, as every runnable config has. */
static void expect_accepted(const char *text)
{
    pgspout_config cfg;
    char err[1024] = "";
    strbuf whole = STRBUF_INIT;
    sbuf_appendf(&whole, "%s\n%s", text, ONE_SINK);
    int rc = run(&cfg, err, sizeof(err), "-c", write_conf(whole.data), NULL);
    sbuf_free(&whole);
    if (rc != 0)
        printf("# refused: %.300s\n", err);
    CHECK(rc == 0);
    config_free(&cfg);
}

/* libconfig reads a token in time quadratic in its length, so strings,
 * comments, names and runs of blanks longer than 64 KiB are refused before
 * it reads anything, naming the line and the setting. */
static void test_token_limits(void)
{
    enum { LIMIT = 64 * 1024 };
    char *text = repeated("connection = \"", 'a', LIMIT, "\";\n");
    expect_accepted(text); /* exactly at the limit: a database name */
    free(text);
    text = repeated("\nconnection = \"", 'a', LIMIT + 1, "\";\n");
    expect_file_error(text, 2,
                      "connection: a string longer than the limit "
                      "of 64 KiB (65536 bytes)",
                      NULL);
    free(text);
    /* Escaped quotes do not end a string; a string may span lines. */
    text =
        repeated("slot = \"a\";\nconnection = \"\\\"\n", 'b', LIMIT, "\";\n");
    expect_file_error(text, 2, "connection: a string longer", NULL);
    free(text);
    /* The key as other errors name it, in groups and lists. */
    text = repeated("sinks = (\n { name = \"a\"; type = \"file\";\n"
                    "   options = { path = \"/x\"; }; },\n"
                    " { name = \"b\"; type = \"file\";\n"
                    "   options = { fsync = true; path = \"",
                    'p', LIMIT + 1, "\"; }; }\n);\n");
    expect_file_error(text, 5, "sinks.[1].options.path: a string longer", NULL);
    free(text);
    text = repeated("include = [\"a\",\n  \"", 'i', LIMIT + 1, "\"];\n");
    expect_file_error(text, 2, "include.[1]: a string longer", NULL);
    free(text);
    /* Other long tokens: comments, blanks, names and numbers. */
    text = repeated("slot = \"a\";\n# ", 'c', LIMIT, "\n");
    expect_file_error(text, 2, "a comment longer", NULL);
    free(text);
    text = repeated("slot = \"a\";\n// ", 'c', LIMIT, "\n");
    expect_file_error(text, 2, "a comment longer", NULL);
    free(text);
    text = repeated("slot =", ' ', LIMIT + 1, "\"a\";\n");
    expect_file_error(text, 1, "a run of blanks longer", NULL);
    free(text);
    text = repeated("status_interval = ", '1', LIMIT + 1, ";\n");
    expect_file_error(text, 1, "a name or number longer", NULL);
    free(text);
    /* C comments are read a character at a time: no limit, and a quote in
     * one starts no string. */
    text = repeated("/* it's \"odd ", 'c', 4 * LIMIT, " */\nslot = \"a\";\n");
    expect_accepted(text);
    free(text);
    /* Many short strings, however much they add up to, are fine. */
    strbuf many = STRBUF_INIT;
    sbuf_append_str(&many, "slot = \"a\";\ninclude = [");
    for (int i = 0; i < 20000; i++)
        sbuf_appendf(&many, "%s\"public.t%d\"", i ? ", " : "", i);
    sbuf_append_str(&many, "];\n");
    expect_accepted(many.data);
    sbuf_free(&many);
}

/* An @include'd file is checked as well, and named with its own line. */
static void test_token_limits_in_include(void)
{
    char inc_path[300];
    snprintf(inc_path, sizeof inc_path, "%s/long.inc", tmpdir);
    FILE *f = fopen(inc_path, "w");
    char *text =
        repeated("slot = \"a\";\n\npublication = \"", 'x', 70000, "\";\n");
    fputs(text, f);
    fclose(f);
    free(text);
    pgspout_config cfg;
    char err[1024] = "";
    int rc =
        run(&cfg, err, sizeof(err), "-c",
            write_conf("create_slot = true;\n@include \"long.inc\"\n"), NULL);
    char where[400];
    snprintf(where, sizeof where, "%s:3: publication: a string longer",
             inc_path);
    CHECK(rc == CONFIG_USAGE_ERROR && contains(err, where));
    if (!contains(err, where))
        printf("# expected \"%s\" in: %s\n", where, err);
    config_free(&cfg);
    unlink(inc_path);
}

/* A config read from a pipe (-c <(...)), which libconfig cannot read twice,
 * is checked too: read once, checked, parsed from memory. */
static int run_piped(const char *text, pgspout_config *cfg, char *err,
                     size_t errlen)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t writer = fork();
    if (writer == 0) {
        close(fds[0]);
        size_t len = strlen(text) + (strstr(text, "NUL") ? 1 : 0);
        ssize_t n = write(fds[1], text, len);
        _exit(n == (ssize_t)len ? 0 : 1);
    }
    close(fds[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    int rc = run(cfg, err, errlen, "-c", path, NULL);
    close(fds[0]);
    waitpid(writer, NULL, 0);
    return rc;
}

static void test_piped_config(void)
{
    pgspout_config cfg;
    char err[1024] = "";
    CHECK(run_piped("slot = \"piped\";\n" ONE_SINK, &cfg, err, sizeof err) ==
          0);
    CHECK_STR(cfg.slot, "piped");
    config_free(&cfg);
    char *text = repeated("\nslot = \"", 'a', 70000, "\";\n");
    CHECK(run_piped(text, &cfg, err, sizeof err) == CONFIG_USAGE_ERROR);
    CHECK(contains(err, ":2: slot: a string longer"));
    config_free(&cfg);
    free(text);
    CHECK(run_piped("slot = \"a\";\nsolt = 1;\n", &cfg, err, sizeof err) ==
          CONFIG_USAGE_ERROR);
    CHECK(contains(err, ":2: solt: unknown key"));
    config_free(&cfg);
    CHECK(run_piped("slot = \"a\"\nx = 1 y;\n", &cfg, err, sizeof err) ==
          CONFIG_USAGE_ERROR);
    CHECK(contains(err, ":2: syntax error (at setting \"x\")"));
    config_free(&cfg);
    /* A NUL byte would end libconfig's text early: refused. The text ends
     * with it (run_piped writes the terminating NUL when asked to). */
    CHECK(run_piped("slot = \"a\";\n# NUL follows\n", &cfg, err, sizeof err) ==
          CONFIG_USAGE_ERROR);
    CHECK(contains(err, ":3: syntax error (a NUL byte)"));
    config_free(&cfg);
}

/* Errors found only when the sink's option table is known. */
static void test_sink_option_errors_in_file(void)
{
    pgspout_config cfg;
    char err[1024] = "";
    const char *path = write_conf("sinks = (\n"
                                  "  { name = \"a\"; type = \"file\";\n"
                                  "    options = {\n"
                                  "      path = \"/x\";\n"
                                  "      password = \"TopSecret\";\n"
                                  "      fsync = 2;\n"
                                  "    };\n"
                                  "  }\n"
                                  ");\n");
    CHECK(run(&cfg, err, sizeof(err), "-c", path, NULL) == 0);
    CHECK(cfg.n_sinks == 1);
    CHECK(config_validate_sink(&cfg.sinks[0], file_like_defs, err,
                               sizeof(err)) == CONFIG_USAGE_ERROR);
    char expected[400];
    snprintf(expected, sizeof(expected),
             "%s:6: sinks.[0].options.fsync: expected a boolean", path);
    CHECK(contains(err, expected));
    CHECK(!contains(err, "TopSecret"));
    config_free(&cfg);

    path = write_conf("sinks = (\n"
                      "  { name = \"a\"; type = \"file\";\n"
                      "    options = {\n"
                      "      path = \"/x\";\n"
                      "      rotate_size = \"big\";\n"
                      "      compress = true;\n"
                      "    };\n"
                      "  }\n"
                      ");\n");
    CHECK(run(&cfg, err, sizeof(err), "-c", path, NULL) == 0);
    CHECK(config_validate_sink(&cfg.sinks[0], file_like_defs, err,
                               sizeof(err)) == CONFIG_USAGE_ERROR);
    snprintf(expected, sizeof(expected),
             "%s:5: sinks.[0].options.rotate_size: expected an integer", path);
    CHECK(contains(err, expected));
    config_free(&cfg);
}

static bool append_visited(void *ctx, const char *name, const char *value)
{
    char *out = ctx;
    size_t used = strlen(out);
    snprintf(out + used, 512 - used, "%s=%s;", name, value);
    return true;
}

/* libconfig names cannot hold a dot, so a group inside a sink's options
 * stands for dotted keys: what a sink's prefix option (ABI 1.4) takes. A
 * dotted key that no prefix option takes is refused at its own line. */
static void test_nested_option_groups(void)
{
    static const pgspout_option_def defs[] = {
        {"path", PGSPOUT_OPT_STRING, NULL, 0, "output", 1, 0, NULL},
        {"lib.", PGSPOUT_OPT_STRING, NULL, PGSPOUT_OPTF_PREFIX, "library", 1, 0,
         NULL},
        PGSPOUT_OPTION_END,
    };
    pgspout_config cfg;
    char err[1024] = "";
    const char *path = write_conf("sinks = (\n"
                                  "  { name = \"a\"; type = \"x\";\n"
                                  "    options = {\n"
                                  "      path = \"/x\";\n"
                                  "      lib = { security = { protocol = "
                                  "\"SSL\"; };\n"
                                  "              linger = { ms = 5; };\n"
                                  "              acks = \"all\"; };\n"
                                  "    };\n"
                                  "  }\n"
                                  ");\n");
    CHECK(run(&cfg, err, sizeof(err), "-c", path, NULL) == 0);
    CHECK(cfg.n_sinks == 1);
    CHECK(config_validate_sink(&cfg.sinks[0], defs, err, sizeof(err)) == 0);
    char seen[512] = "";
    CHECK(sink_options_each_prefixed(cfg.sinks[0].options, "lib.",
                                     append_visited, seen));
    CHECK_STR(seen, "lib.security.protocol=SSL;lib.linger.ms=5;lib.acks=all;");
    config_free(&cfg);

    path = write_conf("sinks = (\n"
                      "  { name = \"a\"; type = \"x\";\n"
                      "    options = { path = \"/x\";\n"
                      "      tls = { verify = false; }; };\n"
                      "  }\n"
                      ");\n");
    CHECK(run(&cfg, err, sizeof(err), "-c", path, NULL) == 0);
    CHECK(config_validate_sink(&cfg.sinks[0], defs, err, sizeof(err)) ==
          CONFIG_USAGE_ERROR);
    char expected[400];
    snprintf(expected, sizeof(expected),
             "%s:4: sinks.[0].options.tls.verify: unknown option", path);
    CHECK(contains(err, expected));
    config_free(&cfg);
}

static void test_missing_file(void)
{
    pgspout_config cfg;
    char err[1024] = "";
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/nope.conf", tmpdir);
    CHECK(run(&cfg, err, sizeof(err), "-c", missing, NULL) ==
          CONFIG_USAGE_ERROR);
    CHECK(contains(err, missing));
    CHECK(contains(err, "No such file"));
    config_free(&cfg);
}

static void test_cli_overrides(void)
{
    pgspout_config cfg;
    char err[1024] = "";
    const char *path = write_conf(good_conf);

    /* Scalars replace the file's; -t replaces include, the file's exclude
     * stays; --plugin-dir comes first. */
    CHECK(run(&cfg, err, sizeof(err), "-c", path, "-d", "dbname=other", "-S",
              "cli_slot", "--publication", "cli_pub", "-t", "a.b", "-t", "c.*",
              "--plugin-dir", "/cli/dir", "-E", "0/10", "-s", "0", "-v", "-v",
              NULL) == 0);
    CHECK_STR(err, "");
    CHECK_STR(cfg.conninfo, "dbname=other");
    CHECK_STR(cfg.slot, "cli_slot");
    CHECK_STR(cfg.publication, "cli_pub");
    CHECK(cfg.create_slot); /* from the file */
    CHECK(cfg.n_include == 2);
    CHECK_STR(cfg.include[0], "a.b");
    CHECK_STR(cfg.include[1], "c.*");
    CHECK(cfg.n_exclude == 1);
    CHECK_STR(cfg.exclude[0], "public.tmp_*");
    CHECK(cfg.n_plugin_dirs == 3);
    CHECK_STR(cfg.plugin_dirs[0], "/cli/dir");
    CHECK_STR(cfg.plugin_dirs[1], "/opt/pgspout/sinks");
    CHECK(cfg.has_endpos && cfg.endpos == 0x10);
    CHECK(cfg.status_interval_s == 0);
    CHECK(cfg.verbosity == 2);
    CHECK(cfg.n_sinks == 2); /* no --sink: the file's sinks */
    config_free(&cfg);

    /* -T alone replaces exclude and keeps the file's include. */
    CHECK(run(&cfg, err, sizeof(err), "-T", "x.y", "--config", path, NULL) ==
          0);
    CHECK(cfg.n_include == 2 && cfg.n_exclude == 1);
    CHECK_STR(cfg.exclude[0], "x.y");
    config_free(&cfg);

    /* --sink replaces the file's sinks with one named after the type; -o
     * options go to it. */
    CHECK(run(&cfg, err, sizeof(err), "-c", path, "--sink", "file", "-o",
              "path=/tmp/x.jsonl", "--option", "fsync=off", "-o",
              "password=a=b", NULL) == 0);
    CHECK(cfg.n_sinks == 1);
    CHECK_STR(cfg.sinks[0].name, "file");
    CHECK_STR(cfg.sinks[0].type, "file");
    CHECK(cfg.sinks[0].n_include == 0);
    CHECK_STR(cfg.sinks[0].origin, "command line: --sink file");
    CHECK(config_validate_sink(&cfg.sinks[0], file_like_defs, err,
                               sizeof(err)) == 0);
    const char *s;
    bool b;
    CHECK(sink_options_get_string(cfg.sinks[0].options, "path", &s));
    CHECK_STR(s, "/tmp/x.jsonl");
    CHECK(sink_options_get_bool(cfg.sinks[0].options, "fsync", &b) && !b);
    /* Only the first '=' separates key from value. */
    CHECK(sink_options_get_string(cfg.sinks[0].options, "password", &s));
    CHECK_STR(s, "a=b");
    config_free(&cfg);

    /* A -o error names the command line and the key. */
    CHECK(run(&cfg, err, sizeof(err), "--sink", "file", "-o", "path=/x", "-o",
              "fsync=sometimes", NULL) == 0);
    CHECK(config_validate_sink(&cfg.sinks[0], file_like_defs, err,
                               sizeof(err)) == CONFIG_USAGE_ERROR);
    CHECK(contains(err, "command line: -o fsync: expected a boolean"));
    config_free(&cfg);
    CHECK(run(&cfg, err, sizeof(err), "--sink", "file", "-o", "fsync=on",
              NULL) == 0);
    CHECK(config_validate_sink(&cfg.sinks[0], file_like_defs, err,
                               sizeof(err)) == CONFIG_USAGE_ERROR);
    CHECK(contains(err, "command line: --sink file: missing required option "
                        "\"path\""));
    config_free(&cfg);

    /* A sink given as an absolute path is named after the file. */
    CHECK(run(&cfg, err, sizeof(err), "--sink",
              "/usr/lib/pgspout/pgspout_kafka.so", NULL) == 0);
    CHECK_STR(cfg.sinks[0].name, "kafka");
    CHECK_STR(cfg.sinks[0].type, "/usr/lib/pgspout/pgspout_kafka.so");
    config_free(&cfg);
    CHECK(run(&cfg, err, sizeof(err), "--sink=/opt/my.sink.so", NULL) == 0);
    CHECK_STR(cfg.sinks[0].name, "sink");
    config_free(&cfg);
}

static void test_cli_modes(void)
{
    pgspout_config cfg;
    char err[1024] = "";

    CHECK(run(&cfg, err, sizeof(err), "--help", NULL) == 0);
    CHECK(cfg.show_help);
    config_free(&cfg);
    CHECK(run(&cfg, err, sizeof(err), "--version", NULL) == 0);
    CHECK(cfg.show_version);
    config_free(&cfg);
    CHECK(run(&cfg, err, sizeof(err), "-V", NULL) == 0);
    CHECK(cfg.show_version);
    config_free(&cfg);
    CHECK(run(&cfg, err, sizeof(err), "--list-sinks", "--plugin-dir", "/p",
              NULL) == 0);
    CHECK(cfg.list_sinks && cfg.n_plugin_dirs == 1);
    config_free(&cfg);
    /* Modes other than streaming need no sink. */
    CHECK(run(&cfg, err, sizeof(err), "-d", "dbname=x", "-t", "public.*",
              "--list-tables", NULL) == 0);
    CHECK(cfg.list_tables && cfg.n_include == 1);
    config_free(&cfg);
    CHECK(run(&cfg, err, sizeof(err), "--slot", "s1", "--drop-slot", NULL) ==
          0);
    CHECK(cfg.drop_slot);
    CHECK_STR(cfg.slot, "s1");
    CHECK(cfg.drop_slot_wait_s == 0);
    config_free(&cfg);
    CHECK(run(&cfg, err, sizeof(err), "--drop-slot", "--wait", "45", NULL) ==
          0);
    CHECK(cfg.drop_slot && cfg.drop_slot_wait_s == 45);
    config_free(&cfg);

    /* --help does not read the config file, so a broken one is no error. */
    const char *path = write_conf("this is not libconfig");
    CHECK(run(&cfg, err, sizeof(err), "-c", path, "--help", NULL) == 0);
    config_free(&cfg);
    /* Other modes do read it (plugin_dir, filters). */
    CHECK(run(&cfg, err, sizeof(err), "-c", path, "--list-sinks", NULL) ==
          CONFIG_USAGE_ERROR);
    config_free(&cfg);
    /* A config file's sinks are ignored, not an error, in other modes. */
    path = write_conf(good_conf);
    CHECK(run(&cfg, err, sizeof(err), "-c", path, "--list-tables", NULL) == 0);
    CHECK(cfg.list_tables);
    config_free(&cfg);
}

/* Each argument list must fail with a message containing `fragment`. */
static void expect_usage_error(const char *fragment, const char *a1,
                               const char *a2, const char *a3, const char *a4)
{
    pgspout_config cfg;
    char err[1024] = "";
    int rc = run(&cfg, err, sizeof(err), a1, a2, a3, a4, NULL);
    CHECK(rc == CONFIG_USAGE_ERROR);
    if (!contains(err, fragment))
        printf("# expected \"%s\" in: %s\n", fragment, err);
    CHECK(contains(err, fragment));
    CHECK(cfg.slot == NULL && cfg.sinks == NULL);
    config_free(&cfg);
}

static void test_cli_errors(void)
{
    expect_usage_error("no sink configured", "-d", "dbname=x", NULL, NULL);
    expect_usage_error("--drop-slot and --list-tables", "--drop-slot",
                       "--list-tables", NULL, NULL);
    expect_usage_error("--list-sinks and --help", "--list-sinks", "--help",
                       NULL, NULL);
    expect_usage_error("--create-slot cannot be used with --drop-slot",
                       "--create-slot", "--drop-slot", NULL, NULL);
    expect_usage_error("--sink cannot be used with --list-tables", "--sink",
                       "file", "--list-tables", NULL);
    expect_usage_error("--endpos cannot be used with --drop-slot", "-E", "0/1",
                       "--drop-slot", NULL);
    expect_usage_error("-o can only be used with --sink", "-o", "path=/x", NULL,
                       NULL);
    expect_usage_error("--wait can only be used with --drop-slot", "--wait",
                       "3", "--list-tables", NULL);
    expect_usage_error("invalid --wait \"soon\"", "--drop-slot", "--wait",
                       "soon", NULL);
    expect_usage_error("invalid --wait \"-1\"", "--drop-slot", "--wait", "-1",
                       NULL);
    expect_usage_error("relative path", "--sink", "./pgspout_file.so", NULL,
                       NULL);
    expect_usage_error("relative path", "--sink", "lib/x.so", NULL, NULL);
    expect_usage_error("not a sink name", "--sink", "file.so", NULL, NULL);
    expect_usage_error("only once", "--sink", "file", "--sink", "file");
    expect_usage_error("-o expects KEY=VALUE", "--sink", "file", "-o",
                       "novalue");
    expect_usage_error("-o expects KEY=VALUE", "--sink", "file", "-o", "=x");
    expect_usage_error("invalid --endpos", "--sink", "file", "-E", "12345");
    expect_usage_error("invalid --endpos", "--sink", "file", "-E",
                       "0/123456789");
    expect_usage_error("invalid --endpos", "--sink", "file", "-E", "0/1x");
    expect_usage_error("invalid --status-interval", "--sink", "file", "-s",
                       "ten");
    expect_usage_error("invalid --status-interval", "--sink", "file", "-s",
                       "-1");
    expect_usage_error("not an absolute path", "--list-sinks", "--plugin-dir",
                       "plugins", NULL);
    expect_usage_error("slot name \"My-Slot\"", "-S", "My-Slot", "--sink",
                       "file");
    expect_usage_error("unrecognized option '--frobnicate'", "--frobnicate",
                       NULL, NULL, NULL);
    expect_usage_error("invalid option -- 'x'", "-x", NULL, NULL, NULL);
    expect_usage_error("option '-d' requires an argument", "--sink", "file",
                       "-d", NULL);
    expect_usage_error("option '--slot' requires an argument", "--sink", "file",
                       "--slot", NULL);
    expect_usage_error("too many command-line arguments (first is \"extra\";",
                       "--sink", "file", "extra", NULL);
    /* An unquoted conninfo splits into words; a password in one of them
     * must not be echoed back. */
    {
        pgspout_config cfg;
        char err[1024] = "";
        CHECK(run(&cfg, err, sizeof(err), "-d", "host=x", "password=hunter2",
                  "--sink", "file", NULL) == CONFIG_USAGE_ERROR);
        CHECK(contains(err, "password=..."));
        CHECK(!contains(err, "hunter2"));
        config_free(&cfg);
        CHECK(run(&cfg, err, sizeof(err), "--bogus=hunter2", NULL) ==
              CONFIG_USAGE_ERROR);
        CHECK(contains(err, "--bogus"));
        CHECK(!contains(err, "hunter2"));
        config_free(&cfg);
    }
}

static void test_cli_secret_values_not_echoed(void)
{
    pgspout_config cfg;
    char err[1024] = "";
    CHECK(run(&cfg, err, sizeof(err), "-o", "password=Hunter2", NULL) ==
          CONFIG_USAGE_ERROR);
    CHECK(!contains(err, "Hunter2"));
    config_free(&cfg);
    CHECK(run(&cfg, err, sizeof(err), "--sink", "file", "-o", "path=/p", "-o",
              "password=Hunter2", "-o", "fsync=Hunter2", NULL) == 0);
    CHECK(config_validate_sink(&cfg.sinks[0], file_like_defs, err,
                               sizeof(err)) == CONFIG_USAGE_ERROR);
    CHECK(contains(err, "-o fsync"));
    config_free(&cfg);
}

static void test_usage_text(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    config_print_usage(mem);
    fclose(mem);
    const char *flags[] = {
        "--config",      "--dbname",        "--slot",
        "--publication", "--create-slot",   "--drop-slot",
        "--table",       "--exclude-table", "--sink",
        "--option",      "--endpos",        "--plugin-dir",
        "--list-tables", "--list-sinks",    "--status-interval",
        "--verbose",     "--help",          "--version",
        "--wait"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        CHECK(contains(buf, flags[i]));
    free(buf);
}

/* The shipped example must stay valid. The build passes its path; a
 * standalone build without it skips this test. */
static void test_example_config(void)
{
#ifdef PGSPOUT_EXAMPLE_CONF
    pgspout_config cfg;
    char err[1024] = "";
    int rc = run(&cfg, err, sizeof(err), "-c", PGSPOUT_EXAMPLE_CONF, NULL);
    if (rc != 0)
        printf("# %s\n", err);
    CHECK(rc == 0);
    CHECK(cfg.n_sinks == 2);
    for (size_t i = 0; i < cfg.n_sinks; i++) {
        CHECK(config_validate_sink(&cfg.sinks[i], file_like_defs, err,
                                   sizeof(err)) == 0);
        CHECK_STR(cfg.sinks[i].type, "file");
    }
    if (cfg.n_sinks == 2) {
        const char *path;
        CHECK(sink_options_get_string(cfg.sinks[0].options, "path", &path));
        CHECK_STR(path, "/var/lib/pgspout/changes.jsonl");
        CHECK(cfg.sinks[1].n_include > 0);
    }
    config_free(&cfg);
#endif
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(conf_path, sizeof(conf_path), "%s/pgspout.conf", tmpdir);

    test_good_config();
    test_minimal_config_and_defaults();
    test_production_keys();
    test_file_errors();
    test_token_limits();
    test_token_limits_in_include();
    test_piped_config();
    test_sink_option_errors_in_file();
    test_nested_option_groups();
    test_missing_file();
    test_cli_overrides();
    test_cli_modes();
    test_cli_errors();
    test_cli_secret_values_not_echoed();
    test_usage_text();
    test_example_config();

    unlink(conf_path);
    rmdir(tmpdir);
    return check_summary();
}
