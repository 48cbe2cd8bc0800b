#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memrchr */
#endif

#include "file_recovery.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"
#include "lsn.h"

/* Small enough for any thread's stack budget, large enough that a typical
 * last line is found in one read. */
#define TAIL_CHUNK 16384

bool file_fail(file_error *err, int errnum, const char *fmt, ...)
{
    va_list ap;

    err->errnum = errnum;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

static bool read_exactly(int fd, const char *path, void *buf, size_t len,
                         off_t offset, file_error *err)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = pread(fd, p, len, offset);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return file_fail(err, errno,
                             "cannot read \"%s\" at offset %lld: %s", path,
                             (long long)offset, strerror(errno));
        if (n == 0)
            return file_fail(err, EIO,
                             "\"%s\" shrank while being read (offset %lld)",
                             path, (long long)offset);
        p += n;
        len -= (size_t)n;
        offset += n;
    }
    return true;
}

/* Offset of the last '\n' before offset `end`, or -1 when there is none. */
static bool find_newline_before(int fd, const char *path, off_t end,
                                off_t *found, file_error *err)
{
    char chunk[TAIL_CHUNK];

    while (end > 0) {
        size_t n = end > TAIL_CHUNK ? TAIL_CHUNK : (size_t)end;
        off_t start = end - (off_t)n;
        const char *nl;

        if (!read_exactly(fd, path, chunk, n, start, err))
            return false;
        nl = memrchr(chunk, '\n', n);
        if (nl) {
            *found = start + (nl - chunk);
            return true;
        }
        end = start;
    }
    *found = -1;
    return true;
}

typedef enum line_verdict {
    LINE_HAS_POSITION,
    LINE_WITHOUT_POSITION, /* a schema event: look further back */
    LINE_INVALID
} line_verdict;

/* Every line starts with the same fields, in this order: op, schema,
 * table, lsn, commit_lsn, xid, seq, commit_time. Only that header is parsed:
 * the row values after it are json/jsonb copied byte for byte, which
 * PostgreSQL accepts and jansson may not (integers past 64 bits, 1e400, lone
 * surrogates), and a valid row must never make the file unrestartable.
 * Inside a JSON string every quote is escaped, so the first unescaped
 * ',"commit_time":' is the key itself. */
#define HEADER_END ",\"commit_time\":"

static line_verdict read_line_position(const char *line, size_t len,
                                       pgspout_position *pos, char *why,
                                       size_t whylen)
{
    json_error_t jerr;
    const char *end = memmem(line, len, HEADER_END, sizeof HEADER_END - 1);
    if (!end) {
        snprintf(why, whylen, "is not a pgspout event (no \"commit_time\")");
        return LINE_INVALID;
    }
    size_t header_len = (size_t)(end - line);
    char *header = xmalloc(header_len + 2);
    memcpy(header, line, header_len);
    header[header_len] = '}';
    header[header_len + 1] = '\0';
    json_t *obj = json_loadb(header, header_len + 1, 0, &jerr);
    free(header);
    json_t *lsn_text, *seq, *op;
    line_verdict verdict = LINE_INVALID;

    if (!obj) {
        snprintf(why, whylen, "is not valid JSON (%s)", jerr.text);
        return LINE_INVALID;
    }
    if (!json_is_object(obj)) {
        snprintf(why, whylen, "is not a JSON object");
        goto done;
    }
    lsn_text = json_object_get(obj, "commit_lsn");
    seq = json_object_get(obj, "seq");
    op = json_object_get(obj, "op");
    if (!json_is_string(lsn_text) ||
        !lsn_parse(json_string_value(lsn_text), &pos->commit_lsn)) {
        snprintf(why, whylen, "lacks a valid \"commit_lsn\"");
        goto done;
    }
    if (!seq && json_is_string(op) &&
        strcmp(json_string_value(op), "schema") == 0) {
        /* A schema event that carries no seq of its own cannot say where
         * the stream stood; the change before it can. */
        verdict = LINE_WITHOUT_POSITION;
        goto done;
    }
    /* seq 0 is a non-transactional message's (README, "Logical decoding
     * messages"); changes start at 1. */
    if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
        snprintf(why, whylen, "lacks a valid \"seq\"");
        goto done;
    }
    pos->seq = (uint64_t)json_integer_value(seq);
    verdict = LINE_HAS_POSITION;
done:
    json_decref(obj);
    return verdict;
}

/* The offset of the '\n' ending the last complete line, or -1 when the file
 * holds none; what follows it is a torn line. */
static bool find_last_line_end(int fd, const char *path, file_tail *tail,
                               off_t *line_end, file_error *err)
{
    char last;

    if (!read_exactly(fd, path, &last, 1, tail->size - 1, err))
        return false;
    if (last == '\n') {
        *line_end = tail->size - 1;
        return true;
    }
    if (!find_newline_before(fd, path, tail->size - 1, line_end, err))
        return false;
    tail->torn_bytes = tail->size - (*line_end + 1);
    return true;
}

