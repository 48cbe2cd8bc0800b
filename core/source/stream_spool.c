#include "stream_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "strbuf.h"

/* Each change is kept as a header (its length and WAL position, in this
 * machine's byte order: the files never outlive the process) and then its
 * bytes. */
#define HEADER_BYTES (sizeof(uint32_t) + sizeof(uint64_t))

/* Where a subtransaction's first change is, as an offset into the
 * transaction (file bytes first, then memory bytes). */
typedef struct subxact_mark {
    uint32_t xid;
    uint64_t offset;
} subxact_mark;

typedef struct spool_txn {
    uint32_t top;
    uint64_t oldest; /* WAL position of the first change; UINT64_MAX: none */
    int fd;          /* -1 until the transaction first spills */
    char *path;
    uint64_t file_bytes;
    strbuf mem; /* the changes after the file's */
    subxact_mark *subs;
    size_t nsubs, subs_cap;
    uint32_t last_xid; /* the xid of the latest change: marks are rare */
} spool_txn;

struct stream_spool {
    char *dir;
    uint64_t limit;
    uint64_t mem_bytes; /* the allocations of every open mem buffer */
    spool_txn **txns;
    size_t ntxns, cap;
    spool_txn *replay;
    uint64_t replay_pos;
    /* The replayed transaction's file is read ahead into this buffer, a
     * chunk at a time: one read per change (two, with its header) cost a
     * quarter of a replay's time in system calls. */
    char *ahead;
    uint64_t ahead_at; /* file offset of ahead[0] */
    size_t ahead_len;  /* READ_AHEAD_BYTES allocated, while replaying */
};

#define READ_AHEAD_BYTES (1u << 20)

#define SPILL_PREFIX "xid-"
#define SPILL_SUFFIX ".spill"

/* ---- the directory ---- */

/* Whether name is a spill file of a process that is gone. */
static bool is_orphan_spill(const char *name)
{
    unsigned xid;
    long pid;
    char suffix[16];
    if (sscanf(name, SPILL_PREFIX "%u-%ld%15s", &xid, &pid, suffix) != 3 ||
        strcmp(suffix, SPILL_SUFFIX) != 0 || pid <= 0)
        return false;
    return pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* The files a crashed run left behind: their transactions were never
 * confirmed, so the server sends them again. */
static void remove_orphans(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!is_orphan_spill(de->d_name))
            continue;
        strbuf path = STRBUF_INIT;
        sbuf_appendf(&path, "%s/%s", dir, de->d_name);
        unlink(path.data);
        sbuf_free(&path);
    }
    closedir(d);
}

stream_spool *stream_spool_new(const char *dir, uint64_t memory_limit)
{
    stream_spool *sp = xcalloc(1, sizeof *sp);
    sp->dir = xstrdup(dir);
    sp->limit = memory_limit;
    remove_orphans(dir);
    return sp;
}

static void txn_free(stream_spool *sp, spool_txn *t)
{
    if (t->fd >= 0) {
        close(t->fd);
        unlink(t->path);
    }
    sp->mem_bytes -= t->mem.cap;
    sbuf_free(&t->mem);
    free(t->path);
    free(t->subs);
    free(t);
}

void stream_spool_free(stream_spool *sp)
{
    if (!sp)
        return;
    for (size_t i = 0; i < sp->ntxns; i++)
        txn_free(sp, sp->txns[i]);
    if (sp->replay)
        txn_free(sp, sp->replay);
    free(sp->ahead);
    /* Only when empty: never anything but pgspout's own files. */
    rmdir(sp->dir);
    free(sp->txns);
    free(sp->dir);
    free(sp);
}

/* ---- open transactions ---- */

static size_t find_index(const stream_spool *sp, uint32_t top)
{
    for (size_t i = 0; i < sp->ntxns; i++)
        if (sp->txns[i]->top == top)
            return i;
    return sp->ntxns;
}

static spool_txn *find_or_add(stream_spool *sp, uint32_t top)
{
    size_t i = find_index(sp, top);
    if (i < sp->ntxns)
        return sp->txns[i];
    if (sp->ntxns == sp->cap) {
        sp->cap = sp->cap ? 2 * sp->cap : 8;
        sp->txns = xrealloc(sp->txns, sp->cap * sizeof *sp->txns);
    }
    spool_txn *t = xcalloc(1, sizeof *t);
    t->top = top;
    t->fd = -1;
    t->oldest = UINT64_MAX;
    t->last_xid = top;
    sp->txns[sp->ntxns++] = t;
    return t;
}

/* Takes top out of the open transactions (NULL when it has none). */
static spool_txn *detach(stream_spool *sp, uint32_t top)
{
    size_t i = find_index(sp, top);
    if (i == sp->ntxns)
        return NULL;
    spool_txn *t = sp->txns[i];
    sp->txns[i] = sp->txns[--sp->ntxns];
    return t;
}

