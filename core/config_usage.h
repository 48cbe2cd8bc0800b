/* --help: the synopsis, then every command-line flag of the settings table
 * (settings.h) with its doc and default, then the config-file keys. */
#ifndef PGSPOUT_CONFIG_USAGE_H
#define PGSPOUT_CONFIG_USAGE_H

#include <stdio.h>

/* The ways pgspout is run, one per line (continuations indented), as
 * --help and README's Usage show them. */
extern const char config_usage_synopsis[];

void config_print_usage(FILE *out);

#endif
