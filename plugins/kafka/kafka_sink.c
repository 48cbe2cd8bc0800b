/* The Kafka sink: each change becomes a Kafka record (plus a tombstone
 * after a delete), produced with librdkafka's idempotent producer
 * (acks=all, no message timeout), in the canonical event JSON or in
 * Debezium's envelope. librdkafka batches, compresses, keeps requests in
 * flight and retries without limit, in order per partition; the sink
 * turns its delivery reports back into in-order acknowledgements
 * (kafka_acks.h) and hands records Kafka refuses for good to the sink
 * kit's dead-letter file. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <pgspout/pgspout.h>

#include "alloc.h"
#include "clock.h"
#include "dead_letter.h"
#include "kafka_acks.h"
#include "kafka_conf.h"
#include "kafka_format.h"
#include "kafka_topic.h"
#include "message.h"
#include "option_check.h"
#include "report.h"
#include "row_key.h"
#include "strbuf.h"

#define KAFKA_SINK_VERSION "0.1.0"

/* A topic: its name, and its handle (NULL when librdkafka gave none; then
 * records name the topic). */
typedef struct topic_ref {
    const char *name;
    rd_kafka_topic_t *rkt;
} topic_ref;

/* One record to produce. key NULL: none; value NULL: a tombstone. */
typedef struct kafka_message {
    topic_ref topic;
    const char *key, *value;
    size_t key_len, value_len;
} kafka_message;

/* The records of one event, all in one ack entry; the buffers are kept
 * from event to event. */
typedef struct event_records {
    kafka_message m[3];
    size_t n;
    strbuf key, old_key, value;
} event_records;

typedef struct known_topic {
    char *name;
    rd_kafka_topic_t *rkt; /* NULL if librdkafka refused one */
} known_topic;

typedef struct kafka_sink {
    const pgspout_host_api *host;
    pgspout_sink_handle *handle;
    rd_kafka_t *rk;
    kafka_acks *acks;
    kit_dead_letter *dead_letter; /* NULL: a refused record stops */
    kafka_secrets secrets;

    kafka_topic_template *topic;
    const char *schema_topic; /* NULL: schema events are not sent */
    /* NULL: message events, or begin and commit events, are not sent. */
    const char *message_topic, *transaction_topic;
    kafka_key_mode key_mode;
    bool debezium, tombstones, headers;
    kafka_debezium_source source;

    pthread_t poller;
    bool poller_started;
    /* Held while a position is taken from the window and passed to the
     * host: the poller and a flush both acknowledge, and the host must
     * hear of positions in order. */
    pthread_mutex_t ack_lock;
    atomic_bool stopping;
    /* When the writing thread last served delivery reports (now_us). */
    atomic_llong writer_served_us;
    /* Records waiting on a broker that failed were reported as retried,
     * and no delivery succeeded since (one report per outage). */
    atomic_bool reported_waiting;
    unsigned writes_since_serving;

    /* The last table's topic, so a run of one table's events expands the
     * template once, and its "schema.table" for the pgspout-table header,
     * so a record's headers need no formatting or allocation of ours. */
    char *topic_schema, *topic_table, *topic_name, *topic_table_key;
    rd_kafka_topic_t *topic_rkt;
    /* Topics whose metadata was asked for (one per table at most), with
     * their handles: producing by handle spares librdkafka a lookup of
     * the name under its client-wide write lock for every record. */
    known_topic *known_topics;
    size_t n_known_topics;
    event_records records;
} kafka_sink;

static const pgspout_option_def kafka_options[] = {
    {.name = "brokers",
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_REQUIRED,
     .doc = "bootstrap brokers, host:port[,host:port...]"},
    {.name = "topic",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "{schema}.{table}",
     .doc = "topic name template; {schema} and {table} are replaced"},
    {.name = "key",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "row",
     .choices = "row|table|none",
     .doc = "record key: the row's replica identity as JSON, schema.table, "
            "or none"},
    {.name = "format",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "pgspout",
     .choices = "pgspout|debezium",
     .doc = "record value: the canonical event JSON, or Debezium's "
            "PostgreSQL envelope"},
    {.name = "tombstones",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "true",
     .doc = "after a delete (and a key change), a null-value record for the "
            "old key (key = row only)"},
    {.name = "schema_topic",
     .type = PGSPOUT_OPT_STRING,
     .doc = "topic for schema events (default: schema events are not sent)"},
    {.name = "message_topic",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "pgspout.messages",
     .doc = "topic for message events, keyed by prefix (empty: not sent)"},
    {.name = "transaction_topic",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "pgspout.transactions",
     .doc = "topic for begin and commit events, keyed by the commit LSN "
            "(empty: not sent)"},
    {.name = "headers",
     .type = PGSPOUT_OPT_BOOL,
     .default_value = "true",
     .doc = "add headers pgspout-op, pgspout-commit-lsn, pgspout-seq, "
            "pgspout-table"},
    {.name = "compression",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "none",
     .choices = "none|gzip|snappy|lz4|zstd",
     .doc = "compression of record batches"},
    {.name = "debezium_name",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "pgspout",
     .doc = "format = debezium: source.name (Debezium's topic.prefix)"},
    {.name = "debezium_db",
     .type = PGSPOUT_OPT_STRING,
     .default_value = "",
     .doc = "format = debezium: source.db, the database's name"},
    KIT_DEAD_LETTER_OPTION,
    {.name = KAFKA_PROPERTY_PREFIX,
     .type = PGSPOUT_OPT_STRING,
     .flags = PGSPOUT_OPTF_PREFIX | PGSPOUT_OPTF_SECRET,
     .doc = "any librdkafka property, e.g. kafka.security.protocol=SSL"},
    PGSPOUT_OPTION_END};

