/* The file sink, loaded as the host would load it: this test builds its own
 * host API table over fake events, dlopen()s the shared object named by
 * argv[1] and drives it through writes, flushes, restarts, torn files,
 * rotation, stdout, I/O failures, and its file deleted, renamed or cut
 * under it.
 *
 * I/O failures come from a write() defined here: the linker exports it from
 * the executable because libc defines the same symbol, and the executable
 * comes first in symbol lookup, so the dlopen()ed sink's calls reach it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pgspout/pgspout.h>

#include "check.h"

/* ---- fault injection ---------------------------------------------------- */

static struct {
    bool armed;
    size_t allow; /* bytes still let through before failing */
    int errnum;
} fault;
static int file_write_calls; /* write(2)s on descriptors other than 0-2 */

ssize_t write(int fd, const void *buf, size_t count)
{
    if (fd > 2) {
        file_write_calls++;
        if (fault.armed) {
            if (fault.allow == 0) {
                errno = fault.errnum;
                return -1;
            }
            if (count > fault.allow)
                count = fault.allow;
            fault.allow -= count;
        }
    }
    return syscall(SYS_write, fd, buf, count);
}

static void arm_fault(size_t allow, int errnum)
{
    fault.armed = true;
    fault.allow = allow;
    fault.errnum = errnum;
}

static void disarm_fault(void)
{
    fault.armed = false;
}

/* ---- the fake host ------------------------------------------------------ */

struct pgspout_event {
    char *json;
    pgspout_position pos;
};

struct pgspout_sink_handle {
    const pgspout_sink_descriptor *desc;
};

static char log_text[1 << 16];
static size_t log_len;
static int ack_count;
static pgspout_position last_ack;

/* Options of the next create; NULL means not given. */
static const char *opt_path, *opt_fsync, *opt_rotate_size;

PGSPOUT_PRINTF(3, 4)
static void fake_log(pgspout_sink_handle *sink, pgspout_log_level level,
                     const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    (void)sink;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* stderr: the stdout scenario captures stdout. */
    fprintf(stderr, "# log[%d]: %s\n", (int)level, line);
    log_len += (size_t)snprintf(log_text + log_len, sizeof log_text - log_len,
                                "%s\n", line);
    if (log_len >= sizeof log_text)
        log_len = sizeof log_text - 1;
}

static void log_reset(void)
{
    log_len = 0;
    log_text[0] = '\0';
}

static bool log_has(const char *needle)
{
    return strstr(log_text, needle) != NULL;
}

/* As the real host: given value, else the default from the sink's table. */
static const char *option_value(pgspout_sink_handle *sink, const char *name)
{
    const char *given = strcmp(name, "path") == 0          ? opt_path
                        : strcmp(name, "fsync") == 0       ? opt_fsync
                        : strcmp(name, "rotate_size") == 0 ? opt_rotate_size
                                                           : NULL;

    if (given)
        return given;
    for (const pgspout_option_def *d = sink->desc->options; d->name; d++)
        if (strcmp(d->name, name) == 0)
            return d->default_value;
    return NULL;
}

static bool fake_option_string(pgspout_sink_handle *sink, const char *name,
                               const char **value)
{
    const char *v = option_value(sink, name);

    if (!v)
        return false;
    *value = v;
    return true;
}

static bool fake_option_int(pgspout_sink_handle *sink, const char *name,
                            int64_t *value)
{
    const char *v = option_value(sink, name);

    if (!v)
        return false;
    *value = strtoll(v, NULL, 10);
    return true;
}

static bool fake_option_bool(pgspout_sink_handle *sink, const char *name,
                             bool *value)
{
    const char *v = option_value(sink, name);

    if (!v)
        return false;
    *value = strcmp(v, "true") == 0;
    return true;
}

static bool fake_option_double(pgspout_sink_handle *sink, const char *name,
                               double *value)
{
    (void)sink;
    (void)name;
    (void)value;
    return false;
}

static pgspout_position fake_event_position(const pgspout_event *ev)
{
    return ev->pos;
}

static const char *fake_event_json(const pgspout_event *ev,
                                   pgspout_event_part part, size_t *length)
{
    if (part != PGSPOUT_PART_EVENT)
        return NULL;
    *length = strlen(ev->json);
    return ev->json;
}

static char *fake_format_lsn(pgspout_lsn lsn, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    return buf;
}

static void fake_ack_durable(pgspout_sink_handle *sink, pgspout_position upto)
{
    (void)sink;
    ack_count++;
    last_ack = upto;
}

/* As the host streams: in order, in pieces of at most stream_piece bytes,
 * stopping when the writer refuses one. */
static size_t stream_piece = PGSPOUT_JSON_PIECE_MAX;
static int stream_calls;
static int writes_before_last_piece; /* file write(2)s the sink had made */

