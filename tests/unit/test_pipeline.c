/* The sink kit's delivery pipeline against a scripted local HTTP server:
 * per-key order across partial failures and concurrent requests, retries,
 * in-order acknowledgements, markers, the dead-letter file, stops. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "http_internal.h"
#include "pipeline.h"

/* ---- a scripted HTTP server ----
 * Each request body holds one record per line, "key:index". The reply has
 * one line per record: D (stored), R (retry) or X (rejected). A record is
 * refused with R the first time it is seen when its index is a multiple of
 * retry_every; whole requests fail with 500 every fail_every-th request,
 * and with 413 (nothing stored) when the body exceeds max_body bytes. */

#define MAX_KEYS 8
#define MAX_RECORDS 4096
#define MAX_REQUESTS 1024

typedef struct server {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    int retry_every;
    int fail_every;
    int reject_index; /* -1: none */
    size_t max_body;  /* 0: no limit */
    int too_large;    /* requests answered 413 */
    int requests;
    int seen[MAX_RECORDS];
    int stored_order[MAX_KEYS][MAX_RECORDS]; /* indexes in storing order */
    int stored_count[MAX_KEYS];
    int stored_total;
    int duplicates;
    int concurrent, max_concurrent;
    int mixed_requests; /* requests holding records of several keys */
    int clock;
    int last_stored_at[MAX_RECORDS]; /* clock of each record's last store */
    bool keep_bodies;
    char *bodies[MAX_REQUESTS]; /* keep_bodies: each request's, in order */
    bool failed[MAX_REQUESTS];  /* answered 500 */
    int connections;            /* connection threads still running */
} server;

static void reply(int fd, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, strlen(body));
    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0)
        perror("reply");
}

static void serve_one(server *s, int fd)
{
    char buf[1 << 16];
    size_t len = 0;
    char *body = NULL;
    size_t want = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            return;
        len += (size_t)r;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end && !body) {
            body = end + 4;
            char *cl = strcasestr(buf, "content-length:");
            want = cl ? strtoul(cl + 15, NULL, 10) : 0;
        }
        if (body && (size_t)(buf + len - body) >= want)
            break;
    }
    body[want] = '\0';

    pthread_mutex_lock(&s->lock);
    int nreq = ++s->requests;
    if (++s->concurrent > s->max_concurrent)
        s->max_concurrent = s->concurrent;
    bool fail = s->fail_every && nreq % s->fail_every == 0;
    bool too_large = s->max_body && want > s->max_body;
    s->too_large += too_large;
    if (s->keep_bodies && nreq <= MAX_REQUESTS) {
        s->bodies[nreq - 1] = strdup(body);
        s->failed[nreq - 1] = fail;
    }
    pthread_mutex_unlock(&s->lock);
    usleep(2000); /* lets requests overlap */
    if (too_large) {
        pthread_mutex_lock(&s->lock);
        s->concurrent--;
        pthread_mutex_unlock(&s->lock);
        reply(fd, 413, "");
        return;
    }

    char out[1 << 14];
    size_t olen = 0;
    int first_key = -1;
    bool mixed = false;
    pthread_mutex_lock(&s->lock);
    for (char *line = strtok(body, "\n"); line && !fail;
         line = strtok(NULL, "\n")) {
        int key, index;
        if (sscanf(line, "%d:%d", &key, &index) != 2)
            continue;
        if (first_key < 0)
            first_key = key;
        mixed |= key != first_key;
        char verdict = 'D';
        if (index == s->reject_index)
            verdict = 'X';
        else if (s->retry_every && index % s->retry_every == 0 &&
                 !s->seen[index])
            verdict = 'R';
        s->seen[index]++;
        if (verdict == 'D') {
            s->last_stored_at[index] = ++s->clock;
            for (int i = 0; i < s->stored_count[key]; i++)
                if (s->stored_order[key][i] == index)
                    s->duplicates++;
            s->stored_order[key][s->stored_count[key]++] = index;
            s->stored_total++;
        }
        out[olen++] = verdict;
        out[olen++] = '\n';
    }
    out[olen] = '\0';
    s->concurrent--;
    s->mixed_requests += mixed;
    pthread_mutex_unlock(&s->lock);
    reply(fd, fail ? 500 : 200, fail ? "boom" : out);
}

