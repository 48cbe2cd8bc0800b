#include "pattern.h"

#include "error.h"

#include "strbuf.h"

#include <locale.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* psql sends this for "*" and then leaves the column unconstrained. */
#define MATCH_ALL_REGEX "^(.*)$"

/* PostgreSQL's regex engine refuses bounds above this (its DUPMAX); glibc
 * would accept larger ones. */
#define MAX_REPEAT_BOUND 255

struct table_pattern {
    char *text; /* as given, for messages */
    bool qualified;
    char *schema_regex; /* as psql builds it; NULL when unconstrained */
    char *name_regex;
    regex_t schema_re;
    regex_t name_re;
    /* PostgreSQL matches characters, not bytes, in a UTF-8 database; the
     * regex is compiled and run under a UTF-8 locale whatever the process
     * locale is, so that "?" matches one multibyte character. */
    locale_t utf8;
};

struct table_filter {
    table_pattern **include;
    size_t n_include;
    table_pattern **exclude;
    size_t n_exclude;
};

/* Byte length of the character starting at s, by its UTF-8 lead byte, never
 * running past the terminating NUL (psql's PQmblenBounded for UTF8). */
static size_t utf8_char_len(const char *s)
{
    unsigned char c = (unsigned char)*s;
    size_t len = 1;
    if ((c & 0xE0) == 0xC0)
        len = 2;
    else if ((c & 0xF0) == 0xE0)
        len = 3;
    else if ((c & 0xF8) == 0xF0)
        len = 4;
    for (size_t i = 1; i < len; i++)
        if (s[i] == '\0')
            return i;
    return len;
}

/* ---- psql's pattern -> regular expression translation ---- */

enum { PART_DB, PART_SCHEMA, PART_NAME, MAX_PARTS };

typedef struct split_pattern {
    strbuf part[MAX_PARTS]; /* regexes, filled from part[0] onwards */
    int nparts;
    strbuf db_literal; /* the first part, unescaped, for the db check */
    int dotcnt;
} split_pattern;

/* Mirrors psql's patternToSQLRegex with room for db.schema.name: the
 * first parts go into part[0], part[1]; dots beyond the second stay in the
 * last part as literal characters but are still counted. */
static void split_into_regexes(const char *pattern, split_pattern *sp)
{
    bool in_quotes = false;
    bool in_first_part = true;
    int cur = 0;
    strbuf *out = &sp->part[0];
    strbuf *lit = &sp->db_literal;
    const char *cp = pattern;

    sp->dotcnt = 0;
    sbuf_append_str(out, "^(");
    sbuf_append_str(lit, ""); /* a string even when the part is empty */
    while (*cp) {
        char ch = *cp;

        if (ch == '"') {
            if (in_quotes && cp[1] == '"') {
                sbuf_append_char(out, '"');
                if (in_first_part)
                    sbuf_append_char(lit, '"');
                cp++;
            } else {
                in_quotes = !in_quotes;
            }
            cp++;
        } else if (!in_quotes && ch >= 'A' && ch <= 'Z') {
            /* psql folds with isupper() in a UTF-8 locale: ASCII only */
            sbuf_append_char(out, (char)(ch - 'A' + 'a'));
            if (in_first_part)
                sbuf_append_char(lit, (char)(ch - 'A' + 'a'));
            cp++;
        } else if (!in_quotes && ch == '*') {
            sbuf_append_str(out, ".*");
            if (in_first_part)
                sbuf_append_char(lit, '*');
            cp++;
        } else if (!in_quotes && ch == '?') {
            sbuf_append_char(out, '.');
            if (in_first_part)
                sbuf_append_char(lit, '?');
            cp++;
        } else if (!in_quotes && ch == '.') {
            in_first_part = false;
            sp->dotcnt++;
            if (cur < MAX_PARTS - 1) {
                sbuf_append_str(out, ")$");
                out = &sp->part[++cur];
                sbuf_append_str(out, "^(");
            } else {
                sbuf_append_char(out, '.');
            }
            cp++;
        } else if (ch == '$') {
            /* "$" is legal in identifiers, and anchoring is automatic, so
             * psql always takes it literally. */
            sbuf_append_str(out, "\\$");
            if (in_first_part)
                sbuf_append_char(lit, '$');
            cp++;
        } else {
            if (in_quotes && strchr("|*+?()[]{}.^$\\", ch))
                sbuf_append_char(out, '\\');
            else if (ch == '[' && cp[1] == ']')
                /* "[]" is far more likely an array type than a bracket */
                sbuf_append_char(out, '\\');
            size_t len = utf8_char_len(cp);
            sbuf_append(out, cp, len);
            if (in_first_part)
                sbuf_append(lit, cp, len);
            cp += len;
        }
    }
    sbuf_append_str(out, ")$");
    sp->nparts = cur + 1;
}

