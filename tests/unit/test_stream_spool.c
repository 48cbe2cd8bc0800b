/* The changes of streamed transactions: kept per transaction in arrival
 * order, spilled to files beyond the memory limit, subtransaction and
 * whole-transaction aborts, replay, and the spill directory's files. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "stream_spool.h"

static char err[512];

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static bool append_text(stream_spool *sp, uint32_t top, uint32_t xid,
                        uint64_t lsn, const char *text)
{
    return stream_spool_append(sp, top, xid, lsn, text, strlen(text), err,
                               sizeof err);
}

/* Replays top and joins its changes as "lsn:text," into out. */
static void replay_all(stream_spool *sp, uint32_t top, char *out, size_t n)
{
    out[0] = '\0';
    stream_spool_replay_start(sp, top);
    uint64_t lsn;
    char *data;
    size_t len;
    int r;
    while ((r = stream_spool_replay_next(sp, &lsn, &data, &len, err,
                                         sizeof err)) == 1) {
        size_t used = strlen(out);
        snprintf(out + used, n - used, "%llu:%.*s,", (unsigned long long)lsn,
                 (int)len, data);
        free(data);
    }
    CHECK(r == 0);
}

static void test_interleaved_in_memory(const char *dir)
{
    char got[4096];
    stream_spool *sp = stream_spool_new(dir, 1 << 20);
    CHECK(stream_spool_oldest(sp) == UINT64_MAX);
    CHECK(append_text(sp, 10, 10, 100, "a1"));
    CHECK(append_text(sp, 20, 20, 150, "b1"));
    CHECK(append_text(sp, 10, 10, 200, "a2"));
    CHECK(append_text(sp, 20, 21, 250, "b2"));
    CHECK(stream_spool_open_count(sp) == 2);
    CHECK(stream_spool_oldest(sp) == 100);
    replay_all(sp, 10, got, sizeof got);
    CHECK_STR(got, "100:a1,200:a2,");
    CHECK(stream_spool_open_count(sp) == 1);
    CHECK(stream_spool_oldest(sp) == 150);
    replay_all(sp, 20, got, sizeof got);
    CHECK_STR(got, "150:b1,250:b2,");
    CHECK(stream_spool_oldest(sp) == UINT64_MAX);
    /* A transaction that kept nothing replays as empty. */
    replay_all(sp, 30, got, sizeof got);
    CHECK_STR(got, "");
    CHECK(count_files(dir) <= 0);
    stream_spool_free(sp);
}

/* A tiny limit: every transaction spills, memory never passes the limit,
 * replay reads the file then memory in order, and the files go at the
 * end. */
static void test_spill(const char *dir)
{
    char want[8192] = "", got[8192];
    stream_spool *sp = stream_spool_new(dir, 256);
    bool ok = true, bounded = true;
    for (int i = 0; i < 60; i++) {
        char text[64];
        snprintf(text, sizeof text, "change-%02d-%s", i,
                 "padding-padding-padding");
        ok &= append_text(sp, i % 2 ? 7 : 8, i % 2 ? 7 : 8, 1000 + i, text);
        bounded &= stream_spool_memory(sp) <= 256;
        if (i % 2) {
            size_t used = strlen(want);
            snprintf(want + used, sizeof want - used, "%d:%s,", 1000 + i, text);
        }
    }
    CHECK(ok);
    CHECK(bounded);
    CHECK(count_files(dir) == 2);
    /* A change larger than the whole limit goes straight to the file. */
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(append_text(sp, 7, 7, 5000, big));
    CHECK(stream_spool_memory(sp) <= 256);
    size_t used = strlen(want);
    snprintf(want + used, sizeof want - used, "5000:%s,", big);
    replay_all(sp, 7, got, sizeof got);
    CHECK_STR(got, want);
    CHECK(count_files(dir) == 1);
    stream_spool_free(sp);
    /* Freeing removed the other file and the directory it made. */
    CHECK(count_files(dir) == -1);
}

/* Stream Abort of a subtransaction: its changes and those of the
 * subtransactions after its first change go; the rest stay. The cut falls
 * once in memory, once inside the spilled part. */
static void test_subxact_abort(const char *dir, uint64_t limit)
{
    char got[4096];
    stream_spool *sp = stream_spool_new(dir, limit);
    CHECK(append_text(sp, 50, 50, 1, "top-1"));
    CHECK(append_text(sp, 50, 51, 2, "sub51-1"));
    CHECK(append_text(sp, 50, 51, 3, "sub51-2"));
    CHECK(append_text(sp, 50, 52, 4, "sub52-nested"));
    CHECK(append_text(sp, 60, 60, 5, "other"));
    CHECK(stream_spool_abort(sp, 50, 51, err, sizeof err));
    CHECK(append_text(sp, 50, 53, 6, "sub53-kept"));
    CHECK(append_text(sp, 50, 50, 7, "top-2"));
    /* An abort of a subtransaction that sent nothing changes nothing. */
    CHECK(stream_spool_abort(sp, 50, 99, err, sizeof err));
    replay_all(sp, 50, got, sizeof got);
    CHECK_STR(got, "1:top-1,6:sub53-kept,7:top-2,");
    /* The whole transaction aborted: gone, file and all. */
    CHECK(stream_spool_abort(sp, 60, 60, err, sizeof err));
    CHECK(stream_spool_open_count(sp) == 0);
    CHECK(count_files(dir) <= 0);
    stream_spool_free(sp);
}

