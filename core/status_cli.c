#include "status_cli.h"

#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_watch.h"
#include "config.h"
#include "config_file.h"
#include "conninfo.h"
#include "lsn.h"
#include "pgconn.h"
#include "settings.h"
#include "slot_guard.h"
#include "strbuf.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
/* Tables listed by name; more are counted. */
#define MAX_TABLES_SHOWN 20
#define QUERY_TIMEOUT_MS 60000

static const char usage_text[] =
    "Usage: pgspout status [-c FILE] [-d CONNINFO] [--slot NAME] "
    "[--publication NAME]\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "pgspout: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    return EXIT_USAGE;
}

/* A value from the command line, checked as the settings table says. */
static int take(pgspout_config *cfg, const char *flag, const char *value)
{
    const core_setting *s = setting_by_long_flag(flag);
    strbuf why = STRBUF_INIT;
    bool ok = setting_check_text(s, value, false, &why);
    if (ok)
        setting_store_text(cfg, s, value, 0);
    else
        fprintf(stderr, "pgspout: %s\n%s", why.data, usage_text);
    sbuf_free(&why);
    return ok ? 0 : EXIT_USAGE;
}

/* The config file first (-c, wherever it is given), then the flags. */
static int parse_args(int argc, char **argv, pgspout_config *cfg)
{
    static const struct option longopts[] = {
        {"dbname", required_argument, NULL, 'd'},
        {"slot", required_argument, NULL, 'S'},
        {"publication", required_argument, NULL, 'P'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *values[256] = {NULL}, *file = NULL;
    optind = 0;
    opterr = 0;
    int c, rc = 0;
    while ((c = getopt_long(argc, argv, ":d:S:c:h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return -1;
        }
        if (c == 'c')
            file = optarg;
        else if (c == 'd' || c == 'S' || c == 'P')
            values[c] = optarg;
        else
            return usage_error("status: unknown option or missing value "
                               "\"%s\"",
                               argv[optind - 1]);
    }
    if (optind < argc)
        return usage_error("status: unexpected argument \"%s\"", argv[optind]);
    settings_apply_defaults(cfg);
    char err[2048];
    if (file && config_read_file_into(file, cfg, err, sizeof err) != 0) {
        fprintf(stderr, "pgspout: %s\n", err);
        return EXIT_USAGE;
    }
    if (values['d'])
        config_replace_string(&cfg->conninfo, values['d']);
    if (values['S'])
        rc = take(cfg, "slot", values['S']);
    if (rc == 0 && values['P'])
        rc = take(cfg, "publication", values['P']);
    return rc;
}

/* ---- the screen ---- */

static void print_bytes(const char *label, uint64_t bytes)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof *units) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        printf("  %-15s %llu bytes\n", label, (unsigned long long)bytes);
    else
        printf("  %-15s %llu bytes (%.1f %s)\n", label,
               (unsigned long long)bytes, v, units[u]);
}

static void print_slot(const char *slot, const slot_state *st)
{
    char lsn[LSN_FORMAT_BUFSIZE], now[LSN_FORMAT_BUFSIZE];
    printf("slot \"%s\" (database \"%s\", plugin %s, PostgreSQL %d.%d)\n", slot,
           st->database, st->plugin, st->server_version / 10000,
           st->server_version % 10000);
    if (st->active)
        printf("  %-15s yes (walsender pid %d)\n", "active:", st->active_pid);
    else
        printf("  %-15s no\n", "active:");
    printf("  %-15s %s (server at %s)\n",
           "confirmed LSN:", lsn_format(st->confirmed_lsn, lsn, sizeof lsn),
           lsn_format(st->current_lsn, now, sizeof now));
    print_bytes("lag:", slot_lag_bytes(st));
    printf("  %-15s %s\n",
           "wal_status:", *st->wal_status ? st->wal_status : "(none)");
    print_bytes("retained WAL:", slot_retained_bytes(st));
    if (st->has_safe_wal_size)
        print_bytes("safe_wal_size:",
                    (uint64_t)(st->safe_wal_size > 0 ? st->safe_wal_size : 0));
    else
        printf("  %-15s unlimited (max_slot_wal_keep_size = -1)\n",
               "safe_wal_size:");
}

static PGresult *ask(PGconn *conn, const stop_state *stop, const char *sql,
                     int nparams, const char *const *params, int timeout_ms,
                     char *err, size_t errlen)
{
    pq_outcome outcome;
    PGresult *res = pq_exec(conn, sql, nparams, params, timeout_ms, stop,
                            &outcome, err, errlen);
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (res && status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        pq_copy_error(conn, "query failed", err, errlen);
        PQclear(res);
        res = NULL;
    }
    return res;
}

static void print_publication(PGconn *conn, const stop_state *stop,
                              const char *publication)
{
    char err[1024];
    const char *params[] = {publication};
    PGresult *res =
        ask(conn, stop,
            "SELECT pg_catalog.quote_ident(t.schemaname) || '.' || "
            "pg_catalog.quote_ident(t.tablename), "
            "EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname = $1) "
            "FROM (SELECT NULL) x LEFT JOIN pg_catalog.pg_publication_tables t "
            "ON t.pubname = $1 ORDER BY t.schemaname, t.tablename",
            1, params, QUERY_TIMEOUT_MS, err, sizeof err);
    if (!res) {
        printf("publication \"%s\": cannot be read: %s\n", publication, err);
        return;
    }
    int rows = PQntuples(res);
    bool exists = rows > 0 && PQgetvalue(res, 0, 1)[0] == 't';
    int tables = rows > 0 && !PQgetisnull(res, 0, 0) ? rows : 0;
    if (!exists)
        printf("publication \"%s\": does not exist\n", publication);
    else
        printf("publication \"%s\": %d table%s\n", publication, tables,
               tables == 1 ? "" : "s");
    for (int i = 0; i < tables && i < MAX_TABLES_SHOWN; i++)
        printf("  %s\n", PQgetvalue(res, i, 0));
    if (tables > MAX_TABLES_SHOWN)
        printf("  ... and %d more\n", tables - MAX_TABLES_SHOWN);
    PQclear(res);
}

static int report(const pgspout_config *cfg)
{
    char err[1024];
    stop_state stop;
    stop_init(&stop);
    PGconn *conn =
        pq_connect(cfg->conninfo, false, &stop, NULL, err, sizeof err);
    if (!conn) {
        fprintf(stderr, "pgspout: %s\n", err);
        return EXIT_FAILED;
    }
    slot_state st;
    int rc = 0;
    if (!slot_state_read(conn, &stop, cfg->slot, &st, err, sizeof err)) {
        fprintf(stderr, "pgspout: %s\n", err);
        rc = EXIT_FAILED;
    } else if (!st.exists) {
        printf("replication slot \"%s\" does not exist\n", cfg->slot);
        print_publication(conn, &stop, cfg->publication);
        rc = EXIT_FAILED;
    } else {
        print_slot(cfg->slot, &st);
        print_publication(conn, &stop, cfg->publication);
        if (!backfill_print_backfills(conn, &stop, cfg, true, st.active))
            rc = EXIT_FAILED;
    }
    PQfinish(conn);
    return rc;
}

int status_cli_main(int argc, char **argv)
{
    pgspout_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc = parse_args(argc, argv, &cfg);
    if (rc == 0) {
        char err[1024];
        if (!conninfo_check(cfg.conninfo, err, sizeof err)) {
            fprintf(stderr, "pgspout: %s\n%s", err, usage_text);
            rc = EXIT_USAGE;
        } else {
            rc = report(&cfg);
        }
    }
    config_free(&cfg);
    return rc < 0 ? 0 : rc;
}