static bool host_gives_up(void *ctx)
{
    kafka_sink *ks = ctx;
    return ks->host->should_stop(ks->handle);
}

/* Logs a line after removing every secret from it. */
static void log_redacted(kafka_sink *ks, pgspout_log_level level,
                         const char *what, const char *text)
{
    char *copy = xstrdup(text);
    kafka_secrets_redact(&ks->secrets, copy);
    ks->host->log(ks->handle, level, "%s%s", what, copy);
    free(copy);
}

static const char *position_text(kafka_sink *ks, pgspout_position pos,
                                 char *buf, size_t buflen)
{
    char lsn[32];
    snprintf(buf, buflen, "commit_lsn %s seq %" PRIu64,
             ks->host->format_lsn(pos.commit_lsn, lsn, sizeof lsn), pos.seq);
    return buf;
}

/* ---- failures and the dead-letter file ---- */

static void fail(kafka_sink *ks, const char *reason)
{
    char *copy = xstrdup(reason);
    kafka_secrets_redact(&ks->secrets, copy);
    if (!kafka_acks_failed(ks->acks, NULL, 0))
        ks->host->log(ks->handle, PGSPOUT_LOG_ERROR,
                      "delivery failed for good: %s", copy);
    kafka_acks_fail(ks->acks, copy);
    free(copy);
}

/* A record Kafka refuses for good: into the dead-letter file, which then
 * counts as its delivery, or the stream stops. */
static bool dead_letter(kafka_sink *ks, pgspout_position pos,
                        const char *reason, const void *payload, size_t len)
{
    char err[512];
    kit_report_records(ks->host, ks->handle, PGSPOUT_RECORDS_REJECTED, 1);
    if (!ks->dead_letter) {
        fail(ks, reason);
        return false;
    }
    if (!kit_dead_letter_write(ks->dead_letter, "kafka", pos, reason, payload,
                               len, err, sizeof err)) {
        fail(ks, err);
        return false;
    }
    ks->host->log(ks->handle, PGSPOUT_LOG_WARNING,
                  "record sent to the dead-letter file: %s", reason);
    kit_report_records(ks->host, ks->handle, PGSPOUT_RECORDS_DEAD_LETTERED, 1);
    return true;
}

/* Errors that are about one record, which no retry will make acceptable;
 * any other failed delivery stops the stream (access denied, no such
 * topic, the producer fenced). Transient ones never get here: librdkafka
 * retries them without limit. */
static bool refused_for_good(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        return true;
    default:
        return false;
    }
}

/* ---- librdkafka's callbacks (on the poller thread, or librdkafka's) ---- */

/* A record the broker stored has the offset the broker gave it. librdkafka
 * also reports success, with no offset, for records it acknowledges
 * "implicitly": a later batch of their partition succeeded while their own
 * batch waited for a retry, so it assumes they were stored too. That holds
 * after a timeout, not after an error saying the batch was not written: a
 * new partition's first batch refused with "Not leader for partition" while
 * the next one, which the broker takes as a new producer's first, succeeds
 * (librdkafka 2.0.2, on a topic just created, under load). Such a record
 * may be missing from the topic: it is never counted as delivered, and the
 * stream stops; it cannot be sent again now without overtaking the records
 * of its key that followed it, so it is sent again, in order, on restart. */
static bool stored_by_broker(const rd_kafka_message_t *m)
{
    return m->offset >= 0;
}

