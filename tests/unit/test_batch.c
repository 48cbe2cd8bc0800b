/* The batch: events handed back by batch_clear and
 * batch_drop_uncommitted_tail are reused, all zeros, by batch_new_event,
 * never more of them than the batch held at once; batch_free frees them;
 * backfill rows in the batch's arena die with the batch, not the event (the
 * ASan and valgrind runs check that nothing leaks or is freed twice). */
#include "batch.h"
#include "check.h"
#include "event_support.h"

static bool all_zeros(const event *ev)
{
    const unsigned char *p = (const unsigned char *)ev;
    for (size_t i = 0; i < sizeof *ev; i++)
        if (p[i])
            return false;
    return true;
}

/* An event as the source makes one: a relation reference, a tuple and a
 * cached JSON part, all for batch_clear to let go of. */
static event *filled_event(batch *b, relation *rel, uint64_t seq)
{
    event *ev = batch_new_event(b);
    ev->op = PGSPOUT_OP_INSERT;
    ev->rel = relation_ref(rel);
    ev->pos = (pgspout_position){0x100, seq};
    ev->new_tuple.ncols = 1;
    ev->new_tuple.cols = xcalloc(1, sizeof(colval));
    ev->json[0] = xstrdup("{}");
    ev->json_len[0] = 2;
    return ev;
}

static void test_reuse_after_clear(relation *rel)
{
    batch b;
    batch_init(&b, 4, 1 << 20);
    event *made[3];
    for (int i = 0; i < 3; i++) {
        made[i] = filled_event(&b, rel, (uint64_t)i + 1);
        batch_add(&b, made[i], 1, 16);
    }
    batch_clear(&b);
    CHECK(b.count == 0 && b.nspare == 3);
    CHECK(rel->refcount == 1);
    /* The spares come back cleared, and are the events made before. */
    for (int i = 0; i < 3; i++) {
        event *ev = batch_new_event(&b);
        CHECK(all_zeros(ev));
        CHECK(ev == made[0] || ev == made[1] || ev == made[2]);
        batch_add(&b, ev, 1, 16);
    }
    CHECK(b.nspare == 0);
    /* None left: a new one is allocated. */
    event *fresh = batch_new_event(&b);
    CHECK(all_zeros(fresh));
    CHECK(fresh != made[0] && fresh != made[1] && fresh != made[2]);
    batch_add(&b, fresh, 1, 16);
    batch_free(&b);
}

static void test_tail_dropped_is_kept(relation *rel)
{
    batch b;
    batch_init(&b, 4, 1 << 20);
    for (uint64_t seq = 1; seq <= 4; seq++)
        batch_add(&b, filled_event(&b, rel, seq), 1, 16);
    batch_drop_uncommitted_tail(&b, (pgspout_position){0x100, 2});
    CHECK(b.count == 2 && b.nspare == 2);
    CHECK(rel->refcount == 3);
    batch_clear(&b);
    CHECK(b.nspare == 4 && rel->refcount == 1);
    batch_free(&b);
    CHECK(b.nspare == 0 && b.spare == NULL);
}

/* Never more spares than the batch's array holds. */
static void test_spares_bounded(relation *rel)
{
    batch b;
    batch_init(&b, 2, 1 << 20);
    for (uint64_t seq = 1; seq <= 2; seq++)
        batch_add(&b, filled_event(&b, rel, seq), 1, 16);
    batch_clear(&b);
    CHECK(b.nspare == 2 && b.spare_cap == b.cap);
    /* A larger batch later: its array grew, and so may the spares. */
    for (uint64_t seq = 1; seq <= 5; seq++)
        batch_add(&b, filled_event(&b, rel, seq), 1, 16);
    CHECK(b.nspare == 0);
    batch_clear(&b);
    CHECK(b.nspare == 5 && b.spare_cap <= b.cap);
    batch_free(&b);
}

/* Rows from the arena: batch_clear resets it (the event does not free
 * them), and the next batch's rows reuse its block. */
static void test_rows_in_arena(relation *rel)
{
    batch b;
    batch_init(&b, 4, 1 << 20);
    colval *first = NULL;
    for (int round = 0; round < 2; round++) {
        for (uint64_t seq = 1; seq <= 3; seq++) {
            event *ev = batch_new_event(&b);
            ev->op = PGSPOUT_OP_READ;
            ev->rel = relation_ref(rel);
            ev->pos = (pgspout_position){0x200, seq};
            ev->new_tuple.ncols = 1;
            ev->new_tuple.in_arena = true;
            ev->new_tuple.cols = arena_alloc(&b.rows, sizeof(colval) + 8);
            if (round == 0 && seq == 1)
                first = ev->new_tuple.cols;
            if (round == 1 && seq == 1)
                CHECK(ev->new_tuple.cols == first);
            batch_add(&b, ev, 1, 16);
        }
        batch_clear(&b);
        CHECK(rel->refcount == 1);
    }
    batch_free(&b);
}

int main(void)
{
    static const column_spec cols[] = {{"id", 20, "bigint", true}};
    relation *rel = make_relation("public", "items", cols, 1);
    test_reuse_after_clear(rel);
    test_tail_dropped_is_kept(rel);
    test_spares_bounded(rel);
    test_rows_in_arena(rel);
    relation_unref(rel);
    return check_summary();
}
