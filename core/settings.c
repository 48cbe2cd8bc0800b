#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "conninfo.h"
#include "http_listen.h"
#include "log.h"
#include "lsn.h"
#include "options.h"

/* Seconds; keeps the value in milliseconds within an int. */
#define MAX_SECONDS (INT_MAX / 1000)
/* NAMEDATALEN - 1, the longest name PostgreSQL accepts for a slot. */
#define MAX_SLOT_NAME_LEN 63

#define AT(field) offsetof(pgspout_config, field)

static const char *const snapshot_modes[] = {"initial", "never", "only", NULL};
static const char *const generated_modes[] = {"stored", "none", NULL};
static const char *const on_off[] = {"on", "off", NULL};

/* In the order --help and README list them. */
const core_setting core_settings[] = {
    {.short_flag = 'd',
     .long_flag = "dbname",
     .arg_name = "CONNINFO",
     .key = "connection",
     .type = SETTING_CONNINFO,
     .at = AT(conninfo),
     .doc = "libpq connection string or URI; PG* environment variables "
            "work as in libpq"},
    {.short_flag = 'S',
     .long_flag = "slot",
     .arg_name = "NAME",
     .key = "slot",
     .type = SETTING_SLOT_NAME,
     .default_text = "pgspout",
     .at = AT(slot),
     .doc = "logical replication slot (lower-case letters, digits, _)"},
    {.long_flag = "publication",
     .arg_name = "NAME",
     .key = "publication",
     .type = SETTING_NAME,
     .default_text = "pgspout",
     .at = AT(publication),
     .doc = "publication"},
    {.long_flag = "create-slot",
     .key = "create_slot",
     .type = SETTING_BOOL,
     .at = AT(create_slot),
     .stream_only = true,
     .doc = "create the slot and the publication when missing, then stream"},
    {.long_flag = "publish-generated-columns",
     .arg_name = "MODE",
     .key = "publish_generated_columns",
     .type = SETTING_CHOICE,
     .choices = generated_modes,
     .default_text = "stored",
     .at = AT(publish_generated_columns),
     .stream_only = true,
     .doc = "PostgreSQL 18+: whether the publication --create-slot creates "
            "publishes stored generated columns (stored) or not (none)"},
    {.long_flag = "failover",
     .key = "failover",
     .type = SETTING_BOOL,
     .at = AT(failover),
     .stream_only = true,
     .doc = "PostgreSQL 17+: make the slot a failover slot, which standbys "
            "with sync_replication_slots keep in sync, so that pgspout goes "
            "on from a promoted standby"},
    {.long_flag = "retry-initial",
     .key = "retry_initial",
     .type = SETTING_BOOL,
     .at = AT(retry_initial),
     .stream_only = true,
     .doc = "keep retrying (with backoff) when the first connection fails "
            "(a lost connection is always retried)"},
    {.long_flag = "drop-slot",
     .type = SETTING_MODE,
     .at = AT(drop_slot),
     .doc = "drop the slot and exit"},
    {.long_flag = "wait",
     .arg_name = "SECS",
     .type = SETTING_SECONDS,
     .default_text = "0",
     .min = 0,
     .max = MAX_SECONDS,
     .at = AT(drop_slot_wait_s),
     .requires = "drop-slot",
     .doc = "with --drop-slot: while another client holds the slot, ask "
            "again for up to SECS seconds"},
    {.short_flag = 't',
     .long_flag = "table",
     .arg_name = "PATTERN",
     .key = "include",
     .type = SETTING_PATTERNS,
     .at = AT(include),
     .count_at = AT(n_include),
     .origin_at = AT(include_origin),
     .doc = "stream only matching tables (repeatable)"},
    {.short_flag = 'T',
     .long_flag = "exclude-table",
     .arg_name = "PATTERN",
     .key = "exclude",
     .type = SETTING_PATTERNS,
     .at = AT(exclude),
     .count_at = AT(n_exclude),
     .origin_at = AT(exclude_origin),
     .doc = "never stream matching tables (repeatable; wins over -t)"},
    {.long_flag = "messages",
     .key = "messages",
     .type = SETTING_BOOL,
     .at = AT(messages),
     .doc = "PostgreSQL 14+: deliver logical decoding messages "
            "(pg_logical_emit_message) as message events"},
    {.long_flag = "message-prefix",
     .arg_name = "GLOB",
     .key = "message_prefixes",
     .type = SETTING_PATTERNS,
     .at = AT(message_prefixes),
     .count_at = AT(n_message_prefixes),
     .origin_at = AT(message_prefixes_origin),
     .doc = "with --messages: deliver only messages whose prefix matches "
            "(shell glob; repeatable; default: every prefix)"},
    {.long_flag = "transaction-events",
     .key = "transaction_events",
     .type = SETTING_BOOL,
     .at = AT(transaction_events),
     .doc = "begin and commit events around each delivered transaction, "
            "the commit counting its events"},
    {.long_flag = "list-tables",
     .type = SETTING_MODE,
     .at = AT(list_tables),
     .doc = "print the tables that will stream, as their events name them, "
            "and exit"},
    {.long_flag = "sink",
     .arg_name = "NAME",
     .type = SETTING_SINK,
     .stream_only = true,
     .doc = "the sink to stream to: a sink name, or an absolute path to a "
            ".so"},
    {.short_flag = 'o',
     .long_flag = "option",
     .arg_name = "KEY=VALUE",
     .type = SETTING_SINK_OPTION,
     .requires = "sink",
     .named_short = true,
     .doc = "an option of the --sink sink (repeatable)"},
    {.key = "sinks",
     .type = SETTING_SINKS,
     .doc = "the sinks to stream to, each with its own options and filters"},
    {.short_flag = 'E',
     .long_flag = "endpos",
     .arg_name = "LSN",
     .key = "endpos",
     .type = SETTING_LSN,
     .at = AT(endpos),
     .count_at = AT(has_endpos),
     .stream_only = true,
     .doc = "stop once every transaction committed at or before LSN is "
            "delivered, durable and confirmed"},
    {.long_flag = "plugin-dir",
     .arg_name = "DIR",
     .key = "plugin_dir",
     .type = SETTING_PLUGIN_DIRS,
     .at = AT(plugin_dirs),
     .count_at = AT(n_plugin_dirs),
     .doc = "also look for sinks in DIR, before the install directory "
            "(absolute; repeatable)"},
    {.long_flag = "list-sinks",
     .type = SETTING_MODE,
     .at = AT(list_sinks),
     .doc = "print each sink found, with its options, and exit"},
    {.short_flag = 's',
     .long_flag = "status-interval",
     .arg_name = "SECS",
     .key = "status_interval",
     .type = SETTING_SECONDS,
     .default_text = "10",
     .min = 0,
     .max = MAX_SECONDS,
     .at = AT(status_interval_s),
     .doc = "seconds between standby status updates; 0 disables the "
            "periodic update"},
    {.long_flag = "server-timeout",
     .arg_name = "SECS",
     .key = "server_timeout",
     .type = SETTING_SECONDS,
     .default_text = "40",
     .min = 4,
     .max = MAX_SECONDS,
     .at = AT(server_timeout_s),
     .doc = "seconds of silence after which the server is taken for gone "
            "and pgspout reconnects: after a quarter of them it asks the "
            "server for a sign of life, which a live server answers at once"},
    {.long_flag = "snapshot",
     .arg_name = "MODE",
     .key = "snapshot",
     .type = SETTING_CHOICE,
     .choices = snapshot_modes,
     .at = AT(snapshot),
     .stream_only = true,
     .doc = "copy the existing rows of the selected tables: initial (then "
            "stream; the default when --create-slot creates the slot), never "
            "(the default otherwise), or only (exit 0 once the copy is "
            "durable and confirmed)"},
    {.long_flag = "state-dir",
     .arg_name = "DIR",
     .key = "state_dir",
     .type = SETTING_DIR,
     .at = AT(state_dir),
     .stream_only = true,
     .doc = "where backfills keep their progress and spill files (absolute; "
            "default: /var/lib/pgspout/SLOT as root, else "
            "$XDG_STATE_HOME/pgspout/SLOT or ~/.local/state/pgspout/SLOT)"},
    {.long_flag = "status-schema",
     .arg_name = "NAME",
     .key = "status_schema",
     .type = SETTING_NAME,
     .default_text = "public",
     .at = AT(status_schema),
     .stream_only = true,
     .doc = "schema of the backfill status table pgspout_backfill_status"},
    {.long_flag = "backfill-chunk-rows",
     .arg_name = "N",
     .key = "backfill_chunk_rows",
     .type = SETTING_INTEGER,
     .default_text = "100000",
     .min = 1,
     .max = 10000000,
     .at = AT(backfill_chunk_rows),
     .stream_only = true,
     .doc = "rows read per chunk (one short transaction each)"},
    {.long_flag = "backfill-workers",
     .arg_name = "N",
     .key = "backfill_workers",
     .type = SETTING_INTEGER,
     .default_text = "1",
     .min = 1,
     .max = 32,
     .at = AT(backfill_workers),
     .stream_only = true,
     .doc = "tables copied in parallel, each worker on a connection of its "
            "own"},
    {.long_flag = "backfill-chunk-readers",
     .arg_name = "N",
     .key = "backfill_chunk_readers",
     .type = SETTING_INTEGER,
     .default_text = "1",
     .min = 1,
     .max = 16,
     .at = AT(backfill_chunk_readers),
     .stream_only = true,
     .doc = "connections each worker reads a chunk with, together, in one "
            "snapshot"},
    {.long_flag = "backfill-max-rows-per-sec",
     .arg_name = "N",
     .key = "backfill_max_rows_per_sec",
     .type = SETTING_INTEGER,
     .default_text = "0",
     .min = 0,
     .max = INT_MAX,
     .at = AT(backfill_max_rows_per_sec),
     .stream_only = true,
     .doc = "at most this many rows read per second, all workers together; "
            "0: no limit"},
    {.long_flag = "http",
     .arg_name = "ADDR:PORT",
     .key = "http_listen",
     .type = SETTING_LISTEN,
     .at = AT(http_listen),
     .stream_only = true,
     .doc = "serve /health, /ready and /metrics over HTTP on ADDR:PORT "
            "(off by default)"},
    {.long_flag = "heartbeat-interval",
     .arg_name = "SECS",
     .key = "heartbeat_interval",
     .type = SETTING_SECONDS,
     .default_text = "60",
     .min = 0,
     .max = MAX_SECONDS,
     .at = AT(heartbeat_interval_s),
     .stream_only = true,
     .doc = "after SECS seconds without an event for any sink, write a "
            "heartbeat message to the WAL; 0 disables heartbeats"},
    {.long_flag = "max-slot-lag",
     .arg_name = "BYTES",
     .key = "max_slot_lag",
     .type = SETTING_BYTES,
     .at = AT(max_slot_lag),
     .stream_only = true,
     .doc = "not ready, with a warning, while the slot is more than BYTES "
            "behind (k/M/G suffixes; off by default)"},
    {.long_flag = "streaming",
     .arg_name = "MODE",
     .key = "streaming",
     .type = SETTING_CHOICE,
     .choices = on_off,
     .default_text = "on",
     .at = AT(streaming),
     .stream_only = true,
     .doc = "PostgreSQL 14+: on (the default) has the server stream large "
            "transactions while they run (pgoutput protocol 2); off waits "
            "for their commit (protocol 1)"},
    {.long_flag = "stream-memory",
     .arg_name = "BYTES",
     .key = "stream_memory",
     .type = SETTING_BYTES,
     .default_text = "16M",
     .at = AT(stream_memory),
     .stream_only = true,
     .doc = "memory the changes of streamed transactions not yet committed "
            "may take, all together, before they spill to spill_dir (k/M/G "
            "suffixes)"},
    {.long_flag = "spill-dir",
     .arg_name = "DIR",
     .key = "spill_dir",
     .type = SETTING_DIR,
     .at = AT(spill_dir),
     .stream_only = true,
     .doc = "where streamed transactions spill, a directory of pgspout's own "
            "(absolute; default: $TMPDIR/pgspout-UID-SLOT, TMPDIR defaulting "
            "to /tmp)"},
    {.long_flag = "log-format",
     .arg_name = "FORMAT",
     .key = "log_format",
     .type = SETTING_LOG_FORMAT,
     .default_text = "text",
     .at = AT(log_format),
     .doc = "log lines as text or json"},
    {.short_flag = 'c',
     .long_flag = "config",
     .arg_name = "FILE",
     .type = SETTING_CONFIG_FILE,
     .at = AT(config_file),
     .doc = "read settings from a libconfig file; command-line flags "
            "override it"},
    {.short_flag = 'v',
     .long_flag = "verbose",
     .type = SETTING_COUNT,
     .at = AT(verbosity),
     .doc = "debug logging"},
    {.long_flag = "help",
     .type = SETTING_MODE,
     .at = AT(show_help),
     .skips_config_file = true,
     .doc = "print the options and the sinks found, and exit"},
    {.short_flag = 'V',
     .long_flag = "version",
     .type = SETTING_MODE,
     .at = AT(show_version),
     .skips_config_file = true,
     .doc = "print the version and exit"},
};