static void not_confirmed(kafka_sink *ks, const rd_kafka_message_t *m,
                          uint64_t id)
{
    char reason[700], where[80];
    snprintf(reason, sizeof reason,
             "Kafka did not confirm the record of the event at %s for topic "
             "\"%s\" partition %" PRId32
             ": librdkafka reported it delivered without an offset, after a "
             "failed attempt, so it may be missing from the topic; it is "
             "sent again from the last confirmed position on restart",
             position_text(ks, kafka_acks_position(ks->acks, id), where,
                           sizeof where),
             rd_kafka_topic_name(m->rkt), m->partition);
    fail(ks, reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    kafka_sink *ks = opaque;
    uint64_t id = (uint64_t)(uintptr_t)m->_private;
    (void)rk;
    if (!m->err && !stored_by_broker(m)) {
        not_confirmed(ks, m, id);
        return;
    }
    if (m->err) {
        char reason[700], where[80];
        pgspout_position pos = kafka_acks_position(ks->acks, id);
        snprintf(reason, sizeof reason,
                 "Kafka refused the record of the event at %s for topic "
                 "\"%s\": %s",
                 position_text(ks, pos, where, sizeof where),
                 rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        if (!refused_for_good(m->err) ||
            !dead_letter(ks, pos, reason, m->payload, m->len)) {
            fail(ks, reason);
            return;
        }
    } else {
        atomic_store(&ks->reported_waiting, false);
        kit_report_records(ks->host, ks->handle, PGSPOUT_RECORDS_ACCEPTED, 1);
    }
    kafka_acks_complete(ks->acks, id);
}

/* librdkafka sends them again by itself; the host hears that they wait
 * (metrics, readiness, and a stop signal that need not wait for them). */
static void report_waiting(kafka_sink *ks)
{
    size_t waiting = kafka_acks_open_count(ks->acks);
    if (waiting > 0 && !atomic_exchange(&ks->reported_waiting, true))
        kit_report_records(ks->host, ks->handle, PGSPOUT_RECORDS_RETRIED,
                           waiting);
}

/* Errors about the connection to a broker, which librdkafka also logs
 * (as FAIL) and retries by itself. */
static bool connection_error(int err)
{
    return err == RD_KAFKA_RESP_ERR__TRANSPORT ||
           err == RD_KAFKA_RESP_ERR__SSL ||
           err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
           err == RD_KAFKA_RESP_ERR__RESOLVE;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_sink *ks = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof why);
        fail(ks, why);
        return;
    }
    /* Everything else (brokers down, a TLS handshake refused) librdkafka
     * retries by itself; the stream waits meanwhile. */
    report_waiting(ks);
    log_redacted(
        ks, connection_error(err) ? PGSPOUT_LOG_DEBUG : PGSPOUT_LOG_WARNING,
        "Kafka: ", reason);
}

/* librdkafka's syslog levels; its errors are retried conditions (a broker
 * down), so they are warnings here: pgspout's errors end the stream. */
static void on_log(const rd_kafka_t *rk, int level, const char *facility,
                   const char *text)
{
    kafka_sink *ks = rd_kafka_opaque(rk);
    pgspout_log_level l = level <= 2   ? PGSPOUT_LOG_ERROR
                          : level <= 4 ? PGSPOUT_LOG_WARNING
                          : level <= 6 ? PGSPOUT_LOG_INFO
                                       : PGSPOUT_LOG_DEBUG;
    char what[64];
    snprintf(what, sizeof what, "librdkafka %s: ", facility);
    log_redacted(ks, l, what, text);
}

/* Serves delivery reports and passes on what became durable. */
static void acknowledge_done(kafka_sink *ks)
{
    pgspout_position upto;
    pthread_mutex_lock(&ks->ack_lock);
    if (kafka_acks_take(ks->acks, &upto))
        ks->host->ack_durable(ks->handle, upto);
    pthread_mutex_unlock(&ks->ack_lock);
}

/* Delivery reports are served by the writing thread while it writes:
 * librdkafka frees each delivered record (its message, its headers: seven
 * blocks) on the thread that serves its report, and glibc's malloc is far
 * cheaper when the thread that allocates a block frees it (its per-thread
 * cache) than when another one does (every block through the arena's
 * shared bins, under a lock both threads take). The poller serves them
 * whenever the writer has not for WRITER_GRACE_US: between writes, idle
 * streams, a writer waiting for room. */
#define WRITER_SERVES_EVERY 64
#define WRITER_GRACE_US 10000
#define POLLER_NAP_MS 5

static void serve_reports(kafka_sink *ks)
{
    rd_kafka_poll(ks->rk, 0);
    acknowledge_done(ks);
    atomic_store(&ks->writer_served_us, now_us());
}

static bool writer_serves(kafka_sink *ks)
{
    return now_us() - atomic_load(&ks->writer_served_us) < WRITER_GRACE_US;
}

static bool poller_stops(void *ctx)
{
    kafka_sink *ks = ctx;
    return atomic_load(&ks->stopping);
}

static void *poll_main(void *arg)
{
    kafka_sink *ks = arg;
    while (!atomic_load(&ks->stopping)) {
        if (writer_serves(ks)) {
            sleep_unless(POLLER_NAP_MS, poller_stops, ks);
            continue;
        }
        /* Returns as soon as a report arrives, so a writer that starts
         * meanwhile finds the poller napping after one batch at most. */
        rd_kafka_poll(ks->rk, 100);
        acknowledge_done(ks);
    }
    return NULL;
}

/* ---- producing ---- */

/* Writes v in decimal, NUL-terminated, into buf (at least 21 bytes): a
 * header per record is too hot a path for snprintf's parsing. */
static const char *u64_text(uint64_t v, char *buf)
{
    char *p = buf + 20;
    *p = '\0';
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    return p;
}

/* "schema.table" of the change: the cached one for a change of the
 * current table (table_topic ran first), else formatted into buf. */
static const char *table_key_text(kafka_sink *ks, const kafka_change *c,
                                  char *buf, size_t buflen)
{
    if (ks->topic_table_key && strcmp(ks->topic_schema, c->schema) == 0 &&
        strcmp(ks->topic_table, c->table) == 0)
        return ks->topic_table_key;
    snprintf(buf, buflen, "%s.%s", c->schema, c->table);
    return buf;
}

