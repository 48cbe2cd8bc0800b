/* The event encoder alone: encodes one read event of the backfill
 * workload's shape (bench/workloads/backfill_setup.sql) N times, as the
 * file sink asks for it (streamed in pieces, copied into a buffer), and
 * prints the CPU time per event. For a figure that machine load does not
 * move, count instructions instead:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
 *       build/release/bench/encode_events 100000
 *
 * ("Collected" / N is instructions per event). Not installed, not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event_json.h"
#include "event_support.h"

typedef struct sink_buffer {
    char *data;
    size_t len, cap, total;
} sink_buffer;

/* What the file sink does with a piece: append it to its buffer (which is
 * written out, here just emptied, once full). */
static bool take_piece(void *ctx, const char *data, size_t len)
{
    sink_buffer *b = ctx;
    if (b->len + len > b->cap) {
        b->total += b->len;
        b->len = 0;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return true;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static relation *backfill_relation(void)
{
    static const column_spec specs[] = {
        {"id", 20, "bigint", true},
        {"account_id", 23, "integer", false},
        {"kind", 25, "text", false},
        {"payload", 3802, "jsonb", false},
        {"amount", 1700, "numeric(12,2)", false},
        {"created_at", 1184, "timestamp with time zone", false},
    };
    relation *rel = make_relation("public", "bench_backfill", specs, 6);
    relation_prepare_json(rel); /* as the relation cache does */
    return rel;
}

static void encode_one(relation *rel, const tuple *row, uint64_t seq,
                       sink_buffer *out)
{
    event ev;
    init_event(&ev, PGSPOUT_OP_READ, rel);
    ev.pos.seq = seq;
    ev.new_tuple = *row;
    ev.new_tuple.in_arena = true; /* not the event's to free */
    snprintf(ev.snapshot.id, sizeof ev.snapshot.id, "initial-0/38A51580");
    ev.snapshot.table_rows = 10000000;
    ev.snapshot.chunk = 7;
    event_json_stream(&ev, PGSPOUT_PART_EVENT, 0, take_piece, out);
    take_piece(out, "\n", 1);
    relation_unref(ev.rel);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    if (n <= 0) {
        fprintf(stderr, "usage: encode_events [EVENTS]\n");
        return 2;
    }
    relation *rel = backfill_relation();
    const char *values[] = {
        "1234567",
        "567",
        "kind_3",
        "{\"n\": 1234567, \"tag\": \"c4ca4238a0b923820dcc509a6f75849b\"}",
        "1851850.50",
        "2026-12-01 22:53:06.379069+00",
    };
    tuple row = make_tuple(6, values);
    sink_buffer out = {xmalloc(1 << 20), 0, 1 << 20, 0};
    double start = cpu_seconds();
    for (long i = 0; i < n; i++)
        encode_one(rel, &row, (uint64_t)i + 1, &out);
    double spent = cpu_seconds() - start;
    printf("%.1f ns of CPU per event (%ld events, %zu bytes)\n",
           spent * 1e9 / (double)n, n, out.total + out.len);
    free(out.data);
    free(row.cols);
    relation_unref(rel);
    return 0;
}