const size_t n_core_settings = sizeof core_settings / sizeof core_settings[0];

/* ---- where values land ---- */

#define FIELD(cfg, offset, type) ((type *)((char *)(cfg) + (offset)))

const core_setting *setting_by_key(const char *key)
{
    for (size_t i = 0; i < n_core_settings; i++) {
        if (core_settings[i].key && strcmp(core_settings[i].key, key) == 0)
            return &core_settings[i];
    }
    return NULL;
}

const core_setting *setting_by_long_flag(const char *flag)
{
    for (size_t i = 0; i < n_core_settings; i++) {
        const char *name = core_settings[i].long_flag;
        if (name && strcmp(name, flag) == 0)
            return &core_settings[i];
    }
    return NULL;
}

void setting_append_flag(strbuf *sb, const core_setting *s)
{
    if (s->named_short)
        sbuf_appendf(sb, "-%c", s->short_flag);
    else
        sbuf_appendf(sb, "--%s", s->long_flag);
}

void settings_apply_defaults_of(pgspout_config *cfg, const core_setting *table,
                                size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].default_text)
            setting_store_text(cfg, &table[i], table[i].default_text, 0);
    }
}

void settings_apply_defaults(pgspout_config *cfg)
{
    settings_apply_defaults_of(cfg, core_settings, n_core_settings);
}

