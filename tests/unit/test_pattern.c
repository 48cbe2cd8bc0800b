/* The table pattern compiler against psql's rules (pg_dump -t/-T): the
 * regexes it builds and what they match. */
#include "check.h"
#include "pattern.h"

#include <stdbool.h>
#include <stdlib.h>

#include "strbuf.h"

#define DB "mydb"

static table_pattern *compile(const char *pattern)
{
    char err[512] = "";
    table_pattern *p = table_pattern_compile(pattern, DB, err, sizeof err);
    if (!p)
        printf("# unexpected error for %s: %s\n", pattern, err);
    return p;
}

/* Checks the regexes psql would build for pattern. */
static void check_regexes(const char *pattern, const char *schema_re,
                          const char *name_re, bool qualified)
{
    table_pattern *p = compile(pattern);
    CHECK(p != NULL);
    if (!p)
        return;
    printf("# pattern %s\n", pattern);
    CHECK_STR(table_pattern_schema_regex(p), schema_re);
    CHECK_STR(table_pattern_name_regex(p), name_re);
    CHECK(table_pattern_is_qualified(p) == qualified);
    table_pattern_free(p);
}

static bool matches(const char *pattern, const char *schema, const char *table,
                    bool visible)
{
    table_pattern *p = compile(pattern);
    if (!p)
        return false;
    bool m = table_pattern_matches(p, schema, table, visible);
    table_pattern_free(p);
    return m;
}

/* Compiles pattern expecting failure; returns whether the message contains
 * want (and names the pattern). */
static bool fails_with(const char *pattern, const char *dbname,
                       const char *want)
{
    char err[512] = "";
    table_pattern *p = table_pattern_compile(pattern, dbname, err, sizeof err);
    if (p) {
        printf("# %s unexpectedly compiled\n", pattern);
        table_pattern_free(p);
        return false;
    }
    printf("# %s -> %s\n", pattern, err);
    return strstr(err, want) != NULL && strstr(err, pattern) != NULL;
}

static void test_case_folding_and_quotes(void)
{
    check_regexes("orders", NULL, "^(orders)$", false);
    check_regexes("Orders", NULL, "^(orders)$", false);
    check_regexes("\"Orders\"", NULL, "^(Orders)$", false);
    check_regexes("\"Foo\"Bar", NULL, "^(Foobar)$", false);
    check_regexes("\"MixedCase\".Foo", "^(MixedCase)$", "^(foo)$", true);
    check_regexes("\"a\"\"b\"", NULL, "^(a\"b)$", false);
    check_regexes("\"a\\b\"", NULL, "^(a\\\\b)$", false);

    CHECK(matches("Orders", "public", "orders", true));
    CHECK(!matches("Orders", "public", "Orders", true));
    CHECK(matches("\"Orders\"", "public", "Orders", true));
    CHECK(!matches("\"Orders\"", "public", "orders", true));
    CHECK(!matches("orders", "public", "orders2", true));
    CHECK(!matches("orders", "public", "my_orders", true));
    CHECK(matches("\"MixedCase\".Foo", "MixedCase", "foo", false));
    CHECK(!matches("\"MixedCase\".Foo", "mixedcase", "foo", false));
    CHECK(matches("\"a\"\"b\"", "public", "a\"b", true));
    CHECK(matches("\"a\\b\"", "public", "a\\b", true));
}

static void test_dots(void)
{
    check_regexes("\"a.b\"", NULL, "^(a\\.b)$", false);
    check_regexes("\"a.b\".c", "^(a\\.b)$", "^(c)$", true);
    check_regexes("foo\".\"bar", NULL, "^(foo\\.bar)$", false);
    check_regexes("public.orders", "^(public)$", "^(orders)$", true);

    CHECK(matches("\"a.b\"", "public", "a.b", true));
    CHECK(!matches("\"a.b\"", "public", "aXb", true));
    CHECK(matches("\"a.b\".c", "a.b", "c", false));
    CHECK(!matches("\"a.b\".c", "aXb", "c", false));
    CHECK(matches("foo\".\"bar", "public", "foo.bar", true));
}

