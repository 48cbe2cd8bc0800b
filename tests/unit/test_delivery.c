/* The delivery layer driven with real sinks (the fault-injecting sink and
 * the file sink, loaded as shared objects) and real events: fan-out by
 * route, the resume skip, retries with backoff, stops during retries and
 * during a flush, the flush policy and acknowledgements becoming the
 * durable position.
 *
 * Usage: test_delivery FAULT_SINK_SO FILE_SINK_SO */
#include "check.h"
#include "sink_support.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "delivery.h"
#include "event_internal.h"
#include "loader.h"
#include "pattern.h"
#include "pgconn.h"
#include "stop.h"
#include "typeinfo.h"

static const char *fault_so, *file_so, *fault_abi11_so, *fault_abi14_so;
static table_filter *no_filter;
static stop_state stop;

static void add(batch *b, relation *rel, uint64_t commit_lsn, uint64_t seq,
                uint64_t route)
{
    batch_add(b, make_event(rel, PGSPOUT_OP_INSERT, commit_lsn, seq), route,
              16);
}

static bool same_pos(pgspout_position p, uint64_t commit_lsn, uint64_t seq)
{
    return p.commit_lsn == commit_lsn && p.seq == seq;
}

/* ---- a backoff schedule that records the attempts ---- */

typedef struct probe {
    int calls;
    int last_attempt;
    int signal_at;    /* raise a stop signal at this attempt (0: never) */
    int signals_then; /* up to this many signals in all */
} probe;

static int64_t probe_delay(void *ctx, int attempt)
{
    probe *p = ctx;
    p->calls++;
    p->last_attempt = attempt;
    while (attempt == p->signal_at && stop.signals < p->signals_then)
        stop_signal(&stop);
    return 1;
}

static void reset_stop(stop_phase phase, int signals)
{
    stop.signals = signals;
    stop_set_phase(&stop, phase);
}

/* ---- tests ---- */

static void test_fan_out(void)
{
    test_sinks t = {0};
    char *a_path = test_path("fan-a"), *b_path = test_path("fan-b");
    add_sink(&t, "a", fault_so, NULL, "path", a_path, NULL);
    add_sink(&t, "b", fault_so, NULL, "path", b_path, NULL);
    delivery *d = start_delivery(&t, no_filter, &stop);
    CHECK(d != NULL);
    if (!d)
        return;
    CHECK(delivery_all_routes(d) == 3);
    relation *rel = items_relation();
    batch b;
    batch_init(&b, 16, 1 << 20);
    add(&b, rel, 0x100, 1, 1); /* a only */
    add(&b, rel, 0x100, 2, 2); /* b only */
    add(&b, rel, 0x100, 3, 3); /* both */
    add(&b, rel, 0x100, 4, 0); /* nobody */
    CHECK(delivery_write(d, &b) == DELIVERED);
    CHECK(delivery_flush(d, true, false) == DELIVERED);
    written w[8];
    CHECK(read_written(a_path, w, 8) == 2);
    CHECK(w[0].seq == 1 && w[1].seq == 3);
    CHECK_STR(w[0].op, "insert");
    CHECK(w[1].id == 3);
    CHECK(read_written(b_path, w, 8) == 2);
    CHECK(w[0].seq == 2 && w[1].seq == 3);
    batch_free(&b);
    relation_unref(rel);
    delivery_free(d);
    free_sinks(&t);
}

/* Read events (ABI 1.2) reach a sink built for 1.1 as inserts of the same
 * row at the same position, in its accessors (the 1.1 fault sink fails on
 * an op it cannot know) and in its JSON; a 1.2 sink gets them as they are. */
/* A sink of today's minor ("new") beside one built for an older minor
 * ("old", from old_so), each writing to a file of its own, and a batch of
 * the items relation to fill. */
typedef struct old_and_new {
    test_sinks t;
    char *new_path, *old_path;
    delivery *d;
    relation *rel;
    batch b;
} old_and_new;

