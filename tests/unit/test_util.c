/* The utility library (lib/): base64, hex, percent-encoding, whole-file
 * I/O, the stop-aware sleep, deadlines and backoff bounds, the arena. (JSON
 * string escaping is covered by test_value_json, LSN text by test_event_json.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "backoff.h"
#include "base64.h"
#include "check.h"
#include "clock.h"
#include "fileio.h"
#include "hex.h"
#include "percent.h"
#include "redact.h"
#include "strbuf.h"

static void test_base64(void)
{
    /* RFC 4648, section 10, and a byte above 0x7f. */
    static const char *const vectors[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
        {"elastic:s3cr\xff", "ZWxhc3RpYzpzM2Ny/w=="},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        char *s = base64_encode(vectors[i][0], strlen(vectors[i][0]));
        CHECK_STR(s, vectors[i][1]);
        free(s);
    }
    char into[BASE64_ENCODED_LEN(5) + 1];
    CHECK(base64_encode_into(into, "fooba", 5) == 8);
    CHECK_STR(into, "Zm9vYmE=");
    /* The URL-safe form: - and _ for + and /, no padding. */
    char *s = base64url_encode("\xfb\xff\xbf", 3);
    CHECK_STR(s, "-_-_");
    free(s);
    CHECK_STR(s = base64url_encode("fo", 2), "Zm8");
    free(s);
}

static void test_hex(void)
{
    CHECK(hex_digit_value('0') == 0 && hex_digit_value('9') == 9);
    CHECK(hex_digit_value('a') == 10 && hex_digit_value('F') == 15);
    CHECK(hex_digit_value('g') == -1 && hex_digit_value('/') == -1 &&
          hex_digit_value('\0') == -1);
    char out[9] = "xxxxxxxx";
    hex_encode("\x00\x1f\xa0\xff", 4, out);
    CHECK_STR(out, "001fa0ff");
}

static void test_percent(void)
{
    strbuf sb = STRBUF_INIT;
    percent_encode(&sb, "a-Z_0.~ /%\xc3\xa9", 12, NULL);
    CHECK_STR(sb.data, "a-Z_0.~%20%2F%25%C3%A9");
    sbuf_reset(&sb);
    percent_encode(&sb, "/a b/", 5, "/");
    CHECK_STR(sb.data, "/a%20b/");
    sbuf_free(&sb);
    char *d = percent_decode("%e1%88%B4x%4%zz%41", 18);
    CHECK_STR(d, "\xe1\x88\xb4x%4%zzA");
    free(d);
}

static void test_files(void)
{
    char path[] = "/tmp/pgspout-test-util-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    static const char content[] = "line one\n\0binary\xff tail";
    CHECK(write_all(fd, content, sizeof content - 1));
    close(fd);
    size_t len = 0;
    char *text = read_whole_file(path, &len);
    CHECK(text && len == sizeof content - 1 &&
          memcmp(text, content, len) == 0 && text[len] == '\0');
    free(text);

    fd = open(path, O_WRONLY | O_TRUNC);
    close(fd);
    text = read_whole_file(path, &len);
    CHECK(text && len == 0 && text[0] == '\0');
    free(text);
    unlink(path);

    errno = 0;
    CHECK(!read_whole_file(path, &len) && errno == ENOENT);
    errno = 0;
    CHECK(!read_whole_file("/tmp", &len) && errno == EISDIR);
    /* A pipe: no size known up front, read as it comes. */
    int fds[2];
    CHECK(pipe(fds) == 0);
    char big[10000];
    memset(big, 'p', sizeof big);
    CHECK(write_all(fds[1], big, sizeof big));
    close(fds[1]);
    char name[64];
    snprintf(name, sizeof name, "/dev/fd/%d", fds[0]);
    text = read_whole_file(name, &len);
    CHECK(text && len == sizeof big && memcmp(text, big, len) == 0);
    free(text);
    close(fds[0]);
    CHECK(!write_all(-1, "x", 1) && errno == EBADF);
}

static bool stop_after_calls(void *ctx)
{
    int *calls = ctx;
    return ++*calls > 2;
}

static bool never(void *ctx)
{
    (void)ctx;
    return false;
}

