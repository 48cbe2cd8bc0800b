/* The AWS shared files (`credentials` and `config`): INI-style sections of
 * `key = value` lines, read the way the AWS CLI and SDKs read them. The
 * credentials file names a profile `[NAME]`; the config file names it
 * `[profile NAME]`, except `[default]`. */
#ifndef AWS_INI_H
#define AWS_INI_H

#include <stdbool.h>
#include <stddef.h>

typedef struct aws_ini_entry {
    char *profile; /* the profile name; other config sections start '[' */
    char *key;
    char *value; /* may hold a secret: wiped when freed */
    int line;
} aws_ini_entry;

typedef struct aws_ini {
    char *path;
    bool exists;
    aws_ini_entry *entries;
    size_t n;
    char **profiles; /* every profile section, even an empty one */
    size_t nprofiles;
} aws_ini;

/* Reads path (config_style: `[profile NAME]` headers). A missing file is an
 * empty one (exists false). False with "FILE:LINE: why" in err for a line
 * that is neither a comment, a [section], `key = value` nor an indented
 * sub-setting, or for a file that cannot be read. */
bool aws_ini_load(const char *path, bool config_style, aws_ini *ini, char *err,
                  size_t errlen);

bool aws_ini_has_profile(const aws_ini *ini, const char *profile);

/* The value of key (case-insensitive) in profile, or NULL; the last
 * occurrence wins. *line (may be NULL) gets its line number. */
const char *aws_ini_get(const aws_ini *ini, const char *profile,
                        const char *key, int *line);

void aws_ini_free(aws_ini *ini);

#endif
