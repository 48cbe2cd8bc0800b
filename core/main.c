/* pgspout: stream PostgreSQL changes to sinks. Modes: stream (default),
 * --drop-slot, --list-tables, --list-sinks, --help, --version; and the
 * subcommand `pgspout backfill` (backfill_cli.h). */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backfill.h"
#include "backfill_cli.h"
#include "backoff.h"
#include "catalog.h"
#include "config.h"
#include "config_usage.h"
#include "conninfo.h"
#include "delivery.h"
#include "loader.h"
#include "log.h"
#include "ops.h"
#include "pattern.h"
#include "pgconn.h"
#include "pgspout/abi.h"
#include "replication.h"
#include "selection.h"
#include "slot_guard.h"
#include "status_cli.h"
#include "strbuf.h"
#include "stream.h"

#define EXIT_RUNTIME_FAILURE 1
#define EXIT_USAGE 2
#define RECOVERED_AFTER_US (INT64_C(10) * 1000000)

/* The one stop state (stop.h), passed down to everything that waits; a
 * static only because the signal handler has no other way to reach it. */
static stop_state stop;

/* Counts signals: the first asks for a clean stop, a second one gives up
 * on a sink that keeps failing during that stop. */
static void request_stop(int signo)
{
    (void)signo;
    stop_signal(&stop);
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

static int compare_sources(const void *a, const void *b)
{
    const catalog_table *x = &((const catalog_source *)a)->chain.tables[0];
    const catalog_table *y = &((const catalog_source *)b)->chain.tables[0];
    int c = strcmp(x->schema, y->schema);
    return c ? c : strcmp(x->table, y->table);
}

/* Makes the filters' character classes ([[:upper:]], \w...) those of the
 * connected database's default collation, as the server would apply them
 * (README "Table patterns"). On failure *retryable says whether the
 * connection, not the setup, is at fault. */
static bool follow_server_ctype(PGconn *conn, table_filter *global, delivery *d,
                                backfill *bf, bool *retryable)
{
    char err[1024];
    database_ctype db;
    bool ok = catalog_database_ctype(conn, &stop, &db, err, sizeof err);
    if (ok) {
        ok = table_filter_follow_database(global, &db, err, sizeof err) &&
             (!d || delivery_follow_database(d, &db, err, sizeof err));
        if (ok && bf)
            backfill_follow_database(bf, &db);
        catalog_database_ctype_free(&db);
    }
    if (!ok) {
        log_error("%s", err);
        *retryable = !stop_requested(&stop) && !catalog_connection_usable(conn);
    }
    return ok;
}

/* The relations whose names the publication's changes carry (with
 * `exists` false: those of the publication --create-slot would create);
 * with via_root, a filter that selects a partition apart from the
 * partitioned table its changes arrive under is refused. Returns 0,
 * EXIT_USAGE for such a filter, EXIT_RUNTIME_FAILURE when the catalog
 * cannot be read; errors are logged. */
static int load_sources(PGconn *conn, const char *publication, bool exists,
                        bool via_root, const selection *sel,
                        catalog_source **sources, size_t *n)
{
    char err[2048], what[256];
    if (!catalog_publication_sources(conn, &stop, publication, exists, sources,
                                     n, err, sizeof err)) {
        log_error("%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    snprintf(what, sizeof what, "publication \"%s\"%s", publication,
             exists ? "" : ", as --create-slot creates it,");
    for (size_t i = 0; i < *n && via_root; i++) {
        if (!selection_check_partitions(sel, &(*sources)[i], what, err,
                                        sizeof err)) {
            log_error("%s", err);
            catalog_sources_free(*sources, *n);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* Prints what will stream and under which name: the tables whose changes
 * the publication sends, judged by the filter with their partition chains,
 * as their events name them. */
static int list_tables(const pgspout_config *cfg, table_filter *filter)
{
    char err[1024];
    PGconn *conn =
        pq_connect(cfg->conninfo, false, &stop, NULL, err, sizeof err);
    if (!conn) {
        log_error("%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    bool retryable, exists, via_root;
    if (!follow_server_ctype(conn, filter, NULL, NULL, &retryable) ||
        !catalog_publication_info(conn, &stop, cfg->publication, &exists,
                                  &via_root, err, sizeof err, NULL)) {
        log_error("%s", err);
        PQfinish(conn);
        return EXIT_RUNTIME_FAILURE;
    }
    if (!exists) {
        log_info("publication \"%s\" does not exist yet: listing what "
                 "would stream from the one --create-slot creates (FOR ALL "
                 "TABLES WITH (publish_via_partition_root = true))",
                 cfg->publication);
        via_root = true;
    }
    selection *sel = selection_new(filter, NULL, 0);
    catalog_source *sources;
    size_t n;
    int rc = load_sources(conn, cfg->publication, exists, via_root, sel,
                          &sources, &n);
    if (rc == 0) {
        qsort(sources, n, sizeof *sources, compare_sources);
        /* The server's quote_ident: its keyword list is the one that
         * counts for this server version. */
        for (size_t i = 0; i < n; i++)
            if (selection_global(sel, &sources[i].chain))
                printf("%s\n", sources[i].chain.tables[0].quoted);
        catalog_sources_free(sources, n);
    }
    selection_free(sel);
    PQfinish(conn);
    return rc;
}

static int drop_slot(const pgspout_config *cfg)
{
    char err[1024];
    PGconn *repl =
        pq_connect(cfg->conninfo, true, &stop, NULL, err, sizeof err);
    if (!repl) {
        log_error("%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    bool ok = repl_drop_slot(repl, &stop, cfg->slot, cfg->drop_slot_wait_s, err,
                             sizeof err);
    if (ok)
        log_info("dropped replication slot \"%s\"", cfg->slot);
    else
        log_error("%s", err);
    PQfinish(repl);
    return ok ? 0 : EXIT_RUNTIME_FAILURE;
}

/* What connecting learned that the backfills need. */
typedef struct server_facts {
    char system_id[32];
    char database[256];
    bool slot_created;   /* by this run */
    uint64_t created_at; /* the new slot's consistent point */
    uint64_t confirmed;  /* the slot's confirmed_flush_lsn */
} server_facts;

/* --failover needs failover slots (logged when refused). */
static bool failover_supported(const pgspout_config *cfg, PGconn *catalog)
{
    if (!cfg->failover || PQserverVersion(catalog) >= 170000)
        return true;
    log_error("--failover needs PostgreSQL 17 or later (failover slots)");
    return false;
}

/* An existing slot: usable, and a failover slot when --failover asks. */
static bool check_existing_slot(const pgspout_config *cfg, PGconn *catalog,
                                PGconn *repl, bool *not_yet)
{
    char err[1024];
    slot_state st;
    slot_verdict verdict =
        slot_guard_check_start(catalog, &stop, cfg->slot, &st);
    *not_yet = verdict == SLOT_NOT_YET;
    if (verdict != SLOT_USABLE)
        return false;
    if (!cfg->failover || st.failover || st.in_recovery)
        return true;
    if (!failover_supported(cfg, catalog))
        return false;
    if (!repl_make_failover_slot(repl, &stop, cfg->slot, err, sizeof err)) {
        log_error("%s", err);
        return false;
    }
    log_info("replication slot \"%s\" is now a failover slot", cfg->slot);
    return true;
}

/* An older server lacks what pgspout asks of it (logical decoding
 * messages, pg_replication_slots.two_phase): refused by name before the
 * publication or the slot is made, so that nothing is left behind. */
static int check_server_version(PGconn *catalog)
{
    int version = PQserverVersion(catalog);
    if (version >= 140000)
        return 0;
    log_error("the server runs PostgreSQL %d.%d; pgspout needs PostgreSQL "
              "14 or later",
              version / 10000, version % 10000 / 100);
    return EXIT_USAGE;
}

/* Makes sure the publication and the slot exist (creating them with
 * --create-slot on the first connection only: `reconnecting` means this
 * process streamed before, so a missing slot or publication was dropped
 * under it, and a new one would silently start after the changes made
 * meanwhile; nor could a new publication be used, as the server decodes
 * with the catalog of the slot's position). */
static bool prepare_slot(const pgspout_config *cfg, PGconn *catalog,
                         PGconn *repl, bool reconnecting, uint64_t *confirmed,
                         server_facts *facts, bool *not_yet)
{
    char err[1024];
    bool create = cfg->create_slot && !reconnecting;
    if (!catalog_ensure_publication(catalog, &stop, cfg->publication, create,
                                    cfg->publish_generated_columns, err,
                                    sizeof err)) {
        log_error("%s", err);
        return false;
    }
    bool exists;
    if (!catalog_slot_exists(catalog, &stop, cfg->slot, &exists, confirmed, err,
                             sizeof err)) {
        log_error("%s", err);
        return false;
    }
    if (exists)
        return check_existing_slot(cfg, catalog, repl, not_yet);
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
    if (!failover_supported(cfg, catalog))
        return false;
    if (!repl_create_slot(repl, &stop, cfg->slot, cfg->failover,
                          &facts->created_at, err, sizeof err)) {
        log_error("%s", err);
        return false;
    }
    facts->slot_created = true;
    log_info("created replication slot \"%s\"%s", cfg->slot,
             cfg->failover ? " (a failover slot)" : "");
    return true;
}

/* Waits before the next connection attempt; false when a stop signal came
 * meanwhile. */
static bool wait_to_reconnect(int attempt)
{
    int64_t ms = backoff_delay_ms(attempt);
    log_info("reconnecting in %lld ms (attempt %d)", (long long)ms, attempt);
    return stop_sleep(&stop, ms);
}

/* Before anything streams or is created: with publish_via_partition_root
 * (the publication's, or the one --create-slot is about to create), a
 * filter that selects a partition apart from the partitioned table its
 * changes arrive under is a configuration conflict. */
static int check_partition_filters(const pgspout_config *cfg, PGconn *catalog,
                                   const selection *sel)
{
    char err[1024];
    bool exists, via_root;
    if (!selection_has_patterns(sel))
        return 0;
    if (!catalog_publication_info(catalog, &stop, cfg->publication, &exists,
                                  &via_root, err, sizeof err, NULL)) {
        log_error("%s", err);
        return EXIT_RUNTIME_FAILURE;
    }
    /* A missing publication without --create-slot: prepare_slot says so. */
    if (exists ? !via_root : !cfg->create_slot)
        return 0;
    catalog_source *sources;
    size_t n;
    int rc = load_sources(catalog, cfg->publication, exists, true, sel,
                          &sources, &n);
    if (rc == 0)
        catalog_sources_free(sources, n);
    return rc;
}

/* Both connections, the filters and the slot checked (or created); returns
 * 0 or the exit status, with *retryable telling whether the server, not
 * the setup, is at fault. Partitions attached later are checked as their
 * Relation messages arrive. */
static int connect_and_prepare(pgspout_config *cfg, table_filter *global,
                               delivery *d, backfill *bf, bool reconnecting,
                               PGconn **catalog, PGconn **repl,
                               uint64_t *start_lsn, server_facts *facts,
                               bool *retryable)
{
    char err[1024];
    pq_outcome outcome;
    *catalog =
        pq_connect(cfg->conninfo, false, &stop, &outcome, err, sizeof err);
    if (*catalog)
        *repl =
            pq_connect(cfg->conninfo, true, &stop, &outcome, err, sizeof err);
    if (!*catalog || !*repl) {
        log_error("%s", err);
        *retryable = outcome != PQ_STOPPED;
        return EXIT_RUNTIME_FAILURE;
    }
    /* The filters' classes first: the partition check applies them. */
    if (!follow_server_ctype(*catalog, global, d, bf, retryable))
        return EXIT_RUNTIME_FAILURE;
    if (!repl_identify_system(*repl, &stop, facts->system_id,
                              sizeof facts->system_id, facts->database,
                              sizeof facts->database, err, sizeof err)) {
        log_error("%s", err);
        *retryable = !stop_requested(&stop);
        return EXIT_RUNTIME_FAILURE;
    }
    int rc = reconnecting ? 0 : check_server_version(*catalog);
    if (rc == 0 && !reconnecting)
        rc = check_partition_filters(cfg, *catalog, delivery_selection(d));
    bool not_yet = false;
    if (rc == 0 && !prepare_slot(cfg, *catalog, *repl, reconnecting, start_lsn,
                                 facts, &not_yet))
        rc = EXIT_RUNTIME_FAILURE;
    facts->confirmed = *start_lsn;
    /* A broken or unanswered connection is the server's doing; a stop is
     * the user's. So is a standby not promoted yet, after a failover. */
    *retryable =
        rc == EXIT_RUNTIME_FAILURE && !stop_requested(&stop) &&
        (!catalog_connection_usable(*catalog) ||
         !catalog_connection_usable(*repl) || (not_yet && reconnecting));
    return rc;
}

/* A stop while no connection streams (waiting to reconnect, or inside a
 * connection attempt): nothing more can be confirmed. */
static int stopped_while_disconnected(delivery *d)
{
    /* What the sinks took is flushed; it is confirmed next time. */
    delivery_flush_abandoned(d);
    log_error("stopped while disconnected; changes not yet confirmed are "
              "sent again on restart");
    return EXIT_RUNTIME_FAILURE;
}

/* Under the system temp directory, one per user and slot (README
 * "Streamed transactions"); kept for the process's life. */
static const char *default_spill_dir(const char *slot)
{
    static char dir[4096];
    const char *tmp = getenv("TMPDIR");
    if (!tmp || tmp[0] != '/')
        tmp = "/tmp";
    snprintf(dir, sizeof dir, "%s/pgspout-%lu-%s", tmp, (unsigned long)getuid(),
             slot);
    return dir;
}

/* The stream's settings: the user's from the configuration, the fixed
 * limits from stream_settings_default. */
static void stream_settings_from_config(const pgspout_config *cfg,
                                        uint64_t start_lsn,
                                        const server_facts *facts,
                                        stream_settings *settings)
{
    stream_settings_default(settings);
    settings->conninfo = cfg->conninfo;
    settings->slot = cfg->slot;
    settings->publication = cfg->publication;
    settings->start_lsn = start_lsn;
    settings->has_endpos = cfg->has_endpos;
    settings->endpos = cfg->endpos;
    settings->status_interval_ms = cfg->status_interval_s * 1000;
    settings->server_timeout_ms = cfg->server_timeout_s * 1000;
    settings->events.messages = cfg->messages;
    settings->events.prefixes = (const char *const *)cfg->message_prefixes;
    settings->events.nprefixes = cfg->n_message_prefixes;
    settings->events.transaction_events = cfg->transaction_events;
    settings->streaming = strcmp(cfg->streaming, "off") != 0;
    settings->stream_memory = cfg->stream_memory;
    settings->spill_dir =
        cfg->spill_dir ? cfg->spill_dir : default_spill_dir(cfg->slot);
    settings->system_id = facts->system_id;
    settings->database = facts->database;
    settings->slot_created = facts->slot_created;
}

typedef enum snapshot_mode {
    SNAPSHOT_NEVER,
    SNAPSHOT_INITIAL,
    SNAPSHOT_ONLY
} snapshot_mode;

/* --snapshot, or its default: initial when this run created the slot. */
static snapshot_mode snapshot_mode_of(const pgspout_config *cfg,
                                      bool slot_created)
{
    if (!cfg->snapshot)
        return slot_created ? SNAPSHOT_INITIAL : SNAPSHOT_NEVER;
    if (strcmp(cfg->snapshot, "only") == 0)
        return SNAPSHOT_ONLY;
    return strcmp(cfg->snapshot, "initial") == 0 ? SNAPSHOT_INITIAL
                                                 : SNAPSHOT_NEVER;
}

/* Requests the initial snapshot when the mode asks for one and the slot
 * has none yet: right after creating the slot (so the request is in the
 * WAL before anything could be lost), or for an existing slot whose state
 * directory lists none. *id names it (empty: none). Returns 0 or the exit
 * status. */
static int request_snapshot(const pgspout_config *cfg, PGconn *catalog,
                            const server_facts *facts, const char *state_dir,
                            char *id, size_t idlen)
{
    char err[1024];
    id[0] = '\0';
    snapshot_mode mode = snapshot_mode_of(cfg, facts->slot_created);
    if (mode == SNAPSHOT_NEVER)
        return 0;
    if (!facts->slot_created &&
        backfill_initial_id(state_dir, facts->system_id, facts->database,
                            cfg->slot, id, idlen))
        return 0;
    uint64_t at = facts->slot_created ? facts->created_at : facts->confirmed;
    if (!backfill_request_initial(catalog, &stop, cfg->slot, at, id, idlen, err,
                                  sizeof err)) {
        log_error("%s; run again with --snapshot %s to request it", err,
                  mode == SNAPSHOT_ONLY ? "only" : "initial");
        return EXIT_RUNTIME_FAILURE;
    }
    log_info("requested the initial snapshot of slot \"%s\" (backfill %s)",
             cfg->slot, id);
    return 0;
}

/* The backfill manager for this run's slot. */
static backfill *backfill_for(const pgspout_config *cfg, const char *dbname)
{
    char *dir = cfg->state_dir ? xstrdup(cfg->state_dir)
                               : backfill_default_state_dir(cfg->slot);
    backfill_settings s = {
        .conninfo = cfg->conninfo,
        .slot = cfg->slot,
        .publication = cfg->publication,
        .state_dir = dir,
        .status_schema = cfg->status_schema,
        .dbname = dbname,
        .chunk_rows = cfg->backfill_chunk_rows,
        .workers = cfg->backfill_workers,
        .chunk_readers = cfg->backfill_chunk_readers,
        .max_rows_per_sec = cfg->backfill_max_rows_per_sec,
    };
    backfill *bf = backfill_new(&s);
    free(dir);
    return bf;
}

/* Streams, reconnecting whenever the connection is lost (a server restart,
 * a failover, a network cut): each sink then skips what it already took in
 * this process, and the slot resends everything not confirmed. */
static int run_stream(pgspout_config *cfg, table_filter *global, delivery *d,
                      backfill *bf)
{
    char *where = conninfo_redacted(cfg->conninfo);
    log_debug("connecting to %s", where);
    free(where);
    if (!stop_open_wake(&stop)) {
        log_error("cannot create the wake-up pipe");
        return EXIT_RUNTIME_FAILURE;
    }
    server_facts facts;
    memset(&facts, 0, sizeof facts);
    char snapshot_id[64] = "";
    for (int attempt = 1;; attempt++) {
        PGconn *catalog = NULL, *repl = NULL;
        uint64_t start_lsn = 0;
        bool retryable = false;
        bool reconnecting = delivery_started(d);
        ops_connecting();
        int rc = connect_and_prepare(cfg, global, d, bf, reconnecting, &catalog,
                                     &repl, &start_lsn, &facts, &retryable);
        if (rc == 0 && !reconnecting)
            rc = request_snapshot(cfg, catalog, &facts, backfill_state_dir(bf),
                                  snapshot_id, sizeof snapshot_id);
        bool connected = rc == 0;
        if (connected) {
            if (reconnecting) {
                delivery_skip_delivered(d);
            } else if (!delivery_start(d)) {
                PQfinish(repl);
                PQfinish(catalog);
                return EXIT_RUNTIME_FAILURE;
            }
            stream_settings settings;
            stream_settings_from_config(cfg, start_lsn, &facts, &settings);
            settings.backfill = bf;
            if (snapshot_mode_of(cfg, facts.slot_created) == SNAPSHOT_ONLY)
                settings.finish_backfill = snapshot_id;
            int64_t streamed_since = now_us();
            rc = stream_from_server(repl, &catalog, d, &settings, &stop);
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
        if (!connected && stop_requested(&stop))
            return stopped_while_disconnected(d);
        if (!retryable)
            return rc;
        if (!delivery_started(d) && !cfg->retry_initial) {
            log_error("cannot start (--retry-initial keeps trying)");
            return EXIT_RUNTIME_FAILURE;
        }
        log_warning("connection to the server lost; nothing unacknowledged "
                    "was confirmed");
        ops_reconnecting(attempt + 1);
        if (!wait_to_reconnect(attempt + 1))
            return stopped_while_disconnected(d);
    }
}

int main(int argc, char **argv)
{
    pgspout_config cfg;
    char err[2048];
    pq_library_init();
    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return status_cli_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "backfill") == 0) {
        stop_init(&stop);
        install_signal_handlers();
        return backfill_main(argc - 1, argv + 1, &stop);
    }
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
    log_set_format((log_format)cfg.log_format);
    stop_init(&stop);
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
    char *dbname = conninfo_dbname(cfg.conninfo);
    table_filter *global = NULL;
    delivery *sinks = NULL;

    if (cfg.show_help || cfg.list_sinks) {
        if (cfg.show_help) {
            config_print_usage(stdout);
            printf("\nSinks found in the plugin directories, with their "
                   "options:\n");
        }
        rc = list_sinks(dirs, ndirs, true);
        goto done;
    }
    /* libpq checks most option values only when it connects; a bad one is
     * a usage error, not a connection failure to retry. */
    if (!conninfo_check(cfg.conninfo, err, sizeof err)) {
        rc = usage_error(err);
        goto done;
    }
    if (cfg.drop_slot) {
        rc = drop_slot(&cfg);
        goto done;
    }
    global = table_filter_build(cfg.include, cfg.n_include, cfg.include_origin,
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
    sinks = delivery_new(global, &stop);
    if (!ops_start(&cfg, &stop, err, sizeof err)) {
        rc = usage_error(err);
        goto done;
    }
    rc = delivery_load(sinks, cfg.sinks, cfg.n_sinks, dirs, ndirs, dbname);
    if (rc == 0) {
        backfill *bf = backfill_for(&cfg, dbname);
        rc = run_stream(&cfg, global, sinks, bf);
        backfill_free(bf);
    }

done:
    ops_finish();
    delivery_free(sinks);
    if (global)
        table_filter_free(global);
    free(dbname);
    free(dirs);
    loader_shutdown();
    config_free(&cfg);
    return rc;
}
