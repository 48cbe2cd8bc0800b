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
    PGSPOUT_OPTF_SECRET = 1 << 1 /* value never printed or logged */
} pgspout_option_flags;

typedef struct pgspout_option_def {
    const char *name;
    pgspout_option_type type;
    const char *default_value; /* text form, NULL for none */
    unsigned flags;            /* pgspout_option_flags */
    const char *doc;           /* one line */
    /* Optional bounds for INT/DOUBLE/DURATION (ignored when min > max). */
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