static bool fake_event_json_stream(const pgspout_event *ev,
                                   pgspout_event_part part,
                                   pgspout_json_writer writer, void *ctx)
{
    size_t len = strlen(ev->json);

    if (part != PGSPOUT_PART_EVENT)
        return false;
    stream_calls++;
    for (size_t done = 0; done < len; done += stream_piece) {
        size_t n = len - done < stream_piece ? len - done : stream_piece;
        if (done + n == len)
            writes_before_last_piece = file_write_calls;
        if (!writer(ctx, ev->json + done, n))
            return false;
    }
    return true;
}

/* The sink must work with a 1.0 host, whose table ends before
 * event_json_stream, and use streaming with a 1.1 host. */
#define HOST_TABLE(table_size, minor, stream)                                  \
    {                                                                          \
        .size = (table_size), .abi_major = PGSPOUT_ABI_MAJOR,                  \
        .abi_minor = (minor), .log = fake_log,                                 \
        .option_string = fake_option_string, .option_int = fake_option_int,    \
        .option_bool = fake_option_bool, .option_double = fake_option_double,  \
        .event_position = fake_event_position, .event_json = fake_event_json,  \
        .format_lsn = fake_format_lsn, .ack_durable = fake_ack_durable,        \
        .event_json_stream = (stream)                                          \
    }

static const pgspout_host_api host_1_0 =
    HOST_TABLE(offsetof(pgspout_host_api, event_json_stream), 0, NULL);
static const pgspout_host_api host_1_1 =
    HOST_TABLE(sizeof(pgspout_host_api), 1, fake_event_json_stream);
static const pgspout_host_api *host = &host_1_1;

/* ---- helpers ------------------------------------------------------------ */

static const pgspout_sink_descriptor *desc;
static struct pgspout_sink_handle handle;
static char tmpdir[] = "/tmp/pgspout-file-test-XXXXXX";

/* An event whose "note" is padded to make the line long when needed. */
static pgspout_event *make_event(uint64_t commit_lsn, uint64_t seq,
                                 size_t padding)
{
    pgspout_event *ev = calloc(1, sizeof *ev);
    char *note = malloc(padding + 1);
    int n;

    memset(note, 'x', padding);
    note[padding] = '\0';
    ev->pos.commit_lsn = commit_lsn;
    ev->pos.seq = seq;
    n = asprintf(&ev->json,
                 "{\"op\":\"insert\",\"schema\":\"public\",\"table\":\"t\","
                 "\"lsn\":\"0/%" PRIX64 "\",\"commit_lsn\":\"%X/%X\","
                 "\"xid\":7,\"seq\":%" PRIu64
                 ",\"commit_time\":\"2026-11-22T00:00:00.000000Z\","
                 "\"key\":{\"id\":%" PRIu64 "},"
                 "\"after\":{\"id\":%" PRIu64 ",\"note\":\"%s\"}}",
                 commit_lsn - 8, (unsigned)(commit_lsn >> 32),
                 (unsigned)commit_lsn, seq, seq, seq, note);
    free(note);
    if (n < 0)
        abort();
    return ev;
}

static void free_events(pgspout_event **evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(evs[i]->json);
        free(evs[i]);
    }
}

/* The file content expected for events [from, to). */
static char *expected_lines(pgspout_event **evs, size_t from, size_t to)
{
    size_t total = 1;
    char *text, *p;

    for (size_t i = from; i < to; i++)
        total += strlen(evs[i]->json) + 1;
    p = text = malloc(total);
    for (size_t i = from; i < to; i++) {
        size_t n = strlen(evs[i]->json);
        memcpy(p, evs[i]->json, n);
        p[n] = '\n';
        p += n + 1;
    }
    *p = '\0';
    return text;
}

static char *concat(const char *a, const char *b)
{
    char *s;

    if (asprintf(&s, "%s%s", a, b) < 0)
        abort();
    return s;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text;
    long size;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = malloc((size_t)size + 1);
    if (fread(text, 1, (size_t)size, f) != (size_t)size)
        size = 0;
    text[size] = '\0';
    fclose(f);
    return text;
}

static void write_all(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);

    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

static long file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static bool content_is(const char *path, const char *expected)
{
    char *text = read_all(path);
    bool same = text && strcmp(text, expected) == 0;

    if (!same)
        printf("# %s holds %zu bytes, expected %zu\n", path,
               text ? strlen(text) : 0, strlen(expected));
    free(text);
    return same;
}

static char *path_in_tmp(const char *name)
{
    char *path;

    if (asprintf(&path, "%s/%s", tmpdir, name) < 0)
        abort();
    return path;
}

static pgspout_status create_sink(void **state, const char *path,
                                  const char *fsync, const char *rotate_size)
{
    opt_path = path;
    opt_fsync = fsync;
    opt_rotate_size = rotate_size;
    *state = NULL;
    return desc->create(host, &handle, state);
}

/* The wrappers tolerate a sink that failed to be created, so one failed
 * check does not crash the scenarios after it. */
static pgspout_status write_events(void *state, pgspout_event **evs,
                                   size_t from, size_t to)
{
    if (!state)
        return PGSPOUT_FATAL;
    return desc->write(state, (const pgspout_event *const *)evs + from,
                       to - from);
}

static pgspout_status flush_sink(void *state)
{
    return state ? desc->flush(state) : PGSPOUT_FATAL;
}

