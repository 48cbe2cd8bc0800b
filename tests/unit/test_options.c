/* Sink option validation against an option table: types, suffixes, bounds,
 * choices, required options, defaults, and secrets kept out of messages. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "options.h"

#define NO_BOUNDS 1, 0

static const pgspout_option_def fake_defs[] = {
    {"path", PGSPOUT_OPT_STRING, NULL, PGSPOUT_OPTF_REQUIRED, "output file",
     NO_BOUNDS, NULL},
    {"fsync", PGSPOUT_OPT_BOOL, "true", 0, "fsync before acking", NO_BOUNDS,
     NULL},
    {"rotate_size", PGSPOUT_OPT_INT, "0", 0, "rotate after this many bytes", 0,
     1e12, NULL},
    {"batch", PGSPOUT_OPT_INT, "100", 0, "events per batch", 1, 10000, NULL},
    {"timeout", PGSPOUT_OPT_DURATION, "5s", 0, "request timeout", 0, 600000,
     NULL},
    {"ratio", PGSPOUT_OPT_DOUBLE, "0.5", 0, "sampling ratio", 0, 1, NULL},
    {"mode", PGSPOUT_OPT_STRING, "append", 0, "write mode", NO_BOUNDS,
     "append|truncate"},
    {"token", PGSPOUT_OPT_STRING, NULL, PGSPOUT_OPTF_SECRET, "API token",
     NO_BOUNDS, "alpha|beta"},
    {"pin", PGSPOUT_OPT_INT, NULL, PGSPOUT_OPTF_SECRET, "secret number", 0, 99,
     NULL},
    {"label", PGSPOUT_OPT_STRING, NULL, 0, "optional, no default", NO_BOUNDS,
     NULL},
    PGSPOUT_OPTION_END,
};

#define WHERE "/etc/x.conf:7: sinks.[0]"

static bool contains(const char *haystack, const char *needle)
{
    return strstr(haystack, needle) != NULL;
}

static void test_parsers(void)
{
    int64_t i;
    bool b;
    double d;

    CHECK(option_parse_int("42", &i) && i == 42);
    CHECK(option_parse_int("-7", &i) && i == -7);
    CHECK(option_parse_int("4k", &i) && i == 4096);
    CHECK(option_parse_int("4K", &i) && i == 4096);
    CHECK(option_parse_int("3M", &i) && i == 3 * 1024 * 1024);
    CHECK(option_parse_int("2G", &i) && i == 2LL * 1024 * 1024 * 1024);
    CHECK(!option_parse_int("abc", &i));
    CHECK(!option_parse_int("", &i));
    CHECK(!option_parse_int(" 4", &i));
    CHECK(!option_parse_int("4x", &i));
    CHECK(!option_parse_int("4 k", &i));
    CHECK(!option_parse_int("0x10", &i));
    CHECK(!option_parse_int("99999999999999999999", &i));
    CHECK(!option_parse_int("9000000000G", &i)); /* overflows on multiply */

    CHECK(option_parse_duration("250", &i) && i == 250);
    CHECK(option_parse_duration("250ms", &i) && i == 250);
    CHECK(option_parse_duration("3s", &i) && i == 3000);
    CHECK(option_parse_duration("2min", &i) && i == 120000);
    CHECK(!option_parse_duration("2h", &i));
    CHECK(!option_parse_duration("-1s", &i));
    CHECK(!option_parse_duration("s", &i));

    const char *truthy[] = {"true", "TRUE", "on", "yes", "1", "On"};
    const char *falsy[] = {"false", "off", "no", "0", "No"};
    for (size_t k = 0; k < sizeof(truthy) / sizeof(truthy[0]); k++)
        CHECK(option_parse_bool(truthy[k], &b) && b);
    for (size_t k = 0; k < sizeof(falsy) / sizeof(falsy[0]); k++)
        CHECK(option_parse_bool(falsy[k], &b) && !b);
    CHECK(!option_parse_bool("2", &b));
    CHECK(!option_parse_bool("", &b));
    CHECK(!option_parse_bool("truee", &b));

    CHECK(option_parse_double("0.25", &d) && d == 0.25);
    CHECK(option_parse_double("-3", &d) && d == -3);
    CHECK(option_parse_double(".5", &d) && d == 0.5);
    CHECK(!option_parse_double("nan", &d));
    CHECK(!option_parse_double("inf", &d));
    CHECK(!option_parse_double("1.5x", &d));
    CHECK(!option_parse_double("1e999", &d));
}