typedef struct connection {
    server *s;
    int fd;
} connection;

static void *connection_main(void *arg)
{
    connection *c = arg;
    server *s = c->s;
    serve_one(s, c->fd);
    close(c->fd);
    free(c);
    pthread_mutex_lock(&s->lock);
    s->connections--;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* A thread per connection, so requests in flight together are served
 * together. */
static void *server_main(void *arg)
{
    server *s = arg;
    for (;;) {
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        connection *c = malloc(sizeof *c);
        c->s = s;
        c->fd = fd;
        pthread_mutex_lock(&s->lock);
        s->connections++;
        pthread_mutex_unlock(&s->lock);
        pthread_t t;
        pthread_create(&t, NULL, connection_main, c);
        pthread_detach(t);
    }
}

static void server_start(server *s)
{
    memset(s, 0, sizeof *s);
    s->reject_index = -1;
    pthread_mutex_init(&s->lock, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s->fd, (struct sockaddr *)&a, sizeof a);
    listen(s->fd, 64);
    socklen_t alen = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &alen);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->thread, NULL, server_main, s);
}

/* Waits for the connection threads too: one still answering a request
 * the pipeline gave up on would otherwise use this server (on the caller's
 * stack) after it is gone, and the next test's server in its place. */
static void server_stop(server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int running = s->connections;
        pthread_mutex_unlock(&s->lock);
        if (running == 0)
            break;
        usleep(1000);
    }
    pthread_mutex_destroy(&s->lock);
}

/* ---- a fake host ---- */

static pthread_mutex_t ack_lock = PTHREAD_MUTEX_INITIALIZER;
static pgspout_position acked;
static int ack_backwards;

