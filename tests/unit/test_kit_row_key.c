/* The sink kit's reading of an event's key through typed column access
 * (plugins/kit/row_key.h), against the host's real table, and its answer
 * "cannot tell" for a host older than ABI 1.6. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "event_internal.h"
#include "event_support.h"
#include "row_key.h"
#include "sink_host.h"

static const column_spec pair_columns[] = {
    {"a", 25, "text", true},
    {"b", 23, "integer", true},
    {"note", 25, "text", false},
};

static const column_spec one_key_columns[] = {
    {"id", 20, "bigint", true},
    {"note", 25, "text", false},
};

/* An update of `rel` from old (kind 'K' or 'O') to new. */
static void make_update(event *ev, relation *rel, char old_kind,
                        const char *const *old_row, const char *const *new_row)
{
    init_event(ev, PGSPOUT_OP_UPDATE, rel);
    ev->old_kind = old_kind;
    if (old_kind)
        ev->old_tuple = make_tuple(rel->ncols, old_row);
    ev->new_tuple = make_tuple(rel->ncols, new_row);
}

static void test_key_unchanged(const pgspout_host_api *h, relation *rel)
{
    static const char *const row[] = {"x", "1", "n"};
    static const char *const moved[] = {"x", "2", "n"};
    static const char *const toasted[] = {"x", TOAST, "n"};
    static const char *const nulls[] = {"x", SQL_NULL, "n"};
    event ev;

    /* No old row: the server sends one only when the key changed. */
    make_update(&ev, rel, 0, NULL, row);
    CHECK(kit_key_unchanged(h, &ev));
    event_clear(&ev);
    /* REPLICA IDENTITY FULL sends the old row always: same values. */
    make_update(&ev, rel, 'O', row, row);
    CHECK(kit_key_unchanged(h, &ev));
    event_clear(&ev);
    make_update(&ev, rel, 'K', row, moved);
    CHECK(!kit_key_unchanged(h, &ev));
    event_clear(&ev);
    /* An unchanged TOAST key value is the old row's in the key. */
    make_update(&ev, rel, 'K', row, toasted);
    CHECK(kit_key_unchanged(h, &ev));
    event_clear(&ev);
    /* NULL against a value is a change; NULL against NULL is not. */
    make_update(&ev, rel, 'O', nulls, row);
    CHECK(!kit_key_unchanged(h, &ev));
    event_clear(&ev);
    make_update(&ev, rel, 'O', nulls, nulls);
    CHECK(kit_key_unchanged(h, &ev));
    event_clear(&ev);
    /* Only updates. */
    init_event(&ev, PGSPOUT_OP_INSERT, rel);
    ev.new_tuple = make_tuple(3, row);
    CHECK(!kit_key_unchanged(h, &ev));
    event_clear(&ev);
}

static void test_single_key_and_toast(const pgspout_host_api *h, relation *pair,
                                      relation *one)
{
    static const char *const row[] = {"42", TOAST};
    static const char *const pair_row[] = {"x", "1", "n"};
    uint32_t oid = 0;
    const char *text = NULL;
    size_t len = 0;
    bool known;
    event ev;

    make_update(&ev, one, 0, NULL, row);
    CHECK(kit_single_key_text(h, &ev, &oid, &text, &len));
    CHECK(oid == 20 && len == 2 && memcmp(text, "42", 2) == 0);
    CHECK(kit_has_unchanged_toast(h, &ev, &known) && known);
    event_clear(&ev);
    make_update(&ev, pair, 0, NULL, pair_row);
    CHECK(!kit_single_key_text(h, &ev, &oid, &text, &len));
    CHECK(!kit_has_unchanged_toast(h, &ev, &known) && known);
    event_clear(&ev);
}

/* A 1.5 host's table: every answer is "cannot tell". */
static void test_older_host(relation *rel)
{
    static const char *const row[] = {"42", TOAST};
    pgspout_host_api old = *host_api();
    old.size = (uint32_t)offsetof(pgspout_host_api, event_column_count);
    uint32_t oid;
    const char *text;
    size_t len;
    bool known = true;
    event ev;

    make_update(&ev, rel, 0, NULL, row);
    CHECK(!kit_has_typed_columns(&old));
    CHECK(!kit_key_unchanged(&old, &ev));
    CHECK(!kit_single_key_text(&old, &ev, &oid, &text, &len));
    CHECK(!kit_has_unchanged_toast(&old, &ev, &known) && !known);
    event_clear(&ev);
}

int main(void)
{
    const pgspout_host_api *h = host_api();
    relation *pair = make_relation("public", "pairs", pair_columns, 3);
    relation *one = make_relation("public", "docs", one_key_columns, 2);
    CHECK(kit_has_typed_columns(h));
    test_key_unchanged(h, pair);
    test_single_key_and_toast(h, pair, one);
    test_older_host(one);
    relation_unref(pair);
    relation_unref(one);
    return check_summary();
}