static void note_subxact(spool_txn *t, uint32_t xid)
{
    if (xid == t->last_xid)
        return;
    t->last_xid = xid;
    for (size_t i = 0; i < t->nsubs; i++)
        if (t->subs[i].xid == xid)
            return;
    if (t->nsubs == t->subs_cap) {
        t->subs_cap = t->subs_cap ? 2 * t->subs_cap : 4;
        t->subs = xrealloc(t->subs, t->subs_cap * sizeof *t->subs);
    }
    t->subs[t->nsubs++] =
        (subxact_mark){.xid = xid, .offset = t->file_bytes + t->mem.len};
}

/* ---- spilling ---- */

static bool fail_errno(char *err, size_t errlen, const char *what,
                       const char *path)
{
    snprintf(err, errlen, "streamed transactions: cannot %s %s: %s (spill_dir)",
             what, path, strerror(errno));
    return false;
}

static bool open_spill_file(stream_spool *sp, spool_txn *t, char *err,
                            size_t errlen)
{
    if (mkdir(sp->dir, 0700) != 0 && errno != EEXIST)
        return fail_errno(err, errlen, "create directory", sp->dir);
    strbuf path = STRBUF_INIT;
    sbuf_appendf(&path, "%s/" SPILL_PREFIX "%u-%ld" SPILL_SUFFIX, sp->dir,
                 (unsigned)t->top, (long)getpid());
    t->path = sbuf_detach(&path);
    t->fd = open(t->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (t->fd < 0)
        return fail_errno(err, errlen, "create spill file", t->path);
    return true;
}

static bool write_at_end(stream_spool *sp, spool_txn *t, const void *data,
                         size_t len, char *err, size_t errlen)
{
    if (t->fd < 0 && !open_spill_file(sp, t, err, errlen))
        return false;
    if (lseek(t->fd, (off_t)t->file_bytes, SEEK_SET) < 0 ||
        !write_all(t->fd, data, len))
        return fail_errno(err, errlen, "write spill file", t->path);
    t->file_bytes += len;
    return true;
}

/* Moves t's in-memory changes to the end of its file, freeing them. */
static bool spill_txn(stream_spool *sp, spool_txn *t, char *err, size_t errlen)
{
    if (t->mem.len > 0 &&
        !write_at_end(sp, t, t->mem.data, t->mem.len, err, errlen))
        return false;
    sp->mem_bytes -= t->mem.cap;
    sbuf_free(&t->mem);
    return true;
}

/* Spills the largest in-memory transactions until all fit the limit. */
static bool enforce_limit(stream_spool *sp, char *err, size_t errlen)
{
    while (sp->mem_bytes > sp->limit) {
        spool_txn *largest = NULL;
        for (size_t i = 0; i < sp->ntxns; i++)
            if (!largest || sp->txns[i]->mem.cap > largest->mem.cap)
                largest = sp->txns[i];
        if (!largest || largest->mem.cap == 0)
            return true;
        if (!spill_txn(sp, largest, err, errlen))
            return false;
    }
    return true;
}

bool stream_spool_append(stream_spool *sp, uint32_t top, uint32_t xid,
                         uint64_t wal_start, const char *data, size_t len,
                         char *err, size_t errlen)
{
    spool_txn *t = find_or_add(sp, top);
    note_subxact(t, xid);
    if (t->oldest == UINT64_MAX)
        t->oldest = wal_start;
    char header[HEADER_BYTES];
    uint32_t len32 = (uint32_t)len;
    memcpy(header, &len32, sizeof len32);
    memcpy(header + sizeof len32, &wal_start, sizeof wal_start);
    /* A change larger than the whole budget goes straight to the file
     * (after the changes kept before it, to keep their order). */
    if (HEADER_BYTES + len > sp->limit)
        return spill_txn(sp, t, err, errlen) &&
               write_at_end(sp, t, header, HEADER_BYTES, err, errlen) &&
               write_at_end(sp, t, data, len, err, errlen);
    size_t cap_before = t->mem.cap;
    sbuf_append(&t->mem, header, HEADER_BYTES);
    sbuf_append(&t->mem, data, len);
    sp->mem_bytes += t->mem.cap - cap_before;
    return enforce_limit(sp, err, errlen);
}

/* ---- aborts ---- */

/* Keeps only t's first `offset` bytes of changes. */
static bool truncate_txn(stream_spool *sp, spool_txn *t, uint64_t offset,
                         char *err, size_t errlen)
{
    if (offset >= t->file_bytes) {
        sbuf_truncate(&t->mem, (size_t)(offset - t->file_bytes));
        return true;
    }
    sp->mem_bytes -= t->mem.cap;
    sbuf_free(&t->mem);
    if (ftruncate(t->fd, (off_t)offset) != 0)
        return fail_errno(err, errlen, "truncate spill file", t->path);
    t->file_bytes = offset;
    return true;
}

bool stream_spool_abort(stream_spool *sp, uint32_t top, uint32_t subxid,
                        char *err, size_t errlen)
{
    if (subxid == top) {
        spool_txn *t = detach(sp, top);
        if (t)
            txn_free(sp, t);
        return true;
    }
    size_t i = find_index(sp, top);
    if (i == sp->ntxns)
        return true;
    spool_txn *t = sp->txns[i];
    for (size_t k = 0; k < t->nsubs; k++) {
        if (t->subs[k].xid != subxid)
            continue;
        uint64_t offset = t->subs[k].offset;
        /* Marks after it are its own subtransactions' (or later ones
         * nested in it): gone with it. */
        t->nsubs = k;
        t->last_xid = top;
        if (offset == 0)
            t->oldest = UINT64_MAX;
        return truncate_txn(sp, t, offset, err, errlen);
    }
    return true;
}

/* ---- state ---- */

uint64_t stream_spool_oldest(const stream_spool *sp)
{
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < sp->ntxns; i++)
        if (sp->txns[i]->oldest < oldest)
            oldest = sp->txns[i]->oldest;
    return oldest;
}