static void fake_log(pgspout_sink_handle *h, pgspout_log_level level,
                     const char *fmt, ...)
{
    (void)h;
    if (level < PGSPOUT_LOG_WARNING)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("# log: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* When set: a record the server must have stored before its position is
 * acknowledged; acks that came too early are counted. */
static struct {
    server *s;
    int index;
    pgspout_position pos;
    int early;
} ack_watch;

static void fake_ack(pgspout_sink_handle *h, pgspout_position upto)
{
    (void)h;
    pthread_mutex_lock(&ack_lock);
    if (pgspout_position_cmp(upto, acked) < 0)
        ack_backwards++;
    acked = upto;
    if (ack_watch.s && pgspout_position_cmp(upto, ack_watch.pos) >= 0) {
        pthread_mutex_lock(&ack_watch.s->lock);
        ack_watch.early += ack_watch.s->last_stored_at[ack_watch.index] == 0;
        pthread_mutex_unlock(&ack_watch.s->lock);
    }
    pthread_mutex_unlock(&ack_lock);
}

static pgspout_position last_ack(void)
{
    pthread_mutex_lock(&ack_lock);
    pgspout_position p = acked;
    pthread_mutex_unlock(&ack_lock);
    return p;
}

/* What the kit reported, by outcome. */
static _Atomic uint64_t reported[PGSPOUT_RECORDS_DEAD_LETTERED + 1];

static void fake_report(pgspout_sink_handle *h, pgspout_record_outcome what,
                        uint64_t n)
{
    (void)h;
    reported[what] += n;
}

static void reset_reports(void)
{
    for (int i = 0; i <= PGSPOUT_RECORDS_DEAD_LETTERED; i++)
        reported[i] = 0;
}

static const pgspout_host_api host = {
    .size = sizeof(pgspout_host_api),
    .abi_major = PGSPOUT_ABI_MAJOR,
    .abi_minor = PGSPOUT_ABI_MINOR,
    .log = fake_log,
    .ack_durable = fake_ack,
    .report_records = fake_report,
};

/* ---- the sink side ---- */

static int port;

static bool build(void *ctx, kit_record *const *records, size_t n,
                  kit_http_request *req, char *err, size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    kit_request_init(req, "POST", url);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += records[i]->len + 1;
    char *body = malloc(total + 1);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(body + off, records[i]->data, records[i]->len);
        off += records[i]->len;
        body[off++] = '\n';
    }
    kit_request_body(req, body, off);
    return true;
}

static void handle(void *ctx, const kit_http_response *resp,
                   kit_record *const *records, size_t n, kit_outcome *outcomes)
{
    (void)ctx;
    (void)records;
    if (resp->status != 200)
        return; /* the kit's pre-filled RETRY stands */
    for (size_t i = 0; i < n && 2 * i < resp->body_len; i++) {
        char v = resp->body[2 * i];
        if (v == 'R') {
            outcomes[i].kind = KIT_RETRY;
            snprintf(outcomes[i].reason, sizeof outcomes[i].reason,
                     "throttled");
        } else if (v == 'X') {
            outcomes[i].kind = KIT_REJECTED;
            snprintf(outcomes[i].reason, sizeof outcomes[i].reason,
                     "mapping error");
        }
    }
}

static const kit_ops ops = {.build_request = build, .handle_response = handle};

static kit_pipeline_config base_config(void)
{
    kit_pipeline_config c = {0};
    c.sink_name = "test";
    c.max_batch_records = 7;
    c.max_batch_bytes = 1 << 20;
    c.linger_ms = 5;
    c.max_in_flight = 4;
    c.queue_max_records = 50;
    c.queue_max_bytes = 1 << 20;
    c.retry_base_ms = 1;
    c.retry_cap_ms = 20;
    c.http.verify_tls = true;
    c.http.connect_timeout_ms = 5000;
    c.http.request_timeout_ms = 10000;
    return c;
}

static kit_record *make_record(int key, int index)
{
    char *data = malloc(32);
    int len = snprintf(data, 32, "%d:%d", key, index);
    char keytext[16];
    int klen = snprintf(keytext, sizeof keytext, "key%d", key);
    /* Positions: one transaction per 10 records. */
    pgspout_position pos = {(uint64_t)(1 + index / 10) << 8,
                            (uint64_t)(index % 10 + 1)};
    return kit_record_new(pos, data, (size_t)len,
                          kit_order_key(keytext, (size_t)klen), NULL);
}

/* Whatever was stored twice, each key's records were last stored in
 * submission order: the state a versioned service ends with is right. */
static bool final_state_in_order(server *s, int n, int nkeys)
{
    for (int k = 0; k < nkeys; k++) {
        int previous = 0;
        for (int i = k; i < n; i += nkeys) {
            if (s->last_stored_at[i] < previous)
                return false;
            previous = s->last_stored_at[i];
        }
    }
    return true;
}

static bool per_key_in_order(server *s)
{
    for (int k = 0; k < MAX_KEYS; k++)
        for (int i = 1; i < s->stored_count[k]; i++)
            if (s->stored_order[k][i] < s->stored_order[k][i - 1])
                return false;
    return true;
}

static void run_ordering(bool same_key_in_request)
{
    server s;
    server_start(&s);
    port = s.port;
    s.retry_every = 3;
    s.fail_every = 5;
    memset(&acked, 0, sizeof acked);
    kit_pipeline_config c = base_config();
    c.same_key_in_request = same_key_in_request;
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &ops, NULL, err, sizeof err);
    CHECK(p != NULL);
    const int n = 400;
    for (int i = 0; i < n; i++)
        CHECK(kit_submit(p, make_record(i % 5, i)) == PGSPOUT_OK);
    CHECK(kit_flush(p) == PGSPOUT_OK);
    pgspout_position last = {(uint64_t)(1 + (n - 1) / 10) << 8,
                             (uint64_t)((n - 1) % 10 + 1)};
    CHECK(pgspout_position_cmp(last_ack(), last) == 0);
    CHECK(ack_backwards == 0);
    /* Sharing a request, a later record of a key may be stored while an
     * earlier one is retried; it is then sent again after it, so the last
     * store of each key is in order (a versioned service keeps the newest).
     * Without sharing, each record is stored once, in order. */
    CHECK(final_state_in_order(&s, n, 5));
    if (same_key_in_request) {
        CHECK(s.stored_total >= n);
    } else {
        CHECK(s.stored_total == n);
        CHECK(s.duplicates == 0);
        CHECK(per_key_in_order(&s));
    }
    CHECK(kit_pipeline_tracked_keys(p) == 0);
    CHECK(s.max_concurrent > 1); /* several requests really were in flight */
    kit_pipeline_free(p);
    server_stop(&s);
}

