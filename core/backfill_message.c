#include "backfill_message.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "config.h"
#include "hex.h"

/* ---- the message ---- */

static json_t *string_array(char *const *items, size_t n)
{
    json_t *a = xnonnull(json_array());
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, xnonnull(json_string(items[i])));
    return a;
}

char *backfill_request_json(const backfill_request *r)
{
    json_t *doc = xnonnull(json_object());
    json_object_set_new(doc, "type", xnonnull(json_string("backfill")));
    json_object_set_new(doc, "slot", xnonnull(json_string(r->slot)));
    json_object_set_new(doc, "id", xnonnull(json_string(r->id)));
    json_object_set_new(doc, "include", string_array(r->include, r->n_include));
    json_object_set_new(doc, "exclude", string_array(r->exclude, r->n_exclude));
    json_object_set_new(
        doc, "where", r->where ? xnonnull(json_string(r->where)) : json_null());
    char *text = xnonnull(json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                              JSON_ENSURE_ASCII));
    json_decref(doc);
    return text;
}

bool backfill_id_valid(const char *id)
{
    size_t len = id ? strlen(id) : 0;
    if (len == 0 || len > BACKFILL_ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._:/-", *p))
            return false;
    return true;
}

static bool take_slot(json_t *doc, char **out, char *err, size_t errlen)
{
    const char *s = json_string_value(json_object_get(doc, "slot"));
    if (!s || !*s) {
        snprintf(err, errlen,
                 "backfill request: \"slot\" must be a non-empty string");
        return false;
    }
    *out = xstrdup(s);
    return true;
}

static bool take_id(json_t *doc, char **out, char *err, size_t errlen)
{
    const char *s = json_string_value(json_object_get(doc, "id"));
    if (!backfill_id_valid(s)) {
        snprintf(err, errlen,
                 "backfill request: \"id\" must be 1 to %d characters of "
                 "letters, digits and ._:/-",
                 BACKFILL_ID_MAX);
        return false;
    }
    *out = xstrdup(s);
    return true;
}

/* An optional array of non-empty strings. */
static bool take_patterns(json_t *doc, const char *name, char ***items,
                          size_t *n, char *err, size_t errlen)
{
    json_t *a = json_object_get(doc, name);
    if (!a || json_is_null(a))
        return true;
    size_t i;
    json_t *item;
    if (json_is_array(a)) {
        json_array_foreach(a, i, item)
        {
            const char *s = json_string_value(item);
            if (!s || !*s)
                break;
            config_list_push(items, n, s);
        }
        if (i == json_array_size(a))
            return true;
    }
    snprintf(err, errlen,
             "backfill request: \"%s\" must be an array of table patterns",
             name);
    return false;
}

static bool take_where(json_t *doc, char **where, char *err, size_t errlen)
{
    json_t *w = json_object_get(doc, "where");
    if (!w || json_is_null(w) || (json_is_string(w) && !*json_string_value(w)))
        return true;
    const char *problem = json_is_string(w)
                              ? backfill_where_problem(json_string_value(w))
                              : "is not a string";
    if (problem) {
        snprintf(err, errlen, "backfill request: \"where\" %s", problem);
        return false;
    }
    *where = xstrdup(json_string_value(w));
    return true;
}

static bool take_request(json_t *doc, backfill_request *r, char *err,
                         size_t errlen)
{
    return take_slot(doc, &r->slot, err, errlen) &&
           take_id(doc, &r->id, err, errlen) &&
           take_patterns(doc, "include", &r->include, &r->n_include, err,
                         errlen) &&
           take_patterns(doc, "exclude", &r->exclude, &r->n_exclude, err,
                         errlen) &&
           take_where(doc, &r->where, err, errlen);
}

backfill_message_kind backfill_message_parse(const char *content, size_t len,
                                             backfill_request *out, char *err,
                                             size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *doc = json_loadb(content, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *type = json_string_value(json_object_get(doc, "type"));
    backfill_message_kind kind = BACKFILL_MESSAGE_INVALID;
    if (!doc)
        snprintf(err, errlen, "backfill request: not JSON: %s", jerr.text);
    else if (!type)
        snprintf(err, errlen, "backfill request: no \"type\"");
    else if (strcmp(type, "backfill") != 0)
        kind = BACKFILL_MESSAGE_OTHER;
    else if (take_request(doc, out, err, errlen))
        kind = BACKFILL_MESSAGE_REQUEST;
    else
        backfill_request_free(out);
    json_decref(doc);
    return kind;
}

void backfill_request_free(backfill_request *r)
{
    free(r->slot);
    free(r->id);
    config_list_free(&r->include, &r->n_include);
    config_list_free(&r->exclude, &r->n_exclude);
    free(r->where);
    memset(r, 0, sizeof *r);
}

bool backfill_new_id(char id[BACKFILL_ID_LEN + 1])
{
    unsigned char bytes[BACKFILL_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0 && errno != EINTR)
            return false;
        got += n > 0 ? (size_t)n : 0;
    }
    hex_encode(bytes, sizeof bytes, id);
    id[BACKFILL_ID_LEN] = '\0';
    return true;
}

/* ---- the where expression, lexically ---- */

static bool ident_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* The end of a quoted run opened at s[0] (' or "), where the quote doubled
 * stands for itself and, with backslashes (E'...'), a backslash escapes
 * the next byte; NULL when it never ends. */
static const char *skip_quoted(const char *s, bool backslashes)
{
    char q = s[0];
    for (const char *p = s + 1; *p; p++) {
        if (backslashes && *p == '\\' && p[1]) {
            p++;
        } else if (*p == q) {
            if (p[1] != q)
                return p + 1;
            p++;
        }
    }
    return NULL;
}

/* s[0] is '$': the end of a dollar-quoted string ($tag$...$tag$), or s
 * itself when this '$' opens none (a parameter such as $1); *unclosed when
 * one opens and never closes. */
static const char *skip_dollar(const char *s, bool *unclosed)
{
    const char *p = s + 1;
    if (isdigit((unsigned char)*p))
        return s;
    while (
        *p && *p != '$' &&
        (isalnum((unsigned char)*p) || *p == '_' || (unsigned char)*p >= 0x80))
        p++;
    if (*p != '$')
        return s;
    size_t tag_len = (size_t)(p - s) + 1;
    const char *close = p + 1;
    while ((close = strchr(close, '$')) != NULL) {
        if (strncmp(close, s, tag_len) == 0)
            return close + tag_len;
        close++;
    }
    *unclosed = true;
    return s;
}

/* The end of a (nested) block comment opened at s; NULL when unclosed. */
static const char *skip_block_comment(const char *s)
{
    int depth = 0;
    for (const char *p = s; *p; p++) {
        if (p[0] == '/' && p[1] == '*') {
            depth++;
            p++;
        } else if (p[0] == '*' && p[1] == '/') {
            p++;
            if (--depth == 0)
                return p + 1;
        }
    }
    return NULL;
}

/* Past one quoted string, identifier or comment starting at p (or p itself
 * when none starts there); NULL with *problem set when it never ends. */
static const char *skip_token(const char *start, const char *p,
                              const char **problem)
{
    bool after_ident = p > start && ident_char((unsigned char)p[-1]);
    bool unclosed = false;
    const char *end = p;
    if (*p == '\'') {
        bool escapes = p > start && (p[-1] == 'E' || p[-1] == 'e') &&
                       !(p - 1 > start && ident_char((unsigned char)p[-2]));
        end = skip_quoted(p, escapes);
        unclosed = !end;
    } else if (*p == '"') {
        end = skip_quoted(p, false);
        unclosed = !end;
    } else if (*p == '$' && !after_ident) {
        end = skip_dollar(p, &unclosed);
    } else if (p[0] == '-' && p[1] == '-') {
        end = strchr(p, '\n');
        unclosed = !end;
    } else if (p[0] == '/' && p[1] == '*') {
        end = skip_block_comment(p);
        unclosed = !end;
    }
    if (unclosed)
        *problem = "ends inside a quoted string, a quoted identifier, a "
                   "dollar-quoted string or a comment";
    return unclosed ? NULL : end;
}

const char *backfill_where_problem(const char *where)
{
    const char *p = where;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return "is empty";
    int depth = 0;
    const char *problem = NULL;
    for (p = where; *p;) {
        const char *next = skip_token(where, p, &problem);
        if (!next)
            return problem;
        if (next != p) {
            p = next;
            continue;
        }
        if (*p == ';')
            return "holds a ';' (one expression, not statements)";
        if (*p == ')' && --depth < 0)
            return "has a ')' that closes more than it opened";
        depth += *p == '(';
        p++;
    }
    return depth ? "has a '(' that is never closed" : NULL;
}