static void destroy_sink(void *state)
{
    if (state)
        desc->destroy(state);
}

static bool resume_of(void *state, pgspout_position *pos)
{
    return state && desc->resume_position(state, pos);
}

static bool resume_is(void *state, uint64_t commit_lsn, uint64_t seq)
{
    pgspout_position pos = {0, 0};

    if (!resume_of(state, &pos))
        return false;
    return pos.commit_lsn == commit_lsn && pos.seq == seq;
}

static bool acked(uint64_t commit_lsn, uint64_t seq)
{
    return ack_count > 0 && last_ack.commit_lsn == commit_lsn &&
           last_ack.seq == seq;
}

/* ---- scenarios ---------------------------------------------------------- */

static void test_descriptor(void)
{
    bool has_path = false, has_fsync = false, has_rotate = false;

    CHECK(desc->magic == PGSPOUT_ABI_MAGIC);
    CHECK(desc->abi_major == PGSPOUT_ABI_MAJOR);
    CHECK(desc->abi_minor <= PGSPOUT_ABI_MINOR);
    CHECK(desc->size == sizeof(pgspout_sink_descriptor));
    CHECK_STR(desc->name, "file");
    CHECK(desc->create && desc->write && desc->flush && desc->destroy &&
          desc->resume_position);
    for (const pgspout_option_def *d = desc->options; d->name; d++) {
        if (strcmp(d->name, "path") == 0)
            has_path = d->type == PGSPOUT_OPT_STRING &&
                       (d->flags & PGSPOUT_OPTF_REQUIRED);
        if (strcmp(d->name, "fsync") == 0)
            has_fsync = d->type == PGSPOUT_OPT_BOOL &&
                        strcmp(d->default_value, "true") == 0;
        if (strcmp(d->name, "rotate_size") == 0)
            has_rotate = d->type == PGSPOUT_OPT_INT &&
                         strcmp(d->default_value, "0") == 0;
    }
    CHECK(has_path);
    CHECK(has_fsync);
    CHECK(has_rotate);
}

/* Write, flush, restart, torn tail, invalid tail. */
static void test_write_flush_recover(void)
{
    char *path = path_in_tmp("out.jsonl");
    pgspout_event *evs[5];
    void *sink;
    char *expected;
    const char *torn;
    long good_size;

    evs[0] = make_event(0x1000, 1, 0);
    evs[1] = make_event(0x1000, 2, 0);
    evs[2] = make_event(0x100002000ull, 1, 0);
    evs[3] = make_event(0x100002000ull, 2, 0);
    evs[4] = make_event(0x100003000ull, 1, 0);

    log_reset();
    ack_count = 0;
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_OK);
    CHECK(!resume_of(sink, &last_ack));
    CHECK(write_events(sink, evs, 0, 2) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 2, 3) == PGSPOUT_OK);
    CHECK(ack_count == 0); /* nothing durable before flush */
    file_write_calls = 0;
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    /* Guards the fault-injection scenarios below from passing vacuously. */
    if (file_write_calls == 0)
        printf("# write() is not interposed: fault scenarios are void\n");
    CHECK(file_write_calls > 0);
    expected = expected_lines(evs, 0, 3);
    CHECK(content_is(path, expected));
    CHECK(ack_count == 1 && acked(0x100002000ull, 1));
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(ack_count == 1); /* nothing new: no second acknowledgement */
    destroy_sink(sink);

    /* A clean restart resumes after the last line. */
    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_OK);
    CHECK(resume_is(sink, 0x100002000ull, 1));
    CHECK(log_has("resuming after commit_lsn 1/2000 seq 1"));
    destroy_sink(sink);

    /* kill -9 in the middle of a line. */
    good_size = file_size(path);
    torn = "{\"op\":\"insert\",\"commit_lsn\":\"1/3";
    write_all(path, torn, "ab");
    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_OK);
    CHECK(file_size(path) == good_size);
    CHECK(content_is(path, expected));
    {
        char note[64];
        snprintf(note, sizeof note, "truncated %zu bytes", strlen(torn));
        CHECK(log_has(note));
    }
    CHECK(resume_is(sink, 0x100002000ull, 1));
    /* Appending goes on right after the last complete line. */
    ack_count = 0;
    CHECK(write_events(sink, evs, 3, 5) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    free(expected);
    expected = expected_lines(evs, 0, 5);
    CHECK(content_is(path, expected));
    CHECK(acked(0x100003000ull, 1));
    destroy_sink(sink);

    /* A second writer on the same file is refused. */
    {
        void *second;
        CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_OK);
        log_reset();
        CHECK(create_sink(&second, path, NULL, NULL) == PGSPOUT_FATAL);
        CHECK(log_has("in use"));
        destroy_sink(second);
        destroy_sink(sink);
    }

    /* A complete last line that is no event: never skipped, never cut. */
    good_size = file_size(path);
    write_all(path, "not json\n", "ab");
    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_FATAL);
    CHECK(sink == NULL);
    CHECK(log_has(path));
    {
        char offset[64];
        snprintf(offset, sizeof offset, "offset %ld", good_size);
        CHECK(log_has(offset));
    }
    CHECK(file_size(path) == good_size + 9);

    free(expected);
    free_events(evs, 5);
    free(path);
}