static bool start_old_and_new(old_and_new *x, const char *name,
                              const char *old_so)
{
    char new_name[64], old_name[64];
    snprintf(new_name, sizeof new_name, "%s-new", name);
    snprintf(old_name, sizeof old_name, "%s-old", name);
    memset(x, 0, sizeof *x);
    x->new_path = test_path(new_name);
    x->old_path = test_path(old_name);
    add_sink(&x->t, "new", fault_so, NULL, "path", x->new_path, NULL);
    add_sink(&x->t, "old", old_so, NULL, "path", x->old_path, NULL);
    x->d = start_delivery(&x->t, no_filter, &stop);
    CHECK(x->d != NULL);
    if (!x->d)
        return false;
    x->rel = items_relation();
    batch_init(&x->b, 16, 1 << 20);
    return true;
}

static void end_old_and_new(old_and_new *x)
{
    batch_free(&x->b);
    relation_unref(x->rel);
    delivery_free(x->d);
    free_sinks(&x->t);
}

static void test_read_events_for_older_sinks(void)
{
    old_and_new x;
    if (!start_old_and_new(&x, "read", fault_abi11_so))
        return;
    relation *rel = x.rel;
    batch *b = &x.b;
    event *read = make_event(rel, PGSPOUT_OP_READ, 0x700, 1);
    strcpy(read->snapshot.id, "00c0ffee00c0ffee");
    read->snapshot.chunk = 3;
    read->snapshot.table_rows = 42;
    batch_add(b, read, 3, 16);
    add(b, rel, 0x700, 2, 3);
    CHECK(delivery_write(x.d, b) == DELIVERED);
    CHECK(delivery_flush(x.d, true, false) == DELIVERED);
    written w[4];
    CHECK(read_written(x.new_path, w, 4) == 2);
    CHECK_STR(w[0].op, "read");
    CHECK(w[0].id == 1 &&
          same_pos((pgspout_position){w[0].commit_lsn, w[0].seq}, 0x700, 1));
    CHECK(read_written(x.old_path, w, 4) == 2);
    CHECK_STR(w[0].op, "insert");
    CHECK(w[0].id == 1 && w[0].commit_lsn == 0x700 && w[0].seq == 1);
    CHECK_STR(w[1].op, "insert");
    CHECK(file_contains(x.new_path, "\"snapshot\":{\"id\":\"00c0ffee00c0ffee\","
                                    "\"table_rows\":42,\"chunk\":3,"
                                    "\"last\":false}"));
    CHECK(!file_contains(x.old_path, "snapshot"));
    end_old_and_new(&x);
}

static void add_message(batch *b, uint64_t lsn, const char *content)
{
    event *ev = make_event(NULL, PGSPOUT_OP_MESSAGE, lsn, 1);
    ev->prefix = strdup("app");
    ev->content = strdup(content);
    ev->content_len = strlen(content);
    batch_add(b, ev, 3, 16);
}

/* Messages, begins and commits (ABI 1.5) never reach a sink built for 1.4
 * (the 1.4 fault sink fails on an op it cannot know), and do not hold its
 * durability back: what it got durable, everything is. A 1.5 sink gets
 * them as they are, a non-UTF-8 content as base64. */
static void test_messages_for_older_sinks(void)
{
    old_and_new x;
    if (!start_old_and_new(&x, "msg", fault_abi14_so))
        return;
    relation *rel = x.rel;
    batch *b = &x.b;
    add(b, rel, 0x700, 1, 3);
    add_message(b, 0x800, "hello");
    add_message(b, 0x810, "\xff\xfe");
    batch_add(b, make_event(NULL, PGSPOUT_OP_BEGIN, 0x900, 1), 3, 16);
    add(b, rel, 0x900, 2, 3);
    event *commit = make_event(NULL, PGSPOUT_OP_COMMIT, 0x900, 3);
    commit->txn_counts = strdup(",\"event_count\":1");
    batch_add(b, commit, 3, 16);
    CHECK(delivery_write(x.d, b) == DELIVERED);
    CHECK(delivery_flush(x.d, true, false) == DELIVERED);
    written w[8];
    CHECK(read_written(x.new_path, w, 8) == 6);
    CHECK_STR(w[1].op, "message");
    CHECK_STR(w[3].op, "begin");
    CHECK_STR(w[5].op, "commit");
    CHECK(file_contains(x.new_path, "\"prefix\":\"app\",\"content\":\"hello\","
                                    "\"transactional\":false"));
    CHECK(file_contains(x.new_path, "\"content_base64\":\"//4=\""));
    CHECK(file_contains(x.new_path, "\"seq\":3,\"commit_time\":"));
    CHECK(file_contains(x.new_path, "\"event_count\":1}"));
    CHECK(read_written(x.old_path, w, 8) == 2);
    CHECK_STR(w[0].op, "insert");
    CHECK_STR(w[1].op, "insert");
    CHECK(same_pos((pgspout_position){w[1].commit_lsn, w[1].seq}, 0x900, 2));
    pgspout_position durable;
    CHECK(delivery_durable(x.d, &durable));
    CHECK(delivery_sink_takes_op(4, PGSPOUT_OP_READ));
    CHECK(!delivery_sink_takes_op(4, PGSPOUT_OP_COMMIT));
    CHECK(delivery_sink_takes_op(5, PGSPOUT_OP_MESSAGE));
    end_old_and_new(&x);
}

