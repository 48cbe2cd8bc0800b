/* The parts of backfills that need no server: which rows of a chunk the
 * changes between its watermarks make stale (window tracking and snapshot
 * visibility), the state file's round trip, the chunk key's choice, the
 * token bucket, COPY's text format and spill files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backfill_spill.h"
#include "backfill_state.h"
#include "backfill_table.h"
#include "backfill_throttle.h"
#include "backfill_window.h"
#include "check.h"
#include "strbuf.h"

static strbuf key_of(const char *a, const char *b)
{
    strbuf k = STRBUF_INIT;
    bf_key_encode_column(&k, a, strlen(a));
    if (b)
        bf_key_encode_column(&k, b, strlen(b));
    return k;
}

static bool drops(const bf_drops *d, const char *a, const char *b)
{
    strbuf k = key_of(a, b);
    bool in = bf_drops_contains(d, k.data, k.len);
    sbuf_free(&k);
    return in;
}

static bool reread(const bf_drops *d, const char *a, const char *b)
{
    strbuf k = key_of(a, b);
    bool in = bf_drops_reread(d, k.data, k.len);
    sbuf_free(&k);
    return in;
}

static void test_key_decode(void)
{
    strbuf k = key_of("42", "a b");
    bf_key key = {0};
    CHECK(bf_key_decode(k.data, k.len, &key));
    CHECK(key.n == 2 && strcmp(key.v[0], "42") == 0 &&
          strcmp(key.v[1], "a b") == 0);
    /* An empty column is a column. */
    sbuf_reset(&k);
    bf_key_encode_column(&k, "", 0);
    CHECK(bf_key_decode(k.data, k.len, &key));
    CHECK(key.n == 1 && strcmp(key.v[0], "") == 0);
    /* Not an encoding: short length, a length past the end, a NUL byte,
     * nothing at all. The key is left as it was. */
    CHECK(!bf_key_decode("\0\0\0", 3, &key));
    CHECK(!bf_key_decode("\0\0\0\5abc", 7, &key));
    CHECK(!bf_key_decode("\0\0\0\2a\0", 6, &key));
    CHECK(!bf_key_decode("", 0, &key));
    CHECK(key.n == 1 && strcmp(key.v[0], "") == 0);
    bf_key_clear(&key);
    sbuf_free(&k);
}

static void note(bf_notes *n, const char *a, const char *b, uint32_t xid,
                 unsigned flags)
{
    strbuf k = key_of(a, b);
    bf_notes_add(n, k.data, k.len, xid, flags);
    sbuf_free(&k);
}

static void test_snapshot(void)
{
    bf_snapshot s;
    CHECK(bf_snapshot_parse("100:110:102,105", &s));
    CHECK(s.xmin == 100 && s.xmax == 110 && s.nxip == 2);
    CHECK(!bf_snapshot_invisible(&s, 99));  /* finished before */
    CHECK(!bf_snapshot_invisible(&s, 101)); /* finished, not in xip */
    CHECK(bf_snapshot_invisible(&s, 102));  /* in progress then */
    CHECK(bf_snapshot_invisible(&s, 110));  /* started after */
    CHECK(bf_snapshot_invisible(&s, 4000));
    bf_snapshot_clear(&s);
    CHECK(bf_snapshot_parse("7:7:", &s) && s.nxip == 0);
    bf_snapshot_clear(&s);
    CHECK(!bf_snapshot_parse("7:x:", &s));
    CHECK(!bf_snapshot_parse("9:7:", &s));
    CHECK(!bf_snapshot_parse("1:2:3,", &s));

    /* 64-bit xids across the 32-bit wraparound: xmax 2^32 + 5. */
    uint64_t epoch = UINT64_C(1) << 32;
    char text[64];
    snprintf(text, sizeof text, "%llu:%llu:%llu",
             (unsigned long long)(epoch - 10), (unsigned long long)(epoch + 5),
             (unsigned long long)(epoch - 3));
    CHECK(bf_snapshot_parse(text, &s));
    CHECK(!bf_snapshot_invisible(&s, 0xFFFFFFF0u)); /* epoch - 16 */
    CHECK(bf_snapshot_invisible(&s, 0xFFFFFFFDu));  /* epoch - 3, in xip */
    CHECK(!bf_snapshot_invisible(&s, 2));           /* epoch + 2 */
    CHECK(bf_snapshot_invisible(&s, 5));            /* epoch + 5 = xmax */
    bf_snapshot_clear(&s);
}