static void test_whole_file_torn(void)
{
    char *path = path_in_tmp("torn.jsonl");
    void *sink;
    pgspout_position pos;

    write_all(path, "{\"op\":\"ins", "wb");
    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_OK);
    CHECK(file_size(path) == 0);
    CHECK(!resume_of(sink, &pos));
    CHECK(log_has("truncated 10 bytes"));
    destroy_sink(sink);

    /* Valid JSON but no position: not ours, refuse. */
    write_all(path, "{\"op\":\"insert\",\"seq\":1}\n", "wb");
    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_FATAL);
    CHECK(log_has("not a pgspout event"));
    write_all(path, "{\"op\":\"insert\",\"seq\":1,\"commit_time\":\"x\"}\n",
              "wb");
    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_FATAL);
    CHECK(log_has("commit_lsn"));

    /* A row value jansson cannot load (PostgreSQL's jsonb can hold it)
     * does not block a restart: only the header is read. */
    write_all(path,
              "{\"op\":\"insert\",\"schema\":\"s\",\"table\":\"t\","
              "\"lsn\":\"0/10\",\"commit_lsn\":\"0/20\",\"xid\":1,"
              "\"seq\":3,\"commit_time\":\"2026-11-22T00:00:00.000000Z\","
              "\"after\":{\"big\":123456789012345678901234567890,"
              "\"huge\":1e400,\"s\":\"\\ud800\"}}\n",
              "wb");
    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_OK);
    CHECK(resume_is(sink, 0x20, 3));
    destroy_sink(sink);
    free(path);
}

/* A schema event without a seq of its own: the change before it counts. */
static void test_schema_last(void)
{
    char *path = path_in_tmp("schema.jsonl");
    pgspout_event *ev = make_event(0x5000, 4, 0);
    char *text;
    void *sink;

    if (asprintf(&text,
                 "%s\n{\"op\":\"schema\",\"schema\":\"public\",\"table\":\"t\","
                 "\"lsn\":\"0/5100\",\"commit_lsn\":\"0/5200\",\"xid\":9,"
                 "\"commit_time\":\"2026-11-22T00:00:00.000000Z\","
                 "\"columns\":[]}"
                 "\n",
                 ev->json) < 0)
        abort();
    write_all(path, text, "wb");
    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_OK);
    CHECK(resume_is(sink, 0x5000, 4));
    destroy_sink(sink);
    free(text);
    free_events(&ev, 1);
    free(path);
}

/* Lines and torn tails longer than the chunk recovery reads at a time. */
static void test_long_lines(void)
{
    char *path = path_in_tmp("long.jsonl");
    pgspout_event *evs[2] = {make_event(0x6000, 1, 40000),
                             make_event(0x6000, 2, 70000)};
    char *expected = expected_lines(evs, 0, 2);
    char *torn = strndup(evs[1]->json, 50000);
    void *sink;

    write_all(path, expected, "wb");
    write_all(path, torn, "ab");
    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_OK);
    CHECK(content_is(path, expected));
    CHECK(log_has("truncated 50000 bytes"));
    CHECK(resume_is(sink, 0x6000, 2));
    destroy_sink(sink);
    free(torn);
    free(expected);
    free_events(evs, 2);
    free(path);
}