static void test_wildcards(void)
{
    check_regexes("t*", NULL, "^(t.*)$", false);
    check_regexes("t?", NULL, "^(t.)$", false);
    check_regexes("\"t*\"", NULL, "^(t\\*)$", false);
    check_regexes("\"t?\"", NULL, "^(t\\?)$", false);
    check_regexes("a$b", NULL, "^(a\\$b)$", false);
    check_regexes("\"a$b\"", NULL, "^(a\\$b)$", false);

    CHECK(matches("t*", "public", "t", true));
    CHECK(matches("t*", "public", "tab", true));
    CHECK(!matches("t*", "public", "xt", true));
    CHECK(matches("t?", "public", "t1", true));
    CHECK(!matches("t?", "public", "t", true));
    CHECK(!matches("t?", "public", "t12", true));
    /* one character, not one byte */
    CHECK(matches("t?", "public", "t\xc3\xa9", true));
    CHECK(matches("\"t*\"", "public", "t*", true));
    CHECK(!matches("\"t*\"", "public", "tx", true));
    CHECK(matches("a$b", "public", "a$b", true));
    CHECK(!matches("a$b", "public", "a", true));
    CHECK(matches("\"a$b\"", "public", "a$b", true));
}

static void test_regex_notation(void)
{
    check_regexes("t[0-9]", NULL, "^(t[0-9])$", false);
    check_regexes("(a|b)x", NULL, "^((a|b)x)$", false);
    check_regexes("a|b", NULL, "^(a|b)$", false);
    check_regexes("\"(a|b)\"", NULL, "^(\\(a\\|b\\))$", false);
    check_regexes("t[]", NULL, "^(t\\[])$", false);
    check_regexes("\"t[]\"", NULL, "^(t\\[\\])$", false);
    check_regexes("t\\d+", NULL, "^(t\\d+)$", false);
    check_regexes("a{2}", NULL, "^(a{2})$", false);

    CHECK(matches("t[0-9]", "public", "t5", true));
    CHECK(!matches("t[0-9]", "public", "ta", true));
    CHECK(!matches("t[0-9]", "public", "t55", true));
    CHECK(matches("t[0-9]+", "public", "t123", true));
    CHECK(!matches("t[0-9]+", "public", "t", true));
    CHECK(matches("(a|b)x", "public", "ax", true));
    CHECK(matches("(a|b)x", "public", "bx", true));
    CHECK(!matches("(a|b)x", "public", "abx", true));
    /* the ^(...)$ wrapping anchors every alternative */
    CHECK(matches("a|b", "public", "a", true));
    CHECK(matches("a|b", "public", "b", true));
    CHECK(!matches("a|b", "public", "ab", true));
    CHECK(!matches("a|b", "public", "xa", true));
    CHECK(matches("\"(a|b)\"", "public", "(a|b)", true));
    CHECK(!matches("\"(a|b)\"", "public", "a", true));
    CHECK(matches("ab+", "public", "abbb", true));
    CHECK(!matches("ab+", "public", "a", true));
    CHECK(matches("a{2}", "public", "aa", true));
    CHECK(!matches("a{2}", "public", "a", true));
    CHECK(matches("a{2,3}", "public", "aaa", true));
    CHECK(!matches("a{2,3}", "public", "aaaa", true));
    CHECK(matches("t[]", "public", "t[]", true));
    CHECK(!matches("t[]", "public", "t", true));
    CHECK(matches("\"t[]\"", "public", "t[]", true));
    CHECK(matches("[[:alpha:]]+", "public", "abc", true));
    CHECK(!matches("[[:alpha:]]+", "public", "ab1", true));
    CHECK(matches("x[^0-9]", "public", "x\xc3\xa9", true));
    CHECK(matches("x[a\xc3\xa9]", "public", "x\xc3\xa9", true));
    CHECK(matches("x[-\xc3\xa9]", "public", "x-", true));
    /* "{" not followed by a digit is an ordinary character in an ARE */
    CHECK(matches("a{,2}", "public", "a{,2}", true));
    CHECK(matches("a{b}", "public", "a{b}", true));
    /* an unquoted backslash passes through and then escapes psql's "\$":
     * the regex "a\\$" is a literal backslash and an end anchor */
    check_regexes("a\\$", NULL, "^(a\\\\$)$", false);
    CHECK(matches("a\\$", "public", "a\\", true));
    CHECK(!matches("a\\$", "public", "a\\$", true));
}