static void test_window(void)
{
    bf_snapshot s;
    CHECK(bf_snapshot_parse("100:110:104", &s));
    bf_notes *n = bf_notes_new();
    note(n, "a", "1", 101, 0); /* seen by the read: kept */
    note(n, "b", "1", 104, 0); /* in progress at the read: dropped */
    note(n, "c", "1", 112, 0); /* after the read began: dropped */
    note(n, "c", "1", 112, 0); /* noted twice, once in the set */
    note(n, "d", "1", 101, BF_NOTE_PARTIAL); /* values missing, but seen */
    CHECK(bf_notes_count(n) == 4);
    bool stale;
    bf_drops *d = bf_notes_drops(n, &s, &stale);
    CHECK(d && !stale);
    CHECK(!drops(d, "a", "1"));
    CHECK(drops(d, "b", "1"));
    CHECK(drops(d, "c", "1"));
    CHECK(!drops(d, "d", "1"));
    /* Keys compare whole: ("ab","") is not ("a","b"). */
    CHECK(!drops(d, "c", NULL) && !drops(d, "c1", NULL) && !drops(d, "", "c1"));
    CHECK(bf_drops_count(d) == 2);
    CHECK(bf_drops_reread_count(d) == 0 && !reread(d, "d", "1"));
    bf_drops_free(d);

    /* An update lacking values by a transaction the read did not see: the
     * row is dropped and read again by key; the chunk is not stale. */
    note(n, "e", "1", 112, BF_NOTE_PARTIAL);
    note(n, "e", "1", 113, 0); /* another change of it: still read again */
    d = bf_notes_drops(n, &s, &stale);
    CHECK(d && !stale);
    CHECK(drops(d, "e", "1") && reread(d, "e", "1"));
    CHECK(!reread(d, "c", "1") && !reread(d, "d", "1"));
    CHECK(bf_drops_reread_count(d) == 1);
    size_t pos = 0, len;
    const char *key;
    CHECK(!bf_drops_next_moved_in(d, &pos, &key, &len)); /* not moved */
    bf_drops_free(d);
    bf_notes_free(n);

    /* One that moved a row to another key: both keys are dropped, the new
     * one is read again, and is listed as moved in. */
    n = bf_notes_new();
    note(n, "f", "1", 112, 0);
    note(n, "g", "1", 112, BF_NOTE_PARTIAL | BF_NOTE_MOVED_IN);
    note(n, "h", "1", 101, BF_NOTE_PARTIAL | BF_NOTE_MOVED_IN); /* seen */
    d = bf_notes_drops(n, &s, &stale);
    CHECK(d && !stale && bf_drops_count(d) == 2);
    CHECK(!reread(d, "f", "1") && reread(d, "g", "1"));
    pos = 0;
    CHECK(bf_drops_next_moved_in(d, &pos, &key, &len));
    strbuf g = key_of("g", "1");
    CHECK(len == g.len && memcmp(key, g.data, len) == 0);
    sbuf_free(&g);
    CHECK(!bf_drops_next_moved_in(d, &pos, &key, &len));
    bf_drops_free(d);
    bf_notes_free(n);

    /* A truncate (any row) by a transaction the read saw is in the read;
     * by one it did not see, the chunk is stale. */
    n = bf_notes_new();
    bf_notes_any_row(n, 103);
    d = bf_notes_drops(n, &s, &stale);
    CHECK(d && !stale);
    bf_drops_free(d);
    bf_notes_any_row(n, 111);
    d = bf_notes_drops(n, &s, &stale);
    CHECK(!d && stale);
    bf_notes_free(n);

    /* Many keys: the set grows and finds each. */
    n = bf_notes_new();
    char a[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(a, sizeof a, "%d", i);
        note(n, a, NULL, i % 2 ? 120 : 90, 0);
    }
    d = bf_notes_drops(n, &s, &stale);
    CHECK(d && bf_drops_count(d) == 2500);
    bool all = true;
    for (int i = 0; i < 5000; i++) {
        snprintf(a, sizeof a, "%d", i);
        all = all && drops(d, a, NULL) == (i % 2 == 1);
    }
    CHECK(all);
    bf_drops_free(d);
    bf_notes_free(n);

    /* Full: a change more is not noted, and the chunk is stale (even if
     * every noted change was seen by the read). */
    n = bf_notes_new_max(3);
    note(n, "a", "1", 101, 0);
    note(n, "a", "1", 101, 0); /* known: no room needed */
    bf_notes_any_row(n, 102);
    note(n, "b", "1", 103, 0);
    d = bf_notes_drops(n, &s, &stale);
    CHECK(d && !stale && bf_notes_count(n) == 3);
    bf_drops_free(d);
    note(n, "c", "1", 101, 0);
    CHECK(bf_notes_count(n) == 3);
    d = bf_notes_drops(n, &s, &stale);
    CHECK(!d && stale);
    bf_notes_free(n);
    bf_snapshot_clear(&s);
}

