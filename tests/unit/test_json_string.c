/* json_plain_span against a byte-at-a-time reference: every byte value at
 * every position of short strings, UTF-8 sequences whole and cut short,
 * and pseudo-random strings. Built twice (meson.build): as the library is,
 * and with __SSE2__ undefined, so the portable word-at-a-time scan is
 * checked on x86-64 too. Each string sits in an allocation of its exact
 * length, so that a read past its end shows under ASan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json_string.h"

/* What json_plain_span returns, one byte (or one UTF-8 sequence) at a
 * time. */
static size_t reference_span(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t n = c >= 0x80 ? utf8_sequence_length(s + i, len - i) : 0;
        if (!n)
            break;
        i += n;
    }
    return i;
}

static int mismatches;

/* Compares both on a copy of s in an allocation of exactly len bytes. */
static void compare(const unsigned char *s, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    if (len)
        memcpy(copy, s, len);
    size_t want = reference_span(copy, len);
    size_t got = json_plain_span((const char *)copy, len);
    if (got != want && mismatches++ < 5)
        printf("# len %zu: span %zu, reference %zu\n", len, got, want);
    free(copy);
}

static void test_every_byte_everywhere(void)
{
    unsigned char buf[40];
    mismatches = 0;
    for (size_t len = 1; len <= sizeof buf; len++)
        for (size_t at = 0; at < len; at++)
            for (int c = 0; c < 256; c++) {
                memset(buf, 'a', len);
                buf[at] = (unsigned char)c;
                compare(buf, len);
            }
    CHECK(mismatches == 0);
}

static void test_utf8_sequences(void)
{
    static const char *const seqs[] = {
        "\xC3\xA9",         "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xC3",
        "\xE2\x82",         "\xF0\x9F\x98", "\xC0\xAF",         "\xED\xA0\x80",
        "\xF4\x90\x80\x80", "\xE0\x80\x80", "\xF8\x88\x80\x80", "\x7F",
    };
    unsigned char buf[48];
    mismatches = 0;
    for (size_t k = 0; k < sizeof seqs / sizeof *seqs; k++) {
        size_t n = strlen(seqs[k]);
        for (size_t len = n; len <= sizeof buf; len++)
            for (size_t at = 0; at + n <= len; at++) {
                memset(buf, 'x', len);
                memcpy(buf + at, seqs[k], n);
                compare(buf, len);
                compare(buf, at + n - 1); /* the sequence cut short */
            }
    }
    CHECK(mismatches == 0);
}

static void test_random_strings(void)
{
    static const unsigned char alphabet[] = {
        'a',  'b',  ' ',  '~',  0x7F, '"',  '\\', '\n', 0x01, 0x1F, 0x00,
        0x80, 0xBF, 0xC2, 0xC3, 0xE0, 0xE2, 0xED, 0xF0, 0xF4, 0xFF, 0xA9,
    };
    uint64_t state = 88172645463325252u;
    unsigned char buf[96];
    mismatches = 0;
    for (int round = 0; round < 200000; round++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        size_t len = (size_t)(state % sizeof buf);
        /* Mostly plain text, so that long runs reach the fast paths. */
        for (size_t i = 0; i < len; i++) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            buf[i] = state % 8 ? (unsigned char)('a' + state % 26)
                               : alphabet[(state >> 8) % sizeof alphabet];
        }
        compare(buf, len);
    }
    CHECK(mismatches == 0);
}

static void test_long_plain_text(void)
{
    size_t len = 1000;
    unsigned char *buf = malloc(len);
    memset(buf, 'q', len);
    CHECK(json_plain_span((const char *)buf, len) == len);
    buf[999] = '"';
    CHECK(json_plain_span((const char *)buf, len) == 999);
    buf[16] = '\n';
    CHECK(json_plain_span((const char *)buf, len) == 16);
    free(buf);
    CHECK(json_plain_span("", 0) == 0);
}

int main(void)
{
    test_every_byte_everywhere();
    test_utf8_sequences();
    test_random_strings();
    test_long_plain_text();
    return check_summary();
}