size_t stream_spool_open_count(const stream_spool *sp)
{
    return sp->ntxns;
}

uint64_t stream_spool_memory(const stream_spool *sp)
{
    return sp->mem_bytes;
}

/* ---- replay ---- */

void stream_spool_replay_start(stream_spool *sp, uint32_t top)
{
    sp->replay = detach(sp, top);
    sp->replay_pos = 0;
    sp->ahead_len = 0;
}

static bool read_exact(spool_txn *t, uint64_t at, void *buf, size_t len,
                       size_t *got, char *err, size_t errlen)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n =
            pread(t->fd, (char *)buf + done, len - done, (off_t)(at + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_errno(err, errlen, "read spill file", t->path);
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return true;
}

/* Reads exactly len bytes at offset at into buf. */
static bool read_whole(spool_txn *t, uint64_t at, void *buf, size_t len,
                       char *err, size_t errlen)
{
    size_t got;
    if (!read_exact(t, at, buf, len, &got, err, errlen))
        return false;
    if (got == len)
        return true;
    errno = EIO; /* the file is shorter than what was written to it */
    return fail_errno(err, errlen, "read spill file", t->path);
}

/* Fills the read-ahead buffer from offset at (len <= READ_AHEAD_BYTES):
 * as much as it holds and the file has. */
static bool read_ahead(stream_spool *sp, spool_txn *t, uint64_t at, size_t len,
                       char *err, size_t errlen)
{
    size_t want = READ_AHEAD_BYTES;
    if (want > t->file_bytes - at)
        want = (size_t)(t->file_bytes - at);
    if (!sp->ahead)
        sp->ahead = xmalloc(READ_AHEAD_BYTES);
    sp->ahead_at = at;
    sp->ahead_len = 0;
    if (want < len)
        want = len; /* read_whole then reports the short file */
    if (!read_whole(t, at, sp->ahead, want, err, errlen))
        return false;
    sp->ahead_len = want;
    return true;
}

/* Reads len bytes of the replayed transaction at offset, from its file
 * (through the read-ahead buffer) or memory. A change lies wholly in one
 * of them: changes move to the file whole. */
static bool read_bytes(stream_spool *sp, uint64_t at, void *buf, size_t len,
                       char *err, size_t errlen)
{
    spool_txn *t = sp->replay;
    if (at >= t->file_bytes) {
        memcpy(buf, t->mem.data + (at - t->file_bytes), len);
        return true;
    }
    bool buffered = sp->ahead_len > 0 && at >= sp->ahead_at &&
                    at + len <= sp->ahead_at + sp->ahead_len;
    /* A change larger than the buffer is read straight where it goes. */
    if (!buffered && len > READ_AHEAD_BYTES)
        return read_whole(t, at, buf, len, err, errlen);
    if (!buffered && !read_ahead(sp, t, at, len, err, errlen))
        return false;
    memcpy(buf, sp->ahead + (at - sp->ahead_at), len);
    return true;
}

int stream_spool_replay_next(stream_spool *sp, uint64_t *wal_start, char **data,
                             size_t *len, char *err, size_t errlen)
{
    spool_txn *t = sp->replay;
    if (!t || sp->replay_pos >= t->file_bytes + t->mem.len) {
        if (t)
            txn_free(sp, t);
        sp->replay = NULL;
        free(sp->ahead);
        sp->ahead = NULL;
        sp->ahead_len = 0;
        return 0;
    }
    char header[HEADER_BYTES];
    uint32_t len32;
    if (!read_bytes(sp, sp->replay_pos, header, HEADER_BYTES, err, errlen))
        return -1;
    memcpy(&len32, header, sizeof len32);
    memcpy(wal_start, header + sizeof len32, sizeof *wal_start);
    *data = xmalloc(len32 ? len32 : 1);
    if (!read_bytes(sp, sp->replay_pos + HEADER_BYTES, *data, len32, err,
                    errlen)) {
        free(*data);
        *data = NULL;
        return -1;
    }
    *len = len32;
    sp->replay_pos += HEADER_BYTES + len32;
    return 1;
}
