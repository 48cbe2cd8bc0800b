/* pgspout: stream PostgreSQL changes to sinks. Modes: stream (default),
 * --drop-slot, --list-tables, --list-sinks, --help, --version. */
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "catalog.h"
#include "config.h"
#include "loader.h"
#include "log.h"
#include "pattern.h"
#include "pgspout/abi.h"
#include "replication.h"
#include "sink_host.h"
#include "strbuf.h"
#include "stream.h"

#define EXIT_RUNTIME_FAILURE 1
#define EXIT_USAGE 2
#define RECOVERED_AFTER_US (INT64_C(10) * 1000000)

static volatile sig_atomic_t stop_requested;

/* Counts signals: the first asks for a clean stop, a second one gives up
 * on a sink that keeps failing during that stop. */
static void request_stop(int signo)
{
    (void)signo;
    stop_requested = stop_requested + 1;
}

/* Threads that sinks start inherit the creator's signal mask; keeping stop
 * signals blocked while sinks are created leaves them to the main thread. */
static void block_stop_signals(bool block)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

static void install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = request_stop;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a blocked poll() must return so the loop sees the
     * request. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "pgspout: %s\n", msg);
    fprintf(stderr, "Try \"pgspout --help\" for more information.\n");
    return EXIT_USAGE;
}

/* Where sinks are looked for: --plugin-dir / plugin_dir first, so a
 * deployment can override an installed sink, then the install location. */
static int plugin_dirs(const pgspout_config *cfg, char ***dirs, size_t *ndirs)
{
    *dirs = xcalloc(cfg->n_plugin_dirs + 1, sizeof **dirs);
    *ndirs = 0;
    for (size_t i = 0; i < cfg->n_plugin_dirs; i++) {
        if (cfg->plugin_dirs[i][0] != '/') {
            char msg[1024];
            snprintf(msg, sizeof msg,
                     "plugin directory \"%s\" must be an absolute path "
                     "(nothing is loaded from the working directory)",
                     cfg->plugin_dirs[i]);
            free(*dirs);
            return usage_error(msg);
        }
        (*dirs)[(*ndirs)++] = cfg->plugin_dirs[i];
    }
    (*dirs)[(*ndirs)++] = PGSPOUT_PLUGIN_DIR;
    return 0;
}

static void report_refused(const char *path, const char *why)
{
    (void)path;
    log_warning("skipping %s", why);
}

static int list_sinks(char **dirs, size_t ndirs, bool with_options)
{
    sink_library *libs;
    size_t n = sink_library_list(dirs, ndirs, &libs, report_refused);
    for (size_t i = 0; i < n; i++) {
        const pgspout_sink_descriptor *d = libs[i].desc;
        printf("%-12s %-10s ABI %u.%u  %s\n", d->name, d->version, d->abi_major,
               d->abi_minor, d->description);
        if (with_options && d->options && d->options[0].name)
            option_table_print(stdout, d->options, "    ");
        sink_library_close(&libs[i]);
    }
    free(libs);
    if (n == 0)
        printf("no sinks found\n");
    return 0;
}

/* libpq reads a -d value as a conninfo string or URI when it has an '=' or
 * a postgres:// prefix, else as a database name. */
static bool looks_like_conninfo(const char *conninfo)
{
    return strchr(conninfo, '=') || strncmp(conninfo, "postgres://", 11) == 0 ||
           strncmp(conninfo, "postgresql://", 13) == 0;
}

static bool conninfo_valid(const char *conninfo)
{
    if (!conninfo || !looks_like_conninfo(conninfo))
        return true;
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &why);
    bool ok = opts != NULL;
    PQfreemem(why);
    PQconninfoFree(opts);
    return ok;
}

/* The database a connection will reach, for three-part patterns
 * (db.schema.table), without connecting: config errors come first. */
static char *expected_dbname(const char *conninfo)
{
    char *dbname = NULL, *user = NULL;
    if (conninfo && !looks_like_conninfo(conninfo))
        return xstrdup(conninfo); /* a bare database name */
    PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
    PQconninfoOption *defaults = PQconndefaults();
    for (PQconninfoOption *set = opts ? opts : defaults; set;
         set = set == opts ? defaults : NULL) {
        for (PQconninfoOption *o = set; o && o->keyword; o++) {
            if (!o->val || !*o->val)
                continue;
            if (!dbname && strcmp(o->keyword, "dbname") == 0)
                dbname = xstrdup(o->val);
            if (!user && strcmp(o->keyword, "user") == 0)
                user = xstrdup(o->val);
        }
    }
    PQconninfoFree(opts);
    PQconninfoFree(defaults);
    if (!dbname)
        dbname = user ? user : xstrdup("");
    else
        free(user);
    return dbname;
}

/* Compiles include/exclude patterns; an error names where the pattern came
 * from ("FILE:LINE: sinks.[0].include", "command line: -t"). */