static void test_are_escapes(void)
{
    CHECK(matches("t\\d+", "public", "t12", true));
    CHECK(!matches("t\\d+", "public", "tx", true));
    /* unquoted letters fold before the regex is built, so "\D" is "\d" */
    check_regexes("t\\D", NULL, "^(t\\d)$", false);
    CHECK(matches("t\\D", "public", "t1", true));
    CHECK(!matches("t\\D", "public", "tx", true));
    CHECK(matches("\\w+", "public", "ab_1", true));
    CHECK(!matches("\\w+", "public", "a-b", true));
    CHECK(matches("a\\Wb", "public", "a_b", true));
    CHECK(!matches("a\\Wb", "public", "a-b", true));
    CHECK(matches("a\\sb", "public", "a b", true));
    CHECK(matches("a\\sb", "public", "a\tb", true));
    CHECK(!matches("a\\sb", "public", "ab", true));
    CHECK(matches("[\\d_]+", "public", "1_2", true));
    CHECK(!matches("[\\d_]+", "public", "1a", true));
    /* backslash before punctuation is the literal character; "\<" must not
     * become glibc's word boundary */
    CHECK(matches("a\\<b", "public", "a<b", true));
    CHECK(matches("a\\-b", "public", "a-b", true));
    CHECK(matches("a\\{", "public", "a{", true));
}

static void test_schema_and_visibility(void)
{
    check_regexes("*.name", NULL, "^(name)$", true);
    check_regexes("myschema.*", "^(myschema)$", NULL, true);
    check_regexes("*", NULL, NULL, false);
    check_regexes("*.*", NULL, NULL, true);
    check_regexes("foo*.*bar*", "^(foo.*)$", "^(.*bar.*)$", true);

    /* unqualified: only tables visible in the search_path */
    CHECK(matches("orders", "public", "orders", true));
    CHECK(!matches("orders", "public", "orders", false));
    CHECK(matches("*", "s", "t", true));
    CHECK(!matches("*", "s", "t", false));
    /* qualified: visibility is ignored */
    CHECK(matches("public.orders", "public", "orders", false));
    CHECK(!matches("public.orders", "other", "orders", true));
    CHECK(matches("*.name", "any", "name", false));
    CHECK(!matches("*.name", "any", "other", false));
    CHECK(matches("myschema.*", "myschema", "whatever", false));
    CHECK(!matches("myschema.*", "other", "whatever", true));
    CHECK(matches("*.*", "s", "t", false));
    CHECK(matches("foo*.*bar*", "foo2", "xbarx", false));
    CHECK(!matches("foo*.*bar*", "xfoo", "bar", false));
}

static void test_empty_parts(void)
{
    /* psql 14+ keeps an empty part as "^()$", which matches no name */
    check_regexes("myschema.", "^(myschema)$", "^()$", true);
    check_regexes(".foo", "^()$", "^(foo)$", true);
    check_regexes("", NULL, "^()$", false);
    check_regexes(".", "^()$", "^()$", true);

    CHECK(!matches("myschema.", "myschema", "t", false));
    CHECK(!matches(".foo", "public", "foo", true));
    CHECK(!matches("", "public", "t", true));
}

static void test_three_part_names(void)
{
    check_regexes("mydb.public.t", "^(public)$", "^(t)$", true);
    check_regexes("MyDb.public.t", "^(public)$", "^(t)$", true);
    check_regexes(DB ".*.*", NULL, NULL, true);
    CHECK(matches("mydb.public.t", "public", "t", false));
    CHECK(!matches("mydb.public.t", "other", "t", false));

    CHECK(fails_with("other.public.t", DB,
                     "cross-database references are not implemented"));
    /* the db part is compared literally, never as a pattern */
    CHECK(fails_with("my*.public.t", DB, "cross-database references"));
    CHECK(fails_with("\"MyDb\".public.t", DB, "cross-database references"));
    CHECK(fails_with("mydb.public.t", NULL, "cross-database references"));

    char err[256];
    table_pattern *p =
        table_pattern_compile("\"MyDb\".public.t", "MyDb", err, sizeof err);
    CHECK(p != NULL);
    table_pattern_free(p);
    p = table_pattern_compile("\"my.db\".public.t", "my.db", err, sizeof err);
    CHECK(p != NULL);
    if (p)
        CHECK_STR(table_pattern_schema_regex(p), "^(public)$");
    table_pattern_free(p);

    CHECK(fails_with("a.b.c.d", DB, "too many dotted names"));
    CHECK(fails_with("mydb.public.t.x.y", DB, "too many dotted names"));
    CHECK(fails_with("\"a.b\".c.d.e", DB, "too many dotted names"));
    /* quoted dots do not count */
    check_regexes("\"a.b.c.d\"", NULL, "^(a\\.b\\.c\\.d)$", false);
    check_regexes("mydb.\"a.b\".\"c.d\"", "^(a\\.b)$", "^(c\\.d)$", true);
}