static void test_defaults_and_lookup(void)
{
    char err[512] = "";
    sink_options *o = sink_options_new();
    sink_options_add_text(o, "path", "/tmp/out.jsonl", NULL, 0, NULL);
    CHECK(sink_options_validate(o, fake_defs, WHERE, err, sizeof(err)) == 0);
    CHECK_STR(err, "");

    const char *s;
    int64_t i;
    bool b;
    double d;
    CHECK(sink_options_get_string(o, "path", &s));
    CHECK_STR(s, "/tmp/out.jsonl");
    CHECK(sink_options_get_bool(o, "fsync", &b) && b);
    CHECK(sink_options_get_int(o, "rotate_size", &i) && i == 0);
    CHECK(sink_options_get_int(o, "batch", &i) && i == 100);
    CHECK(sink_options_get_int(o, "timeout", &i) && i == 5000);
    CHECK(sink_options_get_double(o, "ratio", &d) && d == 0.5);
    CHECK(sink_options_get_string(o, "mode", &s));
    CHECK_STR(s, "append");
    /* No value and no default: unset. */
    CHECK(!sink_options_get_string(o, "label", &s));
    CHECK(!sink_options_get_string(o, "token", &s));
    /* Undeclared, or asked with the wrong type. */
    CHECK(!sink_options_get_string(o, "nope", &s));
    CHECK(!sink_options_get_int(o, "path", &i));
    CHECK(!sink_options_get_bool(o, "batch", &b));
    CHECK(!sink_options_get_double(o, "batch", &d));
    CHECK(!sink_options_get_string(o, "fsync", &s));
    sink_options_free(o);
}

static void test_values_from_text_and_typed(void)
{
    char err[512] = "";
    sink_options *o = sink_options_new();
    sink_options_add_text(o, "path", "/a", NULL, 0, NULL);
    sink_options_add_text(o, "fsync", "off", NULL, 0, NULL);
    sink_options_add_text(o, "rotate_size", "64M", NULL, 0, NULL);
    sink_options_add_text(o, "timeout", "2min", NULL, 0, NULL);
    sink_options_add_text(o, "ratio", "0.125", NULL, 0, NULL);
    sink_options_add_text(o, "mode", "truncate", NULL, 0, NULL);
    sink_options_add_text(o, "token", "beta", NULL, 0, NULL);
    CHECK(sink_options_count(o) == 7);
    CHECK(sink_options_validate(o, fake_defs, WHERE, err, sizeof(err)) == 0);
    const char *s;
    int64_t i;
    bool b;
    double d;
    CHECK(sink_options_get_bool(o, "fsync", &b) && !b);
    CHECK(sink_options_get_int(o, "rotate_size", &i) && i == 64 << 20);
    CHECK(sink_options_get_int(o, "timeout", &i) && i == 120000);
    CHECK(sink_options_get_double(o, "ratio", &d) && d == 0.125);
    CHECK(sink_options_get_string(o, "mode", &s));
    CHECK_STR(s, "truncate");
    CHECK(sink_options_get_string(o, "token", &s));
    CHECK_STR(s, "beta");
    sink_options_free(o);

    /* Typed libconfig values, and a config string parsed like -o text. */
    o = sink_options_new();
    sink_options_add_text(o, "path", "/b", "/c.conf", 3,
                          "sinks.[0].options.path");
    sink_options_add_bool(o, "fsync", false, "/c.conf", 4, "p");
    sink_options_add_int(o, "rotate_size", 1000, "/c.conf", 5, "p");
    sink_options_add_int(o, "timeout", 750, "/c.conf", 6, "p");
    sink_options_add_int(o, "ratio", 1, "/c.conf", 7, "p"); /* int for double */
    sink_options_add_text(o, "batch", "1k", "/c.conf", 8, "p");
    CHECK(sink_options_validate(o, fake_defs, WHERE, err, sizeof(err)) == 0);
    CHECK(sink_options_get_bool(o, "fsync", &b) && !b);
    CHECK(sink_options_get_int(o, "rotate_size", &i) && i == 1000);
    CHECK(sink_options_get_int(o, "timeout", &i) && i == 750);
    CHECK(sink_options_get_double(o, "ratio", &d) && d == 1.0);
    CHECK(sink_options_get_int(o, "batch", &i) && i == 1024);
    sink_options_free(o);

    /* A repeated -o key: the later value wins. */
    o = sink_options_new();
    sink_options_add_text(o, "path", "/first", NULL, 0, NULL);
    sink_options_add_text(o, "path", "/second", NULL, 0, NULL);
    CHECK(sink_options_count(o) == 1);
    CHECK(sink_options_validate(o, fake_defs, WHERE, err, sizeof(err)) == 0);
    CHECK(sink_options_get_string(o, "path", &s));
    CHECK_STR(s, "/second");
    sink_options_free(o);
}

