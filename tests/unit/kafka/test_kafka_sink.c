/* The Kafka sink, loaded as a shared object, driven through the delivery
 * layer against librdkafka's in-process mock cluster: read events become
 * Debezium "r" records, transient produce errors are retried in order, a
 * batch refused for good goes to the dead-letter file, and the host hears
 * of every position in order only once the broker took it.
 *
 * Usage: test_kafka_sink KAFKA_SINK_SO */
#include "check.h"
#include "sink_support.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "batch.h"
#include "loader.h"
#include "pattern.h"
#include "stop.h"

#define TOPIC "u.public.items"
#define PARTITIONS 3
#define PRODUCE_API 0 /* the Produce request's API key */

static const char *kafka_so;
static stop_state stop;
static table_filter *no_filter;

/* ---- the mock cluster and a consumer of it ---- */

typedef struct cluster {
    rd_kafka_t *owner; /* the handle the mock cluster lives in */
    rd_kafka_mock_cluster_t *mock;
    const char *bootstraps;
} cluster;

static bool cluster_start(cluster *c)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    c->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!c->owner)
        return false;
    c->mock = rd_kafka_mock_cluster_new(c->owner, 1);
    if (!c->mock)
        return false;
    c->bootstraps = rd_kafka_mock_cluster_bootstraps(c->mock);
    return rd_kafka_mock_topic_create(c->mock, TOPIC, PARTITIONS, 1) == 0;
}

static void cluster_stop(cluster *c)
{
    if (c->mock)
        rd_kafka_mock_cluster_destroy(c->mock);
    if (c->owner)
        rd_kafka_destroy(c->owner);
}

/* One record read back: its partition, key and value (NULL: tombstone). */
typedef struct record {
    int partition;
    char key[64];
    json_t *value;
} record;

/* Reads every record of TOPIC, partition after partition; returns how
 * many (at most max). */
