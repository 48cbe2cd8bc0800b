#include "backfill_cli.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_check.h"
#include "backfill_message.h"
#include "backfill_watch.h"
#include "config_cli.h"
#include "config_file.h"
#include "config_usage.h"
#include "conninfo.h"
#include "error.h"
#include "log.h"
#include "pattern.h"
#include "pgconn.h"

#define EXIT_RUNTIME_FAILURE 1

#define AT(field) offsetof(pgspout_config, field)

/* In the order --help and README list them. */
const core_setting backfill_cli_settings[] = {
    {.short_flag = 'c',
     .long_flag = "config",
     .arg_name = "FILE",
     .type = SETTING_CONFIG_FILE,
     .at = AT(config_file),
     .doc = "take connection, slot, publication and status_schema from "
            "pgspout's config file; flags override it"},
    {.short_flag = 'd',
     .long_flag = "dbname",
     .arg_name = "CONNINFO",
     .type = SETTING_CONNINFO,
     .at = AT(conninfo),
     .doc = "libpq connection string or URI of the slot's database; PG* "
            "environment variables work as in libpq"},
    {.short_flag = 'S',
     .long_flag = "slot",
     .arg_name = "NAME",
     .type = SETTING_SLOT_NAME,
     .default_text = "pgspout",
     .at = AT(slot),
     .doc = "the slot of the pgspout that is to copy"},
    {.long_flag = "publication",
     .arg_name = "NAME",
     .type = SETTING_NAME,
     .default_text = "pgspout",
     .at = AT(publication),
     .doc = "the publication that pgspout streams; the tables must be in it"},
    {.short_flag = 't',
     .long_flag = "table",
     .arg_name = "PATTERN",
     .type = SETTING_PATTERNS,
     .at = AT(include),
     .count_at = AT(n_include),
     .origin_at = AT(include_origin),
     .stream_only = true,
     .doc = "copy the matching tables (repeatable; at least one)"},
    {.short_flag = 'T',
     .long_flag = "exclude-table",
     .arg_name = "PATTERN",
     .type = SETTING_PATTERNS,
     .at = AT(exclude),
     .count_at = AT(n_exclude),
     .origin_at = AT(exclude_origin),
     .stream_only = true,
     .doc = "leave matching tables out (repeatable; wins over -t)"},
    {.long_flag = "where",
     .arg_name = "SQL",
     .type = SETTING_NAME,
     .at = AT(backfill_where),
     .stream_only = true,
     .doc = "copy only the rows for which this boolean expression holds"},
    {.long_flag = "wait",
     .type = SETTING_BOOL,
     .at = AT(backfill_wait),
     .stream_only = true,
     .doc = "return once the copy is delivered and confirmed (exit 0) or "
            "has failed (exit 1)"},
    {.long_flag = "status",
     .type = SETTING_MODE,
     .at = AT(backfill_status),
     .doc = "print the state of the slot's backfills and exit"},
    {.long_flag = "status-schema",
     .arg_name = "NAME",
     .type = SETTING_NAME,
     .default_text = "public",
     .at = AT(status_schema),
     .doc = "the schema of the status table pgspout keeps"},
    {.long_flag = "help",
     .type = SETTING_MODE,
     .at = AT(show_help),
     .skips_config_file = true,
     .doc = "print these options and exit"},
};

const size_t n_backfill_cli_settings =
    sizeof backfill_cli_settings / sizeof backfill_cli_settings[0];

/* The config file's include/exclude are the daemon's filters; the request
 * has its own patterns. */
static int read_daemon_config(const char *path, pgspout_config *cfg, char *err,
                              size_t errlen)
{
    int rc = config_read_file_into(path, cfg, err, errlen);
    config_list_free(&cfg->include, &cfg->n_include);
    config_list_free(&cfg->exclude, &cfg->n_exclude);
    free(cfg->include_origin);
    free(cfg->exclude_origin);
    cfg->include_origin = cfg->exclude_origin = NULL;
    return rc;
}

