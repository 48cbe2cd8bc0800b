#include "backfill_window.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- snapshots ---- */

static bool parse_xid(const char **p, uint64_t *v)
{
    if (**p < '0' || **p > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(*p, &end, 10);
    if (errno)
        return false;
    *v = x;
    *p = end;
    return true;
}

bool bf_snapshot_parse(const char *text, bf_snapshot *s)
{
    memset(s, 0, sizeof *s);
    const char *p = text;
    if (!p || !parse_xid(&p, &s->xmin) || *p++ != ':' ||
        !parse_xid(&p, &s->xmax) || *p++ != ':')
        return false;
    while (*p) {
        uint64_t x;
        if (!parse_xid(&p, &x) || (*p && *p != ',')) {
            bf_snapshot_clear(s);
            return false;
        }
        if (*p == ',' && !*++p) {
            bf_snapshot_clear(s);
            return false;
        }
        s->xip = xrealloc(s->xip, (s->nxip + 1) * sizeof *s->xip);
        s->xip[s->nxip++] = x;
    }
    return s->xmin <= s->xmax;
}

void bf_snapshot_clear(bf_snapshot *s)
{
    free(s->xip);
    memset(s, 0, sizeof *s);
}

bool bf_snapshot_invisible(const bf_snapshot *s, uint32_t xid)
{
    /* A committed transaction's xid is near xmax: widen it with xmax's
     * epoch, across a wraparound of the 32-bit counter too. */
    int32_t diff = (int32_t)(xid - (uint32_t)s->xmax);
    uint64_t x = (uint64_t)((int64_t)s->xmax + diff);
    if (x >= s->xmax)
        return true;
    if (x < s->xmin)
        return false;
    for (size_t i = 0; i < s->nxip; i++)
        if (s->xip[i] == x)
            return true;
    return false;
}

void bf_key_encode_column(strbuf *out, const char *value, size_t len)
{
    unsigned char prefix[4] = {(unsigned char)(len >> 24),
                               (unsigned char)(len >> 16),
                               (unsigned char)(len >> 8), (unsigned char)len};
    sbuf_append(out, (const char *)prefix, 4);
    sbuf_append(out, value, len);
}

bool bf_key_decode(const char *key, size_t len, bf_key *out)
{
    char **values = NULL;
    size_t n = 0, at = 0;
    bool ok = true;
    while (ok && at < len) {
        const unsigned char *p = (const unsigned char *)key + at;
        ok = len - at >= 4;
        size_t col = ok ? ((size_t)p[0] << 24 | (size_t)p[1] << 16 |
                           (size_t)p[2] << 8 | (size_t)p[3])
                        : 0;
        /* Text from COPY or pgoutput holds no NUL byte. */
        ok = ok && col <= len - at - 4 && memchr(key + at + 4, 0, col) == NULL;
        if (ok) {
            values = xrealloc(values, (n + 1) * sizeof *values);
            values[n++] = xstrndup(key + at + 4, col);
            at += 4 + col;
        }
    }
    ok = ok && n > 0;
    if (ok)
        bf_key_set(out, values, n);
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    free(values);
    return ok;
}

/* ---- a set of byte strings with flags each ---- */

typedef struct entry {
    char *key; /* NULL: free */
    size_t len;
    uint32_t xid;
    unsigned flags; /* BF_NOTE_* */
} entry;

typedef struct table {
    entry *slots;
    size_t cap, used;
} table;

static uint64_t hash_bytes(const char *key, size_t len, uint32_t xid)
{
    uint64_t h = 1469598103934665603ULL ^ xid;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static entry *table_find(table *t, const char *key, size_t len, uint32_t xid,
                         bool create);

static void table_grow(table *t)
{
    table old = *t;
    t->cap = old.cap ? old.cap * 2 : 64;
    t->slots = xcalloc(t->cap, sizeof *t->slots);
    t->used = 0;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.slots[i].key)
            continue;
        entry *e = table_find(t, old.slots[i].key, old.slots[i].len,
                              old.slots[i].xid, true);
        free(e->key);
        *e = old.slots[i];
    }
    free(old.slots);
}

static entry *table_find(table *t, const char *key, size_t len, uint32_t xid,
                         bool create)
{
    if (create && (t->used + 1) * 2 > t->cap)
        table_grow(t);
    if (!t->cap)
        return NULL;
    size_t i = hash_bytes(key, len, xid) % t->cap;
    while (t->slots[i].key) {
        entry *e = &t->slots[i];
        if (e->len == len && e->xid == xid && memcmp(e->key, key, len) == 0)
            return e;
        i = (i + 1) % t->cap;
    }
    if (!create)
        return NULL;
    entry *e = &t->slots[i];
    e->key = xmalloc(len ? len : 1);
    memcpy(e->key, key, len);
    e->len = len;
    e->xid = xid;
    t->used++;
    return e;
}

static void table_free(table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].key);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

/* ---- notes ---- */