/* Removes every occurrence of field from text. */
static void drop_field(char *text, const char *field)
{
    size_t n = strlen(field);
    for (char *p; (p = strstr(text, field)) != NULL;)
        memmove(p, p + n, strlen(p + n) + 1);
}

static void test_state_round_trip(void)
{
    bf_state st;
    memset(&st, 0, sizeof st);
    st.system_id = strdup("7000000000000000001");
    st.database = strdup("shop");
    st.slot = strdup("cdc");
    bf_backfill *b = bf_state_add(&st);
    b->id = strdup("0123456789abcdef");
    char *inc[] = {"public.orders", "\"Mixed\".*"};
    b->include = calloc(2, sizeof(char *));
    b->include[0] = strdup(inc[0]);
    b->include[1] = strdup(inc[1]);
    b->n_include = 2;
    b->where = strdup("id > 5 AND note <> 'x\"y'");
    b->request_lsn = (UINT64_C(1) << 32) | 0x16B3748;
    b->requested_at_us = 1796044262836588;
    b->status = BF_COPYING;
    b->resolved = true;
    bf_table *t = bf_backfill_add_table(b, 16386, "public.orders");
    t->status = BF_COPYING;
    t->rows_estimated = 1000000;
    t->rows_copied = 20000;
    t->next_chunk = 4;
    char *cur[] = {"k\t1", "2026-01-01 00:00:00+00"};
    bf_key_set(&t->cursor, cur, 2);
    bf_chunk *c = bf_table_add_chunk(t);
    c->n = 3;
    bf_key_set(&c->lo, cur, 2);
    char *hi[] = {"zz", "x"};
    bf_key_set(&c->hi, hi, 2);
    c->rows = 10000;
    c->last = true;
    c->spill = strdup("00112233aabbccdd.spill");
    snprintf(c->token, sizeof c->token, "00112233aabbccdd");
    c->snapshot = strdup("100:110:104");
    char *cols[] = {"a", "ts"};
    bf_key_set(&c->keycols, cols, 2);
    c->spill_bytes = 123456;
    bf_chunk *r = bf_table_add_chunk(t); /* a range to read again */
    r->n = 2;
    r->attempts = 2;
    bf_key_set(&r->hi, hi, 1);
    bf_key_set(&t->keycols, cols, 2);
    char *moved1[] = {"-5", "2026-01-02 00:00:00+00"}, *moved2[] = {"7", "x"};
    bf_moved m = {{0}, {0}, {0}};
    bf_key_set(&m.key, moved1, 2);
    bf_key_set(&m.bound, cur, 2);
    bf_moved_add(&t->moved, &m);
    t->moved_noted = (pgspout_position){0x16B37A0ull | (3ull << 32), 7};
    bf_chunk *k = bf_table_add_chunk(t); /* a chunk of moved keys */
    k->n = 5;
    snprintf(k->token, sizeof k->token, "aa112233aabbccdd");
    k->spill = strdup("aa112233aabbccdd.spill");
    bf_key_set(&m.key, moved2, 2);
    bf_key_clear(&m.bound);          /* unbounded */
    bf_key_set(&m.after, moved1, 2); /* a row read again after a range */
    bf_moved_add(&k->keys, &m);
    bf_key_clear(&m.key);
    bf_key_clear(&m.after);
    bf_backfill_add_table(b, 16400, "\"Mixed\".\"T\"");

    char dir[] = "/tmp/pgspout-test-state-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char err[512] = "";
    CHECK(bf_state_save(dir, &st, err, sizeof err));
    CHECK_STR(err, "");
    bf_state back;
    CHECK(bf_state_load(dir, &back, err, sizeof err));
    char *a = bf_state_to_json(&st), *z = bf_state_to_json(&back);
    CHECK_STR(z, a);
    CHECK(back.nbackfills == 1 && back.backfills[0].ntables == 2);
    const bf_chunk *bc = &back.backfills[0].tables[0].chunks[0];
    CHECK(bc->last && bc->rows == 10000 && bc->spill_bytes == 123456);
    CHECK_STR(bc->keycols.v[1], "ts");
    CHECK(back.backfills[0].tables[0].chunks[1].spill == NULL);
    CHECK(back.backfills[0].tables[0].owner == -1);
    const bf_table *bt = &back.backfills[0].tables[0];
    CHECK(bt->keycols.n == 2 && bt->moved.n == 1);
    CHECK_STR(bt->moved.v[0].key.v[0], "-5");
    CHECK_STR(bt->moved.v[0].bound.v[0], "k\t1");
    CHECK(bt->chunks[2].keys.n == 1 && bt->chunks[1].keys.n == 0);
    CHECK_STR(bt->chunks[2].keys.v[0].key.v[1], "x");
    CHECK(bt->chunks[2].keys.v[0].bound.n == 0);
    CHECK(bt->moved_noted.commit_lsn == (0x16B37A0ull | (3ull << 32)));
    CHECK(bt->moved_noted.seq == 7);
    CHECK(strstr(a, "\"moved_noted\":{\"commit_lsn\":\"3/16B37A0\"") != NULL);
    /* none noted: the table saved has no such key, and loads as zero */
    const bf_table *other = &back.backfills[0].tables[1];
    CHECK(other->moved_noted.commit_lsn == 0 && other->moved_noted.seq == 0);
    CHECK(bt->moved.v[0].after.n == 0);
    CHECK(bt->chunks[2].keys.v[0].after.n == 2);
    CHECK_STR(bt->chunks[2].keys.v[0].after.v[0], "-5");
    free(a);
    free(z);
    bf_state_clear(&back);

    /* A file written before entries had a lower limit: none. */
    a = bf_state_to_json(&st);
    drop_field(a, ",\"after\":null");
    drop_field(a, "\"after\":null,");
    CHECK(strstr(a, "\"after\":null") == NULL);
    CHECK(bf_state_from_json(a, &back, err, sizeof err));
    CHECK(back.nbackfills == 1 && back.backfills[0].ntables == 2);
    bt = back.nbackfills ? &back.backfills[0].tables[0] : NULL;
    CHECK(bt && bt->moved.n == 1 && bt->moved.v[0].after.n == 0);
    CHECK(bt && bt->chunks[2].keys.v[0].after.n == 2);
    free(a);
    bf_state_clear(&back);

    /* Missing: empty. Not ours: refused. */
    char path[128];
    snprintf(path, sizeof path, "%s/backfill.state", dir);
    unlink(path);
    CHECK(bf_state_load(dir, &back, err, sizeof err) && back.nbackfills == 0);
    FILE *f = fopen(path, "w");
    fputs("{\"version\":99}", f);
    fclose(f);
    CHECK(!bf_state_load(dir, &back, err, sizeof err));
    CHECK(strstr(err, "backfill.state") != NULL);
    f = fopen(path, "w");
    fputs("{\"version\":1,\"backfills\":[{\"id\":\"x\",\"request_lsn\":"
          "\"0/1\",\"state\":\"done\",\"tables\":[{\"name\":\"t\",\"state\":"
          "\"done\",\"cursor\":null,\"chunks\":[{\"token\":\"a\",\"spill\":"
          "\"../etc/passwd\"}]}]}]}",
          f);
    fclose(f);
    CHECK(!bf_state_load(dir, &back, err, sizeof err)); /* a path outside */
    unlink(path);
    rmdir(dir);
    bf_state_clear(&st);
}