static void split_pattern_free(split_pattern *sp)
{
    for (int i = 0; i < MAX_PARTS; i++)
        sbuf_free(&sp->part[i]);
    sbuf_free(&sp->db_literal);
}

/* ---- PostgreSQL ARE -> POSIX ERE ---- */

/* What the previous element was, to reject quantifiers that PostgreSQL
 * rejects but glibc would quietly accept ("a**", "(+a)"). */
enum prev_kind { PREV_NOTHING, PREV_ATOM, PREV_QUANTIFIER };

typedef struct are_translator {
    const char *pattern; /* the user's pattern, for messages */
    const char *re;
    size_t pos;
    strbuf *out;
    char *err;
    size_t errlen;
} are_translator;

static bool is_ascii_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ARE's character-entry escapes that stand for one control character. */
static int control_escape(char c)
{
    switch (c) {
    case 'a':
        return '\a';
    case 'b':
        return '\b';
    case 'B':
        return '\\';
    case 'e':
        return 0x1B;
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'v':
        return '\v';
    default:
        return -1;
    }
}

static bool translate_fail(are_translator *t, const char *what)
{
    set_error(t->err, t->errlen,
              "table pattern \"%s\": %s (in regular expression \"%s\")",
              t->pattern, what, t->re);
    return false;
}

static void append_literal_outside_bracket(strbuf *out, const char *c,
                                           size_t len)
{
    if (len == 1 && strchr(".[\\()*+?{|^$", *c))
        sbuf_append_char(out, '\\');
    sbuf_append(out, c, len);
}

/* Reads a "{m}", "{m,}" or "{m,n}" bound at t->pos (which is at "{"),
 * checking it the way PostgreSQL does. */
static bool translate_bound(are_translator *t)
{
    const char *s = t->re + t->pos + 1;
    long lo = 0, hi = -1;
    const char *p = s;

    while (is_digit(*p) && lo <= MAX_REPEAT_BOUND)
        lo = lo * 10 + (*p++ - '0');
    hi = lo;
    if (*p == ',') {
        p++;
        if (is_digit(*p)) {
            hi = 0;
            while (is_digit(*p) && hi <= MAX_REPEAT_BOUND)
                hi = hi * 10 + (*p++ - '0');
        } else {
            hi = -1; /* unbounded */
        }
    }
    if (*p != '}')
        return translate_fail(t, "invalid repetition bound");
    if (lo > MAX_REPEAT_BOUND || hi > MAX_REPEAT_BOUND || (hi >= 0 && hi < lo))
        return translate_fail(t, "invalid repetition count(s)");
    sbuf_append(t->out, t->re + t->pos, (size_t)(p - (t->re + t->pos)) + 1);
    t->pos = (size_t)(p - t->re) + 1;
    return true;
}

/* Translates the bracket expression at t->pos ("[") into ERE, where a
 * backslash is an ordinary character instead of an escape. */