int backfill_config_from_args(int argc, char **argv, pgspout_config *cfg,
                              char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cli_args cli;
    int rc = cli_parse(argc, argv, backfill_cli_settings,
                       n_backfill_cli_settings, &cli, err, errlen);
    if (rc == 0)
        rc = cli_check_combinations(&cli, err, errlen);
    if (rc == 0) {
        settings_apply_defaults(cfg);
        settings_apply_defaults_of(cfg, backfill_cli_settings,
                                   n_backfill_cli_settings);
        if (cli.config_file && !cli.skips_config_file)
            rc = read_daemon_config(cli.config_file, cfg, err, errlen);
    }
    if (rc == 0) {
        cli_apply(&cli, cfg);
        if (!cli.mode && cfg->n_include == 0) {
            set_error(err, errlen,
                      "-t PATTERN is required: name the tables to copy");
            rc = CONFIG_USAGE_ERROR;
        }
    }
    cli_free(&cli);
    if (rc != 0)
        config_free(cfg);
    return rc;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "pgspout backfill: %s\n", msg);
    fprintf(stderr, "Try \"pgspout backfill --help\" for more information.\n");
    return CONFIG_USAGE_ERROR;
}

static void print_help(void)
{
    fputs("pgspout backfill asks the pgspout streaming from a slot to copy "
          "tables again,\nand shows the state of its backfills.\n\n",
          stdout);
    config_print_synopsis(stdout, BACKFILL_SYNOPSIS);
    config_print_options(stdout, backfill_cli_settings,
                         n_backfill_cli_settings);
}

/* What can be checked before connecting: the connection options, the
 * patterns and the where's form. Returns the request's filter, or NULL
 * with the reason in err. */
static table_filter *check_offline(const pgspout_config *cfg, char *err,
                                   size_t errlen)
{
    if (!conninfo_check(cfg->conninfo, err, errlen))
        return NULL;
    const char *problem = cfg->backfill_where
                              ? backfill_where_problem(cfg->backfill_where)
                              : NULL;
    if (problem) {
        set_error(err, errlen, "--where %s", problem);
        return NULL;
    }
    char *dbname = conninfo_dbname(cfg->conninfo);
    table_filter *filter = table_filter_build(
        cfg->include, cfg->n_include, cfg->include_origin, cfg->exclude,
        cfg->n_exclude, cfg->exclude_origin, dbname, err, errlen);
    free(dbname);
    return filter;
}

/* Emits the request once the server agrees with it; with --wait, waits
 * for the daemon to finish it. */
static int request_backfill(const pgspout_config *cfg, table_filter *filter,
                            PGconn **conn, const stop_state *stop)
{
    char err[2048];
    backfill_request req = {.slot = cfg->slot,
                            .include = cfg->include,
                            .n_include = cfg->n_include,
                            .exclude = cfg->exclude,
                            .n_exclude = cfg->n_exclude,
                            .where = cfg->backfill_where};
    char id[BACKFILL_ID_LEN + 1];
    if (!backfill_new_id(id)) {
        log_error("cannot make a backfill id: the system has no randomness");
        return EXIT_RUNTIME_FAILURE;
    }
    req.id = id;
    int rc = backfill_check(*conn, stop, cfg, filter, err, sizeof err);
    if (rc == 0)
        rc = backfill_emit(*conn, stop, &req, err, sizeof err);
    if (rc != 0) {
        log_error("%s", err);
        return rc;
    }
    printf("%s\n", id);
    fflush(stdout);
    return cfg->backfill_wait ? backfill_wait(conn, stop, cfg, id) : 0;
}

static int run(const pgspout_config *cfg, table_filter *filter,
               const stop_state *stop)
{
    char err[1024];
    PGconn *conn =
        pq_connect(cfg->conninfo, false, stop, NULL, err, sizeof err);
    if (!conn) {
        log_error("%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    int rc = cfg->backfill_status ? backfill_print_status(conn, stop, cfg)
                                  : request_backfill(cfg, filter, &conn, stop);
    PQfinish(conn);
    return rc;
}

int backfill_main(int argc, char **argv, const stop_state *stop)
{
    pgspout_config cfg;
    char err[2048];
    if (backfill_config_from_args(argc, argv, &cfg, err, sizeof err) != 0)
        return usage_error(err);
    int rc = 0;
    table_filter *filter = NULL;
    if (cfg.show_help) {
        print_help();
    } else if ((filter = check_offline(&cfg, err, sizeof err)) == NULL) {
        rc = usage_error(err);
    } else {
        rc = run(&cfg, filter, stop);
    }
    if (filter)
        table_filter_free(filter);
    config_free(&cfg);
    return rc;
}