static table_filter *build_filter(char **include, size_t n_include,
                                  const char *include_origin, char **exclude,
                                  size_t n_exclude, const char *exclude_origin,
                                  const char *dbname, char *err, size_t errlen)
{
    table_filter *f = table_filter_new();
    char why[1024];
    for (size_t i = 0; i < n_include + n_exclude; i++) {
        bool excl = i >= n_include;
        const char *pat = excl ? exclude[i - n_include] : include[i];
        if (!table_filter_add(f, excl, pat, dbname, why, sizeof why)) {
            const char *origin = excl ? exclude_origin : include_origin;
            /* why names the pattern, shortened when long */
            snprintf(err, errlen, "%s: invalid %s pattern: %s",
                     origin ? origin : "table filter",
                     excl ? "exclude" : "include", why);
            table_filter_free(f);
            return NULL;
        }
    }
    return f;
}

static int compare_tables(const void *a, const void *b)
{
    const catalog_table *x = a, *y = b;
    int c = strcmp(x->schema, y->schema);
    return c ? c : strcmp(x->table, y->table);
}

/* Makes the filters' character classes ([[:upper:]], \w...) those of the
 * connected database's default collation, as the server would apply them
 * (README "Table patterns"). On failure *retryable says whether the
 * connection, not the setup, is at fault. */
static bool follow_server_ctype(PGconn *conn, table_filter *global,
                                sink_handle **sinks, size_t nsinks,
                                bool *retryable)
{
    char err[1024];
    database_ctype db;
    bool ok = catalog_database_ctype(conn, &db, err, sizeof err);
    if (ok) {
        ok = table_filter_follow_database(global, &db, err, sizeof err);
        for (size_t i = 0; ok && i < nsinks; i++)
            ok = table_filter_follow_database(sinks[i]->filter, &db, err,
                                              sizeof err);
        catalog_database_ctype_free(&db);
    }
    if (!ok) {
        log_error("%s", err);
        *retryable = PQstatus(conn) != CONNECTION_OK;
    }
    return ok;
}