/* Records of different batch keys (here the record's key doubles as it)
 * never share a request, and nothing is lost or reordered for it. */
static void run_batch_keys(void)
{
    server s;
    server_start(&s);
    port = s.port;
    s.retry_every = 4;
    memset(&acked, 0, sizeof acked);
    kit_pipeline_config c = base_config();
    c.same_key_in_request = true;
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &ops, NULL, err, sizeof err);
    const int n = 200;
    for (int i = 0; i < n; i++) {
        kit_record *r = make_record((i / 3) % 3, i);
        r->batch_key = (uint64_t)((i / 3) % 3) + 1;
        r->order_key = 0;
        CHECK(kit_submit(p, r) == PGSPOUT_OK);
    }
    CHECK(kit_flush(p) == PGSPOUT_OK);
    CHECK(s.stored_total == n);
    CHECK(s.duplicates == 0);
    CHECK(s.mixed_requests == 0);
    CHECK(ack_backwards == 0);
    kit_pipeline_free(p);
    server_stop(&s);
}

/* Many distinct keys pass through; the key map holds only the ones in
 * flight, so it is empty once everything is acknowledged. */
static void run_many_keys(void)
{
    server s;
    server_start(&s);
    port = s.port;
    memset(&acked, 0, sizeof acked);
    kit_pipeline_config c = base_config();
    c.max_batch_records = 50;
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &ops, NULL, err, sizeof err);
    const int n = 3000;
    for (int i = 0; i < n; i++) {
        kit_record *r = make_record(0, i);
        r->order_key = (uint64_t)i + 1; /* a key per record */
        CHECK(kit_submit(p, r) == PGSPOUT_OK);
    }
    CHECK(kit_flush(p) == PGSPOUT_OK);
    CHECK(s.stored_total == n);
    CHECK(kit_pipeline_tracked_keys(p) == 0);
    kit_pipeline_free(p);
    server_stop(&s);
}

static void run_markers_and_dead_letter(void)
{
    server s;
    server_start(&s);
    port = s.port;
    s.reject_index = 4;
    memset(&acked, 0, sizeof acked);
    reset_reports();
    char path[] = "/tmp/pgspout-dl-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    kit_pipeline_config c = base_config();
    c.dead_letter_path = path;
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &ops, NULL, err, sizeof err);
    CHECK(p != NULL);
    for (int i = 0; i < 8; i++)
        CHECK(kit_submit(p, make_record(1, i)) == PGSPOUT_OK);
    /* Like a schema event: the position of the change before it. */
    pgspout_position marker = {1 << 8, 8};
    CHECK(kit_submit_marker(p, marker) == PGSPOUT_OK);
    CHECK(kit_submit_dead_letter(p, make_record(2, 9), "too large") ==
          PGSPOUT_OK);
    CHECK(kit_flush(p) == PGSPOUT_OK);
    pgspout_position last = {1 << 8, 10};
    CHECK(pgspout_position_cmp(last_ack(), last) == 0);
    kit_pipeline_free(p);
    server_stop(&s);
    /* Eight records sent, one refused by the service and one before it
     * was sent, both into the dead-letter file. */
    CHECK(reported[PGSPOUT_RECORDS_ACCEPTED] == 7);
    CHECK(reported[PGSPOUT_RECORDS_RETRIED] == 0);
    CHECK(reported[PGSPOUT_RECORDS_REJECTED] == 2);
    CHECK(reported[PGSPOUT_RECORDS_DEAD_LETTERED] == 2);

    FILE *f = fopen(path, "r");
    char line[1024];
    int lines = 0;
    bool saw_mapping = false, saw_large = false;
    while (f && fgets(line, sizeof line, f)) {
        lines++;
        saw_mapping |= strstr(line, "\"reason\":\"mapping error\"") &&
                       strstr(line, "\"seq\":5") &&
                       strstr(line, "\"sink\":\"test\"");
        saw_large |= strstr(line, "\"reason\":\"too large\"") != NULL;
    }
    if (f)
        fclose(f);
    CHECK(lines == 2);
    CHECK(saw_mapping);
    CHECK(saw_large);
    unlink(path);
}