static int consume_all(const cluster *c, record *out, int max)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstraps, err,
                      sizeof err);
    rd_kafka_conf_set(conf, "group.id", "test", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, TOPIC, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    int n = 0, eofs = 0;
    for (int idle = 0; eofs < PARTITIONS && idle < 100 && n < max;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eofs++;
        } else if (!m->err) {
            record *r = &out[n++];
            r->partition = m->partition;
            snprintf(r->key, sizeof r->key, "%.*s", (int)m->key_len,
                     m->key ? (const char *)m->key : "");
            r->value =
                m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

static void free_records(record *r, int n)
{
    for (int i = 0; i < n; i++)
        json_decref(r[i].value);
}

/* ---- the sink through the delivery layer ---- */

static delivery *start_kafka(test_sinks *t, const cluster *c,
                             const char *dead_letter)
{
    add_sink(t, "kafka", kafka_so, NULL, "brokers", c->bootstraps, "topic",
             "u.{schema}.{table}", "format", "debezium", "dead_letter",
             dead_letter, "kafka.log_level", "3", NULL);
    return start_delivery(t, no_filter, &stop);
}

static bool durable_at(delivery *d, uint64_t commit_lsn, uint64_t seq)
{
    pgspout_position durable;
    bool all = delivery_durable(d, &durable);
    return all || (durable.commit_lsn == commit_lsn && durable.seq == seq);
}

/* Reads and inserts, some produced while the broker answers with
 * transient errors: all delivered, in order per key, reads as "r". */
static void test_reads_and_retries(void)
{
    cluster c = {0};
    CHECK(cluster_start(&c));
    test_sinks t = {0};
    delivery *d = start_kafka(&t, &c, test_path("dead-1.jsonl"));
    CHECK(d != NULL);
    if (!d) {
        cluster_stop(&c);
        return;
    }
    /* The first three produce requests fail, as a broker failing over. */
    rd_kafka_mock_push_request_errors(
        c.mock, PRODUCE_API, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    relation *rel = items_relation();
    batch b;
    batch_init(&b, 64, 1 << 20);
    /* Reads of ids 1-5 come from the initial snapshot, of 6-9 and 0 from an
     * on-demand backfill (a `pgspout backfill` id). */
    for (uint64_t seq = 1; seq <= 10; seq++) {
        event *ev = make_event(rel, PGSPOUT_OP_READ, 0x100, seq);
        snprintf(ev->snapshot.id, sizeof ev->snapshot.id, "%s",
                 seq <= 5 ? "initial-0/100" : "00112233aabbccdd");
        batch_add(&b, ev, 1, 16);
    }
    for (uint64_t seq = 1; seq <= 10; seq++)
        batch_add(&b, make_event(rel, PGSPOUT_OP_INSERT, 0x200, seq), 1, 16);
    CHECK(delivery_write(d, &b) == DELIVERED);
    CHECK(delivery_flush(d, true, false) == DELIVERED);
    CHECK(durable_at(d, 0x200, 10));

    record r[64];
    int n = consume_all(&c, r, 64);
    CHECK(n == 20);
    /* Each key (id 0..9) got its read, then its insert, in one partition. */
    int reads = 0, inserts = 0;
    for (int i = 0; i < n; i++) {
        const char *op = json_string_value(json_object_get(r[i].value, "op"));
        json_t *src = json_object_get(r[i].value, "source");
        const char *snapshot =
            json_string_value(json_object_get(src, "snapshot"));
        int id = atoi(r[i].key + strlen("{\"id\":"));
        reads +=
            op && strcmp(op, "r") == 0 &&
            strcmp(snapshot, id >= 1 && id <= 5 ? "true" : "incremental") == 0;
        inserts += op && strcmp(op, "c") == 0;
        for (int j = i + 1; j < n; j++) {
            if (strcmp(r[i].key, r[j].key) != 0)
                continue;
            CHECK(r[i].partition == r[j].partition);
            /* Same partition, earlier offset: the read comes first. */
            CHECK(op && strcmp(op, "r") == 0);
        }
    }
    CHECK(reads == 10 && inserts == 10);
    free_records(r, n);
    batch_free(&b);
    relation_unref(rel);
    delivery_free(d);
    free_sinks(&t);
    cluster_stop(&c);
}

/* A produce request refused for good (the broker says the batch is too
 * large): its records go to the dead-letter file, and the stream goes on
 * and is acknowledged past them. */
static void test_refused_batch_to_dead_letter(void)
{
    cluster c = {0};
    CHECK(cluster_start(&c));
    test_sinks t = {0};
    char *dead = test_path("dead-2.jsonl");
    delivery *d = start_kafka(&t, &c, dead);
    CHECK(d != NULL);
    if (!d) {
        cluster_stop(&c);
        return;
    }
    relation *rel = items_relation();
    batch b;
    batch_init(&b, 64, 1 << 20);
    rd_kafka_mock_push_request_errors(c.mock, PRODUCE_API, 1,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    batch_add(&b, make_event(rel, PGSPOUT_OP_INSERT, 0x300, 1), 1, 16);
    CHECK(delivery_write(d, &b) == DELIVERED);
    CHECK(delivery_flush(d, true, false) == DELIVERED);
    CHECK(durable_at(d, 0x300, 1));
    CHECK(file_contains(dead, "Message size too large"));
    CHECK(file_contains(dead, "\"seq\":1"));
    /* Later records are delivered as usual. */
    batch_free(&b);
    batch_init(&b, 64, 1 << 20);
    batch_add(&b, make_event(rel, PGSPOUT_OP_INSERT, 0x400, 2), 1, 16);
    CHECK(delivery_write(d, &b) == DELIVERED);
    CHECK(delivery_flush(d, true, false) == DELIVERED);
    CHECK(durable_at(d, 0x400, 2));
    record r[8];
    int n = consume_all(&c, r, 8);
    CHECK(n == 1);
    if (n == 1)
        CHECK_STR(r[0].key, "{\"id\":2}");
    free_records(r, n);
    batch_free(&b);
    relation_unref(rel);
    delivery_free(d);
    free_sinks(&t);
    cluster_stop(&c);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s KAFKA_SINK_SO\n", argv[0]);
        return 2;
    }
    kafka_so = argv[1];
    char err[256];
    if (!loader_init(err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    stop_init(&stop);
    stop_open_wake(&stop);
    no_filter = table_filter_new();
    test_reads_and_retries();
    test_refused_batch_to_dead_letter();
    table_filter_free(no_filter);
    remove_test_dir();
    loader_shutdown();
    return check_summary();
}