static void test_multibyte(void)
{
    /* only ASCII letters fold, as psql does in a UTF-8 locale (octal
     * escapes: \303\234 is U+00DC) */
    check_regexes("\303\234BER", NULL, "^(\303\234ber)$", false);
    check_regexes("\"\303\234ber\"", NULL, "^(\303\234ber)$", false);
    CHECK(matches("\303\234BER", "public", "\303\234ber", true));
    CHECK(matches("caf?", "public", "caf\xc3\xa9", true));
    CHECK(matches("\xe6\x97\xa5*", "public", "\xe6\x97\xa5\xe6\x9c\xac", true));
    CHECK(!matches("\xe6\x97\xa5?", "public", "\xe6\x97\xa5", true));
}

static void test_rejected(void)
{
    /* what PostgreSQL itself rejects */
    CHECK(fails_with("x\\.y", DB, "invalid regular expression"));
    /* the trailing backslash escapes the closing ")" of "^(t\\)$" */
    CHECK(fails_with("t\\", DB, "invalid regular expression"));
    CHECK(fails_with("+a", DB, "quantifier operand invalid"));
    CHECK(fails_with("a|+b", DB, "quantifier operand invalid"));
    CHECK(fails_with("a*+", DB, "quantifier operand invalid"));
    CHECK(fails_with("a+{2}", DB, "quantifier operand invalid"));
    /* PostgreSQL refuses a stray ")"; glibc would match it literally. */
    CHECK(fails_with("a)", DB, "parentheses () not balanced"));
    CHECK(fails_with("(a))b", DB, "parentheses () not balanced"));
    CHECK(!fails_with("(a)b", DB, "parentheses"));
    CHECK(!fails_with("\"a)\"", DB, "parentheses"));
    CHECK(fails_with("a{300}", DB, "invalid repetition count"));
    CHECK(fails_with("a{3,2}", DB, "invalid repetition count"));
    CHECK(fails_with("a{2x}", DB, "invalid repetition bound"));
    CHECK(fails_with("t[0-9", DB, "unterminated bracket"));
    CHECK(fails_with("(ab", DB, "invalid regular expression"));
    CHECK(fails_with("t\\q", DB, "unsupported regular expression escape"));
    /* ARE features with no ERE equivalent */
    CHECK(fails_with("(a)\\1", DB, "unsupported regular expression escape"));
    CHECK(fails_with("a\\mb", DB, "unsupported regular expression escape"));
    CHECK(fails_with("a\\yb", DB, "unsupported regular expression escape"));
    CHECK(fails_with("[[:<:]]a", DB, "word boundaries"));
    CHECK(fails_with("[a\\]]", DB, "inside a bracket expression"));
    CHECK(fails_with("[\xc3\xa0-\xc3\xbf]", DB, "non-ASCII"));
    CHECK(fails_with("[a-\xc3\xbf]", DB, "non-ASCII"));
    CHECK(fails_with("[\\-]", DB, "inside a bracket expression"));
    CHECK(fails_with("[\\x41]", DB, "inside a bracket expression"));
    /* Malformed UTF-8: a lead byte must not swallow the ")" after it
     * (the server would refuse such a name anyway). */
    CHECK(fails_with("(a\xf7){9})b", DB, "not valid UTF-8 (byte 3)"));
    CHECK(fails_with("caf\xe9", DB, "not valid UTF-8 (byte 4)"));
    CHECK(fails_with("\xc3", DB, "not valid UTF-8 (byte 1)"));
    CHECK(fails_with("\xed\xa0\x80", DB, "not valid UTF-8")); /* surrogate */
}