/* The file sink reads back where its output ends; a second run skips what
 * it holds, except a schema event at that very position. */
static void test_resume_skip(void)
{
    char *path = test_path("resume.jsonl");
    relation *rel = items_relation();
    batch b;
    batch_init(&b, 16, 1 << 20);
    for (int run = 0; run < 2; run++) {
        test_sinks t = {0};
        add_sink(&t, "file", file_so, NULL, "path", path, NULL);
        delivery *d = start_delivery(&t, no_filter, &stop);
        CHECK(d != NULL);
        if (!d)
            return;
        add(&b, rel, 0x100, 1, 1);
        add(&b, rel, 0x100, 2, 1);
        if (run == 1) {
            batch_add(&b, make_event(rel, PGSPOUT_OP_SCHEMA, 0x100, 2), 1, 16);
            add(&b, rel, 0x100, 3, 1);
        }
        CHECK(delivery_write(d, &b) == DELIVERED);
        CHECK(delivery_flush(d, true, false) == DELIVERED);
        batch_clear(&b);
        delivery_free(d);
        free_sinks(&t);
    }
    written w[8];
    CHECK(read_written(path, w, 8) == 4);
    CHECK(w[0].seq == 1 && w[1].seq == 2);
    CHECK_STR(w[2].op, "schema");
    CHECK(w[3].seq == 3);
    batch_free(&b);
    relation_unref(rel);
}

/* After a reconnect the server sends again what was not confirmed: what a
 * sink took in this process is not written twice. */
static void test_skip_delivered(void)
{
    test_sinks t = {0};
    char *path = test_path("skip");
    add_sink(&t, "a", fault_so, NULL, "path", path, NULL);
    delivery *d = start_delivery(&t, no_filter, &stop);
    CHECK(d != NULL);
    if (!d)
        return;
    relation *rel = items_relation();
    batch b;
    batch_init(&b, 16, 1 << 20);
    add(&b, rel, 0x100, 1, 1);
    add(&b, rel, 0x100, 2, 1);
    CHECK(delivery_write(d, &b) == DELIVERED);
    batch_clear(&b);
    delivery_skip_delivered(d);
    for (uint64_t seq = 1; seq <= 3; seq++)
        add(&b, rel, 0x100, seq, 1);
    CHECK(delivery_write(d, &b) == DELIVERED);
    CHECK(delivery_flush(d, true, false) == DELIVERED);
    written w[8];
    CHECK(read_written(path, w, 8) == 3);
    CHECK(w[0].seq == 1 && w[1].seq == 2 && w[2].seq == 3);
    batch_free(&b);
    relation_unref(rel);
    delivery_free(d);
    free_sinks(&t);
}

/* Raises stop signals from another thread while a write waits. */
typedef struct raiser {
    int signals_then; /* up to this many signals in all */
    bool raised;
} raiser;

static void *raise_later(void *arg)
{
    raiser *r = arg;
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    r->raised = true;
    while (stop.signals < r->signals_then)
        stop_signal(&stop);
    return NULL;
}

/* Runs one write of two events against a fault sink configured with
 * key=value, under the stop phase and signal count given, with r (may be
 * NULL) raising signals meanwhile. */
