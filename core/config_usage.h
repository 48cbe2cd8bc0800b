/* --help: the synopsis, then every command-line flag of the settings table
 * (settings.h) with its doc and default, then the config-file keys. */
#ifndef PGSPOUT_CONFIG_USAGE_H
#define PGSPOUT_CONFIG_USAGE_H

#include <stddef.h>
#include <stdio.h>

#include "settings.h"

/* The ways pgspout is run, one per line (continuations indented), as
 * --help and README's Usage show them. */
extern const char config_usage_synopsis[];

void config_print_usage(FILE *out);

/* The pieces config_print_usage is made of, for a subcommand's --help:
 * "Usage:" with each synopsis line, then "Options:" with each flag of the
 * table, its doc and default, wrapped. */
void config_print_synopsis(FILE *out, const char *synopsis);
void config_print_options(FILE *out, const core_setting *table, size_t n);

#endif