static void test_filter(void)
{
    char err[512];
    table_filter *f = table_filter_new();
    CHECK(table_filter_is_empty(f));
    CHECK(table_filter_matches(f, "public", "anything", true));
    CHECK(table_filter_matches(f, "hidden", "anything", false));

    /* only excludes: everything else passes */
    CHECK(table_filter_add(f, true, "audit_*", DB, err, sizeof err));
    CHECK(!table_filter_is_empty(f));
    CHECK(!table_filter_matches(f, "public", "audit_log", true));
    CHECK(table_filter_matches(f, "public", "orders", true));
    /* an unqualified exclude does not reach invisible tables */
    CHECK(table_filter_matches(f, "hidden", "audit_log", false));
    table_filter_free(f);

    f = table_filter_new();
    CHECK(table_filter_add(f, false, "public.orders", DB, err, sizeof err));
    CHECK(table_filter_add(f, false, "sales.*", DB, err, sizeof err));
    CHECK(table_filter_add(f, true, "*.secret", DB, err, sizeof err));
    CHECK(table_filter_matches(f, "public", "orders", true));
    CHECK(table_filter_matches(f, "sales", "q1", false));
    CHECK(!table_filter_matches(f, "public", "customers", true));
    /* -T wins over -t */
    CHECK(!table_filter_matches(f, "sales", "secret", false));
    CHECK(table_filter_add(f, true, "orders", DB, err, sizeof err));
    CHECK(!table_filter_matches(f, "public", "orders", true));
    CHECK(table_filter_matches(f, "public", "orders", false));

    err[0] = '\0';
    CHECK(!table_filter_add(f, false, "a.b.c.d", DB, err, sizeof err));
    CHECK(strstr(err, "a.b.c.d") != NULL);
    CHECK(!table_filter_add(f, true, "t[", DB, err, sizeof err));
    CHECK(strstr(err, "t[") != NULL);
    table_filter_free(f);
}

/* ---- patterns too complex to compile ---- */

/* alternatives^n joined by sep, each "w<i>", inside parentheses */
static char *alternation(int n)
{
    strbuf sb = STRBUF_INIT;
    sbuf_append_char(&sb, '(');
    for (int i = 0; i < n; i++)
        sbuf_appendf(&sb, "%sw%d", i ? "|" : "", i);
    sbuf_append_char(&sb, ')');
    return sbuf_detach(&sb);
}

static char *nested(int levels, const char *open, const char *inner,
                    const char *close)
{
    strbuf sb = STRBUF_INIT;
    for (int i = 0; i < levels; i++)
        sbuf_append_str(&sb, open);
    sbuf_append_str(&sb, inner);
    for (int i = 0; i < levels; i++)
        sbuf_append_str(&sb, close);
    return sbuf_detach(&sb);
}

/* Long patterns do not fit in the message whole: it names their start. */
static void check_too_complex(char *pattern)
{
    char err[512] = "";
    table_pattern *p = table_pattern_compile(pattern, DB, err, sizeof err);
    CHECK(p == NULL);
    table_pattern_free(p);
    printf("# %.60s... -> %.200s\n", pattern, err);
    CHECK(strstr(err, "regular expression is too complex") != NULL);
    char start[64];
    snprintf(start, sizeof start, "table pattern \"%.40s", pattern);
    CHECK(strncmp(err, start, strlen(start)) == 0);
    free(pattern);
}

static void check_compiles(char *pattern)
{
    table_pattern *p = compile(pattern);
    CHECK(p != NULL);
    table_pattern_free(p);
    free(pattern);
}

static void test_complexity(void)
{
    /* glibc would take 3.4 GB and 10 s for the first, 23 GB+ for the
     * second; PostgreSQL refuses both */
    check_too_complex(xstrdup("((a{255}){255}){255}"));
    check_too_complex(xstrdup("(((a{255}){255}){255}){255}"));
    check_too_complex(xstrdup("x((a{255}){255}){255}y|z"));
    /* each "+" doubles what it repeats */
    check_too_complex(nested(20, "(", "a", ")+"));
    /* alternation costs glibc quadratic memory */
    check_too_complex(alternation(3000));
    /* optional parts that all apply at once make regexec slow */
    check_too_complex(xstrdup("(a{0,255}){40}"));
    check_too_complex(xstrdup("((x|y{0,1}){0,255}){0,20}"));
    /* a group repeated zero times is still built by glibc: it is written
     * as an empty alternation, which is counted */
    check_too_complex(xstrdup("(x|(){100}){0,255}"));
    check_too_complex(xstrdup("(x|(a{255}){0}){0,255}(x|(){100}){0,255}"));
    /* glibc's parser recurses once per level */
    check_too_complex(nested(257, "(", "a", ")"));

    /* what PostgreSQL accepts in practice stays accepted */
    check_compiles(xstrdup("(a{255}){255}"));
    check_compiles(xstrdup("((a{35}){35}){35}"));
    check_compiles(xstrdup("(a{0,1}){255}"));
    check_compiles(xstrdup("[[:alpha:]_]{1,255}"));
    check_compiles(xstrdup("events_[0-9]{4}_[0-9]{2}(_[0-9]{2})?"));
    check_compiles(nested(15, "(", "a", ")+"));
    check_compiles(nested(256, "(", "a", ")"));
    check_compiles(xstrdup("(x|(a{255}){0}){0,255}"));
    char *alt = alternation(1000);
    CHECK(matches(alt, "public", "w999", true));
    CHECK(!matches(alt, "public", "w1000", true));
    free(alt);
}