static int list_tables(const pgspout_config *cfg, table_filter *filter)
{
    char err[1024];
    PGconn *conn = pg_connect(cfg->conninfo, false, err, sizeof err);
    if (!conn) {
        log_error("%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    bool retryable;
    if (!follow_server_ctype(conn, filter, NULL, 0, &retryable)) {
        PQfinish(conn);
        return EXIT_RUNTIME_FAILURE;
    }
    catalog_table *tables;
    size_t n;
    if (!catalog_list_tables(conn, &tables, &n, err, sizeof err)) {
        log_error("%s", err);
        PQfinish(conn);
        return EXIT_RUNTIME_FAILURE;
    }
    qsort(tables, n, sizeof *tables, compare_tables);
    for (size_t i = 0; i < n; i++) {
        if (!table_filter_matches(filter, tables[i].schema, tables[i].table,
                                  tables[i].visible))
            continue;
        /* The server's quote_ident: its keyword list is the one that
         * counts for this server version. */
        printf("%s\n", tables[i].quoted);
    }
    catalog_tables_free(tables, n);
    PQfinish(conn);
    return 0;
}

static int drop_slot(const pgspout_config *cfg)
{
    char err[1024];
    PGconn *repl = pg_connect(cfg->conninfo, true, err, sizeof err);
    if (!repl) {
        log_error("%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    bool ok = repl_drop_slot(repl, cfg->slot, err, sizeof err);
    if (ok)
        log_info("dropped replication slot \"%s\"", cfg->slot);
    else
        log_error("%s", err);
    PQfinish(repl);
    return ok ? 0 : EXIT_RUNTIME_FAILURE;
}

/* Makes sure the publication and the slot exist (creating them with
 * --create-slot on the first connection only: `reconnecting` means this
 * process streamed before, so a missing slot or publication was dropped
 * under it, and a new one would silently start after the changes made
 * meanwhile; nor could a new publication be used, as the server decodes
 * with the catalog of the slot's position). */
static bool prepare_slot(const pgspout_config *cfg, PGconn *catalog,
                         PGconn *repl, bool reconnecting, uint64_t *confirmed)
{
    char err[1024];
    bool create = cfg->create_slot && !reconnecting;
    if (!catalog_ensure_publication(catalog, cfg->publication, create, err,
                                    sizeof err)) {
        log_error("%s", err);
        return false;
    }
    bool exists;
    if (!catalog_slot_exists(catalog, cfg->slot, &exists, confirmed, err,
                             sizeof err)) {
        log_error("%s", err);
        return false;
    }
    if (exists)
        return true;
    if (reconnecting) {
        log_error("replication slot \"%s\" was dropped while pgspout was "
                  "streaming from it; changes after its last confirmed "
                  "position cannot be recovered, so no new slot is created: "
                  "re-create it and re-sync the sinks",
                  cfg->slot);
        return false;
    }
    if (!cfg->create_slot) {
        log_error("replication slot \"%s\" does not exist (--create-slot "
                  "creates it)",
                  cfg->slot);
        return false;
    }
    if (!repl_create_slot(repl, cfg->slot, err, sizeof err)) {
        log_error("%s", err);
        return false;
    }
    log_info("created replication slot \"%s\"", cfg->slot);
    return true;
}

typedef struct sink_set {
    sink_handle **sinks;
    size_t n;
} sink_set;

static void sink_set_free(sink_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        sink_handle_free(set->sinks[i]);
    free(set->sinks);
    set->sinks = NULL;
    set->n = 0;
}

/* Loads every configured sink and validates its options and filters; all
 * of it before anything connects, so configuration mistakes exit 2. */
static int load_sinks(pgspout_config *cfg, char **dirs, size_t ndirs,
                      const char *dbname, sink_set *set)
{
    char err[2048];
    set->sinks = xcalloc(cfg->n_sinks ? cfg->n_sinks : 1, sizeof *set->sinks);
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        sink_config *sc = &cfg->sinks[i];
        sink_library lib;
        if (!sink_library_open(sc->type, dirs, ndirs, &lib, err, sizeof err)) {
            fprintf(stderr, "pgspout: %s%s: %s\n", sc->origin,
                    strncmp(sc->origin, "command line", 12) ? ".type" : "",
                    err);
            return EXIT_USAGE;
        }
        if (config_validate_sink(sc, lib.desc->options, err, sizeof err) != 0) {
            fprintf(stderr, "pgspout: %s\n", err);
            sink_library_close(&lib);
            return EXIT_USAGE;
        }
        table_filter *f = build_filter(
            sc->include, sc->n_include, sc->include_origin, sc->exclude,
            sc->n_exclude, sc->exclude_origin, dbname, err, sizeof err);
        if (!f) {
            fprintf(stderr, "pgspout: %s\n", err);
            sink_library_close(&lib);
            return EXIT_USAGE;
        }
        set->sinks[set->n++] = sink_handle_new(sc->name, lib, sc->options, f);
    }
    return 0;
}

/* Waits before the next connection attempt; false when a stop signal came
 * meanwhile. */
static bool wait_to_reconnect(int attempt)
{
    int64_t ms = backoff_delay_ms(attempt);
    log_info("reconnecting in %lld ms (attempt %d)", (long long)ms, attempt);
    while (ms > 0 && !stop_requested) {
        int64_t step = ms < 100 ? ms : 100;
        struct timespec ts = {step / 1000, (long)(step % 1000) * 1000000};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !stop_requested;
}

/* Both connections, the slot checked (or created); false on failure, with
 * *retryable telling whether the server, not the setup, is at fault. */
static bool connect_and_prepare(pgspout_config *cfg, bool reconnecting,
                                PGconn **catalog, PGconn **repl,
                                uint64_t *start_lsn, bool *retryable)
{
    char err[1024];
    *catalog = pg_connect(cfg->conninfo, false, err, sizeof err);
    *repl = *catalog ? pg_connect(cfg->conninfo, true, err, sizeof err) : NULL;
    if (!*catalog || !*repl) {
        log_error("%s", err);
        *retryable = true;
        return false;
    }
    if (prepare_slot(cfg, *catalog, *repl, reconnecting, start_lsn))
        return true;
    *retryable =
        PQstatus(*catalog) != CONNECTION_OK || PQstatus(*repl) != CONNECTION_OK;
    return false;
}

/* Streams, reconnecting whenever the connection is lost (a server restart,
 * a failover, a network cut): each sink then skips what it already took in
 * this process, and the slot resends everything not confirmed. */
static int run_stream(pgspout_config *cfg, table_filter *global, sink_set *set)
{
    char *where = conninfo_redacted(cfg->conninfo);
    log_debug("connecting to %s", where);
    free(where);
    if (host_wake_init() < 0) {
        log_error("cannot create the wake-up pipe");
        return EXIT_RUNTIME_FAILURE;
    }
    bool sinks_created = false;
    for (int attempt = 1;; attempt++) {
        PGconn *catalog = NULL, *repl = NULL;
        uint64_t start_lsn = 0;
        bool retryable = false;
        int rc = EXIT_RUNTIME_FAILURE;
        if (connect_and_prepare(cfg, sinks_created, &catalog, &repl, &start_lsn,
                                &retryable) &&
            follow_server_ctype(catalog, global, set->sinks, set->n,
                                &retryable)) {
            if (!sinks_created) {
                block_stop_signals(true);
                bool ok = true;
                for (size_t i = 0; i < set->n && ok; i++) {
                    ok = sink_handle_create(set->sinks[i]) == PGSPOUT_OK;
                    if (!ok)
                        log_error("sink \"%s\" could not be started",
                                  set->sinks[i]->name);
                }
                block_stop_signals(false);
                if (!ok) {
                    PQfinish(repl);
                    PQfinish(catalog);
                    return EXIT_RUNTIME_FAILURE;
                }
                sinks_created = true;
            } else {
                for (size_t i = 0; i < set->n; i++)
                    sink_handle_skip_delivered(set->sinks[i]);
            }
            stream_settings settings;
            stream_settings_default(&settings);
            settings.slot = cfg->slot;
            settings.publication = cfg->publication;
            settings.start_lsn = start_lsn;
            settings.has_endpos = cfg->has_endpos;
            settings.endpos = cfg->endpos;
            settings.status_interval_ms = cfg->status_interval_s * 1000;
            int64_t streamed_since = now_us();
            rc = stream_run(repl, catalog, global, set->sinks, set->n,
                            &settings, &stop_requested);
            retryable = rc == STREAM_DISCONNECTED;
            /* Connecting is not recovering: a stream that fails at once
             * (the slot still held by another client, a server that drops
             * us right away) must keep backing off instead of retrying
             * every 100 ms forever. Streaming for a while (10 s) counts
             * as recovered. */
            if (now_us() - streamed_since >= RECOVERED_AFTER_US)
                attempt = 0;
        }
        PQfinish(repl);
        PQfinish(catalog);
        if (!retryable)
            return rc;
        if (!sinks_created && !cfg->retry_initial) {
            log_error("cannot start (--retry-initial keeps trying)");
            return EXIT_RUNTIME_FAILURE;
        }
        log_warning("connection to the server lost; nothing unacknowledged "
                    "was confirmed");
        if (!wait_to_reconnect(attempt + 1)) {
            /* What the sinks took is flushed; it is confirmed next time. */
            for (size_t i = 0; i < set->n && sinks_created; i++)
                set->sinks[i]->lib.desc->flush(set->sinks[i]->state);
            log_error("stopped while disconnected; changes not yet "
                      "confirmed are sent again on restart");
            return EXIT_RUNTIME_FAILURE;
        }
    }
}

int main(int argc, char **argv)
{
    pgspout_config cfg;
    char err[2048];
    if (config_from_args(argc, argv, &cfg, err, sizeof err) != 0) {
        config_free(&cfg);
        return usage_error(err);
    }
    if (cfg.show_version) {
        printf("pgspout %s (sink ABI %d.%d)\n", PGSPOUT_VERSION,
               PGSPOUT_ABI_MAJOR, PGSPOUT_ABI_MINOR);
        config_free(&cfg);
        return 0;
    }
    log_set_level(cfg.verbosity > 0 ? PGSPOUT_LOG_DEBUG : PGSPOUT_LOG_INFO);
    install_signal_handlers();

    char **dirs = NULL;
    size_t ndirs = 0;
    int rc = plugin_dirs(&cfg, &dirs, &ndirs);
    if (rc != 0) {
        config_free(&cfg);
        return rc;
    }
    if (!loader_init(err, sizeof err)) {
        log_error("%s", err);
        free(dirs);
        config_free(&cfg);
        return EXIT_RUNTIME_FAILURE;
    }
    if (!conninfo_valid(cfg.conninfo)) {
        rc = usage_error("invalid connection string given with -d or "
                         "connection (libpq's message is withheld: it could "
                         "quote a password)");
        free(dirs);
        loader_shutdown();
        config_free(&cfg);
        return rc;
    }
    char *dbname = expected_dbname(cfg.conninfo);
    table_filter *global = NULL;
    sink_set sinks = {0};

    if (cfg.show_help || cfg.list_sinks) {
        if (cfg.show_help) {
            config_print_usage(stdout);
            printf("\nSinks found in the plugin directories, with their "
                   "options:\n");
        }
        rc = list_sinks(dirs, ndirs, true);
        goto done;
    }
    if (cfg.drop_slot) {
        rc = drop_slot(&cfg);
        goto done;
    }
    global = build_filter(cfg.include, cfg.n_include, cfg.include_origin,
                          cfg.exclude, cfg.n_exclude, cfg.exclude_origin,
                          dbname, err, sizeof err);
    if (!global) {
        rc = usage_error(err);
        goto done;
    }
    if (cfg.list_tables) {
        rc = list_tables(&cfg, global);
        goto done;
    }
    rc = load_sinks(&cfg, dirs, ndirs, dbname, &sinks);
    if (rc == 0)
        rc = run_stream(&cfg, global, &sinks);

done:
    sink_set_free(&sinks);
    if (global)
        table_filter_free(global);
    free(dbname);
    free(dirs);
    loader_shutdown();
    config_free(&cfg);
    return rc;
}