static delivery_result write_with(probe *p, stop_phase phase, int signals,
                                  raiser *r, const char *key, const char *value,
                                  int *lines)
{
    test_sinks t = {0};
    char *path = test_path("retry");
    add_sink(&t, "a", fault_so, NULL, "path", path, key, value, NULL);
    delivery *d = start_delivery(&t, no_filter, &stop);
    if (!d)
        return DELIVERY_FAILED;
    delivery_set_backoff(d, probe_delay, p);
    relation *rel = items_relation();
    batch b;
    batch_init(&b, 16, 1 << 20);
    add(&b, rel, 0x100, 1, 1);
    add(&b, rel, 0x100, 2, 1);
    reset_stop(phase, signals);
    pthread_t thread;
    if (r)
        pthread_create(&thread, NULL, raise_later, r);
    delivery_result result = delivery_write(d, &b);
    if (r)
        pthread_join(thread, NULL);
    reset_stop(STOP_STREAMING, 0);
    delivery_flush(d, true, false);
    written w[8];
    *lines = read_written(path, w, 8);
    batch_free(&b);
    relation_unref(rel);
    delivery_free(d);
    free_sinks(&t);
    return result;
}

static void test_retry_with_backoff(void)
{
    probe p = {0};
    int lines;
    CHECK(write_with(&p, STOP_STREAMING, 0, NULL, "retry_writes", "3",
                     &lines) == DELIVERED);
    /* three RETRYs, each followed by the schedule's delay for its attempt */
    CHECK(p.calls == 3 && p.last_attempt == 3);
    CHECK(lines == 2); /* written once, by the fourth call */

    p = (probe){0};
    CHECK(write_with(&p, STOP_STREAMING, 0, NULL, "fatal_write", "1", &lines) ==
          DELIVERY_FAILED);
    CHECK(p.calls == 0); /* FATAL is not retried */
    CHECK(lines == 0);
}

static void test_stop_during_retries(void)
{
    int lines;
    /* While streaming, the first signal ends the retries. */
    probe p = {.signal_at = 3, .signals_then = 1};
    CHECK(write_with(&p, STOP_STREAMING, 0, NULL, "retry_writes", "1000000",
                     &lines) == DELIVERY_INTERRUPTED);
    CHECK(p.calls == 3);
    CHECK(lines == 0);

    /* During a clean stop (the first signal asked for it), retries go on
     * until a second signal. */
    p = (probe){.signal_at = 5, .signals_then = 2};
    CHECK(write_with(&p, STOP_FINAL, 1, NULL, "retry_writes", "1000000",
                     &lines) == DELIVERY_INTERRUPTED);
    CHECK(p.calls == 5);

    /* A clean stop whose sink recovers delivers everything. */
    p = (probe){0};
    CHECK(write_with(&p, STOP_FINAL, 1, NULL, "retry_writes", "4", &lines) ==
          DELIVERED);
    CHECK(p.calls == 4 && lines == 2);
}

/* A sink waiting for its service asks the host whether to give up
 * (should_stop): the first signal says so while streaming, only a second
 * one during a clean stop. The signal comes from another thread while the
 * sink waits. */
static void test_should_stop(void)
{
    for (int final = 0; final <= 1; final++) {
        raiser r = {.signals_then = final ? 2 : 1};
        probe p = {0};
        int lines;
        CHECK(write_with(&p, final ? STOP_FINAL : STOP_STREAMING, final, &r,
                         "wait_for_stop", "true",
                         &lines) == DELIVERY_INTERRUPTED);
        /* the write waited for the signal that was to end it */
        CHECK(r.raised);
        CHECK(p.calls == 1 && lines == 0);
    }
}

/* The fault sink acknowledges what it wrote when flushed, so the durable
 * position tells which flushes happened. */
static bool flushed(delivery *d)
{
    pgspout_position durable;
    return delivery_durable(d, &durable);
}

/* Raises one stop signal while a flush waits for its service, waits, then
 * (when `answer`) lets the service answer (the gate file goes away). */
typedef struct gatekeeper {
    const char *gate;
    bool answer;
    bool answered; /* set just before the gate goes */
} gatekeeper;

static void *signal_then_answer(void *arg)
{
    gatekeeper *g = arg;
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    stop_signal(&stop);
    if (!g->answer)
        return NULL;
    nanosleep(&ts, NULL);
    g->answered = true;
    remove(g->gate);
    return NULL;
}

