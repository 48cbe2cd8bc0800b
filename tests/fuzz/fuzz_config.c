/* libFuzzer target: the config file reader and sink option validation.
 *
 * Each input is written to a file in a private directory and read with
 * config_read_file_into; every sink it declares then has its options
 * validated against an option table with every type and constraint. The
 * input, as a string, also goes through the LSN, option-value and
 * conninfo-redaction parsers. A refusal must always explain itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_file.h"
#include "conninfo.h"
#include "lsn.h"
#include "options.h"
#include "settings.h"

static char config_path[256];

static const pgspout_option_def test_options[] = {
    {.name = "path",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "required string"},
    {.name = "mode",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "a",
     .choices = "a|b|c",
     .doc = "choice"},
    {.name = "token",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET,
     .doc = "secret"},
    {.name = "size",
     .type = PGSPOUT_OPT_INT,
     .default_value = "0",
     .min = 0,
     .max = 9.2e18,
     .doc = "int with range"},
    {.name = "count", .type = PGSPOUT_OPT_INT, .doc = "int"},
    {.name = "fsync",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "true",
     .doc = "bool"},
    {.name = "ratio",
     .type = PGSPOUT_OPT_DOUBLE,
     .default_value = "0.5",
     .min = 0,
     .max = 1,
     .doc = "double with range"},
    {.name = "linger",
     .type = PGSPOUT_OPT_DURATION,
     .default_value = "50ms",
     .min = 0,
     .max = 60000,
     .doc = "duration"},
    PGSPOUT_OPTION_END};

static void setup(void)
{
    char dir[] = "/tmp/pgspout-fuzz-config-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    snprintf(config_path, sizeof config_path, "%s/fuzz.conf", dir);
}

static const pgspout_option_def secret_options[] = {
    {.name = "key",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_SECRET | PGSPOUT_OPTF_REQUIRED,
     .choices = "x|y",
     .doc = "secret with choices"},
    PGSPOUT_OPTION_END};

/* True when validation refused the value (message in err). */
static bool validate_secret(const char *value, char *err, size_t errlen)
{
    sink_options *opts = sink_options_new();
    sink_options_add_text(opts, "key", value, "f.conf", 1, "options.key");
    err[0] = '\0';
    bool refused =
        sink_options_validate(opts, secret_options, "s", err, errlen) != 0;
    sink_options_free(opts);
    return refused && *value;
}

static void require_message(const char *err)
{
    if (!err[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!config_path[0])
        setup();
    FILE *f = fopen(config_path, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);

    pgspout_config cfg;
    memset(&cfg, 0, sizeof cfg);
    settings_apply_defaults(&cfg);
    char err[2048];
    err[0] = '\0';
    if (config_read_file_into(config_path, &cfg, err, sizeof err) == 0) {
        for (size_t i = 0; i < cfg.n_sinks; i++) {
            err[0] = '\0';
            if (config_validate_sink(&cfg.sinks[i], test_options, err,
                                     sizeof err) != 0)
                require_message(err);
            const char *s;
            int64_t n;
            bool b;
            double d;
            sink_options_get_string(cfg.sinks[i].options, "path", &s);
            sink_options_get_int(cfg.sinks[i].options, "linger", &n);
            sink_options_get_bool(cfg.sinks[i].options, "fsync", &b);
            sink_options_get_double(cfg.sinks[i].options, "ratio", &d);
            /* Validation starts from scratch each time. */
            config_validate_sink(&cfg.sinks[i], NULL, err, sizeof err);
        }
    } else {
        require_message(err);
    }
    config_free(&cfg);

    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    uint64_t lsn;
    int64_t i64;
    bool b;
    double d;
    lsn_parse(text, &lsn);
    option_parse_int(text, &i64);
    option_parse_duration(text, &i64);
    option_parse_bool(text, &b);
    option_parse_double(text, &d);
    free(conninfo_redacted(text));

    sink_options *opts = sink_options_new();
    sink_options_add_text(opts, "size", text, NULL, 0, NULL);
    sink_options_add_text(opts, "mode", text, NULL, 0, NULL);
    sink_options_add_text(opts, "path", text, NULL, 0, NULL);
    sink_options_add_text(opts, "ratio", text, NULL, 0, NULL);
    sink_options_add_text(opts, "linger", text, NULL, 0, NULL);
    err[0] = '\0';
    if (sink_options_validate(opts, test_options, "fuzz", err, sizeof err) != 0)
        require_message(err);
    sink_options_free(opts);

    /* A secret's value never shows: the refusal of any invalid value reads
     * exactly like the refusal of a fixed one. */
    char reference[2048];
    if (validate_secret("not-a-choice", reference, sizeof reference) &&
        validate_secret(text, err, sizeof err) && strcmp(err, reference) != 0)
        abort();
    free(text);
    return 0;
}