void setting_store_bool(pgspout_config *cfg, const core_setting *s, bool value)
{
    *FIELD(cfg, s->at, bool) = value;
}

void setting_store_int(pgspout_config *cfg, const core_setting *s, int value)
{
    *FIELD(cfg, s->at, int) = value;
}

void setting_store_bytes(pgspout_config *cfg, const core_setting *s,
                         uint64_t value)
{
    *FIELD(cfg, s->at, uint64_t) = value;
}

void setting_store_list(pgspout_config *cfg, const core_setting *s,
                        char **items, size_t n)
{
    char ***list = FIELD(cfg, s->at, char **);
    size_t *count = FIELD(cfg, s->count_at, size_t);
    config_list_free(list, count);
    *list = items;
    *count = n;
}

void setting_store_origin(pgspout_config *cfg, const core_setting *s,
                          char *origin)
{
    char **field = FIELD(cfg, s->origin_at, char *);
    free(*field);
    *field = origin;
}

/* The nth command-line directory goes before the config file's ones. */
static void insert_plugin_dir(pgspout_config *cfg, const core_setting *s,
                              const char *dir, size_t nth)
{
    char ***list = FIELD(cfg, s->at, char **);
    size_t *count = FIELD(cfg, s->count_at, size_t);
    config_list_push(list, count, dir);
    char *added = (*list)[*count - 1];
    memmove(&(*list)[nth + 1], &(*list)[nth],
            (*count - 1 - nth) * sizeof(char *));
    (*list)[nth] = added;
}