static void test_rotation(void)
{
    char *path = path_in_tmp("rot.jsonl");
    char *r3 = concat(path, ".000003"), *r4 = concat(path, ".000004");
    char *r5 = concat(path, ".000005");
    pgspout_event *old = make_event(0x100, 1, 0);
    pgspout_event *evs[5];
    char *old_line = expected_lines(&old, 0, 1), *expected;
    long line_size;
    void *sink;

    for (size_t i = 0; i < 5; i++)
        evs[i] = make_event(0x2000 + 0x100 * i, 1, 0);
    line_size = (long)strlen(evs[0]->json) + 1;

    /* An earlier run left rotated files; the current one is empty. */
    write_all(r3, old_line, "wb");
    log_reset();
    ack_count = 0;
    {
        char rotate_size[32];
        snprintf(rotate_size, sizeof rotate_size, "%ld", line_size * 2 - 1);
        CHECK(create_sink(&sink, path, "true", rotate_size) == PGSPOUT_OK);
    }
    CHECK(resume_is(sink, 0x100, 1)); /* read from the newest rotated file */

    CHECK(write_events(sink, evs, 0, 1) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(file_size(r4) == -1); /* still below rotate_size */
    CHECK(write_events(sink, evs, 1, 2) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    expected = expected_lines(evs, 0, 2);
    CHECK(content_is(r4, expected)); /* numbering goes on after 000003 */
    free(expected);
    CHECK(file_size(path) == 0);
    CHECK(content_is(r3, old_line)); /* never overwritten */
    CHECK(log_has("rotated"));

    CHECK(write_events(sink, evs, 2, 3) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(file_size(r5) == -1);
    CHECK(write_events(sink, evs, 3, 5) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    expected = expected_lines(evs, 2, 5);
    CHECK(content_is(r5, expected));
    free(expected);
    CHECK(file_size(path) == 0);
    CHECK(acked(0x2400, 1));
    destroy_sink(sink);

    log_reset();
    CHECK(create_sink(&sink, path, "true", "1000") == PGSPOUT_OK);
    CHECK(resume_is(sink, 0x2400, 1));
    destroy_sink(sink);

    free(old_line);
    free_events(&old, 1);
    free_events(evs, 5);
    free(r3);
    free(r4);
    free(r5);
    free(path);
}

static void test_stdout(void)
{
    char *capture = path_in_tmp("stdout.txt");
    pgspout_event *evs[2] = {make_event(0x10, 1, 0), make_event(0x10, 2, 0)};
    int saved, fd;
    void *sink = NULL;
    pgspout_status created, written = PGSPOUT_FATAL, flushed = PGSPOUT_FATAL;
    bool resumable = true;
    pgspout_position pos;
    char *expected;

    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    ack_count = 0;
    log_reset();
    created = create_sink(&sink, "-", NULL, "10");
    if (created == PGSPOUT_OK) {
        resumable = resume_of(sink, &pos);
        written = write_events(sink, evs, 0, 2);
        flushed = flush_sink(sink);
        destroy_sink(sink);
    }
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);

    CHECK(created == PGSPOUT_OK);
    CHECK(!resumable);
    CHECK(written == PGSPOUT_OK);
    CHECK(flushed == PGSPOUT_OK);
    CHECK(acked(0x10, 2));
    expected = expected_lines(evs, 0, 2);
    CHECK(content_is(capture, expected));
    /* Still writable after destroy: stdout is not the sink's to close. */
    CHECK(fcntl(STDOUT_FILENO, F_GETFD) != -1);
    free(expected);
    free_events(evs, 2);
    free(capture);
}

static void test_missing_directory(void)
{
    char *path = path_in_tmp("no/such/dir/out.jsonl");
    void *sink;

    log_reset();
    CHECK(create_sink(&sink, path, NULL, NULL) == PGSPOUT_FATAL);
    CHECK(sink == NULL);
    CHECK(log_has(path));
    CHECK(log_has(strerror(ENOENT)));
    free(path);
}

/* A batch far larger than the buffer reaches the file during write(), and a
 * write() or flush() that fails half-way leaves no duplicate behind. */
static void test_large_batches_and_retries(void)
{
    char *path = path_in_tmp("big.jsonl");
    pgspout_event *evs[12];
    char *a, *b, *c, *ab, *abc, *expected;
    void *sink;
    long before;

    evs[0] = make_event(0x7000, 1, 100);
    evs[1] = make_event(0x7000, 2, 100);
    evs[2] = make_event(0x7000, 3, 100);
    for (size_t i = 3; i < 6; i++)
        evs[i] = make_event(0x8000, i - 2, 500000);
    evs[6] = make_event(0x9000, 1, 100);
    for (size_t i = 7; i < 10; i++)
        evs[i] = make_event(0xA000, i - 6, 500000);
    evs[10] = make_event(0xB000, 1, 100);
    evs[11] = make_event(0xB000, 2, 100);

    log_reset();
    ack_count = 0;
    CHECK(create_sink(&sink, path, "false", NULL) == PGSPOUT_OK);

    /* flush() fails after 10 bytes; the retry sends only the rest. */
    CHECK(write_events(sink, evs, 0, 2) == PGSPOUT_OK);
    arm_fault(10, ENOSPC);
    CHECK(flush_sink(sink) == PGSPOUT_RETRY);
    disarm_fault();
    CHECK(file_size(path) == 10);
    CHECK(ack_count == 0);
    CHECK(log_has(strerror(ENOSPC)));
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    a = expected_lines(evs, 0, 2);
    CHECK(content_is(path, a));
    CHECK(acked(0x7000, 2));

    /* write() of a 1.5 MB batch fails once 700 kB of it went out: the file
     * is cut back, the earlier buffered event is kept. */
    CHECK(write_events(sink, evs, 2, 3) == PGSPOUT_OK);
    b = expected_lines(evs, 2, 3);
    ab = concat(a, b);
    arm_fault(strlen(b) + 700000, EDQUOT);
    CHECK(write_events(sink, evs, 3, 6) == PGSPOUT_RETRY);
    disarm_fault();
    CHECK(content_is(path, ab));
    /* Redelivery of the same batch. */
    CHECK(write_events(sink, evs, 3, 6) == PGSPOUT_OK);
    CHECK(file_size(path) > (long)strlen(ab)); /* written out before flush */
    CHECK(acked(0x7000, 2));
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    c = expected_lines(evs, 3, 6);
    abc = concat(ab, c);
    CHECK(content_is(path, abc));
    CHECK(acked(0x8000, 3));

    /* write() fails before any of the batch went out. */
    before = file_size(path);
    CHECK(write_events(sink, evs, 6, 7) == PGSPOUT_OK);
    arm_fault(0, EAGAIN);
    CHECK(write_events(sink, evs, 7, 10) == PGSPOUT_RETRY);
    disarm_fault();
    CHECK(file_size(path) == before);
    CHECK(write_events(sink, evs, 7, 10) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 10, 12) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    {
        char *rest = expected_lines(evs, 6, 12);
        expected = concat(abc, rest);
        free(rest);
    }
    CHECK(content_is(path, expected));
    CHECK(acked(0xB000, 2));

    /* A hard error is fatal and says why. */
    CHECK(write_events(sink, evs, 0, 1) == PGSPOUT_OK);
    arm_fault(0, EIO);
    log_reset();
    CHECK(flush_sink(sink) == PGSPOUT_FATAL);
    disarm_fault();
    CHECK(log_has(strerror(EIO)));
    destroy_sink(sink);

    free(a);
    free(b);
    free(c);
    free(ab);
    free(abc);
    free(expected);
    free_events(evs, 12);
    free(path);
}

/* ---- the output deleted, renamed or cut while the sink runs ------------- */

/* `count` events of one transaction each, from commit_lsn `base` on. */
static void make_events(pgspout_event **evs, size_t count, uint64_t base)
{
    for (size_t i = 0; i < count; i++)
        evs[i] = make_event(base + 0x100 * i, 1, 0);
}

static bool content_is_lines(const char *path, pgspout_event **evs, size_t from,
                             size_t to)
{
    char *expected = expected_lines(evs, from, to);
    bool same = content_is(path, expected);

    free(expected);
    return same;
}

/* Deleted between write and flush: nothing acknowledged, ever again in
 * this run; a restart starts a new file and knows nothing stored. */
static void test_deleted(void)
{
    char *path = path_in_tmp("deleted.jsonl");
    pgspout_event *evs[4], *big = make_event(0x3900, 1, 1100000);
    void *sink;
    pgspout_position pos;

    make_events(evs, 4, 0x3000);
    log_reset();
    ack_count = 0;
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 0, 2) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(ack_count == 1 && acked(0x3100, 1));
    CHECK(write_events(sink, evs, 2, 3) == PGSPOUT_OK);
    CHECK(unlink(path) == 0);
    log_reset();
    CHECK(flush_sink(sink) == PGSPOUT_FATAL);
    CHECK(ack_count == 1);
    CHECK(log_has(path));
    CHECK(log_has("was deleted"));
    /* It stays failed: the host may call again before it stops. */
    CHECK(write_events(sink, evs, 3, 4) == PGSPOUT_FATAL);
    CHECK(flush_sink(sink) == PGSPOUT_FATAL);
    CHECK(ack_count == 1);
    CHECK(file_size(path) == -1);
    destroy_sink(sink);

    /* The restart writes into a new file and resumes from nothing (the
     * host then starts from PostgreSQL's confirmed position). */
    log_reset();
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(!resume_of(sink, &pos));
    CHECK(log_has("is not the file pgspout wrote last"));
    CHECK(write_events(sink, evs, 2, 4) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(content_is_lines(path, evs, 2, 4));
    CHECK(acked(0x3300, 1));

    /* A write() large enough to reach the file notices at once. */
    CHECK(unlink(path) == 0);
    ack_count = 0;
    CHECK(write_events(sink, &big, 0, 1) == PGSPOUT_FATAL);
    CHECK(flush_sink(sink) == PGSPOUT_FATAL);
    CHECK(ack_count == 0);
    destroy_sink(sink);

    free_events(&big, 1);
    free_events(evs, 4);
    free(path);
}

/* logrotate's "nocreate" (rename) and "create" (rename, create empty):
 * what went into the file stays in the renamed file, and the sink goes on
 * in a new file at the path from the next line on. */
static void test_renamed(void)
{
    char *path = path_in_tmp("renamed.jsonl");
    char *first = concat(path, ".1"), *second = concat(path, ".2");
    char *third = concat(path, ".3");
    pgspout_event *evs[5], *big = make_event(0x4600, 1, 1100000);
    void *sink;

    make_events(evs, 5, 0x4000);
    log_reset();
    ack_count = 0;
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 0, 2) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 2, 3) == PGSPOUT_OK);
    CHECK(rename(path, first) == 0);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(acked(0x4200, 1));
    CHECK(content_is_lines(first, evs, 0, 2));
    CHECK(content_is_lines(path, evs, 2, 3));
    CHECK(log_has("renamed away"));
    CHECK(log_has(first));

    /* "create": an empty file already waits at the path. */
    CHECK(rename(path, second) == 0);
    write_all(path, "", "wb");
    CHECK(write_events(sink, evs, 3, 5) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(acked(0x4400, 1));
    CHECK(content_is_lines(second, evs, 2, 3));
    CHECK(content_is_lines(path, evs, 3, 5));

    /* A batch large enough to reach the file in write() goes to the new
     * file from its first line, and one that fails half-way is cut back
     * there, not in the renamed file. */
    CHECK(rename(path, third) == 0);
    arm_fault(4096, ENOSPC);
    CHECK(write_events(sink, &big, 0, 1) == PGSPOUT_RETRY);
    disarm_fault();
    CHECK(file_size(path) == 0);
    CHECK(content_is_lines(third, evs, 3, 5));
    CHECK(write_events(sink, &big, 0, 1) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(content_is_lines(path, &big, 0, 1));
    CHECK(content_is_lines(third, evs, 3, 5));
    CHECK(acked(0x4600, 1));
    destroy_sink(sink);

    log_reset();
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(resume_is(sink, 0x4600, 1));
    destroy_sink(sink);

    free_events(&big, 1);
    free_events(evs, 5);
    free(first);
    free(second);
    free(third);
    free(path);
}

/* kill -9 right after another program renamed the file, before the sink
 * noticed (the renamed file holds an event written but not acknowledged,
 * then a torn line: two events too large to stay in the sink's buffer), and
 * right after the sink followed a rename (the new file is still empty, the
 * renamed one compressed away). */
static void test_resume_after_rename(void)
{
    char *path = path_in_tmp("resume.jsonl");
    char *dated = concat(path, "-20261122"), *first = concat(path, ".1");
    pgspout_event *evs[6];
    void *sink;

    make_events(evs, 2, 0x5000);
    evs[2] = make_event(0x5200, 1, 1100000); /* reaches the file in write() */
    evs[3] = make_event(0x5200, 2, 1100000); /* torn by the kill */
    make_events(evs + 4, 2, 0x5300);
    ack_count = 0;
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 0, 2) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 2, 4) == PGSPOUT_OK);
    CHECK(acked(0x5100, 1));
    CHECK(rename(path, dated) == 0);
    destroy_sink(sink);

    log_reset();
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(resume_is(sink, 0x5200, 1));
    CHECK(log_has("wrote last is no longer"));
    CHECK(log_has("of an incomplete last line"));
    CHECK(content_is_lines(dated, evs, 0, 3));
    CHECK(file_size(path) == 0);
    CHECK(write_events(sink, evs, 4, 5) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    /* Renamed with nothing new to write: the new file stays empty. */
    CHECK(rename(path, first) == 0);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(file_size(path) == 0);
    CHECK(content_is_lines(first, evs, 4, 5));
    destroy_sink(sink);

    CHECK(unlink(first) == 0);
    log_reset();
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(resume_is(sink, 0x5300, 1));
    CHECK(log_has("stored before"));
    CHECK(write_events(sink, evs, 5, 6) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(content_is_lines(path, evs, 5, 6));
    destroy_sink(sink);

    /* The renamed file found again no longer ends in an event: left alone,
     * and the resume falls back to what the state recorded. */
    CHECK(rename(path, first) == 0);
    write_all(first, "not an event\n", "ab");
    log_reset();
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(log_has("not resuming from the file pgspout wrote last"));
    CHECK(resume_is(sink, 0x5300, 1));
    destroy_sink(sink);

    free_events(evs, 6);
    free(dated);
    free(first);
    free(path);
}

/* Cut under the sink (copytruncate, truncate(1)): nothing acknowledged, and
 * what was appended after the cut removed, so a restart resumes before the
 * changes the cut may have taken. */
static void test_truncated(void)
{
    char *path = path_in_tmp("cut.jsonl"), *part = path_in_tmp("part.jsonl");
    pgspout_event *evs[3];
    void *sink;
    long first_line;

    make_events(evs, 3, 0x6000);
    first_line = (long)strlen(evs[0]->json) + 1;
    ack_count = 0;
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 0, 2) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 2, 3) == PGSPOUT_OK);
    CHECK(truncate(path, 0) == 0);
    log_reset();
    CHECK(flush_sink(sink) == PGSPOUT_FATAL);
    CHECK(ack_count == 1 && acked(0x6100, 1));
    CHECK(log_has("shrank"));
    CHECK(log_has(path));
    CHECK(file_size(path) == 0);
    CHECK(flush_sink(sink) == PGSPOUT_FATAL);
    destroy_sink(sink);

    /* Cut in the middle: what stays before the cut is kept. */
    ack_count = 0;
    CHECK(create_sink(&sink, part, "true", NULL) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 0, 2) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(truncate(part, first_line) == 0);
    CHECK(write_events(sink, evs, 2, 3) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_FATAL);
    CHECK(ack_count == 1);
    CHECK(content_is_lines(part, evs, 0, 1));
    destroy_sink(sink);
    CHECK(create_sink(&sink, part, "true", NULL) == PGSPOUT_OK);
    CHECK(resume_is(sink, 0x6000, 1));
    destroy_sink(sink);

    free_events(evs, 3);
    free(part);
    free(path);
}