static bool translate_bracket(are_translator *t)
{
    const char *re = t->re;
    size_t i = t->pos + 1;
    strbuf *out = t->out;

    sbuf_append_char(out, '[');
    if (re[i] == '^')
        sbuf_append_char(out, re[i++]);
    if (re[i] == ']')
        sbuf_append_char(out, re[i++]);
    size_t first = i; /* a "-" here is literal, not a range */
    for (;;) {
        char c = re[i];
        if (c == '\0')
            return translate_fail(t, "unterminated bracket expression");
        if (c == ']')
            break;
        if (c == '[' &&
            (re[i + 1] == ':' || re[i + 1] == '.' || re[i + 1] == '=')) {
            char kind = re[i + 1];
            const char *name = re + i + 2;
            const char *end = name;
            while (*end && !(end[0] == kind && end[1] == ']'))
                end++;
            if (!*end)
                return translate_fail(t, "unterminated [: :], [. .] or "
                                         "[= =] in bracket expression");
            size_t nlen = (size_t)(end - name);
            if (kind == ':' && nlen == 1 && (*name == '<' || *name == '>'))
                return translate_fail(t, "word boundaries [[:<:]] and "
                                         "[[:>:]] are not supported");
            if (kind == ':' && nlen == 4 && strncmp(name, "word", 4) == 0)
                sbuf_append_str(out, "[:alnum:]_");
            else if (kind == ':' && nlen == 5 && strncmp(name, "ascii", 5) == 0)
                sbuf_append_str(out, "\x01-\x7f");
            else
                sbuf_append(out, re + i, nlen + 4);
            i += nlen + 4;
            continue;
        }
        if (c == '\\') {
            char e = re[i + 1];
            int ctl = control_escape(e);
            if (e == 'd')
                sbuf_append_str(out, "[:digit:]");
            else if (e == 's')
                sbuf_append_str(out, "[:space:]");
            else if (e == 'w')
                sbuf_append_str(out, "[:alnum:]_");
            else if (ctl >= 0)
                sbuf_append_char(out, (char)ctl);
            else if (e == '\\')
                sbuf_append_char(out, '\\');
            else if (e == ']' || e == '-' || e == '^' || e == '[')
                /* ERE can only say these by position ("]" first, "-" last);
                 * rewriting the set is not worth the risk */
                return translate_fail(t, "escaped ']', '-', '^' or '[' "
                                         "inside a bracket expression is "
                                         "not supported");
            else if (e == '\0' || is_ascii_alnum((unsigned char)e) ||
                     (unsigned char)e >= 0x80)
                return translate_fail(
                    t, "unsupported escape inside a bracket expression");
            else
                sbuf_append_char(out, e);
            i += 2;
            continue;
        }
        size_t len = utf8_char_len(re + i);
        bool non_ascii = (unsigned char)c >= 0x80;
        bool range_follows = re[i + len] == '-' && re[i + len + 1] != ']';
        bool range_precedes = i > first && re[i - 1] == '-' && i - 1 > first;
        if (non_ascii && (range_follows || range_precedes))
            /* glibc refuses these outside its own collation tables, and
             * PostgreSQL orders them by code point */
            return translate_fail(t, "ranges of non-ASCII characters in a "
                                     "bracket expression are not supported");
        sbuf_append(out, re + i, len);
        i += len;
    }
    sbuf_append_char(out, ']');
    t->pos = i + 1;
    return true;
}

