#include "config_load.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "config_tokens.h"
#include "error.h"
#include "fileio.h"
#include "strbuf.h"

/* libconfig names a setting's file as the @include directive spelt it,
 * relative to the including file's directory; messages name it so that it
 * can be found from the working directory. Free the result. */
char *config_load_file_name(const char *path, const char *include_dir,
                            const char *file)
{
    if (!file)
        return xstrdup(path);
    if (file[0] == '/' || !include_dir || strcmp(file, path) == 0)
        return xstrdup(file);
    strbuf sb = STRBUF_INIT;
    sbuf_appendf(&sb, "%s%s%s", include_dir,
                 include_dir[strlen(include_dir) - 1] == '/' ? "" : "/", file);
    return sbuf_detach(&sb);
}

static bool setting_name_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '*';
}

/* libconfig's parse errors ("syntax error", "duplicate setting name",
 * "cannot open include file") name the line but not the setting, so the
 * setting name (or the @include target) is read back from that line. Only
 * the name: the rest of the line may hold a password. Returns "" when the
 * line has no recognisable name. */
static char *parse_error_hint(const char *text, size_t len, int line)
{
    const char *start = line > 0 ? text : NULL, *end = text + len;
    for (int n = 1; n < line && start; n++) {
        start = memchr(start, '\n', (size_t)(end - start));
        start = start ? start + 1 : NULL;
    }
    strbuf hint = STRBUF_INIT;
    if (start) {
        const char *nl = memchr(start, '\n', (size_t)(end - start));
        char *copy = xstrndup(start, (size_t)((nl ? nl : end) - start));
        const char *p = copy;
        while (isspace((unsigned char)*p))
            p++;
        if (strncmp(p, "@include", 8) == 0) {
            const char *open = strchr(p + 8, '"');
            const char *close = open ? strchr(open + 1, '"') : NULL;
            if (close)
                sbuf_appendf(&hint, " (@include \"%.*s\")",
                             (int)(close - open - 1), open + 1);
        } else if (isalpha((unsigned char)*p) || *p == '*') {
            const char *name = p;
            while (setting_name_char((unsigned char)*p))
                p++;
            size_t name_len = (size_t)(p - name);
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p == '=' || *p == ':')
                sbuf_appendf(&hint, " (at setting \"%.*s\")", (int)name_len,
                             name);
        }
        free(copy);
    }
    return sbuf_detach(&hint);
}

/* libconfig's nesting limit for @include. */
#define MAX_INCLUDE_DEPTH 10

/* Where an @include directive's file name starts, as libconfig's scanner
 * sees one: at the start of a line, after blanks, "@include", at least one
 * blank, then a double quote. */
static const char *include_name_start(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p < 8 || memcmp(p, "@include", 8) != 0)
        return NULL;
    p += 8;
    const char *blanks = p;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == blanks || p >= end || *p != '"')
        return NULL;
    return p + 1;
}

static int check_file(const char *file, const char *include_dir, int depth,
                      char *err, size_t errlen);

/* Reads an @include directive's file name from q (just after its opening
 * quote) into name: up to the next unescaped quote, across lines, with \\
 * and \" escapes, as the scanner reads it; like the scanner's C string, it
 * ends at a NUL byte. Counts the newlines in *line; returns where it
 * stopped. */
static const char *read_include_name(const char *q, const char *end,
                                     strbuf *name, int *line)
{
    sbuf_append(name, "", 0);
    bool nul_seen = false;
    while (q < end && *q != '"') {
        char c = *q++;
        if (c == '\\' && q < end && (*q == '\\' || *q == '"'))
            c = *q++;
        if (c == '\n')
            (*line)++;
        if (c == '\0')
            nul_seen = true;
        if (!nul_seen)
            sbuf_append_char(name, c);
    }
    return q;
}

/* An @include target must be a regular file if it exists; it is then
 * checked in turn. Missing files are left to libconfig, which names the
 * line. */
static int check_include_target(const char *file, int line, const char *name,
                                const char *include_dir, int depth, char *err,
                                size_t errlen)
{
    strbuf target = STRBUF_INIT;
    if (name[0] == '/' || !include_dir)
        sbuf_append_str(&target, name);
    else
        sbuf_appendf(&target, "%s/%s", include_dir, name);
    int rc = 0;
    struct stat st;
    if (stat(target.data, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            set_error(err, errlen, "%s:%d: @include \"%s\": %s", file, line,
                      name,
                      S_ISDIR(st.st_mode) ? "is a directory"
                                          : "is not a regular file");
            rc = CONFIG_USAGE_ERROR;
        } else if (depth < MAX_INCLUDE_DEPTH) {
            rc = check_file(target.data, include_dir, depth + 1, err, errlen);
        }
    }
    sbuf_free(&target);
    return rc;
}

/* What libconfig must not be given, checked in one pass over the text of
 * a config file and of each file it includes, before libconfig reads any:
 * - a token longer than CONFIG_TOKEN_MAX (config_tokens.h);
 * - an @include'd directory (an empty name included): libconfig 1.5 hands
 *   it to its scanner, which fails on the first read and exit()s the
 *   process with "input in flex scanner failed", naming nothing; a FIFO
 *   would block it. So every @include target that exists must be a
 *   regular file. */
