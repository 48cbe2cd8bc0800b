#include "pattern.h"

#include "error.h"
#include "json_string.h"
#include "regex_cost.h"
#include "strbuf.h"

#include <langinfo.h>
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

/* Refused as too complex beyond these (README "Table patterns"), figures
 * measured on glibc 2.36. glibc's parser recurses once per nesting level
 * (about 500 bytes of stack each) and crashes somewhere past 10000 levels
 * with an 8 MB stack. Size and width are regex_cost's estimates: within
 * them regcomp() took at most about 50 MB and a tenth of a second on every
 * shape tried (six times that under ASan, which the fuzz target's 2 GB
 * must hold twice over while a pattern is recompiled). */
#define MAX_NESTING 256
#define MAX_REGEX_SIZE 3e6
#define MAX_REGEX_WIDTH 4096.0

/* How [[:alpha:]], \w, \d, \s and the other classes treat characters
 * beyond ASCII, following the server's rules for the database's default
 * collation (PostgreSQL's regc_pg_locale.c). */
enum class_mode {
    /* the locale's own classes (glibc's Unicode tables) */
    CLASSES_LOCALE,
    /* a C/POSIX ctype: PostgreSQL's hard-wired ASCII table, so that no
     * non-ASCII character belongs to any class */
    CLASSES_ASCII,
};

struct table_pattern {
    bool qualified;
    char *pattern;      /* as the user wrote it, for messages */
    char *schema_regex; /* as psql builds it; NULL when unconstrained */
    char *name_regex;
    regex_t schema_re;
    regex_t name_re;
    bool compiled; /* schema_re and name_re hold what the regexes say */
    enum class_mode classes;
    /* PostgreSQL matches characters, not bytes, in a UTF-8 database; the
     * regex is compiled and run under a UTF-8 locale whatever the process
     * locale is, so that "?" matches one multibyte character. Its LC_CTYPE
     * also decides the classes in CLASSES_LOCALE mode. */
    locale_t utf8;
    char *locale_name; /* the database's LC_CTYPE when utf8 is it */
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

/* ---- character classes ---- */

#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define DIGIT "0123456789"
/* does not start with ":", "." or "=", which after a literal "[" would
 * open a [: :], [. .] or [= =] item */
#define PUNCT "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

/* PostgreSQL's classes. In a C/POSIX ctype every class is the ASCII set of
 * its C table; otherwise the locale decides, except for the four classes
 * PostgreSQL fixes whatever the locale (regc_locale.c): ascii, blank,
 * cntrl (which includes the C1 controls U+0080..U+009F) and xdigit. */
typedef struct char_class {
    const char *name;
    const char *ascii;        /* its ASCII members, in a C/POSIX ctype */
    char range_lo, range_hi;  /* and this ASCII range, when range_lo != 0 */
    bool c1_controls;         /* and U+0080..U+009F */
    const char *locale_class; /* glibc's class otherwise; NULL: fixed */
} char_class;

static const char_class char_classes[] = {
    {"alnum", UPPER LOWER DIGIT, 0, 0, false, "[:alnum:]"},
    {"alpha", UPPER LOWER, 0, 0, false, "[:alpha:]"},
    {"ascii", "", 0x01, 0x7f, false, NULL},
    {"blank", " \t", 0, 0, false, NULL},
    {"cntrl", "\x7f", 0x01, 0x1f, true, NULL},
    {"digit", DIGIT, 0, 0, false, "[:digit:]"},
    {"graph", UPPER LOWER DIGIT PUNCT, 0, 0, false, "[:graph:]"},
    {"lower", LOWER, 0, 0, false, "[:lower:]"},
    {"print", " " UPPER LOWER DIGIT PUNCT, 0, 0, false, "[:print:]"},
    {"punct", PUNCT, 0, 0, false, "[:punct:]"},
    {"space", " \t\n\v\f\r", 0, 0, false, "[:space:]"},
    {"upper", UPPER, 0, 0, false, "[:upper:]"},
    {"word", UPPER LOWER DIGIT "_", 0, 0, false, "[:alnum:]_"},
    {"xdigit", DIGIT "abcdefABCDEF", 0, 0, false, NULL},
};

static const char_class *find_class(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof char_classes / sizeof char_classes[0]; i++)
        if (strlen(char_classes[i].name) == len &&
            memcmp(char_classes[i].name, name, len) == 0)
            return &char_classes[i];
    return NULL;
}