/* Translates one escape outside brackets; sets *prev for what it produced. */
static bool translate_escape(are_translator *t, enum prev_kind *prev)
{
    char e = t->re[t->pos + 1];
    int ctl = control_escape(e);
    strbuf *out = t->out;

    *prev = PREV_ATOM;
    switch (e) {
    case '\0':
        return translate_fail(t, "regular expression ends with a backslash");
    case 'd':
        sbuf_append_str(out, "[[:digit:]]");
        break;
    case 'D':
        sbuf_append_str(out, "[^[:digit:]]");
        break;
    case 's':
        sbuf_append_str(out, "[[:space:]]");
        break;
    case 'S':
        sbuf_append_str(out, "[^[:space:]]");
        break;
    case 'w':
        sbuf_append_str(out, "[[:alnum:]_]");
        break;
    case 'W':
        sbuf_append_str(out, "[^[:alnum:]_]");
        break;
    case 'A':
        sbuf_append_char(out, '^');
        *prev = PREV_NOTHING;
        break;
    case 'Z':
        sbuf_append_char(out, '$');
        *prev = PREV_NOTHING;
        break;
    default:
        if (ctl >= 0) {
            char c = (char)ctl;
            append_literal_outside_bracket(out, &c, 1);
        } else if (is_ascii_alnum((unsigned char)e) ||
                   (unsigned char)e >= 0x80) {
            /* back references, \m \M \y \Y, \x \u \U, \c ...: no ERE
             * equivalent, and a wrong guess would silently mismatch */
            char what[64];
            snprintf(what, sizeof what,
                     "unsupported regular expression escape \\%c",
                     (unsigned char)e >= 0x80 ? '?' : e);
            return translate_fail(t, what);
        } else {
            append_literal_outside_bracket(out, &e, 1);
        }
        break;
    }
    t->pos += 2;
    return true;
}

static bool are_to_ere(const char *pattern, const char *re, strbuf *out,
                       char *err, size_t errlen)
{
    are_translator t = {pattern, re, 0, out, err, errlen};
    enum prev_kind prev = PREV_NOTHING;
    /* glibc's ERE takes a stray ')' as a literal; PostgreSQL refuses it. */
    int depth = 0;

    while (re[t.pos]) {
        char c = re[t.pos];
        switch (c) {
        case '\\':
            if (!translate_escape(&t, &prev))
                return false;
            break;
        case '[':
            if (!translate_bracket(&t))
                return false;
            prev = PREV_ATOM;
            break;
        case ')':
            if (depth == 0)
                return translate_fail(&t, "parentheses () not balanced");
            depth--;
            sbuf_append_char(out, c);
            t.pos++;
            prev = PREV_ATOM;
            break;
        case '(':
            depth++;
            /* fall through */
        case '|':
        case '^':
        case '$':
            sbuf_append_char(out, c);
            t.pos++;
            prev = PREV_NOTHING;
            break;
        case '*':
        case '+':
        case '?':
            if (prev != PREV_ATOM)
                return translate_fail(&t, "quantifier operand invalid");
            sbuf_append_char(out, c);
            t.pos++;
            prev = PREV_QUANTIFIER;
            break;
        case '{':
            if (is_digit(re[t.pos + 1])) {
                if (prev != PREV_ATOM)
                    return translate_fail(&t, "quantifier operand invalid");
                if (!translate_bound(&t))
                    return false;
                prev = PREV_QUANTIFIER;
            } else {
                /* ARE: "{" not followed by a digit is an ordinary char */
                sbuf_append_str(out, "\\{");
                t.pos++;
                prev = PREV_ATOM;
            }
            break;
        default: {
            /* ")" "." "}" "]" and ordinary characters */
            size_t len = utf8_char_len(re + t.pos);
            sbuf_append(out, re + t.pos, len);
            t.pos += len;
            prev = PREV_ATOM;
            break;
        }
        }
    }
    return true;
}

/* ---- compiling and matching ---- */

static locale_t new_utf8_locale(void)
{
    static const char *const names[] = {"C.UTF-8", "C.utf8", "en_US.UTF-8"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        locale_t loc = newlocale(LC_CTYPE_MASK, names[i], (locale_t)0);
        if (loc != (locale_t)0)
            return loc;
    }
    return (locale_t)0; /* fall back to the process locale */
}

static bool compile_part(const char *pattern, const char *regex,
                         regex_t *compiled, locale_t loc, char *err,
                         size_t errlen)
{
    strbuf ere = STRBUF_INIT;
    if (!are_to_ere(pattern, regex, &ere, err, errlen)) {
        sbuf_free(&ere);
        return false;
    }
    locale_t old = loc ? uselocale(loc) : (locale_t)0;
    int rc = regcomp(compiled, ere.data, REG_EXTENDED | REG_NOSUB);
    if (loc)
        uselocale(old);
    if (rc != 0) {
        char msg[128];
        regerror(rc, compiled, msg, sizeof msg);
        set_error(err, errlen,
                  "table pattern \"%s\": invalid regular expression \"%s\": "
                  "%s",
                  pattern, regex, msg);
        sbuf_free(&ere);
        return false;
    }
    sbuf_free(&ere);
    return true;
}