static void run_rejected_without_dead_letter(void)
{
    server s;
    server_start(&s);
    port = s.port;
    s.reject_index = 3;
    memset(&acked, 0, sizeof acked);
    kit_pipeline_config c = base_config();
    c.max_batch_records = 1; /* one record a request: acks are exact */
    c.max_in_flight = 1;
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &ops, NULL, err, sizeof err);
    pgspout_status st = PGSPOUT_OK;
    for (int i = 0; i < 6 && st == PGSPOUT_OK; i++)
        st = kit_submit(p, make_record(0, i));
    if (st == PGSPOUT_OK)
        st = kit_flush(p);
    CHECK(st == PGSPOUT_FATAL);
    /* Nothing at or after the rejected record is acknowledged. */
    pgspout_position rejected = {1 << 8, 4};
    CHECK(pgspout_position_cmp(last_ack(), rejected) < 0);
    CHECK(kit_submit(p, make_record(0, 9)) == PGSPOUT_FATAL);
    kit_pipeline_free(p);
    server_stop(&s);
}

static void run_unreachable_retries(void)
{
    /* Nothing listens: every attempt is a transport error, retried until
     * the pipeline is freed, with nothing acknowledged. */
    server s;
    server_start(&s);
    port = s.port;
    server_stop(&s);
    memset(&acked, 0, sizeof acked);
    reset_reports();
    kit_pipeline_config c = base_config();
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &ops, NULL, err, sizeof err);
    CHECK(kit_submit(p, make_record(0, 1)) == PGSPOUT_OK);
    usleep(200 * 1000);
    CHECK(last_ack().commit_lsn == 0);
    kit_pipeline_free(p);
    /* One record, sent again and again, never accepted. */
    CHECK(reported[PGSPOUT_RECORDS_RETRIED] >= 2);
    CHECK(reported[PGSPOUT_RECORDS_ACCEPTED] == 0);
}

/* A sink without what it needs to sign yet (credentials being fetched)
 * defers its first requests: the records wait a backoff, count as
 * retried, and are delivered once it can build them; nothing fails. */
static _Atomic int deferrals_left;

static bool build_later(void *ctx, kit_record *const *records, size_t n,
                        kit_http_request *req, char *err, size_t errlen)
{
    if (deferrals_left > 0) {
        deferrals_left--;
        kit_request_init(req, "POST", "http://unused.invalid/");
        kit_request_retry_later(req, "no credentials yet");
        return true;
    }
    return build(ctx, records, n, req, err, errlen);
}

static void run_retry_later(void)
{
    static const kit_ops later_ops = {.build_request = build_later,
                                      .handle_response = handle};
    server s;
    server_start(&s);
    port = s.port;
    memset(&acked, 0, sizeof acked);
    reset_reports();
    deferrals_left = 3;
    kit_pipeline_config c = base_config();
    c.max_in_flight = 1;
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &later_ops, NULL, err, sizeof err);
    pgspout_status st = PGSPOUT_OK;
    for (int i = 0; i < 5 && st == PGSPOUT_OK; i++)
        st = kit_submit(p, make_record(i, i));
    if (st == PGSPOUT_OK)
        st = kit_flush(p);
    CHECK(st == PGSPOUT_OK);
    CHECK(deferrals_left == 0);
    pgspout_position last = {1 << 8, 5};
    CHECK(pgspout_position_cmp(last_ack(), last) == 0);
    kit_pipeline_free(p); /* reports come after acknowledgements */
    CHECK(reported[PGSPOUT_RECORDS_RETRIED] >= 3);
    CHECK(reported[PGSPOUT_RECORDS_ACCEPTED] == 5);
    server_stop(&s);
}

