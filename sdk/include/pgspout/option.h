/* Sink option tables. A sink declares every option it takes; the host
 * validates configuration against the table (unknown key, wrong type,
 * invalid value, missing required option) before the sink is created, fills
 * in defaults, and prints the table in --list-sinks and --help. */
#ifndef PGSPOUT_OPTION_H
#define PGSPOUT_OPTION_H

typedef enum pgspout_option_type {
    PGSPOUT_OPT_STRING = 1,
    PGSPOUT_OPT_INT = 2,  /* 64-bit signed; accepts k/M/G suffixes (x1024) */
    PGSPOUT_OPT_BOOL = 3, /* true/false, on/off, yes/no, 1/0 */
    PGSPOUT_OPT_DOUBLE = 4,
    PGSPOUT_OPT_DURATION = 5 /* milliseconds; accepts ms, s, min suffixes */
} pgspout_option_type;

typedef enum pgspout_option_flags {
    PGSPOUT_OPTF_REQUIRED = 1 << 0,
    PGSPOUT_OPTF_SECRET = 1 << 1, /* value never printed or logged */
    /* ABI 1.4: a family of options rather than one. The name ends with a
     * dot ("kafka."), and every key that starts with it and goes on
     * ("kafka.security.protocol") is accepted, as text, whatever follows:
     * a sink that passes options through to a library it links declares
     * them this way. The type must be STRING, with no default and not
     * REQUIRED (the host refuses such a sink otherwise). The values are
     * read with host->option_prefixed, never with option_string. The host
     * never prints them, whatever the flags say. */
    PGSPOUT_OPTF_PREFIX = 1 << 2
} pgspout_option_flags;

typedef struct pgspout_option_def {
    const char *name;
    pgspout_option_type type;
    const char *default_value; /* text form, NULL for none */
    unsigned flags;            /* pgspout_option_flags */
    const char *doc;           /* one line */
    /* Optional inclusive bounds for INT/DOUBLE/DURATION, checked only when
     * min < max, so a table that leaves both zero has no bounds. */
    double min, max;
    /* Optional for STRING: '|'-separated list of accepted values. */
    const char *choices;
} pgspout_option_def;

/* Ends an option table. */
#define PGSPOUT_OPTION_END                                                     \
    {                                                                          \
        0                                                                      \
    }

#endif