/* Renamed away while another name kept the old file alive, and a file the
 * sink did not start put in its place: never appended to. */
static void test_replaced(void)
{
    char *path = path_in_tmp("swap.jsonl"), *kept = concat(path, ".kept");
    char *other = path_in_tmp("other.txt");
    pgspout_event *evs[2];
    void *sink;

    make_events(evs, 2, 0x7000);
    ack_count = 0;
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 0, 1) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(link(path, kept) == 0);
    write_all(other, "someone else's\n", "wb");
    CHECK(rename(other, path) == 0);
    CHECK(write_events(sink, evs, 1, 2) == PGSPOUT_OK);
    log_reset();
    CHECK(flush_sink(sink) == PGSPOUT_FATAL);
    CHECK(ack_count == 1);
    CHECK(log_has("another file"));
    CHECK(content_is(path, "someone else's\n"));
    CHECK(content_is_lines(kept, evs, 0, 1));
    destroy_sink(sink);

    /* An NFS client renames a file removed while open to ".nfsXXXX" and
     * deletes it on close: that is a deletion, not a rotation. */
    unlink(path);
    ack_count = 0;
    CHECK(create_sink(&sink, path, "true", NULL) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 0, 1) == PGSPOUT_OK);
    free(other);
    other = path_in_tmp(".nfs00000000abcd0001");
    CHECK(rename(path, other) == 0);
    log_reset();
    CHECK(flush_sink(sink) == PGSPOUT_FATAL);
    CHECK(ack_count == 0);
    CHECK(log_has("was deleted"));
    destroy_sink(sink);

    free_events(evs, 2);
    free(other);
    free(kept);
    free(path);
}