static void store_pattern(pgspout_config *cfg, const core_setting *s,
                          const char *pattern, size_t nth)
{
    char ***list = FIELD(cfg, s->at, char **);
    size_t *count = FIELD(cfg, s->count_at, size_t);
    if (nth == 0) {
        config_list_free(list, count);
        strbuf origin = STRBUF_INIT;
        if (s->short_flag)
            sbuf_appendf(&origin, "command line: -%c", s->short_flag);
        else
            sbuf_appendf(&origin, "command line: --%s", s->long_flag);
        setting_store_origin(cfg, s, sbuf_detach(&origin));
    }
    config_list_push(list, count, pattern);
}

/* A whole number as digits only: no sign, no blanks, no suffix. */
static bool parse_whole(const core_setting *s, const char *text, int *value)
{
    if (!isdigit((unsigned char)text[0]))
        return false;
    errno = 0;
    char *end;
    long v = strtol(text, &end, 10);
    if (errno == ERANGE || *end != '\0' || v < s->min || v > s->max)
        return false;
    *value = (int)v;
    return true;
}

void setting_store_text(pgspout_config *cfg, const core_setting *s,
                        const char *text, size_t nth)
{
    switch (s->type) {
    case SETTING_CONNINFO:
    case SETTING_SLOT_NAME:
    case SETTING_NAME:
    case SETTING_CONFIG_FILE:
    case SETTING_LISTEN:
    case SETTING_CHOICE:
    case SETTING_DIR:
        config_replace_string(FIELD(cfg, s->at, char *), text);
        break;
    case SETTING_BYTES: {
        int64_t bytes = 0;
        option_parse_int(text, &bytes);
        setting_store_bytes(cfg, s, (uint64_t)bytes);
        break;
    }
    case SETTING_LOG_FORMAT: {
        log_format format = LOG_FORMAT_TEXT;
        log_format_parse(text, &format);
        setting_store_int(cfg, s, (int)format);
        break;
    }
    case SETTING_BOOL:
    case SETTING_MODE:
        setting_store_bool(cfg, s, true);
        break;
    case SETTING_COUNT:
        (*FIELD(cfg, s->at, int))++;
        break;
    case SETTING_SECONDS:
    case SETTING_INTEGER:
        parse_whole(s, text, FIELD(cfg, s->at, int));
        break;
    case SETTING_LSN:
        if (lsn_parse(text, FIELD(cfg, s->at, uint64_t)))
            *FIELD(cfg, s->count_at, bool) = true;
        break;
    case SETTING_PATTERNS:
        store_pattern(cfg, s, text, nth);
        break;
    case SETTING_PLUGIN_DIRS:
        insert_plugin_dir(cfg, s, text, nth);
        break;
    case SETTING_SINK:
    case SETTING_SINK_OPTION:
    case SETTING_SINKS:
        /* Sinks are built by the command line and the config file. */
        break;
    }
}