table_pattern *table_pattern_compile(const char *pattern, const char *dbname,
                                     char *err, size_t errlen)
{
    split_pattern sp = {0};
    split_into_regexes(pattern, &sp);

    if (sp.dotcnt > 2) {
        set_error(err, errlen,
                  "improper relation name (too many dotted names): %s",
                  pattern);
        split_pattern_free(&sp);
        return NULL;
    }
    if (sp.dotcnt == 2 &&
        (!dbname || strcmp(dbname, sp.db_literal.data) != 0)) {
        set_error(err, errlen,
                  "cross-database references are not implemented: %s", pattern);
        split_pattern_free(&sp);
        return NULL;
    }

    table_pattern *p = xcalloc(1, sizeof *p);
    p->text = xstrdup(pattern);
    const char *name = sp.part[sp.nparts - 1].data;
    const char *schema = sp.nparts >= 2 ? sp.part[sp.nparts - 2].data : NULL;

    p->qualified = schema != NULL;
    if (schema && strcmp(schema, MATCH_ALL_REGEX) != 0)
        p->schema_regex = xstrdup(schema);
    if (strcmp(name, MATCH_ALL_REGEX) != 0)
        p->name_regex = xstrdup(name);
    split_pattern_free(&sp);

    p->utf8 = new_utf8_locale();
    if (p->schema_regex && !compile_part(pattern, p->schema_regex,
                                         &p->schema_re, p->utf8, err, errlen)) {
        free(p->schema_regex);
        p->schema_regex = NULL; /* nothing compiled to free */
        table_pattern_free(p);
        return NULL;
    }
    if (p->name_regex && !compile_part(pattern, p->name_regex, &p->name_re,
                                       p->utf8, err, errlen)) {
        free(p->name_regex);
        p->name_regex = NULL;
        table_pattern_free(p);
        return NULL;
    }
    return p;
}

static bool regex_matches(const regex_t *re, locale_t loc, const char *s)
{
    locale_t old = loc ? uselocale(loc) : (locale_t)0;
    int rc = regexec(re, s, 0, NULL, 0);
    if (loc)
        uselocale(old);
    return rc == 0;
}

bool table_pattern_matches(const table_pattern *p, const char *schema,
                           const char *table, bool visible_in_search_path)
{
    if (!p->qualified && !visible_in_search_path)
        return false;
    if (p->schema_regex && !regex_matches(&p->schema_re, p->utf8, schema))
        return false;
    if (p->name_regex && !regex_matches(&p->name_re, p->utf8, table))
        return false;
    return true;
}

void table_pattern_free(table_pattern *p)
{
    if (!p)
        return;
    if (p->schema_regex) {
        regfree(&p->schema_re);
        free(p->schema_regex);
    }
    if (p->name_regex) {
        regfree(&p->name_re);
        free(p->name_regex);
    }
    if (p->utf8)
        freelocale(p->utf8);
    free(p->text);
    free(p);
}

const char *table_pattern_schema_regex(const table_pattern *p)
{
    return p->schema_regex;
}

const char *table_pattern_name_regex(const table_pattern *p)
{
    return p->name_regex;
}

bool table_pattern_is_qualified(const table_pattern *p)
{
    return p->qualified;
}

/* ---- include/exclude filter ---- */

table_filter *table_filter_new(void)
{
    return xcalloc(1, sizeof(table_filter));
}

bool table_filter_add(table_filter *f, bool exclude, const char *pattern,
                      const char *dbname, char *err, size_t errlen)
{
    table_pattern *p = table_pattern_compile(pattern, dbname, err, errlen);
    if (!p)
        return false;
    table_pattern ***list = exclude ? &f->exclude : &f->include;
    size_t *n = exclude ? &f->n_exclude : &f->n_include;
    *list = xrealloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = p;
    return true;
}