/* An event sent as several records (more_at_position on all but the
 * last): its position is acknowledged only once the last of them is
 * stored, even when an earlier one is stored first and the last one is
 * retried. */
static kit_record *record_at(int key, int index, pgspout_position pos,
                             bool more)
{
    kit_record *r = make_record(key, index);
    r->pos = pos;
    r->more_at_position = more;
    return r;
}

static void run_position_in_several_records(void)
{
    server s;
    server_start(&s);
    port = s.port;
    s.retry_every = 3; /* index 3 is refused the first time */
    memset(&acked, 0, sizeof acked);
    pgspout_position event = {1 << 8, 1}, next = {1 << 8, 2};
    ack_watch.s = &s;
    ack_watch.index = 3;
    ack_watch.pos = event;
    ack_watch.early = 0;
    kit_pipeline_config c = base_config();
    c.max_batch_records = 1; /* each record its own request */
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &ops, NULL, err, sizeof err);
    CHECK(kit_submit(p, record_at(0, 1, event, true)) == PGSPOUT_OK);
    CHECK(kit_submit(p, record_at(1, 3, event, false)) == PGSPOUT_OK);
    CHECK(kit_submit(p, record_at(2, 4, next, false)) == PGSPOUT_OK);
    CHECK(kit_flush(p) == PGSPOUT_OK);
    CHECK(s.seen[3] == 2); /* refused once, then stored */
    CHECK(ack_watch.early == 0);
    CHECK(pgspout_position_cmp(last_ack(), next) == 0);
    kit_pipeline_free(p);
    ack_watch.s = NULL;
    server_stop(&s);
}

/* ---- the options every network sink shares ---- */

/* What the host hands over for a table with KIT_PIPELINE_OPTIONS: every
 * option declared with a default has a value; `absent` plays a table that
 * lacks one. */
static const struct {
    const char *name;
    int64_t value;
} declared_ints[] = {
    {"batch_records", 500}, {"batch_bytes", 5 << 20},
    {"linger", 50},         {"in_flight", 8},
    {"queue_records", 900}, {"queue_bytes", 64 << 20},
    {"retry_base", 100},    {"retry_max", 30000},
    {"connect_timeout", 7}, {"request_timeout", 60000},
};
static const char *absent;

static bool fake_option_int(pgspout_sink_handle *h, const char *name,
                            int64_t *value)
{
    (void)h;
    for (size_t i = 0; i < sizeof declared_ints / sizeof *declared_ints; i++)
        if (strcmp(declared_ints[i].name, name) == 0 &&
            !(absent && strcmp(absent, name) == 0)) {
            *value = declared_ints[i].value;
            return true;
        }
    return false;
}

static bool fake_option_bool(pgspout_sink_handle *h, const char *name,
                             bool *value)
{
    (void)h;
    if (strcmp(name, "tls_verify") != 0 || (absent && !strcmp(absent, name)))
        return false;
    *value = true;
    return true;
}

static bool fake_option_string(pgspout_sink_handle *h, const char *name,
                               const char **value)
{
    (void)h;
    if (strcmp(name, "dead_letter") != 0)
        return false; /* ca_file: declared without a default, unset */
    *value = "/tmp/dl";
    return true;
}

