#include "backfill_spill.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"

#define SPILL_WRITE_BYTES (1u << 20)
#define SPILL_READ_BYTES (1u << 20)

/* ---- COPY text format ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the escape after a backslash at src[*i] (src[*i] is the char
 * after it); returns the byte and advances *i past the escape. */
static char unescape_at(const char *src, size_t len, size_t *i)
{
    char c = src[(*i)++];
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'v':
        return '\v';
    case 'x': {
        int v = 0, digits = 0;
        while (digits < 2 && *i < len && hex_value(src[*i]) >= 0)
            v = v * 16 + hex_value(src[(*i)++]), digits++;
        return digits ? (char)v : 'x';
    }
    default:
        if (c >= '0' && c <= '7') {
            int v = c - '0', digits = 1;
            while (digits < 3 && *i < len && src[*i] >= '0' && src[*i] <= '7')
                v = v * 8 + (src[(*i)++] - '0'), digits++;
            return (char)v;
        }
        return c; /* \\ and any other escaped character stand for it */
    }
}

/* One field starting at line[*pos]: its unescaped bytes are written to
 * out (which may be line itself: writing never gets ahead of reading) and
 * counted; *pos is left after the field, *more tells whether a tab (and so
 * another field) follows. */
static size_t take_field(const char *line, size_t len, size_t *pos, char *out,
                         bool *is_null, bool *more)
{
    size_t i = *pos, n = 0;
    *is_null = i + 2 <= len && line[i] == '\\' && line[i + 1] == 'N' &&
               (i + 2 == len || line[i + 2] == '\t');
    const char *tab = *is_null ? NULL : memchr(line + i, '\t', len - i);
    size_t end = tab ? (size_t)(tab - line) : len;
    if (*is_null) {
        i += 2;
    } else if (!memchr(line + i, '\\', end - i)) {
        /* Most fields have no escape: copied whole (in place: not at all). */
        n = end - i;
        if (out && out != line + i)
            memmove(out, line + i, n);
        i = end;
    } else {
        while (i < len && line[i] != '\t') {
            char c = line[i++];
            if (c == '\\' && i < len)
                c = unescape_at(line, len, &i);
            if (out)
                out[n] = c;
            n++;
        }
    }
    *more = i < len;
    *pos = *more ? i + 1 : i;
    return n;
}

/* A line without a backslash has no escape and no NULL: its fields are
 * what lies between the tabs. */
static bool split_plain_line(char *line, size_t len, colval *cols, int ncols)
{
    size_t pos = 0;
    bool more = true;
    for (int c = 0; c < ncols; c++) {
        if (!more)
            return false; /* fewer fields */
        const char *tab = memchr(line + pos, '\t', len - pos);
        size_t end = tab ? (size_t)(tab - line) : len;
        cols[c].kind = COLVAL_TEXT;
        cols[c].data = line + pos;
        cols[c].len = (uint32_t)(end - pos);
        more = tab != NULL;
        pos = more ? end + 1 : end;
    }
    return !more; /* no field beyond ncols */
}

bool bf_copy_parse_line(char *line, size_t len, colval *cols, int ncols)
{
    if (!memchr(line, '\\', len))
        return split_plain_line(line, len, cols, ncols);
    size_t pos = 0;
    bool more = true;
    for (int c = 0; c < ncols; c++) {
        if (!more)
            return false;
        bool is_null;
        char *out = line + pos;
        size_t n = take_field(line, len, &pos, out, &is_null, &more);
        cols[c].kind = is_null ? COLVAL_NULL : COLVAL_TEXT;
        cols[c].data = is_null ? NULL : out;
        cols[c].len = (uint32_t)n;
    }
    return !more;
}

bool bf_copy_field(const char *line, size_t len, int index, strbuf *out)
{
    size_t pos = 0;
    bool more = true, is_null = false;
    for (int c = 0; c < index; c++) {
        if (!more)
            return false;
        take_field(line, len, &pos, NULL, &is_null, &more);
    }
    if (!more)
        return false;
    size_t start = pos;
    size_t n = take_field(line, len, &pos, NULL, &is_null, &more);
    if (is_null)
        return false;
    sbuf_reserve(out, n + 1);
    pos = start;
    take_field(line, len, &pos, out->data + out->len, &is_null, &more);
    out->len += n;
    out->data[out->len] = '\0';
    return true;
}