/* One ASCII member inside an ERE bracket. The characters that mean
 * something by their position there become collating symbols, which mean
 * the character wherever they stand. */
static void append_bracket_member(strbuf *out, char c)
{
    if (strchr("]-^[", c)) {
        sbuf_append_str(out, "[.");
        sbuf_append_char(out, c);
        sbuf_append_str(out, ".]");
    } else {
        sbuf_append_char(out, c);
    }
}

/* The members of a class, for the inside of an ERE bracket. */
static void append_class_members(strbuf *out, const char_class *cc,
                                 enum class_mode mode)
{
    if (mode == CLASSES_LOCALE && cc->locale_class) {
        sbuf_append_str(out, cc->locale_class);
        return;
    }
    for (const char *c = cc->ascii; *c; c++)
        append_bracket_member(out, *c);
    for (int c = cc->range_lo; cc->range_lo && c <= cc->range_hi; c++)
        append_bracket_member(out, (char)c);
    for (int c = 0x80; cc->c1_controls && c <= 0x9f; c++) {
        sbuf_append_char(out, (char)0xC2); /* UTF-8 of U+0080..U+00BF */
        sbuf_append_char(out, (char)c);
    }
}

/* ---- PostgreSQL ARE -> POSIX ERE ---- */

/* What the previous element was, to reject quantifiers that PostgreSQL
 * rejects but glibc would quietly accept ("a**", "(+a)"). */
enum prev_kind { PREV_NOTHING, PREV_ATOM, PREV_QUANTIFIER };

/* glibc's node count for a bracket in a UTF-8 locale: the single-byte set,
 * the multibyte set and the alternation joining them. */
#define BRACKET_NODES 3

/* psql's leading "^" becomes this byte, which the subject is prefixed
 * with when matching: it never occurs in UTF-8, so it can match only
 * there. glibc treats an anchor as a constrained node and duplicates what
 * follows it, which for optional repetition after it costs time and memory
 * cubic in its size ("^((x?){0,255})$" takes 100 MB and a second;
 * "\xff((x?){0,255})$" 4 MB). */
#define START_SENTINEL '\xff'