/* A list of moved keys: an entry per key and bound; moving its front
 * keeps the order; the entry of a key is found from an index on. */
static void test_moved_list(void)
{
    bf_moved_list a = {0}, b = {0};
    char *v[][1] = {{"1"}, {"2"}, {"3"}};
    bf_moved m = {{0}, {0}, {0}};
    for (int i = 0; i < 3; i++) {
        bf_key_set(&m.key, v[i], 1);
        CHECK(bf_moved_add(&a, &m));
    }
    CHECK(!bf_moved_add(&a, &m)); /* "3", unbounded, again */
    bf_key_set(&m.after, v[1], 1);
    CHECK(bf_moved_add(&a, &m)); /* "3" after "2": another entry */
    CHECK(a.n == 4 && a.v[3].after.n == 1);
    bf_moved_clear(&a);
    bf_key_clear(&m.after);
    for (int i = 0; i < 3; i++) {
        bf_key_set(&m.key, v[i], 1);
        CHECK(bf_moved_add(&a, &m));
    }
    bf_key_set(&m.bound, v[0], 1);
    CHECK(bf_moved_add(&b, &m)); /* "3" up to "1" */
    CHECK(bf_moved_find(&a, 0, &m.key) == &a.v[2]);
    CHECK(bf_moved_find(&a, 3, &m.key) == NULL);
    bf_moved_move_front(&b, &a, 2);
    CHECK(a.n == 1 && b.n == 3);
    CHECK_STR(a.v[0].key.v[0], "3");
    CHECK_STR(b.v[0].key.v[0], "3");
    CHECK_STR(b.v[2].key.v[0], "2");
    bf_moved_move_front(&b, &a, 5); /* more than it has; other bound */
    CHECK(a.n == 0 && b.n == 4);
    bf_moved_list none = {0}; /* nothing, not even an array */
    bf_moved_move_front(&b, &none, 3);
    CHECK(none.n == 0 && b.n == 4);
    bf_key_clear(&m.key);
    bf_key_clear(&m.bound);
    bf_moved_clear(&a);
    bf_moved_clear(&b);
    CHECK(b.n == 0 && b.v == NULL);

    bf_table t = {0};
    CHECK(bf_table_sent_bound(&t)->n == 0); /* nothing sent */
    bf_key_set(&t.cursor, v[2], 1);
    CHECK_STR(bf_table_sent_bound(&t)->v[0], "3");
    bf_chunk *c = bf_table_add_chunk(&t); /* read, not sent */
    c->n = 2;
    bf_key_set(&c->lo, v[1], 1);
    CHECK_STR(bf_table_sent_bound(&t)->v[0], "2");
    c->processed = true;
    t.at_end = true;
    CHECK(bf_table_sent_bound(&t) == NULL); /* all sent */
    bf_key_clear(&t.cursor);
    bf_chunk_clear(c);
    free(t.chunks);
}