static rd_kafka_headers_t *event_headers(kafka_sink *ks, const kafka_change *c)
{
    /* PostgreSQL names are at most 63 bytes: "schema.table" fits. */
    char lsn[32], seq[24], table[256];
    bool has_seq = c->op != PGSPOUT_OP_SCHEMA;
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    const char *op = ks->host->op_name(c->op);
    rd_kafka_header_add(h, "pgspout-op", -1, op ? op : "", -1);
    ks->host->format_lsn(c->pos.commit_lsn, lsn, sizeof lsn);
    rd_kafka_header_add(h, "pgspout-commit-lsn", -1, lsn, -1);
    /* Schema events have no place among the changes, so no seq. */
    if (has_seq)
        rd_kafka_header_add(h, "pgspout-seq", -1, u64_text(c->pos.seq, seq),
                            -1);
    /* Messages, begins and commits belong to no table. */
    if (c->schema)
        rd_kafka_header_add(h, "pgspout-table", -1,
                            table_key_text(ks, c, table, sizeof table), -1);
    return h;
}

/* What an event is about, for error text: "schema.table", or the op of an
 * event that belongs to no table (a message, a begin, a commit). */
static const char *event_subject(kafka_sink *ks, const kafka_change *c,
                                 char *buf, size_t buflen)
{
    if (c->schema)
        snprintf(buf, buflen, "%s.%s", c->schema, c->table);
    else
        snprintf(buf, buflen, "%s", ks->host->op_name(c->op));
    return buf;
}

/* producev refused a record at once: one over message.max.bytes goes to
 * the dead-letter file (or stops the stream); anything else stops it. */
static pgspout_status produce_refused(kafka_sink *ks, const kafka_message *m,
                                      const kafka_change *c, uint64_t id,
                                      rd_kafka_resp_err_t err)
{
    char reason[700], where[80], subject[160];
    snprintf(reason, sizeof reason,
             "the record of the event at %s (%s) for topic \"%s\" could "
             "not be produced: %s (key %zu bytes, value %zu bytes)",
             position_text(ks, c->pos, where, sizeof where),
             event_subject(ks, c, subject, sizeof subject), m->topic.name,
             rd_kafka_err2str(err), m->key_len, m->value_len);
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE &&
        dead_letter(ks, c->pos, reason, m->value, m->value_len)) {
        kafka_acks_complete(ks->acks, id);
        return PGSPOUT_OK;
    }
    fail(ks, reason);
    return PGSPOUT_FATAL;
}

/* One producev. RD_KAFKA_MSG_F_COPY, not F_FREE: librdkafka copies the
 * value into the same allocation as its message (one malloc), where F_FREE
 * would need a buffer of the sink's own per record on top. */
static rd_kafka_resp_err_t produce_once(kafka_sink *ks, const kafka_message *m,
                                        rd_kafka_headers_t *h, uint64_t id)
{
#define PRODUCE_REST                                                           \
    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),                                  \
        RD_KAFKA_V_KEY(m->key, m->key_len),                                    \
        RD_KAFKA_V_VALUE((void *)m->value, m->value_len),                      \
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)id),       \
        RD_KAFKA_V_END
    if (m->topic.rkt)
        return rd_kafka_producev(ks->rk, RD_KAFKA_V_RKT(m->topic.rkt),
                                 PRODUCE_REST);
    return rd_kafka_producev(ks->rk, RD_KAFKA_V_TOPIC(m->topic.name),
                             PRODUCE_REST);
#undef PRODUCE_REST
}

/* Produces one record as part of ack entry id. QUEUE_FULL waits (librdkafka's
 * queue limits bound memory), asking should_stop meanwhile. */
static pgspout_status produce(kafka_sink *ks, const kafka_message *m,
                              const kafka_change *c, uint64_t id)
{
    for (;;) {
        rd_kafka_headers_t *h = ks->headers ? event_headers(ks, c) : NULL;
        rd_kafka_resp_err_t err = produce_once(ks, m, h, id);
        if (!err)
            return PGSPOUT_OK;
        if (h)
            rd_kafka_headers_destroy(h);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return produce_refused(ks, m, c, id, err);
        if (host_gives_up(ks))
            return PGSPOUT_RETRY;
        rd_kafka_poll(ks->rk, 50);
    }
}

/* How long the first record of a topic waits for its metadata, asking
 * again every TOPIC_METADATA_RETRY_MS while the topic has no partitions,
 * each request waiting at most TOPIC_METADATA_ASK_MS (so that should_stop
 * is asked that often). */
#define TOPIC_METADATA_WAIT_MS 2000
#define TOPIC_METADATA_RETRY_MS 50
#define TOPIC_METADATA_ASK_MS 100

/* One metadata request for a topic: true once it has partitions. */
static bool topic_has_partitions(kafka_sink *ks, rd_kafka_topic_t *rkt,
                                 int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(ks->rk, 0, rkt, &md, timeout_ms) != 0)
        return false;
    bool ready = md->topic_cnt == 1 && md->topics[0].err == 0 &&
                 md->topics[0].partition_cnt > 0;
    rd_kafka_metadata_destroy(md);
    return ready;
}

/* Asks the broker about a topic the first time it is used, until it has
 * partitions (a broker that creates topics on demand creates it on the
 * first request, and answers "unknown topic" meanwhile): librdkafka would
 * otherwise look again on its next periodic scan, a second later, and hold
 * the topic's records until then. A broker that does not answer in time
 * only means that librdkafka finds out later by itself. */
