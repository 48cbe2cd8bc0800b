/* `pgspout backfill`: asks the pgspout streaming from a slot to copy
 * tables again (README "Snapshot and backfill"), and shows the state of
 * its backfills. Its flags are a settings table of their own, read by the
 * same command-line code as pgspout's (config_cli.h) and printed by the
 * same --help code; README's table of them is checked against it
 * (tests/unit/test_settings.c). Values land in a pgspout_config, so
 * `-c FILE` takes connection, slot, publication and status_schema from
 * the daemon's own config file. */
#ifndef PGSPOUT_BACKFILL_CLI_H
#define PGSPOUT_BACKFILL_CLI_H

#include <stddef.h>

#include "config.h"
#include "settings.h"
#include "stop.h"

/* The ways it is run, as --help and README's Usage show them (pgspout's
 * own synopsis includes them). */
#define BACKFILL_SYNOPSIS                                                      \
    "pgspout backfill [-c FILE] [-d CONNINFO] [--slot NAME] "                  \
    "[--publication NAME]\n"                                                   \
    "        -t PATTERN [-t PATTERN]... [-T PATTERN]... [--where SQL] "        \
    "[--wait]\n"                                                               \
    "pgspout backfill --status [-c FILE] [-d CONNINFO] [--slot NAME]\n"

extern const core_setting backfill_cli_settings[];
extern const size_t n_backfill_cli_settings;

/* The command line after "backfill" (argv[0] is "backfill"), and the
 * config file it names, into *cfg: 0, or CONFIG_USAGE_ERROR with a
 * one-line message in err (then *cfg is empty). config_free(cfg) is safe
 * either way. Not reentrant (getopt_long); permutes argv. */
int backfill_config_from_args(int argc, char **argv, pgspout_config *cfg,
                              char *err, size_t errlen);

/* Runs `pgspout backfill`; returns the exit status: 0 done, 1 a runtime
 * failure (the server cannot be reached, the backfill failed, a stop
 * while waiting), 2 bad input (nothing was emitted). */
int backfill_main(int argc, char **argv, const stop_state *stop);

#endif
