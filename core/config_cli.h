/* The command line: getopt_long options generated from the settings table
 * (settings.h), each value checked as it is read, the rules for modes
 * (--drop-slot, --list-tables, --list-sinks, --help, --version), and the
 * values applied over the config file's. Flags may come in any order: the
 * config file (-c) is read after the whole command line is checked and
 * before any of its values is applied. */
#ifndef PGSPOUT_CONFIG_CLI_H
#define PGSPOUT_CONFIG_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "settings.h"

/* One setting given on the command line; arg points into argv (NULL for a
 * flag without an argument). */
typedef struct cli_value {
    const core_setting *setting;
    const char *arg;
} cli_value;

typedef struct cli_args {
    const core_setting *table; /* the settings the command line is read */
    size_t n_table;            /* by (core_settings, or a subcommand's) */
    cli_value *values;         /* in the order given */
    size_t n_values;
    size_t *given;            /* how often each setting was given, by index */
    const char *config_file;  /* the last -c, or NULL */
    bool skips_config_file;   /* --help, --version: the file is not read */
    const core_setting *mode; /* the mode given, NULL: streaming */
} cli_args;

/* Reads argv into *cli by the settings of table[0..n_table) (core_settings
 * for pgspout itself), checking each value. Returns 0 or
 * CONFIG_USAGE_ERROR with a message in err; cli_free is needed either way.
 * Not reentrant (getopt_long); permutes argv. */
int cli_parse(int argc, char **argv, const core_setting *table, size_t n_table,
              cli_args *cli, char *err, size_t errlen);

/* The rules between settings: at most one mode, settings only valid with
 * another one (--wait with --drop-slot, -o with --sink), and streaming
 * settings refused in a mode. Sets cli->mode. */
int cli_check_combinations(cli_args *cli, char *err, size_t errlen);

/* Applies the command line's values over cfg (defaults, then the config
 * file's values): a scalar replaces the file's, -t/-T replace its
 * include/exclude, --plugin-dir goes before its plugin_dir, and --sink
 * (with its -o options) replaces its sinks. */
void cli_apply(const cli_args *cli, pgspout_config *cfg);

void cli_free(cli_args *cli);

#endif
