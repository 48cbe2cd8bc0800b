/* The typed column accessors of the host API (ABI 1.6), read through the
 * table a sink receives: columns, and each row image's values as the text
 * PostgreSQL printed, with NULL, unchanged TOAST and absent columns told
 * apart, by the same rules as the JSON's "before", "after" and "key". */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "event_internal.h"
#include "event_support.h"
#include "sink_host.h"

static const pgspout_host_api *api;

static const column_spec doc_columns[] = {
    {"id", 20, "bigint", true},
    {"note", 25, "text", false},
    {"tags", 1009, "text[]", false},
};

/* The state of a value, and its text as a NUL-terminated copy ("" when
 * it has none) for the comparisons. */
static pgspout_value_state value_of(const event *ev, pgspout_row_image row,
                                    int column, char *buf, size_t buflen)
{
    const char *text = "not set";
    size_t len = 99;
    pgspout_value_state st = api->event_value(ev, row, column, &text, &len);
    if (!text) {
        CHECK(len == 0);
        buf[0] = '\0';
    } else {
        snprintf(buf, buflen, "%.*s", (int)len, text);
    }
    return st;
}

#define CHECK_VALUE(ev, row, column, state, expected)                          \
    do {                                                                       \
        char buf_[128];                                                        \
        CHECK(value_of(ev, row, column, buf_, sizeof buf_) == (state));        \
        CHECK_STR(buf_, expected);                                             \
    } while (0)

static void test_table_announces_1_6(void)
{
    CHECK(api->abi_minor >= 6);
    CHECK(PGSPOUT_HAS_FIELD(api, pgspout_host_api, event_value));
    CHECK(PGSPOUT_HAS_FIELD(api, pgspout_host_api, event_column_count));
    CHECK(api->event_value != NULL && api->event_column_is_key != NULL);
}

static void test_columns(relation *rel)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_SCHEMA, rel);
    CHECK(api->event_column_count(&ev) == 3);
    CHECK_STR(api->event_column_name(&ev, 2), "tags");
    CHECK(api->event_column_type_oid(&ev, 0) == 20);
    CHECK_STR(api->event_column_type_name(&ev, 2), "text[]");
    CHECK(api->event_column_is_key(&ev, 0));
    CHECK(!api->event_column_is_key(&ev, 1));
    /* Out of range, either side. */
    CHECK(api->event_column_name(&ev, 3) == NULL);
    CHECK(api->event_column_name(&ev, -1) == NULL);
    CHECK(api->event_column_type_oid(&ev, 3) == 0);
    CHECK(api->event_column_type_name(&ev, -1) == NULL);
    CHECK(!api->event_column_is_key(&ev, 7));
    /* A schema event has columns but no rows. */
    CHECK_VALUE(&ev, PGSPOUT_ROW_NEW, 0, PGSPOUT_VALUE_ABSENT, "");
    event_clear(&ev);
}

static void test_insert(relation *rel)
{
    static const char *const row[] = {"7", "say \"hi\" \xc3\xa9\\n",
                                      "{a,\"b c\",NULL}"};
    event ev;
    init_event(&ev, PGSPOUT_OP_INSERT, rel);
    ev.new_tuple = make_tuple(3, row);
    /* The text as printed: no JSON escaping, quotes and UTF-8 as they are. */
    CHECK_VALUE(&ev, PGSPOUT_ROW_NEW, 1, PGSPOUT_VALUE_TEXT,
                "say \"hi\" \xc3\xa9\\n");
    CHECK_VALUE(&ev, PGSPOUT_ROW_NEW, 2, PGSPOUT_VALUE_TEXT,
                "{a,\"b c\",NULL}");
    CHECK_VALUE(&ev, PGSPOUT_ROW_OLD, 0, PGSPOUT_VALUE_ABSENT, "");
    CHECK_VALUE(&ev, PGSPOUT_ROW_KEY, 0, PGSPOUT_VALUE_TEXT, "7");
    CHECK_VALUE(&ev, PGSPOUT_ROW_KEY, 1, PGSPOUT_VALUE_ABSENT, "");
    CHECK_VALUE(&ev, PGSPOUT_ROW_NEW, 3, PGSPOUT_VALUE_ABSENT, "");
    CHECK_VALUE(&ev, (pgspout_row_image)9, 0, PGSPOUT_VALUE_ABSENT, "");
    /* State only: text and length may be NULL. */
    CHECK(api->event_value(&ev, PGSPOUT_ROW_NEW, 0, NULL, NULL) ==
          PGSPOUT_VALUE_TEXT);
    size_t len = 0;
    CHECK(api->event_value(&ev, PGSPOUT_ROW_NEW, 1, NULL, &len) ==
              PGSPOUT_VALUE_TEXT &&
          len == strlen(row[1]));
    event_clear(&ev);
}