static void run_config_from_options(void)
{
    pgspout_host_api options_host = host;
    options_host.option_int = fake_option_int;
    options_host.option_bool = fake_option_bool;
    options_host.option_string = fake_option_string;
    kit_pipeline_config c;
    char err[256] = "";

    absent = NULL;
    CHECK(kit_pipeline_config_from_options(&options_host, NULL, "k", &c, err,
                                           sizeof err));
    /* The values the table declares, never a fallback of the kit's own
     * (which once said in_flight 4 where Kinesis declares 8). */
    CHECK(c.max_in_flight == 8 && c.max_batch_records == 500 &&
          c.queue_max_records == 900 && c.http.connect_timeout_ms == 7);
    CHECK(c.http.verify_tls && !c.http.ca_file);
    CHECK_STR(c.dead_letter_path, "/tmp/dl");
    CHECK_STR(c.sink_name, "k");

    /* A table without an option the kit reads is the sink's bug: said,
     * not papered over with a second default. */
    const char *const each[] = {"in_flight", "tls_verify", "request_timeout"};
    for (size_t i = 0; i < sizeof each / sizeof *each; i++) {
        absent = each[i];
        err[0] = '\0';
        CHECK(!kit_pipeline_config_from_options(&options_host, NULL, "k", &c,
                                                err, sizeof err));
        CHECK(strstr(err, each[i]) && strstr(err, "KIT_PIPELINE_OPTIONS"));
    }
    absent = NULL;
}

/* A record whose line is `pad` bytes longer than make_record's. */
static kit_record *make_padded_record(int key, int index, size_t pad)
{
    kit_record *r = make_record(key, index);
    r->data = realloc(r->data, r->len + 2 + pad);
    r->data[r->len++] = ':';
    memset(r->data + r->len, 'x', pad);
    r->len += pad;
    r->data[r->len] = '\0';
    return r;
}

/* The service refuses requests over max_body bytes with 413, though each
 * record fits alone: the kit sends them again in halves, so everything is
 * stored, once, each key in order, and acknowledged in order. One record
 * too large even alone is rejected: dead-lettered, or (without a
 * dead-letter file) the stream stops before acknowledging it. */
static void run_too_large(bool same_key_in_request, bool dead_letter)
{
    server s;
    server_start(&s);
    port = s.port;
    s.max_body = 40; /* about four 8-byte lines; a batch holds 7 */
    memset(&acked, 0, sizeof acked);
    ack_backwards = 0;
    reset_reports();
    char path[] = "/tmp/pgspout-dl-XXXXXX";
    close(mkstemp(path));
    kit_pipeline_config c = base_config();
    c.same_key_in_request = same_key_in_request;
    c.dead_letter_path = dead_letter ? path : NULL;
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &ops, NULL, err, sizeof err);
    CHECK(p != NULL);
    const int n = 200, big = 150;
    pgspout_status st = PGSPOUT_OK;
    for (int i = 0; i < n && st == PGSPOUT_OK; i++)
        st = kit_submit(p, i == big ? make_padded_record(i % 3, i, 60)
                                    : make_padded_record(i % 3, i, 2));
    if (st == PGSPOUT_OK)
        st = kit_flush(p);
    CHECK(s.too_large > 0); /* requests really were refused */
    CHECK(s.duplicates == 0);
    CHECK(per_key_in_order(&s));
    CHECK(ack_backwards == 0);
    CHECK(s.seen[big] == 0); /* never stored */
    if (dead_letter) {
        CHECK(st == PGSPOUT_OK);
        CHECK(s.stored_total == n - 1);
        pgspout_position last = {(uint64_t)(1 + (n - 1) / 10) << 8,
                                 (uint64_t)((n - 1) % 10 + 1)};
        CHECK(pgspout_position_cmp(last_ack(), last) == 0);
        CHECK(reported[PGSPOUT_RECORDS_REJECTED] == 1);
        CHECK(reported[PGSPOUT_RECORDS_DEAD_LETTERED] == 1);
        CHECK(kit_pipeline_tracked_keys(p) == 0);
    } else {
        CHECK(st == PGSPOUT_FATAL);
        pgspout_position refused = {(uint64_t)(1 + big / 10) << 8,
                                    (uint64_t)(big % 10 + 1)};
        CHECK(pgspout_position_cmp(last_ack(), refused) < 0);
        /* Everything before it of its key made it, and nothing after. */
        for (int i = big % 3; i < big; i += 3)
            CHECK(s.seen[i] == 1);
        for (int i = big + 3; i < n; i += 3)
            CHECK(s.seen[i] == 0);
    }
    kit_pipeline_free(p);
    server_stop(&s);
    FILE *f = fopen(path, "r");
    char line[1024];
    int lines = 0;
    bool saw_big = false;
    while (f && fgets(line, sizeof line, f)) {
        lines++;
        saw_big |= strstr(line, "refused as too large on its own") &&
                   strstr(line, "HTTP 413") &&
                   strstr(line, "MDoxNTA6"); /* base64 of "0:150:" */
    }
    if (f)
        fclose(f);
    CHECK(lines == (dead_letter ? 1 : 0));
    CHECK(saw_big == dead_letter);
    unlink(path);
}