static void test_sleep(void)
{
    int calls = 0;
    int64_t start = now_us();
    /* Stopped at the third look, after two steps of at most 100 ms rather
     * than the 60 s asked for. */
    CHECK(!sleep_unless(60000, stop_after_calls, &calls));
    CHECK(calls >= 3 && now_us() - start < 30 * 1000000);
    start = now_us();
    CHECK(sleep_unless(20, never, NULL));
    CHECK(now_us() - start >= 20000);
    calls = 5;
    CHECK(!sleep_unless(0, stop_after_calls, &calls)); /* already stopped */

    struct timespec before, after = clock_after_ms(CLOCK_MONOTONIC, 1500);
    clock_gettime(CLOCK_MONOTONIC, &before);
    int64_t diff_ms = (int64_t)(after.tv_sec - before.tv_sec) * 1000 +
                      (after.tv_nsec - before.tv_nsec) / 1000000;
    CHECK(diff_ms > 1000 && diff_ms <= 1500);
    CHECK(after.tv_nsec >= 0 && after.tv_nsec < 1000000000L);
    CHECK(wall_clock_us() > INT64_C(1500000000) * 1000000);
}

static void test_backoff(void)
{
    bool in_bounds = true;
    for (int attempt = 1; attempt <= 40; attempt++) {
        int64_t d = backoff_delay_between(attempt, 100, 30000);
        int64_t ceiling = attempt >= 10 ? 30000 : 100 << (attempt - 1);
        if (ceiling > 30000)
            ceiling = 30000;
        if (d < 50 || d > ceiling)
            in_bounds = false;
    }
    CHECK(in_bounds);
    CHECK(backoff_delay_ms(1) >= BACKOFF_BASE_MS / 2 &&
          backoff_delay_ms(1) <= BACKOFF_BASE_MS);
}

static void test_alloc(void)
{
    char *s = xasprintf("%s-%d", "slot", 7);
    CHECK_STR(s, "slot-7");
    free(s);
    CHECK_STR(s = xstrndup("abcdef", 3), "abc");
    free(s);
    strbuf sb = STRBUF_INIT;
    char *empty = sbuf_detach(&sb);
    CHECK_STR(empty, "");
    free(empty);
}

static bool aligned(const void *p)
{
    return (uintptr_t)p % _Alignof(max_align_t) == 0;
}

static void test_arena(void)
{
    arena a;
    arena_init(&a, 1024);
    /* Small objects share a block, aligned, and do not overlap. */
    char *x = arena_alloc(&a, 10), *y = arena_alloc(&a, 3);
    CHECK(aligned(x) && aligned(y) && y >= x + 10);
    memset(x, 'x', 10);
    memset(y, 'y', 3);
    CHECK(x[9] == 'x' && y[0] == 'y');
    /* The latest one is given back; an older one is not. */
    arena_undo(&a, y);
    CHECK(arena_alloc(&a, 3) == y);
    arena_undo(&a, x);
    CHECK(arena_alloc(&a, 1) != x);
    /* A large one gets a block of its own; small ones go on in the head. */
    char *big = arena_alloc(&a, 5000);
    memset(big, 'b', 5000);
    char *z = arena_alloc(&a, 16);
    CHECK(z > y && z < y + 1024 && aligned(z));
    /* Many blocks' worth, then a reset: one block kept, reused. */
    for (int i = 0; i < 100; i++)
        memset(arena_alloc(&a, 200), i, 200);
    arena_reset(&a);
    char *again = arena_alloc(&a, 8);
    CHECK(again != NULL && aligned(again));
    arena_free(&a);
    arena_free(&a); /* twice: nothing left */
}

static void test_redact(void)
{
    char text[] = "key=LongSecretValue1 and LongSecretValue1 again; pw=ab";
    redact(text, "LongSecretValue1");
    redact(text, "ab");
    CHECK_STR(text, "key=[redacted] and [redacted] again; pw=**");
    char untouched[] = "nothing here";
    redact(untouched, NULL);
    redact(untouched, "");
    redact(untouched, "absent");
    CHECK_STR(untouched, "nothing here");
}

int main(void)
{
    test_redact();
    test_base64();
    test_hex();
    test_percent();
    test_files();
    test_sleep();
    test_backoff();
    test_alloc();
    test_arena();
    return check_summary();
}
