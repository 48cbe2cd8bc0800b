/* A limit on the size of each token of a config file, checked before
 * libconfig reads it. libconfig's flex scanner rescans a token from its
 * start each time it refills its input buffer, so reading one token costs
 * time quadratic in its length: a 4 MB string (or comment, or run of
 * blanks) takes seconds to minutes. */
#ifndef PGSPOUT_CONFIG_TOKENS_H
#define PGSPOUT_CONFIG_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

/* The longest string literal (between its quotes, as written), comment,
 * name, number or run of blanks a config file may hold: far above any real
 * value (a service-account key is a few KB) and read in milliseconds. */
#define CONFIG_TOKEN_MAX (64 * 1024)

/* Checks text (a config file's content, named file in messages) in one
 * pass. False with err ("FILE:LINE: KEY: ...", the key when the text says
 * which setting the token belongs to) when a token is longer than
 * CONFIG_TOKEN_MAX. */
bool config_tokens_check(const char *file, const char *text, size_t len,
                         char *err, size_t errlen);

#endif
