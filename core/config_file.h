/* The config file (-c FILE, libconfig syntax): each root key is a core
 * setting of the settings table (settings.h), whose type says what the
 * value must be; `sinks` is a list of sink groups (name, type,
 * include/exclude, options). Every error names the file, the line and the
 * key ("/etc/pgspout.conf:14: sinks.[1].options.fsync: ..."). */
#ifndef PGSPOUT_CONFIG_FILE_H
#define PGSPOUT_CONFIG_FILE_H

#include <stddef.h>

#include "config.h"

/* Reads a config file into *cfg, which must hold defaults or earlier values;
 * values in the file replace them. config_from_args calls it; exposed for
 * tests. Returns 0 or CONFIG_USAGE_ERROR with the message in err. */
int config_read_file_into(const char *path, pgspout_config *cfg, char *err,
                          size_t errlen);

#endif