/* ---- checks ---- */

static bool slot_name_char(int c)
{
    return islower(c) || isdigit(c) || c == '_';
}

/* PostgreSQL rejects other slot names only once connected; checking here
 * turns a typo into a usage error before anything connects. */
static const char *slot_name_problem(const char *slot)
{
    static const char bad_chars[] =
        "may contain only lower-case letters, digits and underscores";
    if (strlen(slot) > MAX_SLOT_NAME_LEN)
        return "is too long (at most 63 characters)";
    if (!*slot)
        return bad_chars;
    for (const char *p = slot; *p; p++) {
        if (!slot_name_char((unsigned char)*p))
            return bad_chars;
    }
    return NULL;
}

static bool check_bytes_text(const char *text, strbuf *why)
{
    int64_t bytes;
    if (!option_parse_int(text, &bytes)) {
        sbuf_appendf(why,
                     "invalid size \"%s\" (bytes: an integer, optionally "
                     "with a k, M or G suffix)",
                     text);
        return false;
    }
    if (bytes < 0)
        sbuf_appendf(why, "must not be negative (\"%s\")", text);
    return bytes >= 0;
}

static bool check_choice(const core_setting *s, const char *text, strbuf *why)
{
    for (size_t i = 0; s->choices[i]; i++)
        if (strcmp(s->choices[i], text) == 0)
            return true;
    sbuf_appendf(why, "\"%s\" is not one of ", text);
    for (size_t i = 0; s->choices[i]; i++)
        sbuf_appendf(why, "%s%s",
                     i == 0              ? ""
                     : s->choices[i + 1] ? ", "
                                         : " or ",
                     s->choices[i]);
    return false;
}

/* Errors in the config file follow "FILE:LINE: KEY: "; on the command line
 * they name the flag. */