/* Validates {path=/p, key=value-as-given} and returns the error text. */
typedef enum { AS_TEXT, AS_INT, AS_DOUBLE, AS_BOOL } given_as;

static int validate_one(const char *key, given_as as, const char *text,
                        int64_t i, double d, bool b, const char *file,
                        char *err, size_t errlen)
{
    sink_options *o = sink_options_new();
    sink_options_add_text(o, "path", "/p", NULL, 0, NULL);
    char path[128];
    snprintf(path, sizeof(path), "sinks.[1].options.%s", key);
    int line = 42;
    switch (as) {
    case AS_TEXT:
        sink_options_add_text(o, key, text, file, line, path);
        break;
    case AS_INT:
        sink_options_add_int(o, key, i, file, line, path);
        break;
    case AS_DOUBLE:
        sink_options_add_double(o, key, d, file, line, path);
        break;
    case AS_BOOL:
        sink_options_add_bool(o, key, b, file, line, path);
        break;
    }
    err[0] = '\0';
    int rc = sink_options_validate(o, fake_defs, WHERE, err, errlen);
    /* A failed validation leaves nothing to look up. */
    const char *s;
    if (rc != 0)
        CHECK(!sink_options_get_string(o, "path", &s));
    sink_options_free(o);
    return rc;
}

static void test_errors(void)
{
    char err[512];
    const char *f = "/etc/x.conf";

    /* Unknown key, from the file and from the command line. */
    CHECK(validate_one("colour", AS_TEXT, "red", 0, 0, 0, f, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "/etc/x.conf:42: sinks.[1].options.colour"));
    CHECK(contains(err, "unknown option"));
    CHECK(contains(err, "rotate_size")); /* lists what is known */
    CHECK(validate_one("colour", AS_TEXT, "red", 0, 0, 0, NULL, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "command line: -o colour"));

    /* Wrong libconfig types. */
    CHECK(validate_one("rotate_size", AS_BOOL, NULL, 0, 0, true, f, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "/etc/x.conf:42: sinks.[1].options.rotate_size: "
                        "expected an integer"));
    /* 0 and 1 are booleans (the message offers them); 2 is not. */
    CHECK(validate_one("fsync", AS_INT, NULL, 1, 0, 0, f, err, sizeof(err)) ==
          0);
    CHECK(validate_one("fsync", AS_INT, NULL, 0, 0, 0, f, err, sizeof(err)) ==
          0);
    CHECK(validate_one("fsync", AS_INT, NULL, 2, 0, 0, f, err, sizeof(err)) ==
          -1);
    CHECK(contains(err, "sinks.[1].options.fsync: expected a boolean"));
    CHECK(validate_one("path", AS_INT, NULL, 5, 0, 0, f, err, sizeof(err)) ==
          -1);
    CHECK(contains(err, "options.path: expected a string"));
    CHECK(validate_one("rotate_size", AS_DOUBLE, NULL, 0, 1.5, 0, f, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "expected an integer"));
    CHECK(validate_one("ratio", AS_BOOL, NULL, 0, 0, true, f, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "expected a number"));
    CHECK(validate_one("timeout", AS_DOUBLE, NULL, 0, 1.0, 0, f, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "options.timeout: expected a duration"));

    /* Unparseable text. */
    CHECK(validate_one("rotate_size", AS_TEXT, "abc", 0, 0, 0, NULL, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "command line: -o rotate_size: expected an integer"));
    CHECK(contains(err, "\"abc\""));
    CHECK(validate_one("fsync", AS_TEXT, "maybe", 0, 0, 0, NULL, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "-o fsync: expected a boolean"));
    CHECK(validate_one("timeout", AS_TEXT, "5h", 0, 0, 0, NULL, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "-o timeout: expected a duration"));
    CHECK(validate_one("ratio", AS_TEXT, "half", 0, 0, 0, NULL, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "-o ratio: expected a number"));

    /* Bounds, for each bounded type and both edges. */
    CHECK(validate_one("batch", AS_INT, NULL, 0, 0, 0, f, err, sizeof(err)) ==
          -1);
    CHECK(contains(err, "options.batch: value 0 is out of range (1..10000)"));
    CHECK(validate_one("batch", AS_TEXT, "10k", 0, 0, 0, NULL, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "out of range"));
    CHECK(validate_one("batch", AS_INT, NULL, 10000, 0, 0, f, err,
                       sizeof(err)) == 0);
    CHECK(validate_one("batch", AS_INT, NULL, 1, 0, 0, f, err, sizeof(err)) ==
          0);
    CHECK(validate_one("ratio", AS_DOUBLE, NULL, 0, 1.5, 0, f, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "options.ratio: value 1.5 is out of range"));
    CHECK(validate_one("timeout", AS_TEXT, "11min", 0, 0, 0, NULL, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "-o timeout: value 660000 is out of range"));
    CHECK(validate_one("timeout", AS_INT, NULL, -5, 0, 0, f, err,
                       sizeof(err)) == -1);

    /* Choices. */
    CHECK(validate_one("mode", AS_TEXT, "overwrite", 0, 0, 0, f, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "/etc/x.conf:42: sinks.[1].options.mode: invalid "
                        "value \"overwrite\""));
    CHECK(contains(err, "append|truncate"));
    CHECK(validate_one("mode", AS_TEXT, "appendx", 0, 0, 0, f, err,
                       sizeof(err)) == -1);
    CHECK(validate_one("mode", AS_TEXT, "append", 0, 0, 0, f, err,
                       sizeof(err)) == 0);

    /* Missing required option: located at the sink's own entry. */
    sink_options *o = sink_options_new();
    sink_options_add_bool(o, "fsync", true, f, 9, "sinks.[0].options.fsync");
    CHECK(sink_options_validate(o, fake_defs, WHERE, err, sizeof(err)) == -1);
    CHECK(contains(err, "/etc/x.conf:7: sinks.[0]: missing required option "
                        "\"path\""));
    sink_options_free(o);
    o = sink_options_new();
    CHECK(sink_options_validate(o, fake_defs, "command line: --sink file", err,
                                sizeof(err)) == -1);
    CHECK(contains(err, "command line: --sink file: missing required option"));
    sink_options_free(o);
}

