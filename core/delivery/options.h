/* A sink's options: collected from the config file and -o flags before the
 * sink is loaded, then validated against the sink's option table once it is.
 * Validation fills in defaults, so the typed lookups the host API exposes see
 * every declared option that has a value or a default.
 *
 * Error messages name where a value came from ("FILE:LINE: PATH" or
 * "command line: -o KEY") and the key, and never the value of an option the
 * table marks PGSPOUT_OPTF_SECRET. */
#ifndef PGSPOUT_OPTIONS_H
#define PGSPOUT_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgspout/host.h"
#include "pgspout/option.h"

typedef struct sink_options sink_options;

sink_options *sink_options_new(void);
void sink_options_free(sink_options *opts);

/* Recording raw values. `file` NULL means the value came from "-o KEY=VALUE"
 * (then `line` and `path` are ignored); otherwise `path` is the setting's
 * libconfig path, e.g. "sinks.[0].options.fsync". A text value is parsed
 * according to the option's declared type; the typed forms come from
 * libconfig scalars and must match the declared type. A later value for the
 * same key replaces an earlier one. */
void sink_options_add_text(sink_options *opts, const char *key,
                           const char *text, const char *file, int line,
                           const char *path);
void sink_options_add_int(sink_options *opts, const char *key, int64_t value,
                          const char *file, int line, const char *path);
void sink_options_add_double(sink_options *opts, const char *key, double value,
                             const char *file, int line, const char *path);
void sink_options_add_bool(sink_options *opts, const char *key, bool value,
                           const char *file, int line, const char *path);

/* Number of raw values recorded so far. */
size_t sink_options_count(const sink_options *opts);

/* Checks every recorded value against `defs` (unknown key, wrong type,
 * unparseable text, outside min..max, not among choices), applies defaults and
 * checks required options. `where` locates the sink itself, for a missing
 * required option ("/etc/pgspout.conf:12: sinks.[0]" or
 * "command line: --sink file"). Returns 0, or -1 with a message in err.
 * May be called again (e.g. after a reload) and starts from scratch. */
int sink_options_validate(sink_options *opts, const pgspout_option_def *defs,
                          const char *where, char *err, size_t errlen);

/* Typed lookups, valid after a successful validation. False when the option
 * is unset (no value, no default), undeclared, or of another type. DURATION
 * options are read with _int, in milliseconds. Strings live as long as opts. */
bool sink_options_get_string(const sink_options *opts, const char *name,
                             const char **value);
bool sink_options_get_int(const sink_options *opts, const char *name,
                          int64_t *value);
bool sink_options_get_bool(const sink_options *opts, const char *name,
                           bool *value);
bool sink_options_get_double(const sink_options *opts, const char *name,
                             double *value);

/* Calls visit for each value given under the prefix option `family`
 * (PGSPOUT_OPTF_PREFIX), in the order given, as text; valid after a
 * successful validation. False when visit returned false or the table
 * declares no such prefix option. */
bool sink_options_each_prefixed(const sink_options *opts, const char *family,
                                pgspout_option_visitor visit, void *ctx);

/* Where the value of `key` came from, as validation errors name it
 * ("FILE:LINE: PATH" or "command line: -o KEY"): the last value given for
 * it. False when the configuration gives no value for `key` (it has its
 * default, or none). */
bool sink_options_origin(const sink_options *opts, const char *key, char *buf,
                         size_t len);

/* "string", "int", "bool", "double" or "duration", as --list-sinks and
 * the manual pages name a type. */
const char *option_type_name(pgspout_option_type type);

/* Prints one line per option: name, type, default or "required", doc. */
void option_table_print(FILE *out, const pgspout_option_def *defs,
                        const char *indent);

/* Text parsers shared with the command line; each returns false on bad input
 * (trailing junk, overflow, unknown suffix). */
bool option_parse_int(const char *text, int64_t *value);   /* k/M/G */
bool option_parse_duration(const char *text, int64_t *ms); /* ms/s/min */
bool option_parse_bool(const char *text, bool *value);
bool option_parse_double(const char *text, double *value);

#endif