static bool check_file_text(const core_setting *s, const char *text,
                            strbuf *why)
{
    const char *problem;
    switch (s->type) {
    case SETTING_CONNINFO: {
        /* Checked here too so that the error names the file and line. */
        char reason[512];
        if (conninfo_check_given(text, reason, sizeof reason))
            return true;
        sbuf_append_str(why, reason);
        return false;
    }
    case SETTING_SLOT_NAME:
        problem = slot_name_problem(text);
        if (problem)
            sbuf_appendf(why, "slot name \"%s\" %s", text, problem);
        return !problem;
    case SETTING_NAME:
        if (!*text)
            sbuf_append_str(why, "must not be empty");
        return *text;
    case SETTING_LSN: {
        uint64_t lsn;
        if (lsn_parse(text, &lsn))
            return true;
        sbuf_appendf(why,
                     "invalid LSN \"%s\" (expected X/X, e.g. "
                     "\"0/16B3748\")",
                     text);
        return false;
    }
    case SETTING_PLUGIN_DIRS:
        if (text[0] != '/')
            sbuf_appendf(why,
                         "\"%s\" is not an absolute path; nothing is "
                         "loaded from the working directory",
                         text);
        return text[0] == '/';
    case SETTING_LISTEN:
        problem = http_listen_problem(text);
        if (problem)
            sbuf_appendf(why, "\"%s\" %s", text, problem);
        return !problem;
    case SETTING_BYTES:
        return check_bytes_text(text, why);
    case SETTING_LOG_FORMAT: {
        log_format format;
        if (log_format_parse(text, &format))
            return true;
        sbuf_appendf(why, "unknown log format \"%s\" (expected text or json)",
                     text);
        return false;
    }
    case SETTING_DIR:
        if (text[0] != '/')
            sbuf_appendf(why, "\"%s\" is not an absolute path", text);
        return text[0] == '/';
    case SETTING_CHOICE:
        return check_choice(s, text, why);
    default:
        return true;
    }
}

static bool check_sink_option(const char *text, strbuf *why)
{
    /* The value may be a secret, so no message quotes it. */
    const char *eq = strchr(text, '=');
    if (eq && eq != text)
        return true;
    sbuf_append_str(why, "-o expects KEY=VALUE (the key is missing or there "
                         "is no '=')");
    return false;
}

static bool check_cli_text(const core_setting *s, const char *text, strbuf *why)
{
    const char *problem;
    uint64_t lsn;
    int seconds;
    switch (s->type) {
    case SETTING_SLOT_NAME:
        return check_file_text(s, text, why);
    case SETTING_NAME:
    case SETTING_PLUGIN_DIRS:
    case SETTING_LISTEN:
    case SETTING_BYTES:
    case SETTING_LOG_FORMAT:
    case SETTING_DIR:
    case SETTING_CHOICE: {
        /* The config file's reason, after the flag. */
        strbuf reason = STRBUF_INIT;
        bool ok = check_file_text(s, text, &reason);
        bool names_value =
            s->type != SETTING_BYTES && s->type != SETTING_LOG_FORMAT;
        if (!ok)
            sbuf_appendf(why, "--%s%s %s", s->long_flag, names_value ? "" : ":",
                         reason.data);
        sbuf_free(&reason);
        return ok;
    }
    case SETTING_SECONDS:
    case SETTING_INTEGER:
        if (parse_whole(s, text, &seconds))
            return true;
        sbuf_appendf(why, "invalid --%s \"%s\" (%s, %d to %d)", s->long_flag,
                     text,
                     s->type == SETTING_SECONDS ? "seconds" : "a whole number",
                     s->min, s->max);
        return false;
    case SETTING_LSN:
        if (lsn_parse(text, &lsn))
            return true;
        sbuf_appendf(why,
                     "invalid --%s \"%s\" (expected an LSN like 0/16B3748)",
                     s->long_flag, text);
        return false;
    case SETTING_SINK:
        problem = config_sink_type_problem(text);
        if (problem)
            sbuf_appendf(why, "--%s \"%s\" %s", s->long_flag, text, problem);
        return !problem;
    case SETTING_SINK_OPTION:
        return check_sink_option(text, why);
    default:
        return true;
    }
}

bool setting_check_text(const core_setting *s, const char *text, bool in_file,
                        strbuf *why)
{
    return in_file ? check_file_text(s, text, why)
                   : check_cli_text(s, text, why);
}

bool setting_check_bytes(long long value, strbuf *why)
{
    if (value >= 0)
        return true;
    sbuf_append_str(why, "must not be negative");
    return false;
}

bool setting_check_integer(const core_setting *s, long long value, strbuf *why)
{
    if (value >= s->min && value <= s->max)
        return true;
    sbuf_appendf(why, "must be between %d and %d", s->min, s->max);
    return false;
}
