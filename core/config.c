#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_cli.h"
#include "config_file.h"
#include "error.h"
#include "settings.h"
#include "strbuf.h"

void config_list_push(char ***items, size_t *n, const char *value)
{
    *items = xrealloc(*items, (*n + 1) * sizeof(char *));
    (*items)[(*n)++] = xstrdup(value);
}

void config_list_free(char ***items, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*items)[i]);
    free(*items);
    *items = NULL;
    *n = 0;
}

void config_replace_string(char **dst, const char *value)
{
    free(*dst);
    *dst = value ? xstrdup(value) : NULL;
}

sink_config *config_add_sink(pgspout_config *cfg)
{
    cfg->sinks = xrealloc(cfg->sinks, (cfg->n_sinks + 1) * sizeof(sink_config));
    sink_config *sink = &cfg->sinks[cfg->n_sinks++];
    memset(sink, 0, sizeof(*sink));
    sink->options = sink_options_new();
    return sink;
}

static void sink_config_clear(sink_config *sink)
{
    free(sink->name);
    free(sink->type);
    config_list_free(&sink->include, &sink->n_include);
    config_list_free(&sink->exclude, &sink->n_exclude);
    sink_options_free(sink->options);
    free(sink->origin);
    free(sink->include_origin);
    free(sink->exclude_origin);
    memset(sink, 0, sizeof(*sink));
}

void config_clear_sinks(pgspout_config *cfg)
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
    config_list_free(&cfg->plugin_dirs, &cfg->n_plugin_dirs);
    config_list_free(&cfg->include, &cfg->n_include);
    config_list_free(&cfg->exclude, &cfg->n_exclude);
    free(cfg->include_origin);
    free(cfg->exclude_origin);
    config_list_free(&cfg->message_prefixes, &cfg->n_message_prefixes);
    free(cfg->message_prefixes_origin);
    config_clear_sinks(cfg);
    free(cfg->config_file);
    free(cfg->http_listen);
    free(cfg->snapshot);
    free(cfg->publish_generated_columns);
    free(cfg->state_dir);
    free(cfg->streaming);
    free(cfg->spill_dir);
    free(cfg->status_schema);
    free(cfg->backfill_where);
    memset(cfg, 0, sizeof(*cfg));
}

bool config_sink_name_valid(const char *name)
{
    if (!*name)
        return false;
    for (const char *p = name; *p; p++) {
        int c = (unsigned char)*p;
        if (!isalnum(c) && c != '_' && c != '-')
            return false;
    }
    return true;
}

/* A sink type is turned into a file name, so it must not be able to reach
 * another directory; and a relative path would load from the working
 * directory, which pgspout never does. */
const char *config_sink_type_problem(const char *type)
{
    if (type[0] == '/')
        return NULL;
    if (strchr(type, '/'))
        return "is a relative path; nothing is loaded from the working "
               "directory: give a sink name or an absolute path to a .so";
    if (!config_sink_name_valid(type))
        return "is not a sink name (letters, digits, '_', '-') nor an "
               "absolute path to a .so";
    return NULL;
}

int config_from_args(int argc, char **argv, pgspout_config *cfg, char *err,
                     size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    if (err && errlen)
        err[0] = '\0';
    cli_args cli;
    int rc = cli_parse(argc, argv, core_settings, n_core_settings, &cli, err,
                       errlen);
    if (rc == 0)
        rc = cli_check_combinations(&cli, err, errlen);
    if (rc == 0) {
        settings_apply_defaults(cfg);
        /* The file first, wherever -c appears: flags override it. */
        if (cli.config_file && !cli.skips_config_file)
            rc = config_read_file_into(cli.config_file, cfg, err, errlen);
    }
    if (rc == 0) {
        cli_apply(&cli, cfg);
        if (!cli.mode && cfg->n_sinks == 0) {
            set_error(err, errlen,
                      "no sink configured: give --sink NAME, or -c FILE with "
                      "a sinks list");
            rc = CONFIG_USAGE_ERROR;
        }
    }
    cli_free(&cli);
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