/* The first signal finds the sink's flush waiting for its service: a
 * healthy sink (its last report: accepted) is let finish it, once the
 * service answers; a failing sink's flush ends at once. */
static void test_stop_during_flush(void)
{
    for (int failing = 0; failing <= 1; failing++) {
        test_sinks t = {0};
        char *gate = test_path(failing ? "gate-failing" : "gate-healthy");
        FILE *f = fopen(gate, "w");
        CHECK(f != NULL);
        if (f)
            fclose(f);
        add_sink(&t, "a", fault_so, NULL, "path", test_path("stop-flush"),
                 "flush_wait_file", gate, "flush_wait_failing",
                 failing ? "true" : "false", NULL);
        delivery *d = start_delivery(&t, no_filter, &stop);
        CHECK(d != NULL);
        if (!d)
            return;
        probe p = {0};
        delivery_set_backoff(d, probe_delay, &p);
        relation *rel = items_relation();
        batch b;
        batch_init(&b, 16, 1 << 20);
        add(&b, rel, 0x100, 1, 1);
        CHECK(delivery_write(d, &b) == DELIVERED);
        reset_stop(STOP_STREAMING, 0);
        gatekeeper g = {.gate = gate, .answer = !failing};
        pthread_t thread;
        pthread_create(&thread, NULL, signal_then_answer, &g);
        delivery_result got = delivery_flush(d, true, false);
        pthread_join(thread, NULL);
        if (failing) {
            CHECK(got == DELIVERY_INTERRUPTED && !flushed(d));
        } else {
            /* It returned only once the service answered, done. */
            CHECK(got == DELIVERED && g.answered && flushed(d));
        }
        remove(gate);
        reset_stop(STOP_STREAMING, 0);
        batch_free(&b);
        relation_unref(rel);
        delivery_free(d);
        free_sinks(&t);
    }
}

static void test_flush_policy(void)
{
    test_sinks t = {0};
    add_sink(&t, "a", fault_so, NULL, "path", test_path("flush"), NULL);
    delivery *d = start_delivery(&t, no_filter, &stop);
    CHECK(d != NULL);
    if (!d)
        return;
    relation *rel = items_relation();
    batch b;
    batch_init(&b, 16, 1 << 20);

    /* linger: not before the oldest change waited it, never inside a
     * transaction, at once between transactions once it passed */
    delivery_set_flush_policy(d, 60000, 1000);
    CHECK(delivery_linger_deadline(d) == 0);
    add(&b, rel, 0x100, 1, 1);
    add(&b, rel, 0x100, 2, 1);
    CHECK(delivery_write(d, &b) == DELIVERED);
    batch_clear(&b);
    CHECK(delivery_linger_deadline(d) > now_us());
    CHECK(delivery_flush(d, false, false) == DELIVERED);
    CHECK(!flushed(d));
    delivery_set_flush_policy(d, 0, 1000);
    CHECK(!delivery_linger_over(d, now_us(), true));
    CHECK(delivery_flush(d, false, true) == DELIVERED);
    CHECK(!flushed(d));
    CHECK(delivery_linger_over(d, now_us(), false));
    CHECK(delivery_flush(d, false, false) == DELIVERED);
    CHECK(flushed(d));
    CHECK(delivery_linger_deadline(d) == 0);

    /* max unflushed events, inside a transaction too */
    delivery_set_flush_policy(d, 60000, 3);
    add(&b, rel, 0x200, 1, 1);
    add(&b, rel, 0x200, 2, 1);
    CHECK(delivery_write(d, &b) == DELIVERED);
    batch_clear(&b);
    CHECK(delivery_flush(d, false, true) == DELIVERED);
    CHECK(!flushed(d));
    add(&b, rel, 0x200, 3, 1);
    CHECK(delivery_write(d, &b) == DELIVERED);
    batch_clear(&b);
    CHECK(delivery_flush(d, false, true) == DELIVERED);
    CHECK(flushed(d));

    /* everything (idle, or stopping) */
    add(&b, rel, 0x300, 1, 1);
    CHECK(delivery_write(d, &b) == DELIVERED);
    batch_clear(&b);
    CHECK(delivery_flush(d, false, false) == DELIVERED);
    CHECK(!flushed(d));
    CHECK(delivery_flush(d, true, true) == DELIVERED);
    CHECK(flushed(d));

    /* stopped while disconnected: flushed all the same */
    add(&b, rel, 0x400, 1, 1);
    CHECK(delivery_write(d, &b) == DELIVERED);
    batch_clear(&b);
    CHECK(!flushed(d));
    delivery_flush_abandoned(d);
    CHECK(flushed(d));

    batch_free(&b);
    relation_unref(rel);
    delivery_free(d);
    free_sinks(&t);
}