static rd_kafka_topic_t *learn_topic(kafka_sink *ks, const char *name)
{
    for (size_t i = 0; i < ks->n_known_topics; i++)
        if (strcmp(ks->known_topics[i].name, name) == 0)
            return ks->known_topics[i].rkt;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(ks->rk, name, NULL);
    ks->known_topics = xrealloc(ks->known_topics, (ks->n_known_topics + 1) *
                                                      sizeof *ks->known_topics);
    ks->known_topics[ks->n_known_topics++] = (known_topic){xstrdup(name), rkt};
    if (!rkt)
        return NULL;
    int64_t deadline = now_us() + TOPIC_METADATA_WAIT_MS * 1000;
    while (!topic_has_partitions(ks, rkt, TOPIC_METADATA_ASK_MS) &&
           now_us() + TOPIC_METADATA_RETRY_MS * 1000 < deadline &&
           !host_gives_up(ks))
        sleep_unless(TOPIC_METADATA_RETRY_MS, host_gives_up, ks);
    return rkt;
}

/* Topic handles go before the producer: librdkafka's rule. */
static void forget_topics(kafka_sink *ks)
{
    for (size_t i = 0; i < ks->n_known_topics; i++) {
        if (ks->known_topics[i].rkt)
            rd_kafka_topic_destroy(ks->known_topics[i].rkt);
        free(ks->known_topics[i].name);
    }
    free(ks->known_topics);
    ks->known_topics = NULL;
    ks->n_known_topics = 0;
}

/* The topic of a table's events: the template expanded (the last table's
 * is kept); name NULL when the name is no valid topic, which stops the
 * stream. */
static topic_ref table_topic(kafka_sink *ks, const kafka_change *c)
{
    if (ks->topic_name && strcmp(ks->topic_schema, c->schema) == 0 &&
        strcmp(ks->topic_table, c->table) == 0)
        return (topic_ref){ks->topic_name, ks->topic_rkt};
    char err[256], reason[700];
    char *name =
        kafka_topic_expand(ks->topic, c->schema, c->table, err, sizeof err);
    if (!name) {
        snprintf(reason, sizeof reason,
                 "table %s.%s has no valid topic name under the topic "
                 "template: %s; change the topic option or leave the table "
                 "out (-T)",
                 c->schema, c->table, err);
        fail(ks, reason);
        return (topic_ref){NULL, NULL};
    }
    ks->topic_rkt = learn_topic(ks, name);
    free(ks->topic_schema);
    free(ks->topic_table);
    free(ks->topic_name);
    free(ks->topic_table_key);
    ks->topic_schema = xstrdup(c->schema);
    ks->topic_table = xstrdup(c->table);
    ks->topic_name = name;
    strbuf key = STRBUF_INIT;
    kafka_table_key(&key, c->schema, c->table);
    ks->topic_table_key = sbuf_detach(&key);
    return (topic_ref){name, ks->topic_rkt};
}

static json_span event_part(kafka_sink *ks, const pgspout_event *ev,
                            pgspout_event_part part)
{
    json_span s;
    s.p = ks->host->event_json(ev, part, &s.len);
    return s;
}

/* The event's fields, and the JSON parts this sink's settings need. */
static kafka_change read_change(kafka_sink *ks, const pgspout_event *ev)
{
    const pgspout_host_api *h = ks->host;
    kafka_change c = {.op = h->event_op(ev),
                      .schema = h->event_schema(ev),
                      .table = h->event_table(ev),
                      .pos = h->event_position(ev),
                      .lsn = h->event_lsn(ev),
                      .xid = h->event_xid(ev),
                      .commit_time_us = h->event_commit_time(ev)};
    if (!kafka_op_has_row(c.op))
        return c;
    if (ks->key_mode == KAFKA_KEY_ROW)
        c.key = event_part(ks, ev, PGSPOUT_PART_KEY);
    /* An update's old key is in `before`, for the old key's tombstone;
     * typed column access (ABI 1.6) tells without it when the key stayed. */
    if (ks->debezium ||
        (ks->key_mode == KAFKA_KEY_ROW && ks->tombstones &&
         c.op == PGSPOUT_OP_UPDATE && !kit_key_unchanged(h, ev)))
        c.before = event_part(ks, ev, PGSPOUT_PART_BEFORE);
    if (ks->debezium) {
        c.after = event_part(ks, ev, PGSPOUT_PART_AFTER);
        c.unchanged_toast = event_part(ks, ev, PGSPOUT_PART_UNCHANGED_TOAST);
        /* Only the whole event names the backfill a read belongs to. */
        if (c.op == PGSPOUT_OP_READ)
            c.incremental = kafka_read_is_incremental(
                event_part(ks, ev, PGSPOUT_PART_EVENT));
    }
    return c;
}

static void add_record(event_records *r, topic_ref topic, const strbuf *key,
                       bool has_key, const char *value, size_t value_len)
{
    r->m[r->n++] = (kafka_message){topic, has_key ? key->data : NULL, value,
                                   has_key ? key->len : 0, value_len};
}