/* psql's own "^" becomes a sentinel; the user's anchors are accepted only
 * where glibc's constrained nodes cost nothing. (In a psql pattern "?"
 * and "*" are wildcards and unquoted letters fold, so "^" and "$" after a
 * literal backslash are the only anchors a user can write.) */
static void test_anchors(void)
{
    CHECK(matches("^foo", "public", "foo", true));
    CHECK(!matches("^foo", "public", "xfoo", true));
    CHECK(matches("^^foo", "public", "foo", true));
    CHECK(matches("(^a|b)x", "public", "ax", true));
    CHECK(matches("(^a|b)x", "public", "bx", true));
    CHECK(matches("a|^b", "public", "b", true));
    CHECK(matches("(^a){0,1}b", "public", "ab", true));
    CHECK(matches("(^a){0,1}b", "public", "b", true));
    CHECK(!matches("(^a){0,1}b", "public", "xb", true));
    CHECK(fails_with("a^b", DB, "only at the start"));
    CHECK(fails_with("(a)^b", DB, "only at the start"));
    CHECK(fails_with("x(^a)", DB, "only at the start"));
    CHECK(fails_with("()^a", DB, "only at the start"));
    CHECK(fails_with("(^a)+", DB, "repeated group"));
    CHECK(fails_with("((^a)b){2}", DB, "repeated group"));
    /* "\$" is a literal backslash and an end anchor, which must end the
     * pattern */
    CHECK(matches("(a|b)\\$", "public", "b\\", true));
    CHECK(fails_with("(a\\$|b)", DB, "only at the end"));
    CHECK(fails_with("a\\$b", DB, "only at the end"));
    CHECK(fails_with("(a\\$){2}", DB, "only at the end"));
    /* names never contain the sentinel byte, but must not trip on it */
    CHECK(!matches("?*", "public", "", true));
    CHECK(matches("*", "public", "\xff", true));
}

static void test_empty_groups(void)
{
    CHECK(matches("a()b", "public", "ab", true));
    CHECK(matches("a(){3}b", "public", "ab", true));
    CHECK(matches("a(b){0}c", "public", "ac", true));
    CHECK(!matches("a(b){0}c", "public", "abc", true));
    CHECK(matches("x(a{0})+y", "public", "xy", true));
    CHECK(matches("x(a{0,0}|b)y", "public", "xby", true));
    CHECK(matches("x(a{0,0}|b)y", "public", "xy", true));
}

/* ---- character classes by database collation ---- */

static const database_ctype LIBC_C = {'c', "C", NULL, "UTF8"};
static const database_ctype LIBC_POSIX = {'c', "POSIX", NULL, "UTF8"};
static const database_ctype LIBC_UTF8 = {'c', "C.UTF-8", NULL, "UTF8"};
static const database_ctype LIBC_MISSING = {'c', "xx_XX.UTF-8", NULL, "UTF8"};
static const database_ctype LIBC_EUC = {'c', "ja_JP.eucJP", NULL, "EUC_JP"};
static const database_ctype LIBC_LATIN1 = {'c', "de_DE.ISO-8859-1", NULL,
                                           "LATIN1"};
static const database_ctype SQL_ASCII = {'c', "en_US.UTF-8", NULL, "SQL_ASCII"};
static const database_ctype ICU_WITH_C_CTYPE = {'i', "C", "und", "UTF8"};
static const database_ctype BUILTIN_C = {'b', "C", "C", "UTF8"};
static const database_ctype BUILTIN_UTF8 = {'b', "C", "C.UTF-8", "UTF8"};

static bool matches_in(const database_ctype *db, const char *pattern,
                       const char *table)
{
    table_pattern *p = compile(pattern);
    if (!p)
        return false;
    char err[512] = "";
    bool ok = table_pattern_follow_database(p, db, err, sizeof err);
    CHECK(ok);
    if (!ok)
        printf("# %s: %s\n", pattern, err);
    bool m = table_pattern_matches(p, "public", table, true);
    table_pattern_free(p);
    return m;
}