static void test_secrets_never_in_messages(void)
{
    char err[512];
    const char *f = "/etc/x.conf";
    /* Not among the choices. */
    CHECK(validate_one("token", AS_TEXT, "s3cr3t-value", 0, 0, 0, f, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "options.token"));
    CHECK(!contains(err, "s3cr3t"));
    /* Unparseable for its type. */
    CHECK(validate_one("pin", AS_TEXT, "hunter2", 0, 0, 0, NULL, err,
                       sizeof(err)) == -1);
    CHECK(contains(err, "-o pin"));
    CHECK(!contains(err, "hunter2"));
    /* Out of range. */
    CHECK(validate_one("pin", AS_INT, NULL, 31337, 0, 0, f, err, sizeof(err)) ==
          -1);
    CHECK(contains(err, "options.pin: value is out of range"));
    CHECK(!contains(err, "31337"));
    /* An option unknown to this sink may still be some other sink's secret,
     * so its value is never shown either. */
    CHECK(validate_one("password", AS_TEXT, "pa55word", 0, 0, 0, NULL, err,
                       sizeof(err)) == -1);
    CHECK(!contains(err, "pa55word"));
}

static void test_bad_default_and_empty_table(void)
{
    static const pgspout_option_def broken[] = {
        {"n", PGSPOUT_OPT_INT, "lots", 0, "bad default", NO_BOUNDS, NULL},
        PGSPOUT_OPTION_END,
    };
    static const pgspout_option_def none[] = {PGSPOUT_OPTION_END};
    char err[512];
    sink_options *o = sink_options_new();
    CHECK(sink_options_validate(o, broken, WHERE, err, sizeof(err)) == -1);
    CHECK(contains(err, "default for option \"n\" is invalid"));
    CHECK(sink_options_validate(o, none, WHERE, err, sizeof(err)) == 0);
    sink_options_add_text(o, "x", "1", NULL, 0, NULL);
    CHECK(sink_options_validate(o, none, WHERE, err, sizeof(err)) == -1);
    CHECK(contains(err, "takes no options"));
    CHECK(sink_options_validate(o, NULL, WHERE, err, sizeof(err)) == -1);
    sink_options_free(o);
}

static void test_table_print(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    option_table_print(mem, fake_defs, "    ");
    fclose(mem);
    CHECK(contains(buf, "    path "));
    CHECK(contains(buf, "required"));
    CHECK(contains(buf, "output file"));
    CHECK(contains(buf, "default: true"));
    CHECK(contains(buf, "duration"));
    CHECK(contains(buf, "one of: append|truncate"));
    /* One line per option. */
    size_t lines = 0;
    for (const char *p = buf; *p; p++)
        lines += *p == '\n';
    CHECK(lines == sizeof(fake_defs) / sizeof(fake_defs[0]) - 1);
    free(buf);
}