static void change_records(kafka_sink *ks, const pgspout_event *ev,
                           const kafka_change *c, topic_ref topic,
                           event_records *r)
{
    bool has_key = kafka_message_key(ks->key_mode, c, &r->key);
    json_span value;
    if (ks->debezium) {
        kafka_debezium_value(&r->value, c, &ks->source, wall_clock_us());
        value = (json_span){r->value.data, r->value.len};
    } else {
        value = event_part(ks, ev, PGSPOUT_PART_EVENT);
    }
    add_record(r, topic, &r->key, has_key, value.p, value.len);
    /* Tombstones make compaction drop a key: after a delete, and for the
     * key an update moved its row away from. Only a row key names a row. */
    if (!ks->tombstones || ks->key_mode != KAFKA_KEY_ROW || !has_key)
        return;
    if (c->op == PGSPOUT_OP_DELETE)
        add_record(r, topic, &r->key, true, NULL, 0);
    else if (kafka_previous_key(c, &r->old_key))
        add_record(r, topic, &r->old_key, true, NULL, 0);
}

/* A message's record, on message_topic, keyed by the message's prefix: a
 * prefix always lands in one partition, so its messages stay in order. */
static bool message_records(kafka_sink *ks, const pgspout_event *ev,
                            event_records *r)
{
    json_span v = event_part(ks, ev, PGSPOUT_PART_EVENT);
    char *prefix = kit_message_prefix(v.p, v.len);
    if (!prefix) {
        fail(ks, "a message event without a prefix");
        return false;
    }
    topic_ref t = {ks->message_topic, learn_topic(ks, ks->message_topic)};
    sbuf_append_str(&r->key, prefix);
    free(prefix);
    /* An empty prefix is an empty key, not none: it still has a partition. */
    r->m[r->n++] = (kafka_message){t, r->key.data ? r->key.data : "", v.p,
                                   r->key.len, v.len};
    return true;
}

/* A begin or commit event's record, on transaction_topic, keyed by the
 * transaction's commit LSN: unique to the transaction and the same when
 * the slot sends it again, so its begin and its commit share a partition
 * (the begin first) and a compacted topic keeps its commit. */
static void transaction_records(kafka_sink *ks, const pgspout_event *ev,
                                const kafka_change *c, event_records *r)
{
    char lsn[32];
    topic_ref t = {ks->transaction_topic,
                   learn_topic(ks, ks->transaction_topic)};
    sbuf_append_str(&r->key,
                    ks->host->format_lsn(c->pos.commit_lsn, lsn, sizeof lsn));
    json_span v = event_part(ks, ev, PGSPOUT_PART_EVENT);
    add_record(r, t, &r->key, true, v.p, v.len);
}

/* Builds the event's records; false when it must stop the stream. An
 * event whose topic is off gets none, and is acknowledged in its turn. */
static bool event_records_build(kafka_sink *ks, const pgspout_event *ev,
                                const kafka_change *c, event_records *r)
{
    if (c->op == PGSPOUT_OP_MESSAGE)
        return !ks->message_topic || message_records(ks, ev, r);
    if (c->op == PGSPOUT_OP_BEGIN || c->op == PGSPOUT_OP_COMMIT) {
        if (ks->transaction_topic)
            transaction_records(ks, ev, c, r);
        return true;
    }
    if (c->op == PGSPOUT_OP_SCHEMA) {
        if (ks->schema_topic) {
            topic_ref t = {ks->schema_topic, learn_topic(ks, ks->schema_topic)};
            kafka_table_key(&r->key, c->schema, c->table);
            json_span v = event_part(ks, ev, PGSPOUT_PART_EVENT);
            add_record(r, t, &r->key, true, v.p, v.len);
        }
        return true;
    }
    topic_ref topic = table_topic(ks, c);
    if (!topic.name)
        return false;
    change_records(ks, ev, c, topic, r);
    return true;
}

/* A buffer is kept for the next event, unless one huge value made it
 * large: memory follows the events at hand, not the largest ever seen. */
#define SCRATCH_KEEP_BYTES ((size_t)1 << 20)

static void scratch_reset(strbuf *sb)
{
    if (sb->cap > SCRATCH_KEEP_BYTES)
        sbuf_free(sb);
    else
        sbuf_reset(sb);
}

static void event_records_reset(event_records *r)
{
    r->n = 0;
    scratch_reset(&r->key);
    scratch_reset(&r->old_key);
    scratch_reset(&r->value);
}

static pgspout_status write_one(kafka_sink *ks, const pgspout_event *ev)
{
    kafka_change c = read_change(ks, ev);
    event_records *r = &ks->records;
    pgspout_status status = PGSPOUT_FATAL;
    uint64_t id;
    event_records_reset(r);
    bool built = event_records_build(ks, ev, &c, r);
    /* Learning a new topic may have waited for the broker: a stop asked
     * meanwhile must find this sink waiting, as a write on a full queue
     * would. */
    if (built && host_gives_up(ks))
        return PGSPOUT_RETRY;
    if (built) {
        status = kafka_acks_open(ks->acks, c.pos, (unsigned)r->n, &id,
                                 host_gives_up, ks)
                     ? PGSPOUT_OK
                 : kafka_acks_failed(ks->acks, NULL, 0) ? PGSPOUT_FATAL
                                                        : PGSPOUT_RETRY;
        for (size_t i = 0; i < r->n && status == PGSPOUT_OK; i++)
            status = produce(ks, &r->m[i], &c, id);
    }
    return status;
}