#define A_UML "\xc3\x84" /* U+00C4 */
#define E_ACUTE "\xc3\xa9"
#define SZLIG "\xc3\x9f"
#define NIHON "\xe6\x97\xa5\xe6\x9c\xac"
#define NEL "\xc2\x85"            /* U+0085, a C1 control */
#define IDEO_SPACE "\xe3\x80\x80" /* U+3000 */

static void test_c_ctype_classes(void)
{
    const database_ctype *c = &LIBC_C;
    /* nothing beyond ASCII is in a class: not letters ... */
    CHECK(!matches_in(c, "[[:upper:]]+", A_UML "RGER"));
    CHECK(!matches_in(c, "[[:alpha:]]+", "t" E_ACUTE));
    CHECK(!matches_in(c, "[[:lower:]]", SZLIG));
    CHECK(!matches_in(c, "\\w+", NIHON));
    CHECK(!matches_in(c, "[[:alnum:]]+", NIHON));
    CHECK(!matches_in(c, "[[:graph:]]", E_ACUTE));
    CHECK(!matches_in(c, "[[:print:]]", E_ACUTE));
    CHECK(!matches_in(c, "[[:punct:]]", "\xc2\xbf")); /* U+00BF */
    /* ... so negations take them */
    CHECK(matches_in(c, "[^[:alpha:]]+", NIHON));
    CHECK(matches_in(c, "[^\\w]", E_ACUTE));
    CHECK(matches_in(c, "x[^[:alnum:]_]y", "x" SZLIG "y"));
    CHECK(matches_in(c, "[^[:upper:][:lower:]]", A_UML));
    /* ASCII is as before */
    CHECK(matches_in(c, "[[:upper:]][[:lower:]]+", "Abc"));
    CHECK(matches_in(c, "\\w+", "a1_b"));
    CHECK(matches_in(c, "\\d+", "2024"));
    CHECK(matches_in(c, "a\\sb", "a\tb"));
    CHECK(matches_in(c, "[[:xdigit:]]+", "09afAF"));
    CHECK(!matches_in(c, "[[:xdigit:]]", "g"));
    /* the punctuation that means something inside a bracket */
    CHECK(matches_in(c, "[[:punct:]]+", "]-^[\\"));
    CHECK(matches_in(c, "[x[:punct:]]+", "x]x-"));
    CHECK(!matches_in(c, "[^[:punct:]]", "]"));
    CHECK(matches_in(c, "[^[:punct:]]", "a"));
    CHECK(matches_in(c, "[[:digit:]-]+", "1-2"));
    CHECK(matches_in(c, "[-[:digit:]]+", "1-2"));
    CHECK(matches_in(&LIBC_POSIX, "[^[:alpha:]]", A_UML));
}

static void test_classes_fixed_by_postgresql(void)
{
    /* ascii, blank, cntrl and xdigit are the same in every database */
    const database_ctype *dbs[] = {&LIBC_C, &LIBC_UTF8, &ICU_WITH_C_CTYPE};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        CHECK(matches_in(dbs[i], "[[:cntrl:]]", NEL));
        CHECK(matches_in(dbs[i], "[[:cntrl:]]", "\x1f"));
        CHECK(!matches_in(dbs[i], "[[:blank:]]", IDEO_SPACE));
        CHECK(matches_in(dbs[i], "a[[:blank:]]b", "a\tb"));
        CHECK(!matches_in(dbs[i], "[[:xdigit:]]", E_ACUTE));
        CHECK(matches_in(dbs[i], "[[:ascii:]]+", "a~\x01"));
        CHECK(!matches_in(dbs[i], "[[:ascii:]]", E_ACUTE));
    }
}

static void test_unicode_ctype_classes(void)
{
    const database_ctype *dbs[] = {&LIBC_UTF8, &LIBC_MISSING, &LIBC_LATIN1,
                                   &ICU_WITH_C_CTYPE, &BUILTIN_UTF8};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        printf("# provider %c, ctype %s\n", dbs[i]->provider, dbs[i]->ctype);
        CHECK(matches_in(dbs[i], "[[:upper:]]+", A_UML "RGER"));
        CHECK(matches_in(dbs[i], "[[:alpha:]]+", "t" E_ACUTE));
        CHECK(matches_in(dbs[i], "[[:lower:]]", SZLIG));
        CHECK(matches_in(dbs[i], "\\w+", NIHON));
        CHECK(!matches_in(dbs[i], "[^[:alpha:]]+", NIHON));
        CHECK(!matches_in(dbs[i], "[^\\w]", E_ACUTE));
    }
}

