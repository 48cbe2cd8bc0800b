/* What the stream saw of one chunk's table between the chunk's low and
 * high watermarks, and which of the chunk's rows that makes stale.
 *
 * From the low watermark on, every change of the table is noted by its
 * chunk key (the key columns' text, as pgoutput and COPY both print it)
 * and the transaction that made it. At the high watermark, a row of the
 * chunk is stale when a transaction that committed before the high
 * watermark and that the chunk's snapshot did not see changed its key:
 * the stream carries that newer version, so the row is dropped. Rows that
 * only transactions the snapshot saw changed are kept: the read includes
 * those changes, and comes after them. A row dropped because such a
 * transaction's update left it without some values (unchanged TOAST) is
 * to be read again at its key, in a chunk of keys after this one: no
 * event gives a sink those values. A change that names no key (a
 * truncate, a key the tuple does not carry) by such a transaction makes
 * the whole chunk stale: it is read again. */
#ifndef PGSPOUT_BACKFILL_WINDOW_H
#define PGSPOUT_BACKFILL_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backfill_state.h"
#include "strbuf.h"

/* pg_current_snapshot(): xmin:xmax:xip,... (64-bit xids). */
typedef struct bf_snapshot {
    uint64_t xmin, xmax;
    uint64_t *xip;
    size_t nxip;
} bf_snapshot;

bool bf_snapshot_parse(const char *text, bf_snapshot *s);
void bf_snapshot_clear(bf_snapshot *s);

/* Whether a committed transaction (its 32-bit xid, as pgoutput sends it)
 * was not visible to the snapshot: in progress when it was taken, or
 * started after. */
bool bf_snapshot_invisible(const bf_snapshot *s, uint32_t xid);

/* A chunk key as the notes compare it: each column's text with its
 * length in front, so that no two keys encode alike. */
void bf_key_encode_column(strbuf *out, const char *value, size_t len);
/* An encoded key's columns back as text; false (out untouched) when the
 * bytes are not an encoding. */
bool bf_key_decode(const char *key, size_t len, bf_key *out);

typedef struct bf_notes bf_notes;

/* Notes a window keeps at most (memory stays bounded whatever the load);
 * a window that would need more makes its chunk stale: it is read again,
 * smaller, so that its window is shorter. */
#define BF_NOTES_MAX 500000

bf_notes *bf_notes_new(void);
/* With another limit than BF_NOTES_MAX (for tests). */
bf_notes *bf_notes_new_max(size_t max);
void bf_notes_free(bf_notes *n);

/* How a change left the row at a key (flags of bf_notes_add). */
enum {
    /* Its event lacks some of the row's values there (an update that left
     * a TOASTed column unchanged). */
    BF_NOTE_PARTIAL = 1,
    /* An update moved the row there from another key. */
    BF_NOTE_MOVED_IN = 2,
};

/* A change of the row with this (encoded) key by transaction xid. */
void bf_notes_add(bf_notes *n, const char *key, size_t len, uint32_t xid,
                  unsigned flags);
/* A change by xid that may have touched any row (a truncate, or a change
 * whose key cannot be told). */
void bf_notes_any_row(bf_notes *n, uint32_t xid);
size_t bf_notes_count(const bf_notes *n);

typedef struct bf_drops bf_drops;

/* The keys whose rows the chunk read with snapshot s must drop; NULL with
 * *stale set when the whole chunk must be read again. */
bf_drops *bf_notes_drops(const bf_notes *n, const bf_snapshot *s, bool *stale);

/* The latest commits before a low watermark. PostgreSQL makes a commit
 * visible slightly after writing its record (and only once synchronous
 * standbys answered): one written just before the low watermark can still
 * be in progress for the chunk's snapshot, and its changes, which precede
 * the window, are noted by nothing, so the chunk would send a row's older
 * version after them. A chunk whose snapshot does not see one of them is
 * read again. */
#define BF_RECENT_COMMITS 1024

typedef struct bf_recent {
    uint32_t xid[BF_RECENT_COMMITS];
    size_t next;   /* where the next one goes */
    uint64_t seen; /* commits added since it was cleared */
} bf_recent;

void bf_recent_clear(bf_recent *r);
void bf_recent_add(bf_recent *r, uint32_t xid);
/* The xids it holds (at most BF_RECENT_COMMITS, newly allocated; NULL
 * when none) into *n. */
uint32_t *bf_recent_copy(const bf_recent *r, size_t *n);
/* Whether one of them is not visible to the snapshot. */
bool bf_recent_unseen(const uint32_t *xids, size_t n, const bf_snapshot *s);
bool bf_drops_contains(const bf_drops *d, const char *key, size_t len);
size_t bf_drops_count(const bf_drops *d);
/* Whether the dropped row at that key must be read again: a change the
 * snapshot did not see left it there without some of its values. */
bool bf_drops_reread(const bf_drops *d, const char *key, size_t len);
/* How many keys are to be read again (at most; rows the chunk did not
 * read need none). */
size_t bf_drops_reread_count(const bf_drops *d);
/* The keys such changes moved rows to, one per call from *pos (0 at
 * first); false after the last. The chunk's snapshot has no row there,
 * yet the row may now be in the chunk's range. */
bool bf_drops_next_moved_in(const bf_drops *d, size_t *pos, const char **key,
                            size_t *len);
void bf_drops_free(bf_drops *d);

#endif
