#include "lsn.h"

#include <string.h>

#include "hex.h"

/* Reads 1 to 8 hex digits; returns the position after them, or NULL. */
static const char *parse_hex32(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    int digits = 0;
    int d;

    while ((d = hex_digit_value(*p)) >= 0) {
        if (++digits > 8)
            return NULL;
        v = (v << 4) | (uint32_t)d;
        p++;
    }
    if (digits == 0)
        return NULL;
    *out = v;
    return p;
}

bool lsn_parse(const char *text, uint64_t *lsn)
{
    uint32_t hi, lo;
    const char *p = parse_hex32(text, &hi);

    if (!p || *p != '/')
        return false;
    p = parse_hex32(p + 1, &lo);
    if (!p || *p != '\0')
        return false;
    *lsn = ((uint64_t)hi << 32) | lo;
    return true;
}

/* Copies as much of src as fits, always NUL-terminating (as snprintf). */
static void copy_truncated(char *buf, size_t buflen, const char *src, size_t n)
{
    if (buflen == 0)
        return;
    if (n >= buflen)
        n = buflen - 1;
    memcpy(buf, src, n);
    buf[n] = '\0';
}

/* Writes v as exactly width decimal digits, zero-padded. */
static char *put_digits(char *p, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

/* Formatting is on the per-event path, so it avoids snprintf. */
static char *format_hex32(uint32_t v, char *p)
{
    static const char digits[] = "0123456789ABCDEF";
    int shift = 28;

    while (shift > 0 && ((v >> shift) & 0xF) == 0)
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        *p++ = digits[(v >> shift) & 0xF];
    return p;
}

char *lsn_format(uint64_t lsn, char *buf, size_t buflen)
{
    char tmp[LSN_FORMAT_BUFSIZE];
    char *p = format_hex32((uint32_t)(lsn >> 32), tmp);
    *p++ = '/';
    p = format_hex32((uint32_t)lsn, p);
    copy_truncated(buf, buflen, tmp, (size_t)(p - tmp));
    return buf;
}

/* Proleptic Gregorian date of a day count relative to 1970-01-01, counted in
 * 400-year eras (146097 days each) of years starting on March 1st, so that
 * the leap day falls at the end of a year. */
static void civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t z = days + 719468; /* days from 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097; /* [0, 146096] */
    int64_t yoe =
        (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);     /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153; /* month counted from March, [0, 11] */

    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

void timestamp_format_utc(int64_t unix_us, char *buf, size_t buflen)
{
    /* Floor division: -1 us is 23:59:59.999999 on the day before. */
    int64_t secs = unix_us / 1000000;
    int64_t frac = unix_us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    int64_t days = secs / 86400;
    int64_t sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }

    int64_t year;
    int month, day;
    civil_from_days(days, &year, &month, &day);

    /* Per-event path: digits by hand, no snprintf. The year takes as many
     * digits as it needs, at least four. */
    char tmp[TIMESTAMP_FORMAT_BUFSIZE];
    char *p = tmp;
    uint64_t abs_year =
        year < 0 ? (uint64_t)0 - (uint64_t)year : (uint64_t)year;
    int year_digits = 4;
    for (uint64_t y = abs_year / 10000; y; y /= 10)
        year_digits++;
    if (year < 0)
        *p++ = '-';
    p = put_digits(p, abs_year, year_digits);
    *p++ = '-';
    p = put_digits(p, (uint64_t)month, 2);
    *p++ = '-';
    p = put_digits(p, (uint64_t)day, 2);
    *p++ = 'T';
    p = put_digits(p, (uint64_t)(sod / 3600), 2);
    *p++ = ':';
    p = put_digits(p, (uint64_t)(sod / 60 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (uint64_t)(sod % 60), 2);
    *p++ = '.';
    p = put_digits(p, (uint64_t)frac, 6);
    *p++ = 'Z';
    copy_truncated(buf, buflen, tmp, (size_t)(p - tmp));
}