/* The latest commits before a low watermark: a chunk whose snapshot does
 * not see one of them is stale; the ring keeps the newest. */
static void test_recent_commits(void)
{
    bf_recent r;
    bf_recent_clear(&r);
    size_t n = 1;
    CHECK(bf_recent_copy(&r, &n) == NULL && n == 0);
    bf_snapshot snap;
    CHECK(bf_snapshot_parse("100:110:104,107", &snap));
    bf_recent_add(&r, 99);
    bf_recent_add(&r, 103);
    uint32_t *xids = bf_recent_copy(&r, &n);
    CHECK(n == 2 && !bf_recent_unseen(xids, n, &snap)); /* both visible */
    free(xids);
    bf_recent_add(&r, 104); /* committed, in progress for the snapshot */
    xids = bf_recent_copy(&r, &n);
    CHECK(n == 3 && bf_recent_unseen(xids, n, &snap));
    free(xids);
    for (uint32_t x = 1000; x < 1000 + BF_RECENT_COMMITS; x++)
        bf_recent_add(&r, x); /* 99, 103 and 104 leave the ring */
    xids = bf_recent_copy(&r, &n);
    CHECK(n == BF_RECENT_COMMITS && r.seen == BF_RECENT_COMMITS + 3);
    bool old = false;
    for (size_t i = 0; i < n; i++)
        old = old || xids[i] < 1000;
    CHECK(!old);
    free(xids);
    CHECK(bf_recent_unseen((uint32_t[]){110}, 1, &snap));
    CHECK(!bf_recent_unseen((uint32_t[]){105, 109}, 2, &snap));
    bf_snapshot_clear(&snap);
}