static pgspout_status
kafka_write(void *state, const pgspout_event *const *events, size_t count)
{
    kafka_sink *ks = state;
    for (size_t i = 0; i < count; i++) {
        if (kafka_acks_failed(ks->acks, NULL, 0))
            return PGSPOUT_FATAL;
        pgspout_status status = write_one(ks, events[i]);
        if (status != PGSPOUT_OK)
            return status;
        if (++ks->writes_since_serving >= WRITER_SERVES_EVERY) {
            ks->writes_since_serving = 0;
            serve_reports(ks);
        }
    }
    return PGSPOUT_OK;
}

/* How long one round of rd_kafka_flush may wait before should_stop is
 * asked again. */
#define FLUSH_ROUND_MS 100

static pgspout_status kafka_flush(void *state)
{
    kafka_sink *ks = state;
    /* rd_kafka_flush sends what waits for linger.ms at once and serves
     * delivery reports until librdkafka holds nothing: a flush costs one
     * round trip to the broker, not the linger on top. */
    while (kafka_acks_open_count(ks->acks) > 0 &&
           !kafka_acks_failed(ks->acks, NULL, 0) && !host_gives_up(ks) &&
           rd_kafka_flush(ks->rk, FLUSH_ROUND_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        ;
    bool all = kafka_acks_wait_all(ks->acks, host_gives_up, ks);
    if (kafka_acks_failed(ks->acks, NULL, 0))
        return PGSPOUT_FATAL;
    if (!all)
        return PGSPOUT_RETRY;
    acknowledge_done(ks);
    return PGSPOUT_OK;
}

/* ---- life cycle ---- */

static void kafka_destroy(void *state)
{
    kafka_sink *ks = state;
    if (!ks)
        return;
    if (ks->poller_started) {
        atomic_store(&ks->stopping, true);
        rd_kafka_yield(ks->rk); /* ends the poller's wait at once */
        pthread_join(ks->poller, NULL);
    }
    if (ks->rk) {
        /* Nothing unacknowledged was confirmed: the host sends it again
         * next time, so what is still queued can go. */
        rd_kafka_purge(ks->rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(ks->rk, 0);
        forget_topics(ks);
        rd_kafka_destroy(ks->rk);
    }
    kafka_acks_free(ks->acks);
    kit_dead_letter_close(ks->dead_letter);
    kafka_secrets_free(&ks->secrets);
    kafka_topic_template_free(ks->topic);
    free(ks->topic_schema);
    free(ks->topic_table);
    free(ks->topic_name);
    free(ks->topic_table_key);
    sbuf_free(&ks->records.key);
    sbuf_free(&ks->records.old_key);
    sbuf_free(&ks->records.value);
    pthread_mutex_destroy(&ks->ack_lock);
    free(ks);
}

static pgspout_status fail_create(kafka_sink *ks, const char *what,
                                  const char *why)
{
    log_redacted(ks, PGSPOUT_LOG_ERROR, what, why);
    kafka_destroy(ks);
    return PGSPOUT_FATAL;
}

static const char *option_text(kafka_sink *ks, const char *name)
{
    const char *value = NULL;
    if (!ks->host->option_string(ks->handle, name, &value) || !value || !*value)
        return NULL;
    return value;
}

/* An option naming one topic: NULL when empty (those events are not
 * sent); false with err set when Kafka would refuse the name. */
static bool fixed_topic_option(kafka_sink *ks, const char *name,
                               const char **topic, char *err, size_t errlen)
{
    char why[256];
    *topic = option_text(ks, name);
    if (*topic && !kafka_topic_name_valid(*topic, why, sizeof why)) {
        snprintf(err, errlen, "option %s: %s", name, why);
        return false;
    }
    return true;
}

/* The sink's own options; false with err set and *bad naming the option
 * on a bad one. Opens nothing. */
static bool read_options(kafka_sink *ks, const char **bad, char *err,
                         size_t errlen)
{
    const pgspout_host_api *h = ks->host;
    const char *key = option_text(ks, "key");
    ks->key_mode = strcmp(key, "table") == 0  ? KAFKA_KEY_TABLE
                   : strcmp(key, "none") == 0 ? KAFKA_KEY_NONE
                                              : KAFKA_KEY_ROW;
    ks->debezium = strcmp(option_text(ks, "format"), "debezium") == 0;
    h->option_bool(ks->handle, "tombstones", &ks->tombstones);
    h->option_bool(ks->handle, "headers", &ks->headers);
    ks->source = (kafka_debezium_source){
        "pgspout-kafka-" KAFKA_SINK_VERSION,
        option_text(ks, "debezium_name") ? option_text(ks, "debezium_name")
                                         : "",
        option_text(ks, "debezium_db") ? option_text(ks, "debezium_db") : ""};
    char why[256];
    const char *topic = option_text(ks, "topic");
    ks->topic =
        topic ? kafka_topic_template_parse(topic, why, sizeof why) : NULL;
    *bad = "topic";
    if (!ks->topic) {
        snprintf(err, errlen, "option topic: %s",
                 topic ? why : "must not be empty");
        return false;
    }
    static const char *const fixed[] = {"schema_topic", "message_topic",
                                        "transaction_topic"};
    const char **targets[] = {&ks->schema_topic, &ks->message_topic,
                              &ks->transaction_topic};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        *bad = fixed[i];
        if (!fixed_topic_option(ks, fixed[i], targets[i], err, errlen))
            return false;
    }
    *bad = NULL;
    return true;
}

/* The producer's configuration; NULL with err set and *bad naming the
 * option on a bad one. */
static rd_kafka_conf_t *producer_conf(kafka_sink *ks, const char **bad,
                                      char *err, size_t errlen)
{
    kafka_conf_settings settings = {option_text(ks, "brokers"),
                                    option_text(ks, "compression")};
    if (!settings.brokers) {
        *bad = "brokers";
        snprintf(err, errlen, "option brokers: must not be empty");
        return NULL;
    }
    return kafka_conf_build(ks->host, ks->handle, &settings, &ks->secrets, bad,
                            err, errlen);
}

/* The producer, with this sink's callbacks. */
static bool start_producer(kafka_sink *ks, char *err, size_t errlen)
{
    const char *bad;
    rd_kafka_conf_t *conf = producer_conf(ks, &bad, err, errlen);
    if (!conf)
        return false;
    /* Bounds the acknowledgement window as librdkafka's queue bounds the
     * records: writing waits when either is full. */
    long long max_records =
        kafka_conf_int(conf, "queue.buffering.max.messages", 100000);
    ks->acks = kafka_acks_new((size_t)(max_records > 0 ? max_records : 1));
    rd_kafka_conf_set_opaque(conf, ks);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!ks->rk) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    if (pthread_create(&ks->poller, NULL, poll_main, ks) != 0) {
        snprintf(err, errlen, "cannot start the delivery report thread");
        return false;
    }
    ks->poller_started = true;
    return true;
}

/* ABI 1.7: create's checks of the options and of librdkafka's properties,
 * without opening the dead-letter file or starting the producer. */
static bool kafka_check_options(const pgspout_host_api *host,
                                pgspout_sink_handle *handle, char *option,
                                size_t option_size, char *why, size_t why_size)
{
    if (!PGSPOUT_HAS_FIELD(host, pgspout_host_api, option_prefixed))
        return true; /* create says why */
    kafka_sink *ks = xcalloc(1, sizeof *ks);
    ks->host = host;
    ks->handle = handle;
    pthread_mutex_init(&ks->ack_lock, NULL);
    char err[1024];
    const char *bad = NULL;
    rd_kafka_conf_t *conf = NULL;
    bool ok = read_options(ks, &bad, err, sizeof err) &&
              (conf = producer_conf(ks, &bad, err, sizeof err)) != NULL;
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (!ok) {
        kafka_secrets_redact(&ks->secrets, err);
        kit_option_refuse(bad, err, option, option_size, why, why_size);
    }
    kafka_destroy(ks);
    return ok;
}

static pgspout_status kafka_create(const pgspout_host_api *host,
                                   pgspout_sink_handle *handle, void **state)
{
    kafka_sink *ks = xcalloc(1, sizeof *ks);
    char err[1024];
    ks->host = host;
    ks->handle = handle;
    pthread_mutex_init(&ks->ack_lock, NULL);
    if (!PGSPOUT_HAS_FIELD(host, pgspout_host_api, option_prefixed)) {
        host->log(handle, PGSPOUT_LOG_ERROR, "this sink needs ABI 1.4");
        kafka_destroy(ks);
        return PGSPOUT_FATAL;
    }
    const char *bad;
    if (!read_options(ks, &bad, err, sizeof err))
        return fail_create(ks, "", err);
    const char *path = option_text(ks, "dead_letter");
    ks->dead_letter = path ? kit_dead_letter_open(path, err, sizeof err) : NULL;
    if (path && !ks->dead_letter)
        return fail_create(ks, "", err);
    if (!start_producer(ks, err, sizeof err))
        return fail_create(ks, "", err);
    host->log(handle, PGSPOUT_LOG_INFO,
              "Kafka producer %s (idempotent, acks=all), topics \"%s\", key "
              "%s, format %s",
              rd_kafka_name(ks->rk), option_text(ks, "topic"),
              option_text(ks, "key"), option_text(ks, "format"));
    *state = ks;
    return PGSPOUT_OK;
}

static const pgspout_sink_descriptor kafka_descriptor = {
    /* ABI 1.5: message, begin and commit events (README). */
    PGSPOUT_SINK_HEADER_MINOR(5),
    .name = "kafka",
    .version = KAFKA_SINK_VERSION,
    .description = "Apache Kafka (librdkafka, idempotent producer, ordered "
                   "per key, Debezium-compatible format)",
    .options = kafka_options,
    .create = kafka_create,
    .write = kafka_write,
    .flush = kafka_flush,
    .destroy = kafka_destroy,
    .resume_position = NULL,
    .check_options = kafka_check_options,
};

PGSPOUT_EXPORT const pgspout_sink_descriptor *pgspout_sink_entry(void)
{
    return &kafka_descriptor;
}