/* The durable position is the lowest acknowledgement among the sinks that
 * hold unacknowledged events; a sink with nothing pending does not hold it
 * back, and one that never acknowledges holds it where it is. */
static void test_durable_position(void)
{
    test_sinks t = {0};
    add_sink(&t, "a", fault_so, NULL, "path", test_path("dur-a"), NULL);
    add_sink(&t, "b", fault_so, NULL, "path", test_path("dur-b"), NULL);
    add_sink(&t, "idle", fault_so, NULL, "path", test_path("dur-c"), NULL);
    add_sink(&t, "silent", fault_so, NULL, "path", test_path("dur-d"), "ack",
             "false", NULL);
    delivery *d = start_delivery(&t, no_filter, &stop);
    CHECK(d != NULL);
    if (!d)
        return;
    delivery_set_flush_policy(d, 60000, 2);
    relation *rel = items_relation();
    batch b;
    batch_init(&b, 16, 1 << 20);
    pgspout_position durable;

    add(&b, rel, 0x50, 1, 2);  /* b */
    add(&b, rel, 0x100, 1, 1); /* a */
    add(&b, rel, 0x200, 1, 3); /* a and b */
    add(&b, rel, 0x300, 1, 2); /* b: two unflushed, flushed by the policy */
    CHECK(delivery_write(d, &b) == DELIVERED);
    batch_clear(&b);
    CHECK(delivery_flush(d, false, false) == DELIVERED);
    /* a holds (0x100,1) and (0x200,1) unflushed too: two, so flushed */
    CHECK(delivery_durable(d, &durable));

    add(&b, rel, 0x400, 1, 1); /* a, not flushed */
    add(&b, rel, 0x500, 1, 2); /* b, not flushed */
    CHECK(delivery_write(d, &b) == DELIVERED);
    batch_clear(&b);
    CHECK(delivery_flush(d, false, false) == DELIVERED);
    CHECK(!delivery_durable(d, &durable));
    /* the lower of a's (0x200,1) and b's (0x300,1) */
    CHECK(same_pos(durable, 0x200, 1));
    CHECK(delivery_flush(d, true, false) == DELIVERED);
    CHECK(delivery_durable(d, &durable)); /* "idle" never held anything */

    add(&b, rel, 0x600, 1, 9); /* a and the silent sink */
    CHECK(delivery_write(d, &b) == DELIVERED);
    batch_clear(&b);
    CHECK(delivery_flush(d, true, false) == DELIVERED);
    CHECK(!delivery_durable(d, &durable));
    CHECK(same_pos(durable, 0, 0)); /* the silent sink acknowledged nothing */

    batch_free(&b);
    relation_unref(rel);
    delivery_free(d);
    free_sinks(&t);
}

int main(int argc, char **argv)
{
    char err[1024];
    if (argc != 5) {
        fprintf(stderr, "usage: test_delivery FAULT_SINK_SO FILE_SINK_SO "
                        "FAULT_SINK_ABI11_SO FAULT_SINK_ABI14_SO\n");
        return 2;
    }
    fault_so = argv[1];
    file_so = argv[2];
    fault_abi11_so = argv[3];
    fault_abi14_so = argv[4];
    if (!loader_init(err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    stop_init(&stop);
    stop_open_wake(&stop);
    no_filter = table_filter_new();
    test_fan_out();
    test_read_events_for_older_sinks();
    test_messages_for_older_sinks();
    test_resume_skip();
    test_skip_delivered();
    test_retry_with_backoff();
    test_stop_during_retries();
    test_should_stop();
    test_stop_during_flush();
    test_flush_policy();
    test_durable_position();
    table_filter_free(no_filter);
    loader_shutdown();
    remove_test_dir();
    return check_summary();
}