static void test_chunk_key(void)
{
    bf_index x[] = {
        {"b_uq", false, false, true, 1}, {"a_uq", false, false, true, 1},
        {"pk", true, false, true, 2},    {"ri", false, true, true, 3},
        {"wide", false, false, true, 4},
    };
    CHECK(bf_choose_chunk_key('d', x, 5) == 2); /* the primary key */
    CHECK(bf_choose_chunk_key('f', x, 5) == 2);
    CHECK(bf_choose_chunk_key('i', x, 5) == 3); /* deletes carry only it */
    bf_index nopk[] = {
        {"wide", false, false, true, 3},
        {"b_uq", false, false, true, 1},
        {"a_uq", false, false, true, 1},
        {"partial", false, false, false, 1},
    };
    /* fewest columns, then by name */
    CHECK(bf_choose_chunk_key('f', nopk, 4) == 2);
    CHECK(bf_choose_chunk_key('n', nopk, 4) == 2);
    bf_index none[] = {{"partial", false, false, false, 1},
                       {"pk_nullable", true, false, false, 1}};
    CHECK(bf_choose_chunk_key('f', none, 2) == -1); /* ctid ranges */
    CHECK(bf_choose_chunk_key('d', NULL, 0) == -1);
    CHECK(bf_choose_chunk_key('i', nopk, 4) == -1);
}

static void test_token_bucket(void)
{
    token_bucket b;
    token_bucket_init(&b, 0, 0);
    CHECK(token_bucket_take(&b, 1e9, 0) == 0); /* unlimited */

    token_bucket_init(&b, 1000, 0); /* 1000 rows/s, one second saved */
    CHECK(token_bucket_take(&b, 500, 0) == 0);
    CHECK(token_bucket_take(&b, 500, 0) == 0);
    /* Empty: 1000 more are a second's debt. */
    CHECK(token_bucket_take(&b, 1000, 0) == 1000000);
    /* After that second, even; another worker waits its turn. */
    CHECK(token_bucket_take(&b, 500, 1000000) == 500000);
    /* Unused tokens come back. */
    token_bucket_refund(&b, 500);
    CHECK(token_bucket_take(&b, 100, 1000000) == 100000);
    /* Idle time saves at most one second's worth. */
    CHECK(token_bucket_take(&b, 1000, 100000000) == 0);
    CHECK(token_bucket_take(&b, 1, 100000000) == 1000);
    /* A chunk larger than a second's worth waits its own debt off. */
    token_bucket_init(&b, 100, 0);
    CHECK(token_bucket_take(&b, 10000, 0) == 99000000);
}

