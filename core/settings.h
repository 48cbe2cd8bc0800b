/* The table of pgspout's core settings: each one's command-line flags,
 * config-file key, type, default, one-line doc, and where its value lands
 * in pgspout_config, declared once (settings.c). The table drives the
 * config-file reader (config_file.c), the command line (config_cli.c) and
 * --help (config_usage.c); README's option table is checked against it
 * (tests/unit/test_settings.c), so none of them can drift.
 *
 * As with the sinks' option tables (pgspout/option.h), a default is text
 * parsed exactly like a value given on the command line. A value given as
 * text (a command-line argument or a default) is checked and stored here;
 * the config-file reader checks libconfig's types, then checks and stores
 * through the same functions. */
#ifndef PGSPOUT_SETTINGS_H
#define PGSPOUT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "strbuf.h"

typedef enum setting_type {
    SETTING_CONNINFO,    /* a libpq connection string, URI or database name */
    SETTING_SLOT_NAME,   /* a name PostgreSQL accepts for a slot */
    SETTING_NAME,        /* any string but the empty one */
    SETTING_BOOL,        /* a flag; true or false in the config file */
    SETTING_SECONDS,     /* whole seconds, min..max */
    SETTING_INTEGER,     /* a whole number, min..max */
    SETTING_CHOICE,      /* one of `choices` */
    SETTING_DIR,         /* an absolute directory */
    SETTING_LSN,         /* "X/X", as PostgreSQL prints an LSN */
    SETTING_PATTERNS,    /* table patterns; repeatable */
    SETTING_PLUGIN_DIRS, /* absolute directories; repeatable */
    SETTING_MODE,        /* selects what pgspout does instead of streaming */
    SETTING_COUNT,       /* counts how often it is given (-v -v) */
    SETTING_CONFIG_FILE, /* the file the other settings are read from */
    SETTING_SINK,        /* the one sink of the command line */
    SETTING_SINK_OPTION, /* KEY=VALUE, an option of that sink; repeatable */
    SETTING_SINKS        /* the config file's list of sink groups */
} setting_type;

typedef struct core_setting {
    char short_flag;       /* 0: none */
    const char *long_flag; /* without the dashes; NULL: config file only */
    const char *arg_name;  /* the flag's argument ("NAME"); NULL: none */
    const char *key;       /* config-file key; NULL: command line only */
    setting_type type;
    const char *default_text; /* parsed as a command-line value; NULL: none */
    int min, max; /* SETTING_SECONDS, SETTING_INTEGER: inclusive bounds */
    const char *const *choices; /* SETTING_CHOICE: NULL-terminated */
    const char *doc;            /* one line, for --help and README */
    /* Where the value lands, as offsets into pgspout_config: `at` holds
     * the value (a list's array); `count_at` a list's length, or whether
     * an LSN was given; `origin_at` where patterns were given. */
    size_t at, count_at, origin_at;
    /* The long flag of the setting this one is only valid with. */
    const char *requires;
    bool stream_only;       /* refused with any mode */
    bool skips_config_file; /* the config file is not read (--help) */
    bool named_short;       /* errors name it by its short flag ("-o") */
} core_setting;

extern const core_setting core_settings[];
extern const size_t n_core_settings;

/* Lookups; NULL when no setting has that key or long flag. */
const core_setting *setting_by_key(const char *key);
const core_setting *setting_by_long_flag(const char *flag);

/* How errors name a setting given on the command line: "--slot", or "-o"
 * for one named by its short flag. */
void setting_append_flag(strbuf *sb, const core_setting *s);

/* Every setting with a default set to it; call on an empty config. */
void settings_apply_defaults(pgspout_config *cfg);

/* The same for the settings of another table (a subcommand's). */
void settings_apply_defaults_of(pgspout_config *cfg, const core_setting *table,
                                size_t n);

/* Checks a value given as text: from the command line (or a default),
 * then the reason names the flag; from the config file (`in_file`), then it
 * follows "FILE:LINE: KEY: ". Returns false with the reason in why. A
 * command-line conninfo is checked later, with the environment's values
 * (conninfo_check), whichever of the file's and the command line's wins. */
bool setting_check_text(const core_setting *s, const char *text, bool in_file,
                        strbuf *why);

/* The config file's integer for SETTING_SECONDS or SETTING_INTEGER:
 * false, with why, when outside min..max. */
bool setting_check_integer(const core_setting *s, long long value, strbuf *why);

/* Stores a value given as text that setting_check_text accepted. `nth`
 * counts the values of this setting stored from the command line before
 * it: the first pattern replaces the config file's list and later ones add
 * to it; plugin directories go before the config file's, in their order. */
void setting_store_text(pgspout_config *cfg, const core_setting *s,
                        const char *text, size_t nth);

/* Typed stores for the config file's values. */
void setting_store_bool(pgspout_config *cfg, const core_setting *s, bool value);
void setting_store_int(pgspout_config *cfg, const core_setting *s, int value);

/* Replaces a list setting's items with (items, n), taking them over. */
void setting_store_list(pgspout_config *cfg, const core_setting *s,
                        char **items, size_t n);

/* Replaces where a pattern list was given, taking origin over. */
void setting_store_origin(pgspout_config *cfg, const core_setting *s,
                          char *origin);

#endif