/* Collects visited prefix options as "name=value;" (stops after `limit`). */
typedef struct visited {
    char text[512];
    int count, limit;
} visited;

static bool collect(void *ctx, const char *name, const char *value)
{
    visited *v = ctx;
    size_t used = strlen(v->text);
    snprintf(v->text + used, sizeof v->text - used, "%s=%s;", name, value);
    return ++v->count != v->limit;
}

/* A prefix option (ABI 1.4) takes every key that starts with its name and
 * goes on, as text, in the order given; other unknown keys stay errors. */
static void test_prefix_options(void)
{
    static const pgspout_option_def defs[] = {
        {"brokers", PGSPOUT_OPT_STRING, NULL, PGSPOUT_OPTF_REQUIRED, "where",
         NO_BOUNDS, NULL},
        {"lib.", PGSPOUT_OPT_STRING, NULL, PGSPOUT_OPTF_PREFIX,
         "library properties", NO_BOUNDS, NULL},
        PGSPOUT_OPTION_END,
    };
    const char *f = "/etc/x.conf";
    char err[512];
    sink_options *o = sink_options_new();
    sink_options_add_text(o, "brokers", "b:9092", NULL, 0, NULL);
    sink_options_add_text(o, "lib.security.protocol", "SSL", NULL, 0, NULL);
    sink_options_add_int(o, "lib.linger.ms", 5, f, 3, "o.lib.linger.ms");
    sink_options_add_bool(o, "lib.enable.x", false, f, 4, "o.lib.enable.x");
    sink_options_add_double(o, "lib.ratio", 0.25, f, 5, "o.lib.ratio");
    CHECK(sink_options_validate(o, defs, WHERE, err, sizeof err) == 0);
    visited v = {"", 0, 0};
    CHECK(sink_options_each_prefixed(o, "lib.", collect, &v));
    CHECK_STR(v.text, "lib.security.protocol=SSL;lib.linger.ms=5;"
                      "lib.enable.x=false;lib.ratio=0.25;");
    /* The family is not an option of its own for the typed lookups. */
    const char *s = NULL;
    CHECK(!sink_options_get_string(o, "lib.", &s));
    CHECK(!sink_options_get_string(o, "lib.security.protocol", &s));
    /* A visitor can stop the walk; an undeclared family visits nothing. */
    visited one = {"", 0, 1};
    CHECK(!sink_options_each_prefixed(o, "lib.", collect, &one));
    CHECK_STR(one.text, "lib.security.protocol=SSL;");
    visited none = {"", 0, 0};
    CHECK(!sink_options_each_prefixed(o, "brokers", collect, &none));
    CHECK(!sink_options_each_prefixed(o, "other.", collect, &none));
    CHECK(none.count == 0);
    /* Validating again starts from scratch: nothing is visited twice. */
    CHECK(sink_options_validate(o, defs, WHERE, err, sizeof err) == 0);
    visited again = {"", 0, 0};
    CHECK(sink_options_each_prefixed(o, "lib.", collect, &again));
    CHECK(again.count == 4);
    /* The bare prefix, or a key merely like it, is still unknown, and the
     * message lists the family as such. */
    sink_options_add_text(o, "lib.", "x", NULL, 0, NULL);
    CHECK(sink_options_validate(o, defs, WHERE, err, sizeof err) == -1);
    CHECK(contains(err, "-o lib.: unknown option (known options: brokers, "
                        "lib.<name>)"));
    sink_options_free(o);
    o = sink_options_new();
    sink_options_add_text(o, "brokers", "b:9092", NULL, 0, NULL);
    sink_options_add_text(o, "libx", "secret-ish", NULL, 0, NULL);
    CHECK(sink_options_validate(o, defs, WHERE, err, sizeof err) == -1);
    CHECK(contains(err, "-o libx: unknown option"));
    CHECK(!contains(err, "secret-ish"));
    sink_options_free(o);

    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    option_table_print(mem, defs, "");
    fclose(mem);
    CHECK(contains(buf, "lib.<name> "));
    CHECK(contains(buf, "library properties"));
    free(buf);
}

int main(void)
{
    test_prefix_options();
    test_parsers();
    test_defaults_and_lookup();
    test_values_from_text_and_typed();
    test_errors();
    test_secrets_never_in_messages();
    test_bad_default_and_empty_table();
    test_table_print();
    return check_summary();
}