static void test_copy_text(void)
{
    char line[] = "1\tab\\tc\\\\d\t\\N\t\t\\n\\r\\x41\\101";
    colval v[6];
    CHECK(bf_copy_parse_line(line, strlen(line), v, 5));
    CHECK(v[0].kind == COLVAL_TEXT && v[0].len == 1 && v[0].data[0] == '1');
    CHECK(v[1].len == 6 && memcmp(v[1].data, "ab\tc\\d", 6) == 0);
    CHECK(v[2].kind == COLVAL_NULL);
    CHECK(v[3].kind == COLVAL_TEXT && v[3].len == 0);
    CHECK(v[4].len == 4 && memcmp(v[4].data, "\n\rAA", 4) == 0);
    char few[] = "1\t2";
    CHECK(!bf_copy_parse_line(few, strlen(few), v, 3));
    char many[] = "1\t2\t3";
    CHECK(!bf_copy_parse_line(many, strlen(many), v, 2));
    /* Lines without a backslash are split at their tabs only. */
    char empty_last[] = "1\t";
    CHECK(bf_copy_parse_line(empty_last, strlen(empty_last), v, 2));
    CHECK(v[0].len == 1 && v[0].data[0] == '1' && v[1].kind == COLVAL_TEXT &&
          v[1].len == 0);
    char empty[] = "";
    CHECK(bf_copy_parse_line(empty, 0, v, 1));
    CHECK(v[0].kind == COLVAL_TEXT && v[0].len == 0);
    CHECK(!bf_copy_parse_line(empty, 0, v, 2));
    char one_more[] = "a\tb\t";
    CHECK(!bf_copy_parse_line(one_more, strlen(one_more), v, 2));
    CHECK(bf_copy_parse_line(one_more, strlen(one_more), v, 3));
    CHECK(v[1].len == 1 && v[1].data[0] == 'b' && v[2].len == 0);
    char null_text[] = "\\Nx\t\\N";
    CHECK(bf_copy_parse_line(null_text, strlen(null_text), v, 2));
    CHECK(v[0].kind == COLVAL_TEXT && v[0].len == 2 &&
          memcmp(v[0].data, "Nx", 2) == 0);
    CHECK(v[1].kind == COLVAL_NULL);
    /* A plain field after an escaped one: taken whole, in place. */
    char after_escape[] = "a\\\\b\tplain text\t{\"k\": 1}";
    CHECK(bf_copy_parse_line(after_escape, strlen(after_escape), v, 3));
    CHECK(v[0].len == 3 && memcmp(v[0].data, "a\\b", 3) == 0);
    CHECK(v[1].len == 10 && memcmp(v[1].data, "plain text", 10) == 0);
    CHECK(v[2].len == 8 && memcmp(v[2].data, "{\"k\": 1}", 8) == 0);

    const char *row = "7\tk\\t1\t\\N\n";
    strbuf f = STRBUF_INIT;
    CHECK(bf_copy_field(row, strlen(row) - 1, 1, &f));
    CHECK_STR(f.data, "k\t1");
    sbuf_reset(&f);
    CHECK(bf_copy_field(row, strlen(row) - 1, 0, &f));
    CHECK_STR(f.data, "7");
    sbuf_reset(&f);
    CHECK(!bf_copy_field(row, strlen(row) - 1, 2, &f)); /* NULL */
    CHECK(!bf_copy_field(row, strlen(row) - 1, 3, &f)); /* no such field */
    sbuf_free(&f);
}

static void test_spill(void)
{
    char path[] = "/tmp/pgspout-test-spill-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    bf_spill_writer w;
    char err[512] = "";
    CHECK(bf_spill_create(&w, path, "{\"v\":1}", err, sizeof err));
    /* Three are more than one write's (and one read's) worth; the fourth
     * is longer than a read. */
    static const size_t big_lens[] = {500000, 500000, 500000, 2500000};
    char *big = malloc(big_lens[3] + 1);
    for (int i = 0; i < 4; i++) {
        memset(big, 'x', big_lens[i] - 1);
        big[big_lens[i] - 1] = '\n';
        CHECK(bf_spill_append(&w, big, big_lens[i], err, sizeof err));
    }
    free(big);
    for (int i = 0; i < 297; i++)
        bf_spill_append(&w, "a\t\\N\n", 5, err, sizeof err);
    CHECK(bf_spill_finish(&w, err, sizeof err));
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    bf_spill_reader r;
    char *header;
    CHECK(bf_spill_open(&r, path, &header, err, sizeof err));
    CHECK_STR(header, "{\"v\":1}");
    free(header);
    int rows = 0, bad = 0;
    colval *v;
    arena mem;
    arena_init(&mem, 4096);
    for (;;) {
        int got =
            bf_spill_next(&r, rows < 4 ? 1 : 2, &v, &mem, err, sizeof err);
        if (got <= 0) {
            bad += got < 0;
            break;
        }
        if (rows < 4)
            bad += v[0].len != big_lens[rows] - 1 || v[0].data[0] != 'x' ||
                   v[0].data[v[0].len - 1] != 'x';
        else
            bad += v[1].kind != COLVAL_NULL || v[0].len != 1 ||
                   v[0].data[0] != 'a';
        rows++;
        arena_reset(&mem);
    }
    CHECK(rows == 301 && bad == 0);
    bf_spill_close(&r);

    /* A torn last row is an error, not a short chunk. */
    FILE *f = fopen(path, "a");
    fputs("a\tb", f);
    fclose(f);
    CHECK(bf_spill_open(&r, path, &header, err, sizeof err));
    free(header);
    int got;
    while ((got = bf_spill_next(&r, 2, &v, &mem, err, sizeof err)) > 0)
        arena_reset(&mem);
    CHECK(got == -1 && strstr(err, "does not parse") != NULL);
    arena_free(&mem);
    bf_spill_close(&r);
    unlink(path);

    /* An abandoned spill leaves nothing. */
    CHECK(bf_spill_create(&w, path, "{}", err, sizeof err));
    bf_spill_abandon(&w);
    CHECK(access(path, F_OK) != 0);
}