/* ---- writing ---- */

/* The disk starts on each piece as soon as it is written, rather than on
 * the whole chunk at bf_spill_finish's fsync: the worker waits there
 * before the chunk's high watermark, the server idle meanwhile, and then
 * finds only the last piece still to write. A hint: a write error shows
 * at the fsync. */
static void start_writeback(bf_spill_writer *w, size_t len)
{
#ifdef SYNC_FILE_RANGE_WRITE
    /* A piece's file is removed once taken: never worth a disk write. */
    if (!w->piece)
        (void)sync_file_range(w->fd, (off_t)w->written, (off_t)len,
                              SYNC_FILE_RANGE_WRITE);
#endif
    w->written += len;
}

static bool flush_buffer(bf_spill_writer *w, char *err, size_t errlen)
{
    if (w->buf.len && !write_all(w->fd, w->buf.data, w->buf.len)) {
        snprintf(err, errlen, "cannot write %s: %s", w->path, strerror(errno));
        return false;
    }
    start_writeback(w, w->buf.len);
    sbuf_reset(&w->buf);
    return true;
}

bool bf_spill_create(bf_spill_writer *w, const char *path, const char *header,
                     char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return false;
    }
    w->path = xstrdup(path);
    w->piece = header == NULL;
    if (header) {
        sbuf_append_str(&w->buf, header);
        sbuf_append_char(&w->buf, '\n');
    }
    return true;
}

bool bf_spill_append(bf_spill_writer *w, const char *line, size_t len,
                     char *err, size_t errlen)
{
    sbuf_append(&w->buf, line, len);
    w->rows++;
    return w->buf.len < SPILL_WRITE_BYTES || flush_buffer(w, err, errlen);
}

/* Copies the piece's bytes [*from, len) to the end of w the plain way
 * (copy_file_range refused: another file system, an old kernel). */
static bool copy_by_hand(bf_spill_writer *w, bf_spill_writer *piece,
                         off_t *from, off_t len, char *err, size_t errlen)
{
    char *buf = xmalloc(SPILL_WRITE_BYTES);
    bool ok = true;
    while (ok && *from < len) {
        size_t want = (size_t)(len - *from) < SPILL_WRITE_BYTES
                          ? (size_t)(len - *from)
                          : SPILL_WRITE_BYTES;
        ssize_t n = pread(piece->fd, buf, want, *from);
        ok = n > 0 && write_all(w->fd, buf, (size_t)n);
        if (ok)
            *from += n;
        else
            snprintf(err, errlen, "cannot copy %s to %s: %s", piece->path,
                     w->path,
                     n == 0 ? "file shorter than written" : strerror(errno));
    }
    free(buf);
    return ok;
}

static bool copy_piece(bf_spill_writer *w, bf_spill_writer *piece, char *err,
                       size_t errlen)
{
    off_t from = 0, len = (off_t)piece->written;
    while (from < len) {
        ssize_t n = copy_file_range(piece->fd, &from, w->fd, NULL,
                                    (size_t)(len - from), 0);
        if (n > 0)
            continue;
        if (n < 0 && errno != EXDEV && errno != ENOSYS && errno != EINVAL &&
            errno != EOPNOTSUPP) {
            snprintf(err, errlen, "cannot copy %s to %s: %s", piece->path,
                     w->path, strerror(errno));
            return false;
        }
        if (!copy_by_hand(w, piece, &from, len, err, errlen))
            return false;
    }
    start_writeback(w, (size_t)len);
    return true;
}

bool bf_spill_take(bf_spill_writer *w, bf_spill_writer *piece, char *err,
                   size_t errlen)
{
    bool ok = flush_buffer(w, err, errlen) &&
              flush_buffer(piece, err, errlen) &&
              copy_piece(w, piece, err, errlen);
    if (ok)
        w->rows += piece->rows;
    bf_spill_abandon(piece);
    return ok;
}

