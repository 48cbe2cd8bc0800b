/* Reading the AWS shared credentials and config files. */
#include "aws_ini.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "alloc.h"

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* The profile a section header names; config sections that are not
 * profiles ([sso-session x], [services x]) keep a leading '[' so no profile
 * lookup ever matches them. */
static char *section_profile(const char *name, bool config_style)
{
    if (!config_style || strcmp(name, "default") == 0)
        return xstrdup(name);
    if (strncmp(name, "profile", 7) == 0 && isspace((unsigned char)name[7])) {
        const char *p = name + 8;

        while (isspace((unsigned char)*p))
            p++;
        return xstrdup(p);
    }
    return xasprintf("[%s", name);
}

static void add_profile(aws_ini *ini, const char *profile)
{
    if (aws_ini_has_profile(ini, profile))
        return;
    ini->profiles =
        xrealloc(ini->profiles, (ini->nprofiles + 1) * sizeof *ini->profiles);
    ini->profiles[ini->nprofiles++] = xstrdup(profile);
}

static void add_entry(aws_ini *ini, const char *profile, const char *key,
                      const char *value, int line)
{
    ini->entries = xrealloc(ini->entries, (ini->n + 1) * sizeof *ini->entries);
    ini->entries[ini->n++] =
        (aws_ini_entry){xstrdup(profile), xstrdup(key), xstrdup(value), line};
}

/* One line; *section is the current profile (NULL before the first). */
static bool parse_line(aws_ini *ini, char *raw, int lineno, bool config_style,
                       char **section, bool *in_sub, char *err, size_t errlen)
{
    bool indented = isspace((unsigned char)raw[0]);
    char *l = trim(raw), *eq;

    if (*l == '\0' || *l == '#' || *l == ';')
        return true;
    /* An indented line under `key =` is a nested setting (s3 = ...). */
    if (indented && *in_sub)
        return true;
    *in_sub = false;
    if (*l == '[') {
        char *close = strchr(l, ']');

        if (!close || trim(close + 1)[0] != '\0' || close == l + 1) {
            snprintf(err, errlen, "%s:%d: malformed section header", ini->path,
                     lineno);
            return false;
        }
        *close = '\0';
        free(*section);
        *section = section_profile(trim(l + 1), config_style);
        add_profile(ini, *section);
        return true;
    }
    if (!(eq = strchr(l, '=')) || eq == l) {
        snprintf(err, errlen,
                 "%s:%d: expected \"key = value\" or a [section] header",
                 ini->path, lineno);
        return false;
    }
    *eq = '\0';
    if (!*section) {
        snprintf(err, errlen, "%s:%d: key \"%.60s\" before any [section]",
                 ini->path, lineno, trim(l));
        return false;
    }
    *in_sub = *trim(eq + 1) == '\0';
    add_entry(ini, *section, trim(l), trim(eq + 1), lineno);
    return true;
}

bool aws_ini_load(const char *path, bool config_style, aws_ini *ini, char *err,
                  size_t errlen)
{
    FILE *f;
    char *line = NULL, *section = NULL;
    size_t cap = 0;
    int lineno = 0;
    bool ok = true, in_sub = false;

    memset(ini, 0, sizeof *ini);
    ini->path = xstrdup(path);
    if (!(f = fopen(path, "r"))) {
        if (errno == ENOENT || errno == ENOTDIR)
            return true;
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
        return false;
    }
    ini->exists = true;
    while (ok && getline(&line, &cap, f) >= 0)
        ok = parse_line(ini, line, ++lineno, config_style, &section, &in_sub,
                        err, errlen);
    if (line) {
        OPENSSL_cleanse(line, cap);
        free(line);
    }
    free(section);
    fclose(f);
    return ok;
}

bool aws_ini_has_profile(const aws_ini *ini, const char *profile)
{
    for (size_t i = 0; i < ini->nprofiles; i++)
        if (strcmp(ini->profiles[i], profile) == 0)
            return true;
    return false;
}

const char *aws_ini_get(const aws_ini *ini, const char *profile,
                        const char *key, int *line)
{
    const aws_ini_entry *found = NULL;

    for (size_t i = 0; i < ini->n; i++)
        if (strcmp(ini->entries[i].profile, profile) == 0 &&
            strcasecmp(ini->entries[i].key, key) == 0)
            found = &ini->entries[i];
    if (found && line)
        *line = found->line;
    return found && *found->value ? found->value : NULL;
}

void aws_ini_free(aws_ini *ini)
{
    for (size_t i = 0; i < ini->n; i++) {
        OPENSSL_cleanse(ini->entries[i].value, strlen(ini->entries[i].value));
        free(ini->entries[i].value);
        free(ini->entries[i].key);
        free(ini->entries[i].profile);
    }
    for (size_t i = 0; i < ini->nprofiles; i++)
        free(ini->profiles[i]);
    free(ini->entries);
    free(ini->profiles);
    free(ini->path);
    memset(ini, 0, sizeof *ini);
}
