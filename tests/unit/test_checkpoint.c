/* Which LSN may be confirmed, given what sinks acknowledged. */
#include "check.h"
#include "checkpoint.h"

static pgspout_position pos(uint64_t commit_lsn, uint64_t seq)
{
    return (pgspout_position){commit_lsn, seq};
}

int main(void)
{
    checkpoint cp;
    checkpoint_init(&cp, 0x100);

    /* Two transactions with events, not yet durable anywhere. */
    checkpoint_commit(&cp, pos(0x200, 3), 0x210);
    checkpoint_commit(&cp, pos(0x300, 2), 0x310);
    CHECK(checkpoint_pending(&cp) == 2);
    CHECK(!checkpoint_advance(&cp, false, pos(0, 0)));
    CHECK(cp.confirmed == 0x100);

    /* Part of the first transaction is durable: nothing to confirm yet. */
    CHECK(!checkpoint_advance(&cp, false, pos(0x200, 2)));
    CHECK(cp.confirmed == 0x100);

    /* All of it: its end LSN, not the commit LSN, is confirmed (the server
     * would resend a transaction whose commit is at the confirmed LSN). */
    CHECK(checkpoint_advance(&cp, false, pos(0x200, 3)));
    CHECK(cp.confirmed == 0x210);
    CHECK(checkpoint_pending(&cp) == 1);

    /* An idle keepalive cannot skip past a pending transaction. */
    CHECK(!checkpoint_idle(&cp, 0x400));
    CHECK(cp.confirmed == 0x210);

    /* Transactions without events merge into the pending entry: confirmed
     * together with it, and the queue does not grow. */
    checkpoint_commit(&cp, pos(0x300, 2), 0x350);
    checkpoint_commit(&cp, pos(0x300, 2), 0x360);
    CHECK(checkpoint_pending(&cp) == 1);
    CHECK(checkpoint_advance(&cp, true, pos(0, 0)));
    CHECK(cp.confirmed == 0x360);
    CHECK(checkpoint_pending(&cp) == 0);

    /* Nothing pending: an idle keepalive's position may be confirmed, but
     * never a position behind what is confirmed already. */
    CHECK(checkpoint_idle(&cp, 0x400));
    CHECK(cp.confirmed == 0x400);
    CHECK(!checkpoint_idle(&cp, 0x3FF));
    CHECK(cp.confirmed == 0x400);

    /* The ring grows past its first allocation and keeps order. */
    for (uint64_t i = 1; i <= 500; i++)
        checkpoint_commit(&cp, pos(0x1000 + i, 1), 0x1000 + i + 0x10);
    CHECK(checkpoint_pending(&cp) == 500);
    CHECK(checkpoint_advance(&cp, false, pos(0x1000 + 250, 1)));
    CHECK(cp.confirmed == 0x1000 + 250 + 0x10);
    CHECK(checkpoint_pending(&cp) == 250);
    for (uint64_t i = 501; i <= 600; i++)
        checkpoint_commit(&cp, pos(0x1000 + i, 1), 0x1000 + i + 0x10);
    CHECK(checkpoint_advance(&cp, true, pos(0, 0)));
    CHECK(cp.confirmed == 0x1000 + 600 + 0x10);
    CHECK(checkpoint_pending(&cp) == 0);

    checkpoint_free(&cp);

    /* A limit (a backfill chunk's low watermark: replayed when the
     * confirmation stops at it) holds the confirmation
     * back while what is durable goes on; lifting it confirms at once. */
    checkpoint_init(&cp, 0x100);
    CHECK(!checkpoint_set_limit(&cp, 0x250));
    checkpoint_commit(&cp, pos(0x200, 1), 0x210);
    checkpoint_commit(&cp, pos(0x300, 1), 0x310);
    CHECK(checkpoint_advance(&cp, true, pos(0, 0)));
    CHECK(cp.confirmed == 0x250 && cp.durable == 0x310);
    CHECK(!checkpoint_idle(&cp, 0x400)); /* durable moves, confirmed not */
    CHECK(cp.durable == 0x400 && cp.confirmed == 0x250);
    CHECK(checkpoint_set_limit(&cp, 0x380));
    CHECK(cp.confirmed == 0x380);
    CHECK(checkpoint_set_limit(&cp, UINT64_MAX));
    CHECK(cp.confirmed == 0x400);
    /* Never backwards, whatever the limit says. */
    CHECK(!checkpoint_set_limit(&cp, 0x300));
    CHECK(cp.confirmed == 0x400);
    checkpoint_free(&cp);
    return check_summary();
}