typedef struct are_translator {
    const char *pattern; /* the user's pattern, for messages */
    const char *re;
    size_t pos;
    strbuf *out;
    enum class_mode classes;
    regex_cost *cost;
    enum prev_kind prev;
    /* open groups: depth 0 is outside psql's "^(...)$", 1 inside it */
    int depth;
    /* per depth: the current alternative has an element; a start anchor
     * was dropped inside the group */
    bool started[MAX_NESTING + 2];
    bool anchored[MAX_NESTING + 2];
    bool closed_anchored; /* the group just closed is anchored */
    /* where in out the last element and each open group start */
    size_t element_start;
    size_t next_element_start;
    size_t group_start[MAX_NESTING + 2];
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

/* The class an escape (\d \s \w, or their upper-case negations) stands
 * for, or NULL. */
static const char_class *escape_class(char e, bool *negated)
{
    *negated = e == 'D' || e == 'S' || e == 'W';
    switch (e) {
    case 'd':
    case 'D':
        return find_class("digit", 5);
    case 's':
    case 'S':
        return find_class("space", 5);
    case 'w':
    case 'W':
        return find_class("word", 4);
    default:
        return NULL;
    }
}

/* Messages quote a pattern and its regex at most this long, so that the
 * reason after them survives the message buffers. */
#define QUOTED_MAX 120

/* How much of s a message quotes: at most QUOTED_MAX bytes, never cutting
 * a UTF-8 character; *more is set when that is not all of it. */
static int quoted_len(const char *s, const char **more)
{
    size_t len = strlen(s);
    *more = "";
    if (len <= QUOTED_MAX)
        return (int)len;
    len = QUOTED_MAX;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
        len--;
    *more = "...";
    return (int)len;
}

/* "table pattern "P": what (in regular expression "R")" */
static void pattern_error(char *err, size_t errlen, const char *pattern,
                          const char *what, const char *regex)
{
    const char *pmore, *rmore;
    int plen = quoted_len(pattern, &pmore);
    int rlen = quoted_len(regex, &rmore);
    set_error(err, errlen,
              "table pattern \"%.*s%s\": %s (in regular expression "
              "\"%.*s%s\")",
              plen, pattern, pmore, what, rlen, regex, rmore);
}

static bool translate_fail(are_translator *t, const char *what)
{
    pattern_error(t->err, t->errlen, t->pattern, what, t->re);
    return false;
}

/* An element that matches something was added at the current depth. */
static void element_added(are_translator *t, enum prev_kind prev)
{
    t->element_start = t->next_element_start;
    t->started[t->depth] = true;
    t->closed_anchored = false;
    t->prev = prev;
}

static void append_literal_outside_bracket(strbuf *out, const char *c,
                                           size_t len)
{
    if (len == 1 && strchr(".[\\()*+?{|^$", *c))
        sbuf_append_char(out, '\\');
    sbuf_append(out, c, len);
}

/* Writes "(|)", which matches the empty string: glibc keeps an empty
 * group "()" as two nodes of its own (REG_NOSUB drops only groups with
 * something inside) and copies them with every repetition, and repeated
 * empty nodes are among its costliest shapes. */
static void append_empty(are_translator *t)
{
    sbuf_append_str(t->out, "(|)");
}

/* Applies {lo,hi} (hi < 0: unbounded) to the last element. */
static bool apply_repeat(are_translator *t, int lo, int hi)
{
    /* "(^a)*" would need the anchor on later rounds too */
    if (t->closed_anchored && (hi < 0 || hi > 1))
        return translate_fail(t, "a repeated group cannot contain ^ or \\A");
    if (hi == 0) {
        /* glibc would still build the element (and the copies within
         * it) only to drop it */
        t->out->len = t->element_start;
        t->out->data[t->out->len] = '\0';
        append_empty(t);
    }
    regex_cost_repeat(t->cost, lo, hi);
    t->closed_anchored = false;
    t->prev = PREV_QUANTIFIER;
    return true;
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
    return apply_repeat(t, (int)lo, (int)hi);
}

/* A class inside a bracket can be neither end of a range: PostgreSQL says
 * "invalid character range", and the members spelled out would otherwise
 * turn "[[:digit:]-z]" into the range "9-z". at is just past the class,
 * start where it began, first where the bracket's members begin. */
static bool check_class_not_in_range(are_translator *t, size_t start, size_t at,
                                     size_t first)
{
    bool range_follows = t->re[at] == '-' && t->re[at + 1] != ']';
    bool range_precedes =
        start > first && t->re[start - 1] == '-' && start - 1 > first;
    if (range_follows || range_precedes)
        return translate_fail(t, "invalid character range");
    return true;
}

/* The [: :], [. .] or [= =] item at re[*i] inside a bracket. */
static bool translate_bracket_item(are_translator *t, size_t *i, size_t first)
{
    const char *re = t->re;
    char kind = re[*i + 1];
    const char *name = re + *i + 2;
    const char *end = name;
    while (*end && !(end[0] == kind && end[1] == ']'))
        end++;
    if (!*end)
        return translate_fail(t, "unterminated [: :], [. .] or "
                                 "[= =] in bracket expression");
    size_t nlen = (size_t)(end - name);
    size_t start = *i;
    *i += nlen + 4;
    if (kind != ':') {
        sbuf_append(t->out, re + start, nlen + 4);
        return true;
    }
    if (nlen == 1 && (*name == '<' || *name == '>'))
        return translate_fail(t, "word boundaries [[:<:]] and "
                                 "[[:>:]] are not supported");
    const char_class *cc = find_class(name, nlen);
    if (!cc)
        return translate_fail(t, "invalid character class");
    if (!check_class_not_in_range(t, start, *i, first))
        return false;
    append_class_members(t->out, cc, t->classes);
    return true;
}

/* The escape at re[*i] inside a bracket, where ERE has none: a class
 * escape becomes the class's members, anything else the character. */
static bool translate_bracket_escape(are_translator *t, size_t *i, size_t first)
{
    size_t start = *i;
    char e = t->re[start + 1];
    int ctl = control_escape(e);
    bool negated;
    const char_class *cc = escape_class(e, &negated);
    *i += 2;
    if (cc && !negated) {
        if (!check_class_not_in_range(t, start, *i, first))
            return false;
        append_class_members(t->out, cc, t->classes);
    } else if (ctl >= 0) {
        sbuf_append_char(t->out, (char)ctl);
    } else if (e == '\\') {
        sbuf_append_char(t->out, '\\');
    } else if (e == ']' || e == '-' || e == '^' || e == '[') {
        /* ERE can only say these by position ("]" first, "-" last);
         * rewriting the set is not worth the risk */
        return translate_fail(t, "escaped ']', '-', '^' or '[' "
                                 "inside a bracket expression is "
                                 "not supported");
    } else if (e == '\0' || is_ascii_alnum((unsigned char)e) ||
               (unsigned char)e >= 0x80) {
        return translate_fail(t,
                              "unsupported escape inside a bracket expression");
    } else {
        sbuf_append_char(t->out, e);
    }
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
            if (!translate_bracket_item(t, &i, first))
                return false;
            continue;
        }
        if (c == '\\') {
            if (!translate_bracket_escape(t, &i, first))
                return false;
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
    regex_cost_atom(t->cost, BRACKET_NODES);
    element_added(t, PREV_ATOM);
    t->pos = i + 1;
    return true;
}

/* A class escape outside brackets: a bracket of its own. */
static void append_class_bracket(are_translator *t, const char_class *cc,
                                 bool negated)
{
    sbuf_append_str(t->out, negated ? "[^" : "[");
    append_class_members(t->out, cc, t->classes);
    sbuf_append_char(t->out, ']');
    regex_cost_atom(t->cost, BRACKET_NODES);
    element_added(t, PREV_ATOM);
}

/* "^" or "\A" written by the user. Where nothing can have been matched
 * yet it says nothing more than the sentinel and is dropped; elsewhere it
 * would need glibc's constrained nodes (see START_SENTINEL). */
static bool translate_start_anchor(are_translator *t, size_t len)
{
    for (int d = 1; d <= t->depth; d++)
        if (t->started[d])
            return translate_fail(t, "^ or \\A is supported only at the "
                                     "start of the pattern");
    for (int d = 1; d <= t->depth; d++)
        t->anchored[d] = true;
    t->pos += len;
    t->prev = PREV_NOTHING;
    return true;
}

/* "$" (psql's own, or the user's "\$" or "\Z"): glibc's end anchor is a
 * constrained node too, harmless only where nothing but the ends of
 * groups follows it. */
static bool translate_end_anchor(are_translator *t, size_t len)
{
    if (t->re[t->pos + len + strspn(t->re + t->pos + len, ")$")] != '\0')
        return translate_fail(t, "$ or \\Z is supported only at the end of "
                                 "the pattern");
    sbuf_append_char(t->out, '$');
    regex_cost_anchor(t->cost);
    t->pos += len;
    t->prev = PREV_NOTHING;
    return true;
}

/* Translates one escape outside brackets. */
static bool translate_escape(are_translator *t)
{
    char e = t->re[t->pos + 1];
    int ctl = control_escape(e);
    bool negated;
    const char_class *cc = escape_class(e, &negated);

    if (e == '\0')
        return translate_fail(t, "regular expression ends with a backslash");
    if (e == 'A')
        return translate_start_anchor(t, 2);
    if (e == 'Z')
        return translate_end_anchor(t, 2);
    if (cc) {
        append_class_bracket(t, cc, negated);
    } else if (ctl >= 0) {
        char c = (char)ctl;
        append_literal_outside_bracket(t->out, &c, 1);
        regex_cost_atom(t->cost, 1);
        element_added(t, PREV_ATOM);
    } else if (is_ascii_alnum((unsigned char)e) || (unsigned char)e >= 0x80) {
        /* back references, \m \M \y \Y, \x \u \U, \c ...: no ERE
         * equivalent, and a wrong guess would silently mismatch */
        char what[64];
        snprintf(what, sizeof what,
                 "unsupported regular expression escape \\%c",
                 (unsigned char)e >= 0x80 ? '?' : e);
        return translate_fail(t, what);
    } else {
        append_literal_outside_bracket(t->out, &e, 1);
        regex_cost_atom(t->cost, 1);
        element_added(t, PREV_ATOM);
    }
    t->pos += 2;
    return true;
}

/* "(" and ")": PostgreSQL refuses a stray ")" that glibc's ERE would take
 * as a literal, and nesting is bounded for glibc's recursive parser. */
static bool translate_paren(are_translator *t)
{
    char c = t->re[t->pos];
    if (c == '(') {
        if (t->depth == MAX_NESTING + 1) { /* psql's own is not counted */
            char what[96];
            snprintf(what, sizeof what,
                     "regular expression is too complex (more than %d "
                     "nested parentheses)",
                     MAX_NESTING);
            return translate_fail(t, what);
        }
        t->depth++;
        t->started[t->depth] = false;
        t->anchored[t->depth] = false;
        t->group_start[t->depth] = t->out->len;
        regex_cost_open_group(t->cost);
        sbuf_append_char(t->out, c);
        t->prev = PREV_NOTHING;
    } else {
        if (t->depth == 0)
            return translate_fail(t, "parentheses () not balanced");
        if (t->out->len == t->group_start[t->depth] + 1) {
            /* nothing inside: see append_empty() */
            regex_cost_alternative(t->cost);
            sbuf_append_char(t->out, '|');
        }
        sbuf_append_char(t->out, c);
        bool anchored = t->anchored[t->depth];
        t->next_element_start = t->group_start[t->depth--];
        regex_cost_close_group(t->cost);
        element_added(t, PREV_ATOM);
        t->closed_anchored = anchored;
    }
    t->pos++;
    return true;
}

/* "*", "+", "?" or a "{m,n}" bound at t->pos. */
static bool translate_quantifier(are_translator *t)
{
    char c = t->re[t->pos];
    if (t->prev != PREV_ATOM)
        return translate_fail(t, "quantifier operand invalid");
    if (c == '{')
        return translate_bound(t);
    sbuf_append_char(t->out, c);
    t->pos++;
    return apply_repeat(t, c == '+' ? 1 : 0, c == '?' ? 1 : -1);
}

/* One element of the regular expression at t->pos. */
static bool translate_element(are_translator *t)
{
    const char *re = t->re;
    char c = re[t->pos];
    t->next_element_start = t->out->len;
    switch (c) {
    case '\\':
        return translate_escape(t);
    case '[':
        return translate_bracket(t);
    case '(':
    case ')':
        return translate_paren(t);
    case '*':
    case '+':
    case '?':
        return translate_quantifier(t);
    case '{':
        if (is_digit(re[t->pos + 1]))
            return translate_quantifier(t);
        /* ARE: "{" not followed by a digit is an ordinary char */
        sbuf_append_str(t->out, "\\{");
        regex_cost_atom(t->cost, 1);
        element_added(t, PREV_ATOM);
        t->pos++;
        return true;
    case '|':
        regex_cost_alternative(t->cost);
        t->started[t->depth] = false;
        t->prev = PREV_NOTHING;
        sbuf_append_char(t->out, c);
        t->pos++;
        return true;
    case '^':
        if (t->pos > 0)
            return translate_start_anchor(t, 1);
        sbuf_append_char(t->out, START_SENTINEL); /* psql's */
        t->pos++;
        return true;
    case '$':
        return translate_end_anchor(t, 1);
    default: {
        /* "." "}" "]" and ordinary characters */
        size_t len = utf8_char_len(re + t->pos);
        sbuf_append(t->out, re + t->pos, len);
        regex_cost_atom(t->cost, (double)len);
        element_added(t, PREV_ATOM);
        t->pos += len;
        return true;
    }
    }
}

/* Refuses an expression beyond MAX_REGEX_SIZE or MAX_REGEX_WIDTH. */
static bool check_complexity(are_translator *t)
{
    double size, width;
    regex_cost_finish(t->cost, &size, &width);
    char what[160];
    if (size > MAX_REGEX_SIZE)
        snprintf(what, sizeof what,
                 "regular expression is too complex (estimated compiled "
                 "size %.0f, limit %.0f)",
                 size, MAX_REGEX_SIZE);
    else if (width > MAX_REGEX_WIDTH)
        snprintf(what, sizeof what,
                 "regular expression is too complex (%.0f alternatives or "
                 "optional parts apply at one point, limit %.0f)",
                 width, MAX_REGEX_WIDTH);
    else
        return true;
    return translate_fail(t, what);
}

/* Translates re, a regex as psql builds it ("^(...)$"), into a POSIX ERE
 * for glibc that starts with START_SENTINEL instead of "^". */
static bool are_to_ere(const char *pattern, const char *re,
                       enum class_mode classes, strbuf *out, char *err,
                       size_t errlen)
{
    are_translator *t = xcalloc(1, sizeof *t);
    *t = (are_translator){.pattern = pattern,
                          .re = re,
                          .out = out,
                          .classes = classes,
                          .cost = regex_cost_new(),
                          .prev = PREV_NOTHING,
                          .err = err,
                          .errlen = errlen};
    bool ok = true;
    while (ok && re[t->pos])
        ok = translate_element(t);
    ok = ok && check_complexity(t);
    regex_cost_free(t->cost);
    free(t);
    return ok;
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

/* The locale called name when this machine has it and it is UTF-8, else
 * (locale_t)0. */
static locale_t new_named_utf8_locale(const char *name)
{
    locale_t loc = newlocale(LC_CTYPE_MASK, name, (locale_t)0);
    if (loc != (locale_t)0 &&
        strcmp(nl_langinfo_l(CODESET, loc), "UTF-8") != 0) {
        freelocale(loc);
        loc = (locale_t)0;
    }
    return loc;
}

static bool compile_part(const table_pattern *p, const char *regex,
                         regex_t *compiled, char *err, size_t errlen)
{
    strbuf ere = STRBUF_INIT;
    if (!are_to_ere(p->pattern, regex, p->classes, &ere, err, errlen)) {
        sbuf_free(&ere);
        return false;
    }
    locale_t old = p->utf8 ? uselocale(p->utf8) : (locale_t)0;
    int rc = regcomp(compiled, ere.data, REG_EXTENDED | REG_NOSUB);
    if (p->utf8)
        uselocale(old);
    if (rc != 0) {
        char msg[160] = "invalid regular expression: ";
        size_t used = strlen(msg);
        regerror(rc, compiled, msg + used, sizeof msg - used);
        pattern_error(err, errlen, p->pattern, msg, regex);
        sbuf_free(&ere);
        return false;
    }
    sbuf_free(&ere);
    return true;
}

/* Compiles p's regexes with its classes and locale into schema_re and
 * name_re (those it has); on failure nothing is left to free. */
static bool compile_parts(const table_pattern *p, regex_t *schema_re,
                          regex_t *name_re, char *err, size_t errlen)
{
    if (p->schema_regex &&
        !compile_part(p, p->schema_regex, schema_re, err, errlen))
        return false;
    if (p->name_regex &&
        !compile_part(p, p->name_regex, name_re, err, errlen)) {
        if (p->schema_regex)
            regfree(schema_re);
        return false;
    }
    return true;
}

/* Frees what compiling gave p: its compiled regexes and its locale. */
static void free_compiled(table_pattern *p)
{
    if (p->compiled) {
        if (p->schema_regex)
            regfree(&p->schema_re);
        if (p->name_regex)
            regfree(&p->name_re);
        p->compiled = false;
    }
    if (p->utf8 != (locale_t)0)
        freelocale(p->utf8);
    p->utf8 = (locale_t)0;
    free(p->locale_name);
    p->locale_name = NULL;
}

/* The byte offset of the first malformed UTF-8 sequence, or -1. The
 * translator steps through characters; a lead byte whose continuation is
 * missing would make it swallow the next ones ("\xf7){1" as one
 * character) and judge another expression than glibc compiles. */
static long malformed_utf8_at(const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence_length((const unsigned char *)s + i, len - i);
        if (n == 0)
            return (long)i;
        i += n;
    }
    return -1;
}

table_pattern *table_pattern_compile(const char *pattern, const char *dbname,
                                     char *err, size_t errlen)
{
    long bad = malformed_utf8_at(pattern);
    if (bad >= 0) {
        set_error(err, errlen,
                  "table pattern is not valid UTF-8 (byte %ld): %s", bad + 1,
                  pattern);
        return NULL;
    }
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
    const char *name = sp.part[sp.nparts - 1].data;
    const char *schema = sp.nparts >= 2 ? sp.part[sp.nparts - 2].data : NULL;

    p->qualified = schema != NULL;
    p->pattern = xstrdup(pattern);
    if (schema && strcmp(schema, MATCH_ALL_REGEX) != 0)
        p->schema_regex = xstrdup(schema);
    if (strcmp(name, MATCH_ALL_REGEX) != 0)
        p->name_regex = xstrdup(name);
    split_pattern_free(&sp);

    p->classes = CLASSES_LOCALE;
    p->utf8 = new_utf8_locale();
    p->compiled = compile_parts(p, &p->schema_re, &p->name_re, err, errlen);
    if (!p->compiled) {
        table_pattern_free(p);
        return NULL;
    }
    return p;
}

/* What PostgreSQL's regex engine does for the default collation
 * (regc_pg_locale.c): a C/POSIX ctype, libc's or the builtin provider's,
 * has the hard-wired ASCII classes; ICU, the builtin C.UTF-8 and other
 * libc locales classify by Unicode. A libc locale in an encoding other
 * than UTF-8 classifies single bytes only, so in a multibyte one (EUC_*,
 * MULE_INTERNAL) and in SQL_ASCII nothing beyond ASCII is in a class. */
static enum class_mode classes_of(const database_ctype *db)
{
    if (db->provider == 'b')
        return db->locale && strcmp(db->locale, "C") == 0 ? CLASSES_ASCII
                                                          : CLASSES_LOCALE;
    if (db->provider == 'i')
        return CLASSES_LOCALE;
    if (strcmp(db->ctype, "C") == 0 || strcmp(db->ctype, "POSIX") == 0)
        return CLASSES_ASCII;
    if (strncmp(db->encoding, "EUC_", 4) == 0 ||
        strcmp(db->encoding, "MULE_INTERNAL") == 0 ||
        strcmp(db->encoding, "SQL_ASCII") == 0)
        return CLASSES_ASCII;
    return CLASSES_LOCALE;
}

/* A libc locale classifies with that locale's tables when this machine
 * has it in UTF-8; everything else with glibc's C.UTF-8 (Unicode) ones. */
static const char *locale_of(const database_ctype *db, enum class_mode classes)
{
    if (classes == CLASSES_LOCALE && db->provider != 'b' &&
        db->provider != 'i' && strcmp(db->encoding, "UTF8") == 0)
        return db->ctype;
    return NULL;
}

static bool same_locale(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool table_pattern_follow_database(table_pattern *p, const database_ctype *db,
                                   char *err, size_t errlen)
{
    enum class_mode classes = classes_of(db);
    const char *name = locale_of(db, classes);
    locale_t loc = name ? new_named_utf8_locale(name) : (locale_t)0;
    if (loc == (locale_t)0)
        name = NULL;
    if (p->classes == classes && same_locale(p->locale_name, name)) {
        if (loc != (locale_t)0)
            freelocale(loc);
        return true;
    }
    table_pattern next = *p;
    next.classes = classes;
    next.utf8 = loc != (locale_t)0 ? loc : new_utf8_locale();
    regex_t schema_re, name_re;
    if (!compile_parts(&next, &schema_re, &name_re, err, errlen)) {
        if (next.utf8 != (locale_t)0)
            freelocale(next.utf8);
        return false;
    }
    free_compiled(p);
    p->schema_re = schema_re;
    p->name_re = name_re;
    p->compiled = true;
    p->classes = classes;
    p->utf8 = next.utf8;
    p->locale_name = name ? xstrdup(name) : NULL;
    return true;
}

static bool regex_matches(const regex_t *re, locale_t loc, const char *s)
{
    /* the expression starts with START_SENTINEL instead of "^" */
    size_t len = strlen(s);
    char small[128];
    char *subject = len + 2 <= sizeof small ? small : xmalloc(len + 2);
    subject[0] = START_SENTINEL;
    memcpy(subject + 1, s, len + 1);
    locale_t old = loc ? uselocale(loc) : (locale_t)0;
    int rc = regexec(re, subject, 0, NULL, 0);
    if (loc)
        uselocale(old);
    if (subject != small)
        free(subject);
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
    free_compiled(p);
    free(p->pattern);
    free(p->schema_regex);
    free(p->name_regex);
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

bool table_filter_follow_database(table_filter *f, const database_ctype *db,
                                  char *err, size_t errlen)
{
    for (size_t i = 0; i < f->n_include; i++)
        if (!table_pattern_follow_database(f->include[i], db, err, errlen))
            return false;
    for (size_t i = 0; i < f->n_exclude; i++)
        if (!table_pattern_follow_database(f->exclude[i], db, err, errlen))
            return false;
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
    return p ? p->pattern : NULL;
}

const char *table_filter_exclude_match(const table_filter *f,
                                       const char *schema, const char *table,
                                       bool visible_in_search_path)
{
    const table_pattern *p = first_match(f->exclude, f->n_exclude, schema,
                                         table, visible_in_search_path);
    return p ? p->pattern : NULL;
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
            /* why names the pattern, shortened when long */
            snprintf(err, errlen, "%s: invalid %s pattern: %s",
                     origin ? origin : "table filter",
                     excl ? "exclude" : "include", why);
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