/* The request that next carried the first record of failed request i
 * (-1: none did). Bodies are "key:index" lines. */
static int next_with_first_record(server *s, int i, int nreq)
{
    size_t first_len = strcspn(s->bodies[i], "\n") + 1;
    for (int j = i + 1; j < nreq; j++) {
        const char *b = s->bodies[j];
        for (const char *line = b; line && *line;
             line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            if (strncmp(line, s->bodies[i], first_len) == 0)
                return j;
    }
    return -1;
}

/* keep_batches: whole requests fail now and then; each is sent again
 * exactly as it was (the same records, together and alone), however the
 * backoff's jitter spreads the records' retry times. */
static void run_keep_batches(void)
{
    server s;
    server_start(&s);
    s.fail_every = 3;
    s.keep_bodies = true;
    port = s.port;
    kit_pipeline_config c = base_config();
    c.keep_batches = true;
    c.same_key_in_request = true;
    c.retry_base_ms = 5;
    c.retry_cap_ms = 40;
    char err[256];
    kit_pipeline *p =
        kit_pipeline_new(&host, NULL, &c, &ops, NULL, err, sizeof err);
    CHECK(p != NULL);
    const int n = 300;
    for (int i = 0; i < n; i++)
        CHECK(kit_submit(p, make_record(i % 5, i)) == PGSPOUT_OK);
    CHECK(kit_flush(p) == PGSPOUT_OK);
    kit_pipeline_free(p);
    server_stop(&s);

    int nreq = s.requests < MAX_REQUESTS ? s.requests : MAX_REQUESTS;
    int failed = 0, kept = 0;
    for (int i = 0; i < nreq; i++) {
        if (!s.failed[i])
            continue;
        failed++;
        int j = next_with_first_record(&s, i, nreq);
        kept += j >= 0 && strcmp(s.bodies[j], s.bodies[i]) == 0;
    }
    CHECK(s.stored_total == n && s.duplicates == 0);
    CHECK(failed > 0);
    printf("# %d failed requests, %d sent again as they were\n", failed, kept);
    CHECK(kept == failed);
    for (int i = 0; i < nreq; i++)
        free(s.bodies[i]);
    CHECK(final_state_in_order(&s, n, 5));
}

/* Retry-After in both its forms (RFC 9110 10.2.3). */
static void run_retry_after(void)
{
    time_t now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
    CHECK(kit_retry_after_seconds(" 120\r\n", now) == 120);
    CHECK(kit_retry_after_seconds("0", now) == 0);
    CHECK(kit_retry_after_seconds(" Tue, 14 Nov 2023 22:13:50 GMT\r\n", now) ==
          30);
    CHECK(kit_retry_after_seconds("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0);
    CHECK(kit_retry_after_seconds("soon", now) == -1);
    CHECK(kit_retry_after_seconds("12abc", now) == -1);
}

int main(void)
{
    /* As in pgspout (core/main.c): a peer that closed its end of a socket
     * is an error to handle (EPIPE), not a reason to die. The fake server
     * below answers requests curl may have given up on. */
    signal(SIGPIPE, SIG_IGN);
    run_config_from_options();
    run_retry_after();
    run_keep_batches();
    run_ordering(false);
    run_ordering(true);
    run_batch_keys();
    run_many_keys();
    run_markers_and_dead_letter();
    run_rejected_without_dead_letter();
    run_unreachable_retries();
    run_too_large(false, true);
    run_too_large(true, true);
    run_too_large(true, false);
    run_retry_later();
    run_position_in_several_records();
    return check_summary();
}