/* Rows a spill reader gives, each one field: their lengths and first
 * bytes, in order. */
static int read_back(const char *path, char *firsts, size_t *lens, int most)
{
    bf_spill_reader r;
    char err[512] = "", *header;
    if (!bf_spill_open(&r, path, &header, err, sizeof err))
        return -1;
    CHECK_STR(header, "{\"v\":1}");
    free(header);
    arena mem;
    arena_init(&mem, 4096);
    colval *v;
    int rows = 0, got;
    while (rows < most &&
           (got = bf_spill_next(&r, 1, &v, &mem, err, sizeof err)) > 0) {
        firsts[rows] = v[0].data[0];
        lens[rows++] = v[0].len;
        arena_reset(&mem);
    }
    arena_free(&mem);
    bf_spill_close(&r);
    return rows;
}

/* A chunk read by three connections: the pieces' rows follow the first
 * piece's in order, whatever their sizes (one more than a write's worth,
 * one empty), and the pieces' files are gone. */
static void test_spill_pieces(void)
{
    char dir[] = "/tmp/pgspout-test-pieces-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], piece_path[3][128];
    snprintf(path, sizeof path, "%s/t.spill", dir);
    bf_spill_writer w, piece[3];
    char err[512] = "";
    CHECK(bf_spill_create(&w, path, "{\"v\":1}", err, sizeof err));
    for (int i = 1; i < 3; i++) {
        snprintf(piece_path[i], sizeof piece_path[i], "%s/t.%d.spill", dir, i);
        CHECK(bf_spill_create(&piece[i], piece_path[i], NULL, err, sizeof err));
    }
    size_t big = 3000000;
    char *row = malloc(big);
    memset(row, 'b', big - 1);
    row[big - 1] = '\n';
    CHECK(bf_spill_append(&w, "a1\n", 3, err, sizeof err));
    CHECK(bf_spill_append(&piece[1], row, big, err, sizeof err));
    CHECK(bf_spill_append(&piece[1], "b2\n", 3, err, sizeof err));
    free(row);
    CHECK(bf_spill_append(&w, "a2\n", 3, err, sizeof err));
    for (int i = 1; i < 3; i++) {
        CHECK(bf_spill_take(&w, &piece[i], err, sizeof err));
        CHECK(access(piece_path[i], F_OK) != 0);
    }
    CHECK(w.rows == 4);
    CHECK(bf_spill_finish(&w, err, sizeof err));
    char firsts[8];
    size_t lens[8];
    CHECK(read_back(path, firsts, lens, 8) == 4);
    CHECK(memcmp(firsts, "aabb", 4) == 0);
    CHECK(lens[0] == 2 && lens[1] == 2 && lens[2] == big - 1 && lens[3] == 2);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_snapshot();
    test_window();
    test_key_decode();
    test_state_round_trip();
    test_moved_list();
    test_recent_commits();
    test_chunk_key();
    test_token_bucket();
    test_copy_text();
    test_spill();
    test_spill_pieces();
    return check_summary();
}
