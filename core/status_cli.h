/* `pgspout status -d CONNINFO [--slot NAME] [--publication NAME]
 * [-c FILE]`: one screen about a slot, from the server alone (no daemon
 * needed): whether it is in use, its confirmed position and lag,
 * wal_status, the WAL it retains, the publication's tables, and the
 * backfill requests waiting in the WAL. */
#ifndef PGSPOUT_STATUS_CLI_H
#define PGSPOUT_STATUS_CLI_H

/* argv[0] is "status". Returns the exit status: 0 when the slot exists,
 * 1 when it does not or the server cannot be asked, 2 for a usage
 * error. */
int status_cli_main(int argc, char **argv);

#endif