/* An abort that empties the transaction leaves no hold on confirmation. */
static void test_abort_to_empty(const char *dir)
{
    stream_spool *sp = stream_spool_new(dir, 1 << 20);
    CHECK(append_text(sp, 70, 71, 40, "sub-only"));
    CHECK(stream_spool_oldest(sp) == 40);
    CHECK(stream_spool_abort(sp, 70, 71, err, sizeof err));
    CHECK(stream_spool_oldest(sp) == UINT64_MAX);
    stream_spool_free(sp);
}

/* A change's bytes: its number repeated, len of them. */
static void fill_change(char *buf, size_t len, unsigned n)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (n + i) % 26);
}

/* Changes read back through the spill file's read-ahead buffer: many
 * small ones across several refills (a change straddling a refill), and
 * one larger than the buffer, which is read on its own, in order. */
static void test_read_ahead(const char *dir)
{
    stream_spool *sp = stream_spool_new(dir, 4096);
    enum { SMALL = 3000, BIG = 3 << 20 };
    char *buf = malloc(BIG);
    bool ok = true;
    for (unsigned n = 0; n < SMALL && ok; n++) {
        size_t len = 100 + n % 1200;
        fill_change(buf, len, n);
        ok = stream_spool_append(sp, 9, 9, n, buf, len, err, sizeof err);
        if (n == SMALL / 2) {
            fill_change(buf, BIG, n);
            ok = ok && stream_spool_append(sp, 9, 9, 1000000, buf, BIG, err,
                                           sizeof err);
        }
    }
    CHECK(ok);
    stream_spool_replay_start(sp, 9);
    uint64_t lsn;
    char *data;
    size_t len;
    unsigned n = 0, mismatches = 0;
    bool big_seen = false;
    while (stream_spool_replay_next(sp, &lsn, &data, &len, err, sizeof err) ==
           1) {
        bool big = lsn == 1000000;
        size_t want = big ? BIG : 100 + n % 1200;
        fill_change(buf, want, big ? SMALL / 2 : n);
        mismatches += len != want || memcmp(data, buf, len) != 0 ||
                      (!big && lsn != n) || (big && n != SMALL / 2 + 1);
        big_seen |= big;
        n += !big;
        free(data);
    }
    CHECK(n == SMALL && big_seen);
    CHECK(mismatches == 0);
    stream_spool_free(sp);
    free(buf);
}

/* A spill file shorter than what was written (truncated behind pgspout's
 * back) is a read error naming the file, not a short change. */
static void test_truncated_file(const char *dir)
{
    stream_spool *sp = stream_spool_new(dir, 64);
    char change[200];
    memset(change, 'x', sizeof change);
    bool ok = true;
    for (int i = 0; i < 20 && ok; i++)
        ok = stream_spool_append(sp, 4, 4, (uint64_t)i, change, sizeof change,
                                 err, sizeof err);
    CHECK(ok);
    char path[1024];
    DIR *d = opendir(dir);
    struct dirent *de;
    path[0] = '\0';
    while (d && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (d)
        closedir(d);
    CHECK(path[0] && truncate(path, 1000) == 0);
    stream_spool_replay_start(sp, 4);
    uint64_t lsn;
    char *data;
    size_t len;
    int r;
    while ((r = stream_spool_replay_next(sp, &lsn, &data, &len, err,
                                         sizeof err)) == 1)
        free(data);
    CHECK(r == -1);
    printf("# %s\n", err);
    CHECK(strstr(err, "read spill file") != NULL);
    stream_spool_free(sp);
}

static void test_unwritable_dir(void)
{
    stream_spool *sp = stream_spool_new("/proc/pgspout-no-such/spill", 16);
    CHECK(!append_text(sp, 1, 1, 1, "more than sixteen bytes of change"));
    printf("# %s\n", err);
    CHECK(strstr(err, "/proc/pgspout-no-such/spill") != NULL);
    CHECK(strstr(err, "spill_dir") != NULL);
    stream_spool_free(sp);
}

/* A crashed run's files go when the next one starts; a live process's
 * stay. */
static void test_orphans(const char *dir)
{
    char dead[700], live[700];
    CHECK(mkdir(dir, 0700) == 0);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    snprintf(dead, sizeof dead, "%s/xid-5-%ld.spill", dir, (long)child);
    snprintf(live, sizeof live, "%s/xid-6-%ld.spill", dir, (long)getppid());
    close(open(dead, O_CREAT | O_WRONLY, 0600));
    close(open(live, O_CREAT | O_WRONLY, 0600));
    stream_spool *sp = stream_spool_new(dir, 1 << 20);
    CHECK(access(dead, F_OK) != 0);
    CHECK(access(live, F_OK) == 0);
    stream_spool_free(sp);
    unlink(live);
    rmdir(dir);
}

int main(void)
{
    char base[] = "/tmp/pgspout-spool-test.XXXXXX";
    if (!mkdtemp(base))
        return 1;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/spill", base);
    test_interleaved_in_memory(dir);
    test_spill(dir);
    test_subxact_abort(dir, 1 << 20);
    test_subxact_abort(dir, 40);
    test_abort_to_empty(dir);
    test_read_ahead(dir);
    test_truncated_file(dir);
    test_unwritable_dir();
    test_orphans(dir);
    rmdir(base);
    return check_summary();
}