static int check_text(const char *file, const char *text, size_t len,
                      const char *include_dir, int depth, char *err,
                      size_t errlen)
{
    if (!config_tokens_check(file, text, len, err, errlen))
        return CONFIG_USAGE_ERROR;
    const char *end = text + len;
    int rc = 0;
    int line = 1;
    for (const char *p = text; p < end && rc == 0;) {
        const char *q = include_name_start(p, end);
        int directive_line = line;
        strbuf name = STRBUF_INIT;
        if (q)
            q = read_include_name(q, end, &name, &line);
        /* The rest of the directive's line cannot start another one. */
        const char *from = q ? q : p;
        const char *nl =
            from < end ? memchr(from, '\n', (size_t)(end - from)) : NULL;
        if (nl)
            line++;
        p = nl ? nl + 1 : end;
        if (q)
            rc = check_include_target(file, directive_line, name.data,
                                      include_dir, depth, err, errlen);
        sbuf_free(&name);
    }
    return rc;
}

static int check_file(const char *file, const char *include_dir, int depth,
                      char *err, size_t errlen)
{
    size_t len;
    char *text = read_whole_file(file, &len);
    if (!text)
        return 0;
    int rc = check_text(file, text, len, include_dir, depth, err, errlen);
    free(text);
    return rc;
}

/* The config file's own text: libconfig reads a string only up to a NUL
 * byte (and its file scanner stops there with a syntax error), so a text
 * read from a pipe must not hold one. */
static int check_main_text(const char *path, const char *text, size_t len,
                           bool regular, const char *dir, char *err,
                           size_t errlen)
{
    const char *nul = memchr(text, '\0', len);
    if (!regular && nul) {
        int line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        set_error(err, errlen, "%s:%d: syntax error (a NUL byte)", path, line);
        return CONFIG_USAGE_ERROR;
    }
    return check_text(path, text, len, dir, 0, err, errlen);
}

/* libconfig's parse error, with the name of the setting on its line: read
 * from main_text when the error is in the config file itself (libconfig
 * names no file for a text it read from memory). */
static void parse_error(const config_t *lc, const char *path, const char *dir,
                        const char *main_text, size_t main_len, char *err,
                        size_t errlen)
{
    char *file = config_load_file_name(path, dir, config_error_file(lc));
    size_t len = main_len;
    char *included = NULL;
    const char *text = main_text;
    if (strcmp(file, path) != 0 || !main_text)
        text = included = read_whole_file(file, &len);
    char *hint =
        text ? parse_error_hint(text, len, config_error_line(lc)) : xstrdup("");
    set_error(err, errlen, "%s:%d: %s%s", file, config_error_line(lc),
              config_error_text(lc), hint);
    free(hint);
    free(included);
    free(file);
}

/* libconfig reports a missing file only as "file I/O error"; the reason
 * is what the user needs. Sets *regular for a regular file. */
static int check_readable(const char *path, bool *regular, char *err,
                          size_t errlen)
{
    FILE *probe = fopen(path, "r");
    if (!probe) {
        set_error(err, errlen, "could not open config file \"%s\": %s", path,
                  strerror(errno));
        return CONFIG_USAGE_ERROR;
    }
    fclose(probe);
    struct stat st;
    *regular = false;
    if (stat(path, &st) == 0) {
        *regular = S_ISREG(st.st_mode);
        if (S_ISDIR(st.st_mode)) {
            set_error(err, errlen,
                      "could not read config file \"%s\": is a directory",
                      path);
            return CONFIG_USAGE_ERROR;
        }
    }
    return 0;
}

/* @include is resolved next to the config file, not in the working
 * directory; NULL when the path names no directory. */
static char *include_dir_of(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        free(dir);
        return NULL;
    }
    slash[slash == dir ? 1 : 0] = '\0';
    return dir;
}

int config_load(config_t *lc, const char *path, char **include_dir, char *err,
                size_t errlen)
{
    *include_dir = NULL;
    bool regular;
    if (check_readable(path, &regular, err, errlen) != 0)
        return CONFIG_USAGE_ERROR;
    char *dir = include_dir_of(path);
    if (dir)
        config_set_include_dir(lc, dir);
    *include_dir = dir;

    /* The file is read once here, checked, and (a pipe, -c <(...), cannot
     * be read twice) parsed from memory unless it is a regular file. */
    size_t len = 0;
    char *text = read_whole_file(path, &len);
    int rc =
        text ? check_main_text(path, text, len, regular, dir, err, errlen) : 0;
    if (rc == 0 && !(regular || !text ? config_read_file(lc, path)
                                      : config_read_string(lc, text))) {
        if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
            set_error(err, errlen, "could not read config file \"%s\"", path);
        else
            parse_error(lc, path, dir, text, len, err, errlen);
        rc = CONFIG_USAGE_ERROR;
    }
    free(text);
    return rc;
}