/* An event far larger than the sink's 1 MiB write-out, streamed by a 1.1
 * host: its line reaches the file while the event is still being written
 * (the sink never holds it whole), a failure half-way through it cuts the
 * file back to where the batch began, and redelivery stores it once. */
static void test_huge_event_streamed(void)
{
    char *path = path_in_tmp("huge.jsonl");
    pgspout_event *evs[2] = {make_event(0xC000, 1, 100),
                             make_event(0xC000, 2, 5u << 20)};
    char *first = expected_lines(evs, 0, 1);
    char *expected = expected_lines(evs, 0, 2);
    void *sink;

    stream_calls = 0;
    ack_count = 0;
    CHECK(create_sink(&sink, path, "false", NULL) == PGSPOUT_OK);
    CHECK(write_events(sink, evs, 0, 1) == PGSPOUT_OK);
    CHECK(flush_sink(sink) == PGSPOUT_OK);

    /* write(2) fails once 2.5 MiB of the 5 MiB line went out. */
    arm_fault((5u << 20) / 2, ENOSPC);
    CHECK(write_events(sink, evs, 1, 2) == PGSPOUT_RETRY);
    disarm_fault();
    CHECK(content_is(path, first));
    CHECK(!acked(0xC000, 2));

    file_write_calls = 0;
    CHECK(write_events(sink, evs, 1, 2) == PGSPOUT_OK);
    /* The line went out a megabyte at a time while it was being streamed.
     */
    CHECK(writes_before_last_piece >= 4);
    CHECK(flush_sink(sink) == PGSPOUT_OK);
    CHECK(content_is(path, expected));
    CHECK(acked(0xC000, 2));
    CHECK(stream_calls == 3);
    destroy_sink(sink);

    CHECK(create_sink(&sink, path, "false", NULL) == PGSPOUT_OK);
    CHECK(resume_is(sink, 0xC000, 2));
    destroy_sink(sink);
    free(first);
    free(expected);
    free_events(evs, 2);
    free(path);
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        char *p;
        /* Sink state files are dotfiles too. */
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        p = path_in_tmp(e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

int main(int argc, char **argv)
{
    void *lib;
    const pgspout_sink_descriptor *(*entry)(void);

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/pgspout_file.so\n", argv[0]);
        return 2;
    }
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(lib != NULL);
    if (!lib) {
        printf("# %s\n", dlerror());
        return check_summary();
    }
    *(void **)&entry = dlsym(lib, PGSPOUT_SINK_ENTRY_SYMBOL);
    CHECK(entry != NULL);
    if (!entry)
        return check_summary();
    desc = entry();
    handle.desc = desc;
    test_descriptor();

    /* Every scenario with a 1.0 host (whole JSON per event), then with a
     * 1.1 host streaming small pieces, then default-sized ones. */
    const pgspout_host_api *hosts[] = {&host_1_0, &host_1_1, &host_1_1};
    const size_t pieces[] = {0, 4093, PGSPOUT_JSON_PIECE_MAX};
    for (size_t i = 0; i < 3; i++) {
        printf("# host ABI 1.%d, pieces of %zu bytes\n", hosts[i]->abi_minor,
               pieces[i]);
        host = hosts[i];
        stream_piece = pieces[i] ? pieces[i] : 1;
        strcpy(tmpdir, "/tmp/pgspout-file-test-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            return 2;
        }
        test_write_flush_recover();
        test_whole_file_torn();
        test_schema_last();
        test_long_lines();
        test_rotation();
        test_stdout();
        test_missing_directory();
        test_large_batches_and_retries();
        test_deleted();
        test_renamed();
        test_resume_after_rename();
        test_truncated();
        test_replaced();
        if (host == &host_1_1)
            test_huge_event_streamed();
        remove_tmpdir();
    }

    dlclose(lib);
    return check_summary();
}