static const table_pattern *first_match(table_pattern *const *list, size_t n,
                                        const char *schema, const char *table,
                                        bool visible)
{
    for (size_t i = 0; i < n; i++)
        if (table_pattern_matches(list[i], schema, table, visible))
            return list[i];
    return NULL;
}

bool table_filter_matches(const table_filter *f, const char *schema,
                          const char *table, bool visible_in_search_path)
{
    if (table_filter_exclude_match(f, schema, table, visible_in_search_path))
        return false;
    return f->n_include == 0 ||
           table_filter_include_match(f, schema, table, visible_in_search_path);
}

const char *table_filter_include_match(const table_filter *f,
                                       const char *schema, const char *table,
                                       bool visible_in_search_path)
{
    const table_pattern *p = first_match(f->include, f->n_include, schema,
                                         table, visible_in_search_path);
    return p ? p->text : NULL;
}

const char *table_filter_exclude_match(const table_filter *f,
                                       const char *schema, const char *table,
                                       bool visible_in_search_path)
{
    const table_pattern *p = first_match(f->exclude, f->n_exclude, schema,
                                         table, visible_in_search_path);
    return p ? p->text : NULL;
}

bool table_filter_has_include(const table_filter *f)
{
    return f->n_include > 0;
}

bool table_filter_is_empty(const table_filter *f)
{
    return f->n_include == 0 && f->n_exclude == 0;
}

void table_filter_free(table_filter *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_include; i++)
        table_pattern_free(f->include[i]);
    for (size_t i = 0; i < f->n_exclude; i++)
        table_pattern_free(f->exclude[i]);
    free(f->include);
    free(f->exclude);
    free(f);
}

table_filter *table_filter_build(char *const *include, size_t n_include,
                                 const char *include_origin,
                                 char *const *exclude, size_t n_exclude,
                                 const char *exclude_origin, const char *dbname,
                                 char *err, size_t errlen)
{
    table_filter *f = table_filter_new();
    char why[1024];
    for (size_t i = 0; i < n_include + n_exclude; i++) {
        bool excl = i >= n_include;
        const char *pat = excl ? exclude[i - n_include] : include[i];
        if (!table_filter_add(f, excl, pat, dbname, why, sizeof why)) {
            const char *origin = excl ? exclude_origin : include_origin;
            snprintf(err, errlen, "%s: invalid %s pattern \"%s\": %s",
                     origin ? origin : "table filter",
                     excl ? "exclude" : "include", pat, why);
            table_filter_free(f);
            return NULL;
        }
    }
    return f;
}

/* ---- quote_ident ---- */

/* Keywords quote_ident() quotes: every category but unreserved (reserved,
 * column-name and type/function-name keywords of PostgreSQL 17). Sorted for
 * bsearch. */
static const char *const quoted_keywords[] = {
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "json",
    "json_array",
    "json_arrayagg",
    "json_exists",
    "json_object",
    "json_objectagg",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_table",
    "json_value",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "merge_action",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
};

static int compare_keyword(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

static bool is_quoted_keyword(const char *ident)
{
    return bsearch(ident, quoted_keywords,
                   sizeof quoted_keywords / sizeof quoted_keywords[0],
                   sizeof quoted_keywords[0], compare_keyword) != NULL;
}

char *quote_ident_dup(const char *ident)
{
    bool safe = (ident[0] >= 'a' && ident[0] <= 'z') || ident[0] == '_';
    for (const char *c = ident; *c && safe; c++)
        safe =
            (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
    if (safe && !is_quoted_keyword(ident))
        return xstrdup(ident);

    strbuf sb = STRBUF_INIT;
    sbuf_append_char(&sb, '"');
    for (const char *c = ident; *c; c++) {
        if (*c == '"')
            sbuf_append_char(&sb, '"');
        sbuf_append_char(&sb, *c);
    }
    sbuf_append_char(&sb, '"');
    return sbuf_detach(&sb);
}
