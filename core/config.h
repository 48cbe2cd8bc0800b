/* pgspout's configuration: the settings of the command line (pg_recvlogical
 * style) merged over an optional libconfig file given with -c, over the
 * defaults of the settings table (settings.h). Parsing never exits and never
 * prints: it returns CONFIG_USAGE_ERROR (the process exit status for usage
 * and config errors) with a message naming the file, line and key, so that
 * main() decides how to report and tests can inspect the message.
 *
 * Sink options are only collected here; they are validated against each
 * sink's option table once the sink is loaded (config_validate_sink), still
 * before anything connects.
 *
 * Also here: the small pieces the config file reader (config_file.h), the
 * command line (config_cli.h) and the settings table share to build up a
 * configuration: string lists and sink entries. */
#ifndef PGSPOUT_CONFIG_H
#define PGSPOUT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "pgspout/option.h"

#define CONFIG_USAGE_ERROR 2

typedef struct sink_config {
    char *name;     /* unique among the configured sinks; names log lines */
    char *type;     /* a sink name ("file") or an absolute path to a .so */
    char **include; /* patterns applied on top of the global filter */
    size_t n_include;
    char **exclude;
    size_t n_exclude;
    sink_options *options;
    /* Where include/exclude came from, for pattern errors ("FILE:LINE:
     * sinks.[N].include"); NULL when not set. */
    char *include_origin, *exclude_origin;
    /* Where the sink was declared, for errors about it as a whole (a missing
     * required option): "FILE:LINE: sinks.[N]" or "command line: --sink X". */
    char *origin;
} sink_config;

/* Each field that a core setting sets is named in the settings table
 * (settings.c), which says where its value comes from and its default. */
typedef struct pgspout_config {
    char *conninfo; /* NULL: libpq takes everything from PG* variables */
    char *slot;
    char *publication;
    bool create_slot;
    bool failover; /* a failover slot (PostgreSQL 17+) */
    /* PostgreSQL 18+: a publication --create-slot makes publishes stored
     * generated columns ("stored") or not ("none"). */
    char *publish_generated_columns;
    /* Keep trying when the first connection fails too (a lost connection
     * is always retried). */
    bool retry_initial;
    /* Modes other than streaming; at most one is set. */
    bool drop_slot, list_tables, list_sinks, show_help, show_version;
    int drop_slot_wait_s; /* --wait: how long --drop-slot waits for a
                             slot another client holds */
    /* Searched before the built-in directory, command-line ones first. */
    char **plugin_dirs;
    size_t n_plugin_dirs;
    char **include; /* -t / include: empty means every table */
    size_t n_include;
    char **exclude; /* -T / exclude */
    size_t n_exclude;
    /* "FILE:LINE: include", "command line: -t"; NULL when not set. */
    char *include_origin, *exclude_origin;
    /* Logical decoding messages as events, those whose prefix matches one
     * of message_prefixes (fnmatch globs; none: every prefix), and begin
     * and commit events around transactions. */
    bool messages;
    char **message_prefixes;
    size_t n_message_prefixes;
    char *message_prefixes_origin;
    bool transaction_events;
    bool has_endpos;
    uint64_t endpos;
    int status_interval_s; /* 0 disables periodic status updates */
    int server_timeout_s;  /* a silent server is taken for gone after it */
    /* Snapshots and backfills: --snapshot (NULL: initial when this run
     * creates the slot, else never), where their state is kept (NULL: the
     * slot's default), the status table's schema, and the copy's pace. */
    char *snapshot;
    char *state_dir;
    char *status_schema;
    int backfill_chunk_rows;
    int backfill_workers;
    int backfill_chunk_readers;
    int backfill_max_rows_per_sec;
    int verbosity; /* number of -v */
    /* Production (README "Production"): the HTTP endpoint ("HOST:PORT",
     * NULL: off), heartbeats (0: off), the slot lag over which pgspout is
     * not ready (bytes, 0: off), and the log_format of the lines. */
    char *http_listen;
    int heartbeat_interval_s;
    uint64_t max_slot_lag;
    /* Streamed transactions: "on" or "off", their memory (bytes), and
     * their spill directory (NULL: the default, main.c). */
    char *streaming;
    uint64_t stream_memory;
    char *spill_dir;
    int log_format;
    sink_config *sinks;
    size_t n_sinks;
    char *config_file; /* NULL when no -c */
    /* pgspout backfill (backfill_cli.h): the request's where, and what the
     * command does besides emitting it. */
    char *backfill_where;
    bool backfill_wait, backfill_status;
} pgspout_config;

/* Fills *cfg from argv (and the file named by -c). Returns 0, or
 * CONFIG_USAGE_ERROR with a one-line message (no "pgspout: " prefix, no
 * trailing newline) in err; then *cfg is left empty. config_free(cfg) is
 * safe in both cases. The config file is not read for --help and --version.
 * Uses getopt_long, so it is not reentrant, and it permutes argv. */
int config_from_args(int argc, char **argv, pgspout_config *cfg, char *err,
                     size_t errlen);

/* Validates one sink's collected options against its loaded option table. */
int config_validate_sink(sink_config *sink, const pgspout_option_def *defs,
                         char *err, size_t errlen);

void config_free(pgspout_config *cfg);

/* ---- building a configuration ---- */

/* A string list (items, n): append a copy; free all of it (empty after). */
void config_list_push(char ***items, size_t *n, const char *value);
void config_list_free(char ***items, size_t *n);

/* Replaces *dst with a copy of value (NULL: none). */
void config_replace_string(char **dst, const char *value);

/* Appends an empty sink (with an empty option set) and returns it. */
sink_config *config_add_sink(pgspout_config *cfg);

/* Removes every sink. */
void config_clear_sinks(pgspout_config *cfg);

/* Sink names (a sink's `name`, and what a sink type names): letters,
 * digits, '_' and '-'. */
bool config_sink_name_valid(const char *name);

/* Why a sink type (a name, or an absolute path to a .so) cannot be loaded
 * as given, or NULL when it can be tried. */
const char *config_sink_type_problem(const char *type);

#endif