struct bf_notes {
    table keys;    /* (key, xid) pairs */
    uint32_t *any; /* transactions that may have changed any row */
    size_t nany;
    size_t max;
    bool full; /* max reached: later changes were not noted */
};

bf_notes *bf_notes_new(void)
{
    return bf_notes_new_max(BF_NOTES_MAX);
}

bf_notes *bf_notes_new_max(size_t max)
{
    bf_notes *n = xcalloc(1, sizeof(bf_notes));
    n->max = max;
    return n;
}

void bf_notes_free(bf_notes *n)
{
    if (!n)
        return;
    table_free(&n->keys);
    free(n->any);
    free(n);
}

void bf_notes_add(bf_notes *n, const char *key, size_t len, uint32_t xid,
                  unsigned flags)
{
    entry *e = table_find(&n->keys, key, len, xid, false);
    if (!e && bf_notes_count(n) >= n->max) {
        n->full = true;
        return;
    }
    if (!e)
        e = table_find(&n->keys, key, len, xid, true);
    e->flags |= flags;
}

void bf_notes_any_row(bf_notes *n, uint32_t xid)
{
    for (size_t i = 0; i < n->nany; i++)
        if (n->any[i] == xid)
            return;
    if (bf_notes_count(n) >= n->max) {
        n->full = true;
        return;
    }
    n->any = xrealloc(n->any, (n->nany + 1) * sizeof *n->any);
    n->any[n->nany++] = xid;
}

size_t bf_notes_count(const bf_notes *n)
{
    return n->keys.used + n->nany;
}

struct bf_drops {
    table keys;    /* xid 0; flags: BF_NOTE_* of the invisible changes */
    size_t reread; /* keys with BF_NOTE_PARTIAL */
};

bf_drops *bf_notes_drops(const bf_notes *n, const bf_snapshot *s, bool *stale)
{
    /* Changes went unnoted: which rows they touched is unknown. */
    *stale = n->full;
    for (size_t i = 0; i < n->nany; i++)
        if (bf_snapshot_invisible(s, n->any[i]))
            *stale = true;
    bf_drops *d = xcalloc(1, sizeof *d);
    for (size_t i = 0; i < n->keys.cap && !*stale; i++) {
        const entry *e = &n->keys.slots[i];
        if (!e->key || !bf_snapshot_invisible(s, e->xid))
            continue;
        entry *k = table_find(&d->keys, e->key, e->len, 0, true);
        /* Its event lacks values the sink may never have had: only a
         * later read can give them. */
        if ((e->flags & BF_NOTE_PARTIAL) && !(k->flags & BF_NOTE_PARTIAL))
            d->reread++;
        k->flags |= e->flags;
    }
    if (*stale) {
        bf_drops_free(d);
        return NULL;
    }
    return d;
}

bool bf_drops_contains(const bf_drops *d, const char *key, size_t len)
{
    return table_find((table *)&d->keys, key, len, 0, false) != NULL;
}

size_t bf_drops_count(const bf_drops *d)
{
    return d->keys.used;
}

bool bf_drops_reread(const bf_drops *d, const char *key, size_t len)
{
    const entry *e = table_find((table *)&d->keys, key, len, 0, false);
    return e && (e->flags & BF_NOTE_PARTIAL);
}

size_t bf_drops_reread_count(const bf_drops *d)
{
    return d->reread;
}

bool bf_drops_next_moved_in(const bf_drops *d, size_t *pos, const char **key,
                            size_t *len)
{
    const unsigned both = BF_NOTE_PARTIAL | BF_NOTE_MOVED_IN;
    for (; *pos < d->keys.cap; (*pos)++) {
        const entry *e = &d->keys.slots[*pos];
        if (e->key && (e->flags & both) == both) {
            *key = e->key;
            *len = e->len;
            (*pos)++;
            return true;
        }
    }
    return false;
}

void bf_drops_free(bf_drops *d)
{
    if (!d)
        return;
    table_free(&d->keys);
    free(d);
}

/* ---- the latest commits ---- */

void bf_recent_clear(bf_recent *r)
{
    memset(r, 0, sizeof *r);
}

void bf_recent_add(bf_recent *r, uint32_t xid)
{
    r->xid[r->next] = xid;
    r->next = (r->next + 1) % BF_RECENT_COMMITS;
    r->seen++;
}

uint32_t *bf_recent_copy(const bf_recent *r, size_t *n)
{
    *n = r->seen < BF_RECENT_COMMITS ? (size_t)r->seen : BF_RECENT_COMMITS;
    if (*n == 0)
        return NULL;
    uint32_t *out = xcalloc(*n, sizeof *out);
    memcpy(out, r->xid, *n * sizeof *out);
    return out;
}

bool bf_recent_unseen(const uint32_t *xids, size_t n, const bf_snapshot *s)
{
    for (size_t i = 0; i < n; i++)
        if (bf_snapshot_invisible(s, xids[i]))
            return true;
    return false;
}
