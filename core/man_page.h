/* The manual pages pgspout(1) and pgspout.conf(5), written in roff (man
 * macros) from the same tables that drive the command line, the config
 * file reader and --help: core_settings, backfill_cli_settings and each
 * sink's option table. The build writes them with pgspout-man (man_main.c)
 * from the sinks it built, so a page cannot drift from the options it
 * documents. Secrets' defaults are never printed, as in --list-sinks. */
#ifndef PGSPOUT_MAN_PAGE_H
#define PGSPOUT_MAN_PAGE_H

#include <stddef.h>
#include <stdio.h>

#include "pgspout/sink.h"

/* pgspout(1): synopsis, every flag of pgspout and of pgspout backfill,
 * exit status, environment, files. */
void man_page_write_command(FILE *out, const char *version);

/* pgspout.conf(5): every config-file key, then each sink's options. */
void man_page_write_config(FILE *out, const char *version,
                           const pgspout_sink_descriptor *const *sinks,
                           size_t nsinks);

#endif