/* Key unchanged (no old row sent), a TOASTed note not sent again, a NULL. */
static void test_update_keeping_key(relation *rel)
{
    static const char *const row[] = {"7", TOAST, SQL_NULL};
    event ev;
    init_event(&ev, PGSPOUT_OP_UPDATE, rel);
    ev.new_tuple = make_tuple(3, row);
    CHECK_VALUE(&ev, PGSPOUT_ROW_NEW, 1, PGSPOUT_VALUE_UNCHANGED_TOAST, "");
    CHECK_VALUE(&ev, PGSPOUT_ROW_NEW, 2, PGSPOUT_VALUE_NULL, "");
    CHECK_VALUE(&ev, PGSPOUT_ROW_OLD, 0, PGSPOUT_VALUE_ABSENT, "");
    CHECK_VALUE(&ev, PGSPOUT_ROW_KEY, 0, PGSPOUT_VALUE_TEXT, "7");
    event_clear(&ev);
}

/* The key changed: the old key-only image holds the key, nothing else. A
 * TOASTed key not sent in the new row is the old row's in "key". */
static void test_update_moving_key(relation *rel)
{
    static const char *const old_row[] = {"7", SQL_NULL, SQL_NULL};
    static const char *const new_row[] = {"8", "n", SQL_NULL};
    static const char *const toasted[] = {TOAST, "n", SQL_NULL};
    event ev;
    init_event(&ev, PGSPOUT_OP_UPDATE, rel);
    ev.old_kind = 'K';
    ev.old_tuple = make_tuple(3, old_row);
    ev.new_tuple = make_tuple(3, new_row);
    CHECK_VALUE(&ev, PGSPOUT_ROW_OLD, 0, PGSPOUT_VALUE_TEXT, "7");
    CHECK_VALUE(&ev, PGSPOUT_ROW_OLD, 1, PGSPOUT_VALUE_ABSENT, "");
    CHECK_VALUE(&ev, PGSPOUT_ROW_KEY, 0, PGSPOUT_VALUE_TEXT, "8");
    free(ev.new_tuple.cols);
    ev.new_tuple = make_tuple(3, toasted);
    CHECK_VALUE(&ev, PGSPOUT_ROW_NEW, 0, PGSPOUT_VALUE_UNCHANGED_TOAST, "");
    CHECK_VALUE(&ev, PGSPOUT_ROW_KEY, 0, PGSPOUT_VALUE_TEXT, "7");
    event_clear(&ev);
}

/* REPLICA IDENTITY FULL: the whole old row, NULLs included. */
static void test_delete_full(relation *rel)
{
    static const char *const old_row[] = {"7", SQL_NULL, "{}"};
    event ev;
    init_event(&ev, PGSPOUT_OP_DELETE, rel);
    ev.old_kind = 'O';
    ev.old_tuple = make_tuple(3, old_row);
    CHECK_VALUE(&ev, PGSPOUT_ROW_OLD, 1, PGSPOUT_VALUE_NULL, "");
    CHECK_VALUE(&ev, PGSPOUT_ROW_OLD, 2, PGSPOUT_VALUE_TEXT, "{}");
    CHECK_VALUE(&ev, PGSPOUT_ROW_NEW, 0, PGSPOUT_VALUE_ABSENT, "");
    CHECK_VALUE(&ev, PGSPOUT_ROW_KEY, 0, PGSPOUT_VALUE_TEXT, "7");
    event_clear(&ev);
}

/* A read reaching an older sink as an insert reads the same; a tuple
 * shorter than its relation has the missing columns absent; a value sent
 * in binary form gives its bytes. */
static void test_read_view_short_tuple_and_binary(relation *rel)
{
    static const char *const row[] = {"9", "x"};
    event read, view;
    init_event(&read, PGSPOUT_OP_READ, rel);
    read.new_tuple = make_tuple(2, row);
    read.new_tuple.cols[1].kind = COLVAL_BINARY;
    event_view_as_insert(&read, &view);
    CHECK_VALUE(&read, PGSPOUT_ROW_KEY, 0, PGSPOUT_VALUE_TEXT, "9");
    CHECK_VALUE(&view, PGSPOUT_ROW_NEW, 0, PGSPOUT_VALUE_TEXT, "9");
    CHECK_VALUE(&view, PGSPOUT_ROW_NEW, 1, PGSPOUT_VALUE_BINARY, "x");
    CHECK_VALUE(&view, PGSPOUT_ROW_NEW, 2, PGSPOUT_VALUE_ABSENT, "");
    event_view_clear(&view);
    event_clear(&read);
}

/* Events without rows, or without a table. */
static void test_events_without_rows(relation *rel)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_TRUNCATE, rel);
    CHECK(api->event_column_count(&ev) == 3);
    CHECK_VALUE(&ev, PGSPOUT_ROW_KEY, 0, PGSPOUT_VALUE_ABSENT, "");
    event_clear(&ev);
    init_event(&ev, PGSPOUT_OP_MESSAGE, NULL);
    CHECK(api->event_column_count(&ev) == 0);
    CHECK(api->event_column_name(&ev, 0) == NULL);
    CHECK_VALUE(&ev, PGSPOUT_ROW_NEW, 0, PGSPOUT_VALUE_ABSENT, "");
    event_clear(&ev);
}

int main(void)
{
    api = host_api();
    relation *rel = make_relation("public", "docs", doc_columns, 3);
    test_table_announces_1_6();
    test_columns(rel);
    test_insert(rel);
    test_update_keeping_key(rel);
    test_update_moving_key(rel);
    test_delete_full(rel);
    test_read_view_short_tuple_and_binary(rel);
    test_events_without_rows(rel);
    relation_unref(rel);
    return check_summary();
}