bool file_tail_read(int fd, const char *path, file_tail *tail, file_error *err)
{
    struct stat st;
    off_t line_end;

    memset(tail, 0, sizeof *tail);
    if (fstat(fd, &st) != 0)
        return file_fail(err, errno, "cannot stat \"%s\": %s", path,
                         strerror(errno));
    /* Devices and pipes have no tail to read back. */
    if (!S_ISREG(st.st_mode) || st.st_size == 0)
        return true;
    tail->size = st.st_size;
    if (!find_last_line_end(fd, path, tail, &line_end, err))
        return false;

    while (line_end >= 0) {
        off_t newline, start;
        size_t len;
        char *line;
        char why[256];
        line_verdict verdict;

        if (!find_newline_before(fd, path, line_end, &newline, err))
            return false;
        start = newline + 1;
        len = (size_t)(line_end - start);
        line = xmalloc(len + 1);
        if (!read_exactly(fd, path, line, len, start, err)) {
            free(line);
            return false;
        }
        verdict =
            read_line_position(line, len, &tail->position, why, sizeof why);
        free(line);
        if (verdict == LINE_INVALID)
            return file_fail(err, 0, "\"%s\": the line at offset %lld %s", path,
                             (long long)start, why);
        if (verdict == LINE_HAS_POSITION) {
            tail->has_position = true;
            tail->position_line = start;
            return true;
        }
        line_end = newline;
    }
    return true;
}

bool file_tail_cut(int fd, const char *path, bool sync, file_tail *tail,
                   file_error *err)
{
    off_t keep = tail->size - tail->torn_bytes;

    if (tail->torn_bytes == 0)
        return true;
    if (ftruncate(fd, keep) != 0)
        return file_fail(err, errno, "cannot truncate \"%s\" to %lld bytes: %s",
                         path, (long long)keep, strerror(errno));
    if (sync && fsync(fd) != 0)
        return file_fail(err, errno, "cannot fsync \"%s\": %s", path,
                         strerror(errno));
    tail->size = keep;
    return true;
}

bool file_tail_repair(int fd, const char *path, bool sync, file_tail *tail,
                      file_error *err)
{
    if (file_tail_read(fd, path, tail, err))
        return file_tail_cut(fd, path, sync, tail, err);
    if (err->errnum == 0) {
        size_t used = strlen(err->message);

        snprintf(err->message + used, sizeof err->message - used,
                 "; refusing to append after data that is not a pgspout "
                 "event");
    }
    return false;
}

void file_split_path(const char *path, char **dir, const char **base)
{
    const char *slash = strrchr(path, '/');

    if (!slash) {
        *dir = xstrdup(".");
        *base = path;
    } else if (slash == path) {
        *dir = xstrdup("/");
        *base = slash + 1;
    } else {
        *dir = xstrndup(path, (size_t)(slash - path));
        *base = slash + 1;
    }
}

DIR *file_open_parent_dir(const char *path, char **dir, const char **base,
                          file_error *err)
{
    file_split_path(path, dir, base);
    DIR *d = opendir(*dir);
    if (!d) {
        file_fail(err, errno, "cannot list directory \"%s\": %s", *dir,
                  strerror(errno));
        free(*dir);
        *dir = NULL;
    }
    return d;
}

bool file_rotation_last(const char *path, uint64_t *last, file_error *err)
{
    char *dir;
    const char *base;
    size_t base_len;
    DIR *d;
    struct dirent *entry;

    *last = 0;
    d = file_open_parent_dir(path, &dir, &base, err);
    if (!d)
        return false;
    base_len = strlen(base);
    while ((entry = readdir(d)) != NULL) {
        const char *suffix;
        size_t digits;
        uint64_t n;

        if (strncmp(entry->d_name, base, base_len) != 0 ||
            entry->d_name[base_len] != '.')
            continue;
        suffix = entry->d_name + base_len + 1;
        digits = strspn(suffix, "0123456789");
        if (digits < 6 || digits > 19 || suffix[digits] != '\0')
            continue;
        n = strtoull(suffix, NULL, 10);
        if (n > *last)
            *last = n;
    }
    closedir(d);
    free(dir);
    return true;
}

char *file_rotation_name(const char *path, uint64_t n)
{
    return xasprintf("%s.%06" PRIu64, path, n);
}

bool file_sync_parent_dir(const char *path, file_error *err)
{
    char *dir;
    const char *base;
    int fd;
    bool ok = true;

    file_split_path(path, &dir, &base);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        ok = file_fail(err, errno, "cannot open directory \"%s\": %s", dir,
                       strerror(errno));
    else if (fsync(fd) != 0)
        ok = file_fail(err, errno, "cannot fsync directory \"%s\": %s", dir,
                       strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return ok;
}