bool bf_spill_finish(bf_spill_writer *w, char *err, size_t errlen)
{
    bool ok = flush_buffer(w, err, errlen);
    if (ok && fsync(w->fd) != 0) {
        snprintf(err, errlen, "cannot fsync %s: %s", w->path, strerror(errno));
        ok = false;
    }
    if (close(w->fd) != 0 && ok) {
        snprintf(err, errlen, "cannot close %s: %s", w->path, strerror(errno));
        ok = false;
    }
    w->fd = -1;
    if (!ok)
        unlink(w->path);
    free(w->path);
    sbuf_free(&w->buf);
    w->path = NULL;
    return ok;
}

void bf_spill_abandon(bf_spill_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->path)
        unlink(w->path);
    free(w->path);
    sbuf_free(&w->buf);
    memset(w, 0, sizeof *w);
    w->fd = -1;
}

/* ---- reading ---- */

/* Makes room after the unread bytes (moved to the front; the buffer grows
 * only for a row longer than it) and reads what follows. Returns false on
 * a read error. */
static bool fill(bf_spill_reader *r)
{
    size_t unread = r->end - r->start;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, unread);
        r->start = 0;
        r->end = unread;
    }
    if (r->end == r->cap) {
        r->cap *= 2;
        r->buf = xrealloc(r->buf, r->cap);
    }
    ssize_t n;
    do
        n = read(r->fd, r->buf + r->end, r->cap - r->end);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return false;
    r->end += (size_t)n;
    r->at_eof = n == 0;
    return true;
}

/* The next line, newline included, at r->buf + r->start: its length, 0 at
 * the end of the file, -1 on a read error (errno) or a last line without
 * its newline (errno 0). */
static ssize_t next_line(bf_spill_reader *r)
{
    size_t scanned = 0;
    for (;;) {
        const char *from = r->buf + r->start + scanned;
        const char *nl = memchr(from, '\n', r->end - r->start - scanned);
        if (nl)
            return nl + 1 - (r->buf + r->start);
        if (r->at_eof) {
            errno = 0;
            return r->end == r->start ? 0 : -1;
        }
        scanned = r->end - r->start;
        if (!fill(r))
            return -1;
    }
}

bool bf_spill_open(bf_spill_reader *r, const char *path, char **header,
                   char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    *header = NULL;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return false;
    }
    r->path = xstrdup(path);
    /* Rows are taken from a megabyte read at a time. */
    r->cap = SPILL_READ_BYTES;
    r->buf = xmalloc(r->cap);
    ssize_t n = next_line(r);
    if (n <= 0) {
        if (n < 0 && errno != 0)
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        else
            snprintf(err, errlen, "%s: no header line", path);
        bf_spill_close(r);
        return false;
    }
    *header = xmalloc((size_t)n);
    memcpy(*header, r->buf + r->start, (size_t)n - 1);
    (*header)[n - 1] = '\0';
    r->start += (size_t)n;
    return true;
}

int bf_spill_next(bf_spill_reader *r, int ncols, colval **cols, arena *mem,
                  char *err, size_t errlen)
{
    *cols = NULL;
    ssize_t n = next_line(r);
    if (n == 0)
        return 0;
    if (n < 0 && errno != 0) {
        snprintf(err, errlen, "cannot read %s: %s", r->path, strerror(errno));
        return -1;
    }
    /* One block holds the values and the text they point into, freed with
     * the batch the row's event is in. */
    size_t values = (size_t)ncols * sizeof(colval);
    colval *block = n <= 0 ? NULL : arena_alloc(mem, values + (size_t)n);
    char *text = (char *)block + values;
    if (block) {
        memcpy(text, r->buf + r->start, (size_t)n);
        r->start += (size_t)n;
    }
    if (!block || !bf_copy_parse_line(text, (size_t)n - 1, block, ncols)) {
        snprintf(err, errlen, "%s: a row that does not parse (file torn?)",
                 r->path);
        if (block)
            arena_undo(mem, block);
        return -1;
    }
    *cols = block;
    return 1;
}

void bf_spill_close(bf_spill_reader *r)
{
    if (r->path) /* opened (a reader never opened is all zeros) */
        close(r->fd);
    free(r->path);
    free(r->buf);
    memset(r, 0, sizeof *r);
}
