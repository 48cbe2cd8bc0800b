/* Loading a config file into libconfig, with libconfig's gaps closed:
 * - a missing or unreadable file is named with the reason, a directory is
 *   refused (libconfig says only "file I/O error");
 * - what libconfig must not be given is refused before it reads anything,
 *   in the file and in each file it @includes: a token over
 *   CONFIG_TOKEN_MAX (config_tokens.h, quadratic time), an @include'd
 *   directory or FIFO (libconfig 1.5's scanner exit()s or blocks), and a
 *   NUL byte in a file read from a pipe;
 * - a pipe (-c <(...)), which cannot be read twice, is parsed from memory;
 * - @include is resolved next to the config file, and files are named so
 *   that they can be found from the working directory;
 * - a parse error names the setting (or @include) on its line. */
#ifndef PGSPOUT_CONFIG_LOAD_H
#define PGSPOUT_CONFIG_LOAD_H

#include <libconfig.h>
#include <stddef.h>

/* Reads path into lc (initialised by the caller, destroyed by the caller
 * whatever the result). *include_dir is set to the directory @include is
 * resolved in (NULL: the working directory); free it. Returns 0 or
 * CONFIG_USAGE_ERROR with "FILE:LINE: ..." in err. */
int config_load(config_t *lc, const char *path, char **include_dir, char *err,
                size_t errlen);

/* The name of a file libconfig read (config_setting_source_file; NULL:
 * the config file itself) as the user can find it: libconfig spells an
 * @include'd file as the directive did, relative to include_dir. Free
 * it. */
char *config_load_file_name(const char *path, const char *include_dir,
                            const char *file);

#endif
