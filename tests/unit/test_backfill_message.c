/* The backfill request message (core/backfill_request.c): what the client
 * builds reads back the same, hand-written requests are checked member by
 * member, and a `where` that could change the statement it is put into is
 * refused while every lexical form of a single expression passes. */
#include <stdlib.h>
#include <string.h>

#include "backfill_message.h"
#include "check.h"

static void test_round_trip(void)
{
    char *include[] = {"public.orders", "\"Odd\".*"};
    char *exclude[] = {"public.orders_tmp"};
    backfill_request r = {.slot = "s1",
                          .id = "0123456789abcdef",
                          .include = include,
                          .n_include = 2,
                          .exclude = exclude,
                          .n_exclude = 1,
                          .where = "note <> 'x'"};
    char *json = backfill_request_json(&r);
    CHECK_STR(json, "{\"type\":\"backfill\",\"slot\":\"s1\",\"id\":"
                    "\"0123456789abcdef\",\"include\":[\"public.orders\","
                    "\"\\\"Odd\\\".*\"],\"exclude\":[\"public.orders_tmp\"],"
                    "\"where\":\"note <> 'x'\"}");
    backfill_request back;
    char err[256] = "";
    CHECK(backfill_message_parse(json, strlen(json), &back, err, sizeof err) ==
          BACKFILL_MESSAGE_REQUEST);
    CHECK_STR(back.slot, "s1");
    CHECK_STR(back.id, "0123456789abcdef");
    CHECK(back.n_include == 2 && back.n_exclude == 1);
    CHECK_STR(back.include[1], "\"Odd\".*");
    CHECK_STR(back.where, "note <> 'x'");
    backfill_request_free(&back);
    free(json);

    r.where = NULL;
    r.n_exclude = 0;
    json = backfill_request_json(&r);
    CHECK(strstr(json, "\"exclude\":[],\"where\":null}") != NULL);
    CHECK(backfill_message_parse(json, strlen(json), &back, err, sizeof err) ==
          BACKFILL_MESSAGE_REQUEST);
    CHECK(back.where == NULL && back.n_exclude == 0);
    backfill_request_free(&back);
    free(json);
}

static backfill_message_kind parse(const char *text, char *err, size_t errlen)
{
    backfill_request r;
    backfill_message_kind kind =
        backfill_message_parse(text, strlen(text), &r, err, errlen);
    backfill_request_free(&r);
    return kind;
}

static void test_hand_written(void)
{
    char err[256];
    CHECK(parse("{\"type\":\"hw\",\"slot\":\"s\"}", err, sizeof err) ==
          BACKFILL_MESSAGE_OTHER);
    CHECK(parse("{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\"}", err,
                sizeof err) == BACKFILL_MESSAGE_REQUEST);
    /* The daemon's own initial request, and a where given as "". */
    backfill_request r;
    const char *initial = "{\"type\":\"backfill\",\"slot\":\"s\",\"id\":"
                          "\"initial-0/16B3748\",\"include\":null,"
                          "\"where\":\"\"}";
    CHECK(backfill_message_parse(initial, strlen(initial), &r, err,
                                 sizeof err) == BACKFILL_MESSAGE_REQUEST);
    CHECK(r.where == NULL && r.n_include == 0 && r.n_exclude == 0);
    CHECK_STR(r.id, "initial-0/16B3748");
    backfill_request_free(&r);
    static const char *const bad[][2] = {
        {"not json", "not JSON"},
        {"[1]", "no \"type\""},
        {"{\"type\":\"backfill\",\"id\":\"x\"}", "\"slot\""},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"\"}", "\"id\""},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":"
         "\"0123456789abcdef0123456789abcdef\"}",
         "1 to 31 characters"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"a b\"}",
         "1 to 31 characters"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"include\":[1]}",
         "\"include\" must be an array"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"exclude\":"
         "\"a\"}",
         "\"exclude\" must be an array"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"where\":3}",
         "\"where\" is not a string"},
        {"{\"type\":\"backfill\",\"slot\":\"s\",\"id\":\"x\",\"where\":"
         "\"true) OR (true\"}",
         "closes more than it opened"},
        {"{\"type\":\"backfill\",\"type\":\"backfill\"}", "not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK(parse(bad[i][0], err, sizeof err) == BACKFILL_MESSAGE_INVALID);
        if (!strstr(err, bad[i][1]))
            printf("# %s -> %s\n", bad[i][0], err);
        CHECK(strstr(err, bad[i][1]) != NULL);
    }
}

static void test_where(void)
{
    static const char *const good[] = {
        "id > 5",
        "(a = 1) OR (b = 2)",
        "note = ')'",
        "note = 'it''s (' AND x",
        "note = E'\\')' ",
        "\"we(ird\" = 1",
        "\"a\"\"(\" = 1",
        "body = $q$ ; ) ( $q$",
        "body = $$)$$",
        "f($1)",
        "a$b = 1",
        "x = 1 -- a comment with ) and ;\n",
        "x = 1 /* ) /* nested ( */ ; */",
        "x IN (1, (2))",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *problem = backfill_where_problem(good[i]);
        if (problem)
            printf("# %s: %s\n", good[i], problem);
        CHECK(problem == NULL);
    }
    static const char *const bad[][2] = {
        {"", "empty"},
        {"  \n", "empty"},
        {"true); DROP TABLE t; --", "closes more"},
        {"true; select 1", "';'"},
        {"true) OR (true", "closes more"},
        {"(true", "never closed"},
        {"x = 'open", "ends inside"},
        {"x = \"open", "ends inside"},
        {"x = $a$ open $b$", "ends inside"},
        {"x = 1 -- ) no newline", "ends inside"},
        {"x = 1 /* /* */", "ends inside"},
        {"x = E'\\'", "ends inside"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *problem = backfill_where_problem(bad[i][0]);
        CHECK(problem && strstr(problem, bad[i][1]));
    }
}

static void test_ids(void)
{
    char a[BACKFILL_ID_LEN + 1], b[BACKFILL_ID_LEN + 1];
    CHECK(backfill_new_id(a) && backfill_new_id(b));
    CHECK(strlen(a) == BACKFILL_ID_LEN &&
          strspn(a, "0123456789abcdef") == BACKFILL_ID_LEN);
    CHECK(strcmp(a, b) != 0);
}

int main(void)
{
    test_round_trip();
    test_hand_written();
    test_where();
    test_ids();
    return check_summary();
}