static void test_ascii_databases(void)
{
    /* a multibyte encoding other than UTF-8, SQL_ASCII, and the builtin
     * provider's C locale classify ASCII only */
    const database_ctype *dbs[] = {&LIBC_EUC, &SQL_ASCII, &BUILTIN_C};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        CHECK(!matches_in(dbs[i], "[[:upper:]]", A_UML));
        CHECK(matches_in(dbs[i], "[[:upper:]]", "A"));
    }
}

static void test_follow_database(void)
{
    char err[512];
    /* the same compiled pattern follows each database in turn */
    table_pattern *p = compile("[[:upper:]]*");
    CHECK(p != NULL);
    if (!p)
        return;
    CHECK(table_pattern_matches(p, "public", A_UML "rger", true));
    CHECK(table_pattern_follow_database(p, &LIBC_C, err, sizeof err));
    CHECK(!table_pattern_matches(p, "public", A_UML "rger", true));
    CHECK(table_pattern_matches(p, "public", "Abc", true));
    CHECK(table_pattern_follow_database(p, &LIBC_C, err, sizeof err));
    CHECK(!table_pattern_matches(p, "public", A_UML "rger", true));
    CHECK(table_pattern_follow_database(p, &ICU_WITH_C_CTYPE, err, sizeof err));
    CHECK(table_pattern_matches(p, "public", A_UML "rger", true));
    table_pattern_free(p);

    /* a filter: include and exclude patterns alike */
    table_filter *f = table_filter_new();
    CHECK(table_filter_add(f, false, "*", DB, err, sizeof err));
    CHECK(table_filter_add(f, true, "[[:upper:]]*", DB, err, sizeof err));
    CHECK(!table_filter_matches(f, "public", A_UML "rger", true));
    CHECK(table_filter_follow_database(f, &LIBC_C, err, sizeof err));
    CHECK(table_filter_matches(f, "public", A_UML "rger", true));
    CHECK(!table_filter_matches(f, "public", "Abc", true));
    table_filter_free(f);
}

static void test_invalid_classes(void)
{
    CHECK(fails_with("[[:foo:]]", DB, "invalid character class"));
    CHECK(fails_with("[[:digit:]-z]", DB, "invalid character range"));
    CHECK(fails_with("[a-[:digit:]]", DB, "invalid character range"));
    CHECK(fails_with("[\\d-z]", DB, "invalid character range"));
    CHECK(fails_with("[a-\\d]", DB, "invalid character range"));
}

static void check_quote(const char *ident, const char *want)
{
    char *q = quote_ident_dup(ident);
    CHECK_STR(q, want);
    free(q);
}

static void test_quote_ident(void)
{
    check_quote("abc", "abc");
    check_quote("_x1", "_x1");
    check_quote("Foo", "\"Foo\"");
    check_quote("select", "\"select\"");
    check_quote("a\"b", "\"a\"\"b\"");
    check_quote("1abc", "\"1abc\"");
    check_quote("", "\"\"");
    check_quote("a b", "\"a b\"");
    check_quote("a$", "\"a$\"");
    check_quote("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    /* reserved, column-name and type/function-name keywords are quoted */
    check_quote("user", "\"user\"");
    check_quote("table", "\"table\"");
    check_quote("between", "\"between\"");
    check_quote("left", "\"left\"");
    check_quote("xmltable", "\"xmltable\"");
    check_quote("all", "\"all\"");
    check_quote("with", "\"with\"");
    /* unreserved keywords are not */
    check_quote("name", "name");
    check_quote("data", "data");
    check_quote("orders", "orders");
    check_quote("selects", "selects");
}

int main(void)
{
    test_case_folding_and_quotes();
    test_dots();
    test_wildcards();
    test_regex_notation();
    test_are_escapes();
    test_schema_and_visibility();
    test_empty_parts();
    test_three_part_names();
    test_multibyte();
    test_rejected();
    test_filter();
    test_complexity();
    test_anchors();
    test_empty_groups();
    test_c_ctype_classes();
    test_classes_fixed_by_postgresql();
    test_unicode_ctype_classes();
    test_ascii_databases();
    test_follow_database();
    test_invalid_classes();
    test_quote_ident();
    return check_summary();
}
