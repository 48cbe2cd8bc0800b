#include "backfill.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backfill_internal.h"
#include "log.h"
#include "lsn.h"
#include "stats.h"
#include "strbuf.h"

/* Moved keys a table may wait to read, at most; beyond, its copy starts
 * over (memory stays bounded, no row is missed). */
#define BF_MOVED_MAX 10000

/* How long attaching waits for a pgspout that lost the slot to let go of
 * the state directory. */
#define DIR_LOCK_WAIT_MS 10000

/* ---- life ---- */

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

backfill *backfill_new(const backfill_settings *s)
{
    backfill *bf = xcalloc(1, sizeof *bf);
    bf->conninfo = dup_or_null(s->conninfo);
    bf->slot = xstrdup(s->slot);
    bf->publication = xstrdup(s->publication);
    bf->state_dir = dup_or_null(s->state_dir);
    bf->status_schema = xstrdup(s->status_schema ? s->status_schema : "public");
    bf->dbname = dup_or_null(s->dbname);
    bf->chunk_rows = s->chunk_rows > 0 ? s->chunk_rows : 100000;
    bf->nworkers = s->workers > 0 ? s->workers : 1;
    bf->chunk_readers = s->chunk_readers > 0 ? s->chunk_readers : 1;
    bf->max_rows_per_sec = s->max_rows_per_sec;
    bf->lock_fd = -1;
    pthread_mutex_init(&bf->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&bf->changed, &attr);
    pthread_condattr_destroy(&attr);
    stop_init(&bf->worker_stop);
    token_bucket_init(&bf->bucket, bf->max_rows_per_sec, now_us());
    atomic_init(&bf->open_windows, 0);
    return bf;
}

static void window_clear(bf_window *w)
{
    bf_key_clear(&w->keycols);
    bf_notes_free(w->notes);
    free(w->before);
    memset(w, 0, sizeof *w);
}

static void emission_clear(bf_emission *em)
{
    bf_spill_close(&em->reader);
    for (int i = 0; i < em->desc.ncols; i++)
        free(em->cols[i].name);
    free(em->cols);
    free(em->key_index);
    free(em->schema);
    free(em->table);
    bf_drops_free(em->drops);
    bf_moved_clear(&em->reread);
    bf_key_clear(&em->reread_bound);
    bf_key_clear(&em->reread_after);
    memset(em, 0, sizeof *em);
}

static void forget_windows(backfill *bf)
{
    for (size_t i = 0; i < bf->nwindows; i++)
        window_clear(&bf->windows[i]);
    bf->nwindows = 0;
    atomic_store(&bf->open_windows, 0);
    emission_clear(&bf->em);
}

void backfill_free(backfill *bf)
{
    if (!bf)
        return;
    bf_workers_stop(bf);
    forget_windows(bf);
    free(bf->windows);
    for (size_t i = 0; i < bf->ninflight; i++)
        bf_key_clear(&bf->inflight[i].keycols);
    free(bf->inflight);
    for (size_t i = 0; i < bf->ndoomed; i++)
        free(bf->doomed[i]);
    free(bf->doomed);
    bf_state_clear(&bf->st);
    if (bf->have_db) {
        free(bf->db.ctype);
        free(bf->db.locale);
        free(bf->db.encoding);
    }
    if (bf->lock_fd >= 0)
        close(bf->lock_fd);
    pthread_mutex_destroy(&bf->lock);
    pthread_cond_destroy(&bf->changed);
    free(bf->conninfo);
    free(bf->slot);
    free(bf->publication);
    free(bf->state_dir);
    free(bf->status_schema);
    free(bf->dbname);
    free(bf);
}

char *backfill_default_state_dir(const char *slot)
{
    if (geteuid() == 0)
        return xasprintf("/var/lib/pgspout/%s", slot);
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg && xdg[0] == '/')
        return xasprintf("%s/pgspout/%s", xdg, slot);
    const char *home = getenv("HOME");
    if (home && home[0] == '/')
        return xasprintf("%s/.local/state/pgspout/%s", home, slot);
    return NULL;
}

const char *backfill_state_dir(const backfill *bf)
{
    return bf->state_dir;
}

void backfill_follow_database(backfill *bf, const database_ctype *db)
{
    pthread_mutex_lock(&bf->lock);
    if (bf->have_db) {
        free(bf->db.ctype);
        free(bf->db.locale);
        free(bf->db.encoding);
    }
    bf->db.provider = db->provider;
    bf->db.ctype = dup_or_null(db->ctype);
    bf->db.locale = dup_or_null(db->locale);
    bf->db.encoding = dup_or_null(db->encoding);
    bf->have_db = true;
    pthread_mutex_unlock(&bf->lock);
}

/* ---- the state directory ---- */

char *bf_spill_path(const backfill *bf, const char *name)
{
    return xasprintf("%s/%s", bf->state_dir, name);
}

bool bf_save_locked(backfill *bf)
{
    char err[1024];
    if (bf_state_save(bf->state_dir, &bf->st, err, sizeof err))
        return true;
    log_error("%s", err);
    return false;
}

/* mkdir -p, each new directory 0700. */
static bool make_dirs(const char *path, char *err, size_t errlen)
{
    char *copy = xstrdup(path);
    bool ok = true;
    for (char *p = copy + 1; ok; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create state directory %s: %s", copy,
                     strerror(errno));
            ok = false;
        }
        if (end)
            break;
        *p = '/';
    }
    free(copy);
    return ok;
}

/* Only one pgspout uses a state directory; the one holding the slot. A
 * pgspout that just lost the slot may hold it for a moment. */
static bool lock_dir(backfill *bf, char *err, size_t errlen)
{
    char *path = xasprintf("%s/lock", bf->state_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s/lock: %s", bf->state_dir,
                 strerror(errno));
        return false;
    }
    int64_t deadline = now_us() + (int64_t)DIR_LOCK_WAIT_MS * 1000;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (now_us() > deadline || !stop_sleep(&bf->worker_stop, 100)) {
            snprintf(err, errlen,
                     "state directory %s is in use by another pgspout",
                     bf->state_dir);
            close(fd);
            return false;
        }
    }
    bf->lock_fd = fd;
    return true;
}

bool bf_ensure_dir_locked(backfill *bf, char *err, size_t errlen)
{
    if (bf->have_dir)
        return true;
    if (!bf->state_dir) {
        snprintf(err, errlen,
                 "no state directory (set state_dir, or HOME for the "
                 "default)");
        return false;
    }
    if (!make_dirs(bf->state_dir, err, errlen) || !lock_dir(bf, err, errlen))
        return false;
    bf->have_dir = true;
    return true;
}

/* Spill files the state does not name are leftovers of a crash (a
 * chunk's other readers' pieces, TOKEN.N.spill, too). */
static void remove_leftovers(backfill *bf)
{
    DIR *dir = opendir(bf->state_dir);
    if (!dir)
        return;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        bool spill = len > 6 && strcmp(e->d_name + len - 6, ".spill") == 0;
        bf_table *t;
        bf_backfill *b;
        char token[BF_TOKEN_LEN + 1];
        snprintf(token, sizeof token, "%.*s", (int)(len - 6), e->d_name);
        bf_chunk *c = spill ? bf_find_chunk(&bf->st, token, &t, &b) : NULL;
        if (spill && (!c || !c->spill || strcmp(c->spill, e->d_name) != 0)) {
            char *path = bf_spill_path(bf, e->d_name);
            unlink(path);
            free(path);
        }
    }
    closedir(dir);
}

static bool same_identity(const bf_state *st, const char *system_id,
                          const char *database, const char *slot)
{
    return st->system_id && st->database && st->slot &&
           strcmp(st->system_id, system_id) == 0 &&
           strcmp(st->database, database) == 0 && strcmp(st->slot, slot) == 0;
}

static bool load_state_locked(backfill *bf, const char *system_id,
                              const char *database, bool slot_created,
                              char *err, size_t errlen)
{
    if (!bf_state_load(bf->state_dir, &bf->st, err, errlen))
        return false;
    bool known = bf->st.nbackfills > 0;
    if (known && (slot_created ||
                  !same_identity(&bf->st, system_id, database, bf->slot))) {
        log_warning("state directory %s holds the backfills of %s; starting "
                    "with none",
                    bf->state_dir,
                    slot_created ? "an earlier slot of the same name"
                                 : "another server, database or slot");
        bf_state_clear(&bf->st);
    }
    return true;
}

bool backfill_attach(backfill *bf, const char *system_id, const char *database,
                     bool slot_created, char *err, size_t errlen)
{
    pthread_mutex_lock(&bf->lock);
    bool ok = true;
    if (!bf->attached) {
        struct stat sb;
        bool exists = bf->state_dir && stat(bf->state_dir, &sb) == 0;
        if (exists)
            ok = bf_ensure_dir_locked(bf, err, errlen) &&
                 load_state_locked(bf, system_id, database, slot_created, err,
                                   errlen);
        if (ok) {
            free(bf->st.system_id);
            free(bf->st.database);
            free(bf->st.slot);
            bf->st.system_id = xstrdup(system_id);
            bf->st.database = xstrdup(database);
            bf->st.slot = xstrdup(bf->slot);
            for (size_t i = 0; i < bf->st.nbackfills; i++) {
                bf_backfill *b = &bf->st.backfills[i];
                bf->needs_resolution |= !b->resolved;
                /* An earlier run may have stopped before writing them. */
                for (size_t j = 0; j < b->ntables; j++)
                    b->tables[j].status_dirty = true;
                b->status_dirty = true;
            }
            bf_status_publish_all_locked(bf);
            if (exists)
                remove_leftovers(bf);
            bf->tty = log_progress_drawable();
            bf->attached = true;
        }
    }
    pthread_mutex_unlock(&bf->lock);
    if (ok)
        bf_workers_start(bf);
    return ok;
}

/* ---- lookups ---- */

bf_table *bf_find_table(bf_state *st, const char *id, uint32_t oid,
                        bf_backfill **b)
{
    bf_backfill *x = bf_state_find(st, id);
    if (b)
        *b = x;
    for (size_t i = 0; x && i < x->ntables; i++)
        if (x->tables[i].oid == oid)
            return &x->tables[i];
    return NULL;
}

bf_chunk *bf_find_chunk(bf_state *st, const char *token, bf_table **t,
                        bf_backfill **b)
{
    for (size_t i = 0; i < st->nbackfills; i++) {
        bf_backfill *x = &st->backfills[i];
        for (size_t j = 0; j < x->ntables; j++) {
            bf_table *y = &x->tables[j];
            for (size_t k = 0; k < y->nchunks; k++) {
                if (strcmp(y->chunks[k].token, token) != 0)
                    continue;
                *t = y;
                *b = x;
                return &y->chunks[k];
            }
        }
    }
    return NULL;
}

static bf_window *find_window(backfill *bf, const char *token)
{
    for (size_t i = 0; i < bf->nwindows; i++)
        if (strcmp(bf->windows[i].token, token) == 0)
            return &bf->windows[i];
    return NULL;
}

static void remove_window(backfill *bf, bf_window *w)
{
    if (w->phase == WINDOW_OPEN)
        atomic_fetch_sub(&bf->open_windows, 1);
    window_clear(w);
    size_t i = (size_t)(w - bf->windows);
    memmove(w, w + 1, (bf->nwindows - i - 1) * sizeof *w);
    bf->nwindows--;
}

void bf_drop_window_locked(backfill *bf, const char *token)
{
    bf_window *w = find_window(bf, token);
    if (w)
        remove_window(bf, w);
}

void bf_forget_token_locked(backfill *bf, const char *token)
{
    for (size_t i = 0; i < bf->ninflight; i++) {
        if (strcmp(bf->inflight[i].token, token) != 0)
            continue;
        bf_key_clear(&bf->inflight[i].keycols);
        memmove(&bf->inflight[i], &bf->inflight[i + 1],
                (bf->ninflight - i - 1) * sizeof *bf->inflight);
        bf->ninflight--;
        break;
    }
}

/* ---- the stream ---- */

void backfill_stream_start(backfill *bf, uint64_t start_lsn)
{
    pthread_mutex_lock(&bf->lock);
    /* Requests before it were read by earlier runs: in the state, or lost
     * with it. */
    bf->forget_before = start_lsn;
    forget_windows(bf);
    bf_recent_clear(&bf->recent);
    /* The replay hands over again what was not confirmed. */
    for (size_t i = 0; i < bf->st.nbackfills; i++) {
        bf_backfill *b = &bf->st.backfills[i];
        for (size_t j = 0; j < b->ntables; j++)
            for (size_t k = 0; k < b->tables[j].nchunks; k++)
                b->tables[j].chunks[k].processed = false;
    }
    pthread_mutex_unlock(&bf->lock);
}

/* A low watermark opens a window when its chunk is being read by a worker
 * of this process, or was recorded by an earlier one; any other (a read
 * given up, a crashed run's) stays closed. */
static void on_low_watermark(backfill *bf, const backfill_txn *txn,
                             const char *token)
{
    pthread_mutex_lock(&bf->lock);
    const bf_key *keycols = NULL;
    uint32_t oid = 0;
    for (size_t i = 0; i < bf->ninflight && !keycols; i++) {
        if (strcmp(bf->inflight[i].token, token) == 0) {
            keycols = &bf->inflight[i].keycols;
            oid = bf->inflight[i].oid;
        }
    }
    bf_table *t;
    bf_backfill *b;
    bf_chunk *c = keycols ? NULL : bf_find_chunk(&bf->st, token, &t, &b);
    if (c && c->spill) {
        keycols = &c->keycols;
        oid = t->oid;
    }
    log_debug("backfill: low watermark %s at %llX: %s", token,
              (unsigned long long)txn->commit_lsn,
              keycols ? "window opens" : "not ours");
    if (keycols && !find_window(bf, token)) {
        bf->windows =
            xrealloc(bf->windows, (bf->nwindows + 1) * sizeof *bf->windows);
        bf_window *w = &bf->windows[bf->nwindows++];
        memset(w, 0, sizeof *w);
        snprintf(w->token, sizeof w->token, "%s", token);
        w->oid = oid;
        bf_key_copy(&w->keycols, keycols);
        w->lw_commit_lsn = txn->commit_lsn;
        w->notes = bf_notes_new();
        w->before = bf_recent_copy(&bf->recent, &w->nbefore);
        atomic_fetch_add(&bf->open_windows, 1);
    }
    pthread_mutex_unlock(&bf->lock);
}

static void unlink_spill(backfill *bf, const bf_chunk *c)
{
    if (c->spill) {
        char *path = bf_spill_path(bf, c->spill);
        unlink(path);
        free(path);
    }
}

/* A keyed table's copy goes back to the stale chunk's start: the chunk,
 * and every chunk read after it that the stream has not sent, are dropped
 * and new chunks are read from there, with no upper bound. Reading only
 * the stale chunk's key range again would lose a row whose key a change
 * moved out of that range (past its last key, or into a chunk read after
 * it) after those reads: neither read has it, and when that change is an
 * update without its unchanged TOASTed values, no event ever gives a sink
 * those values. Read in key order from the stale chunk on, the row is
 * read at its new key, after the change. Sent chunks stay: they are all
 * before the stale one, in key order. The keys of a dropped chunk of keys
 * are to be read again. */
static void rewind_table_locked(backfill *bf, bf_table *t, uint64_t from,
                                const bf_key *start)
{
    bf_key lo = {0};
    bf_key_copy(&lo, start);
    for (size_t i = t->nchunks; i-- > 0;) {
        bf_chunk *d = &t->chunks[i];
        if (d->n < from || d->processed)
            continue;
        if (d->n != from)
            bf_drop_window_locked(bf, d->token);
        bf_moved_move_front(&t->moved, &d->keys, d->keys.n);
        unlink_spill(bf, d);
        bf_table_remove_chunk(t, i);
    }
    bf_key_copy(&t->cursor, &lo);
    bf_key_clear(&lo);
    t->at_end = false;
    t->rewinds++;
}

/* A stale chunk of keys: its keys are read again, in a chunk of their
 * own; the table's ranges are not concerned. */
static void keys_read_again_locked(backfill *bf, bf_table *t, bf_chunk *c)
{
    bf_moved_move_front(&t->moved, &c->keys, c->keys.n);
    unlink_spill(bf, c);
    bf_table_remove_chunk(t, (size_t)(c - t->chunks));
    t->stale_streak++;
}

/* The chunk must be read again: its rows may be stale, or its window was
 * not seen whole (the caller has removed its window). */
static void chunk_read_again_locked(backfill *bf, bf_chunk *c, const char *why)
{
    log_info("backfill: chunk %llu must be read again: %s",
             (unsigned long long)c->n, why);
    bf_table *t;
    bf_backfill *b;
    if (c->keycols.n && bf_find_chunk(&bf->st, c->token, &t, &b) == c) {
        if (c->keys.n) {
            keys_read_again_locked(bf, t, c);
        } else {
            rewind_table_locked(bf, t, c->n, &c->lo);
            t->stale_streak++;
        }
        bf_save_locked(bf);
        pthread_cond_broadcast(&bf->changed);
        return;
    }
    /* ctid ranges: changes name no row, nothing moves out of a range. */
    unlink_spill(bf, c);
    free(c->spill);
    free(c->snapshot);
    c->spill = NULL;
    c->snapshot = NULL;
    c->rows = 0;
    c->attempts++;
    c->hw_sent = c->processed = c->claimed = false;
    bf_save_locked(bf);
    pthread_cond_broadcast(&bf->changed);
}

static bool parse_header(bf_emission *em, const char *header);

/* Where the keys a chunk reads again may be read: up to the rows sent once
 * it is, so a key after them is left to the ranges still to come; for a
 * range, after its start too (keys up to it are read by the ranges before,
 * which judged the same changes, or by the entry an update that moved the
 * row there got from note_moved, whose bound was at most that start). A
 * range's rows end at its last key (none: it is the final range); a chunk
 * of keys sends no range. */
static void reread_limits(const bf_chunk *c, const bf_table *t, bf_key *after,
                          bf_key *bound)
{
    const bf_key *sent = bf_table_sent_bound(t);
    if (!c->keys.n)
        sent = c->last ? NULL : &c->hi;
    bf_key_clear(bound);
    bf_key_clear(after);
    if (sent)
        bf_key_copy(bound, sent);
    if (!c->keys.n)
        bf_key_copy(after, &c->lo);
}

/* A key to read again (once: a key with that bound is there already). */
static void reread_add(bf_emission *em, bf_key *key)
{
    bf_moved m = {*key, em->reread_bound, em->reread_after};
    bf_moved_add(&em->reread, &m);
    bf_key_clear(key);
}

/* A range's snapshot has no row where an update it did not see moved one
 * without its unchanged values, yet that key may be in its range: once
 * the range is sent no range reads it, so it is read again by key. (A
 * chunk of keys sends no range: ranges to come, or the move's own entry,
 * read it.) */
static void reread_moved_in(bf_emission *em, const bf_chunk *c,
                            const bf_table *t)
{
    reread_limits(c, t, &em->reread_after, &em->reread_bound);
    const char *key;
    size_t len, pos = 0;
    while (!c->keys.n && bf_drops_next_moved_in(em->drops, &pos, &key, &len)) {
        bf_key k = {0};
        if (bf_key_decode(key, len, &k))
            reread_add(em, &k);
    }
}

/* Opens the chunk's spill file for the source; false when it is not the
 * file the state recorded. */
static bool open_emission(backfill *bf, bf_window *w, bf_chunk *c,
                          const bf_backfill *b, const bf_table *t,
                          bf_drops *drops)
{
    bf_emission *em = &bf->em;
    emission_clear(em);
    char err[1024], *header = NULL;
    char *path = bf_spill_path(bf, c->spill);
    struct stat sb;
    bool ok = stat(path, &sb) == 0 && (uint64_t)sb.st_size == c->spill_bytes &&
              bf_spill_open(&em->reader, path, &header, err, sizeof err) &&
              parse_header(em, header);
    free(header);
    free(path);
    if (!ok) {
        emission_clear(em);
        bf_drops_free(drops);
        return false;
    }
    em->active = true;
    snprintf(em->token, sizeof em->token, "%s", w->token);
    em->drops = drops;
    em->rows = c->rows;
    em->next_index = 1;
    reread_moved_in(em, c, t);
    event_snapshot *s = &em->desc.snapshot;
    snprintf(s->id, sizeof s->id, "%s", b->id);
    s->table_rows = t->rows_estimated;
    s->chunk = c->n;
    s->last = c->last;
    return true;
}

static backfill_verdict on_high_watermark(backfill *bf, const char *token)
{
    log_debug("backfill: high watermark %s", token);
    pthread_mutex_lock(&bf->lock);
    backfill_verdict v = BACKFILL_NOTHING;
    bf_window *w = find_window(bf, token);
    bf_table *t = NULL;
    bf_backfill *b = NULL;
    bf_chunk *c = bf_find_chunk(&bf->st, token, &t, &b);
    if (!w || w->phase != WINDOW_OPEN) {
        /* A repeated high watermark (a worker sends it again when it cannot
         * know whether it got through), or one whose window this run never
         * saw open. */
        if (!w && c && c->spill && !c->processed)
            chunk_read_again_locked(bf, c, "its low watermark was not seen");
    } else if (!c || !c->spill) {
        remove_window(bf, w);
    } else {
        bf_snapshot snap;
        bool stale = !bf_snapshot_parse(c->snapshot, &snap);
        const char *why = "rows changed while it was read";
        /* A replay sees fewer commits before the low watermark than the
         * first run may have: it judges alike when that run sent the rows
         * (fewer to check), and the rows then go out at the same
         * positions. */
        if (!stale && bf_recent_unseen(w->before, w->nbefore, &snap)) {
            stale = true;
            why = "a transaction committed just before its low watermark "
                  "was not visible to its snapshot yet";
        }
        bf_drops *drops =
            stale ? NULL : bf_notes_drops(w->notes, &snap, &stale);
        if (drops && t->moved.n + bf_drops_reread_count(drops) > BF_MOVED_MAX) {
            /* Memory stays bounded: the chunk is read again, smaller, so
             * that its window is shorter. */
            bf_drops_free(drops);
            drops = NULL;
            stale = true;
            why = "too many of its rows would have to be read again";
        }
        bf_snapshot_clear(&snap);
        bf_notes_free(w->notes);
        w->notes = NULL;
        atomic_fetch_sub(&bf->open_windows, 1);
        w->phase = WINDOW_EMITTING;
        if (stale) {
            remove_window(bf, w);
            chunk_read_again_locked(bf, c, why);
        } else if (!open_emission(bf, w, c, b, t, drops)) {
            remove_window(bf, w);
            chunk_read_again_locked(bf, c, "its spill file is not as written");
        } else {
            t->stale_streak = 0;
            /* Chunks of keys (last: false) read after the final range,
             * now common, leave it sent. */
            if (!c->keys.n)
                t->last_sent = c->last;
            w->hw_in_txn = true;
            v = BACKFILL_EMIT;
        }
    }
    pthread_mutex_unlock(&bf->lock);
    return v;
}

backfill_verdict backfill_message(backfill *bf, const backfill_txn *txn,
                                  const char *content, size_t len, char *err,
                                  size_t errlen)
{
    json_error_t jerr;
    json_t *msg = json_loadb(content, len, 0, &jerr);
    const char *type = json_string_value(json_object_get(msg, "type"));
    const char *slot = json_string_value(json_object_get(msg, "slot"));
    const char *token = json_string_value(json_object_get(msg, "token"));
    backfill_verdict v = BACKFILL_NOTHING;
    /* Messages are decoded for every slot of the database. */
    if (!type || !slot || strcmp(slot, bf->slot) != 0) {
        if (!msg)
            log_warning("ignoring a pgspout message that is not JSON");
    } else if (strcmp(type, "backfill") == 0) {
        v = bf_request(bf, txn, content, len, err, errlen);
    } else if (strcmp(type, "lw") == 0 && token) {
        on_low_watermark(bf, txn, token);
    } else if (strcmp(type, "hw") == 0 && token) {
        v = on_high_watermark(bf, token);
    }
    json_decref(msg);
    return v;
}

/* ---- noting changes ---- */

static int column_named(const relation *rel, const char *name)
{
    for (int i = 0; i < rel->ncols; i++)
        if (strcmp(rel->cols[i].name, name) == 0)
            return i;
    return -1;
}

static const colval *value_at(const tuple *t, int i)
{
    if (!t || i < 0 || i >= t->ncols)
        return NULL;
    const colval *v = &t->cols[i];
    return v->kind == COLVAL_TEXT || v->kind == COLVAL_BINARY ? v : NULL;
}

/* The chunk key of a row image (missing key values, e.g. an unchanged
 * TOASTed key, come from `fallback`); false when it cannot be told. */
static bool row_key(const relation *rel, const bf_key *keycols, const tuple *t,
                    const tuple *fallback, strbuf *out)
{
    sbuf_reset(out);
    sbuf_append(out, "", 0);
    for (size_t k = 0; k < keycols->n; k++) {
        int i = column_named(rel, keycols->v[k]);
        const colval *v = value_at(t, i);
        if (!v)
            v = value_at(fallback, i);
        if (!v)
            return false;
        bf_key_encode_column(out, v->data, v->len);
    }
    return true;
}

/* An update whose event lacks a value (unchanged TOAST) that the old row
 * image does not give either. */
static bool lacks_values(const tuple *new_tuple, char old_kind,
                         const tuple *old_tuple)
{
    for (int i = 0; new_tuple && i < new_tuple->ncols; i++)
        if (new_tuple->cols[i].kind == COLVAL_UNCHANGED_TOAST &&
            (old_kind != 'O' || !value_at(old_tuple, i)))
            return true;
    return false;
}

/* A change's keys: the old one is dropped from the chunk (the row left it
 * or was deleted); the new one too, and when the event lacks values the
 * row there is read again after the chunk (listed as moved in when the
 * update moved it there). */
static void note_in_window(bf_window *w, const relation *rel, uint32_t xid,
                           char op, char old_kind, const tuple *old_tuple,
                           const tuple *new_tuple, strbuf *key, strbuf *old_key)
{
    const tuple *old = old_kind ? old_tuple : NULL;
    bool has_new = op != 'D', has_old = op == 'D' || (op == 'U' && old);
    if ((has_new && !row_key(rel, &w->keycols, new_tuple, old, key)) ||
        (has_old && !row_key(rel, &w->keycols, old, NULL, old_key))) {
        bf_notes_any_row(w->notes, xid);
        return;
    }
    if (has_old)
        bf_notes_add(w->notes, old_key->data, old_key->len, xid, 0);
    if (!has_new)
        return;
    unsigned flags = 0;
    if (op == 'U' && lacks_values(new_tuple, old_kind, old_tuple)) {
        flags = BF_NOTE_PARTIAL;
        if (has_old && (old_key->len != key->len ||
                        memcmp(old_key->data, key->data, key->len) != 0))
            flags |= BF_NOTE_MOVED_IN;
    }
    bf_notes_add(w->notes, key->data, key->len, xid, flags);
}

bool backfill_watching(backfill *bf, uint32_t relid)
{
    if (atomic_load(&bf->open_windows) == 0)
        return false;
    pthread_mutex_lock(&bf->lock);
    bool watching = false;
    for (size_t i = 0; i < bf->nwindows && !watching; i++)
        watching =
            bf->windows[i].phase == WINDOW_OPEN && bf->windows[i].oid == relid;
    pthread_mutex_unlock(&bf->lock);
    return watching;
}

/* ---- rows an update moved behind the copy ---- */

/* The chunk key's values of a row image as text (missing ones from
 * fallback); false when they cannot be told. */
static bool key_values(const relation *rel, const bf_key *keycols,
                       const tuple *t, const tuple *fallback, bf_key *out)
{
    char *values[64] = {0};
    size_t n = keycols->n < 64 ? keycols->n : 64;
    size_t got = 0;
    for (; got < n; got++) {
        int i = column_named(rel, keycols->v[got]);
        const colval *v = value_at(t, i);
        if (!v)
            v = value_at(fallback, i);
        if (!v || v->kind != COLVAL_TEXT)
            break;
        values[got] = xstrndup(v->data, v->len);
    }
    bool ok = got == n;
    if (ok)
        bf_key_set(out, values, n);
    for (size_t k = 0; k < got; k++)
        free(values[k]);
    return ok;
}

/* The copy starts over from the table's first key: every chunk not sent
 * is dropped and every moved key forgotten (read again with the rest). */
static void restart_copy_locked(backfill *bf, bf_backfill *b, bf_table *t)
{
    bf_key none = {0};
    log_warning("backfill %s: %s: more than %d rows were moved behind the "
                "copy by updates without their unchanged TOASTed values; "
                "the table is copied again from its start",
                b->id, t->name, BF_MOVED_MAX);
    rewind_table_locked(bf, t, 0, &none);
    bf_moved_clear(&t->moved);
    t->moved_claimed = 0;
}

/* An entry not being read yet with that key and lower limit takes the new
 * bound (bounds only grow: the sent ranges only advance, a rewind goes
 * back to a range not sent), as does one whose bound is the new entry's
 * lower limit (the two read one range of keys); else the key gets an
 * entry of its own (an earlier one being read, or in a chunk not sent,
 * may have a bound short of it). True when the state changed; *added: the
 * key got an entry. */
static bool remember_moved_locked(backfill *bf, bf_backfill *b, bf_table *t,
                                  const bf_moved *m, bool *added)
{
    *added = false;
    for (size_t i = t->moved_claimed; i < t->moved.n; i++) {
        bf_moved *e = &t->moved.v[i];
        bool joins = bf_key_equal(&e->after, &m->after) ||
                     (m->after.n && bf_key_equal(&e->bound, &m->after));
        if (!bf_key_equal(&e->key, &m->key) || !joins)
            continue;
        if (bf_key_equal(&e->bound, &m->bound) || e->bound.n == 0)
            return false;
        bf_key_copy(&e->bound, &m->bound);
        return true;
    }
    if (t->moved.n >= BF_MOVED_MAX) {
        restart_copy_locked(bf, b, t);
        return true;
    }
    bf_moved_append(&t->moved, m);
    *added = true;
    return true;
}

/* Whether an entry of the list reads at least the keys m reads. */
static bool list_covers(const bf_moved_list *l, const bf_moved *m)
{
    for (size_t i = 0; i < l->n; i++) {
        const bf_moved *e = &l->v[i];
        if (bf_key_equal(&e->key, &m->key) &&
            (e->bound.n == 0 || bf_key_equal(&e->bound, &m->bound)) &&
            (e->after.n == 0 || bf_key_equal(&e->after, &m->after)))
            return true;
    }
    return false;
}

/* Whether the table will read, or is reading, the key as m would: a
 * replay of the chunk (after a restart) finds its keys in the state
 * already, waiting or in a chunk of keys not sent, and lists them once. A
 * chunk of keys sent may have read the row before the change. */
static bool reread_pending(const bf_table *t, const bf_moved *m)
{
    if (list_covers(&t->moved, m))
        return true;
    for (size_t i = 0; i < t->nchunks; i++)
        if (!t->chunks[i].processed && list_covers(&t->chunks[i].keys, m))
            return true;
    return false;
}

/* The rows a chunk just sent dropped because a change its snapshot did
 * not see left them without values: their keys join the moved keys, to be
 * read in a chunk of keys after this one (the read comes after the
 * change, with every value). Saved before anything past the chunk's high
 * watermark is confirmed, so a restart that finds the chunk done still
 * reads them; a replay of the chunk finds the same keys. */
static void reread_queue_locked(backfill *bf, bf_backfill *b, bf_table *t,
                                const bf_chunk *c, const bf_moved_list *keys)
{
    if (keys->n == 0 || t->status != BF_COPYING)
        return;
    bool changed = false, added;
    for (size_t i = 0; i < keys->n; i++)
        if (!reread_pending(t, &keys->v[i]))
            changed |= remember_moved_locked(bf, b, t, &keys->v[i], &added);
    log_info("backfill %s: %s: chunk %llu: %zu rows updated without their "
             "unchanged TOASTed values while it was read are read again by "
             "key",
             b->id, t->name, (unsigned long long)c->n, keys->n);
    if (changed && !bf_save_locked(bf))
        bf->moved_unsaved = true;
}

/* Whether a row is still to be read at that key (a chunk of keys not
 * sent holds it, or it waits for one). */
static bool key_pending(const bf_table *t, const bf_key *key)
{
    if (bf_moved_find(&t->moved, 0, key))
        return true;
    for (size_t i = 0; i < t->nchunks; i++)
        if (!t->chunks[i].processed &&
            bf_moved_find(&t->chunks[i].keys, 0, key))
            return true;
    return false;
}

/* A row the update moved to another key, where the ranges the stream has
 * sent may have passed already (after the last range was sent, only a
 * row still to be read at its old key: it is read at the new one): the event
 * lacks a value no read of this table may ever give (the row is not read at its
 * old key any more), so its new key is read in a chunk of keys, if it is not
 * after the rows sent by then. True when the state changed. */
static bool note_moved_row(backfill *bf, bf_backfill *b, bf_table *t,
                           pgspout_position pos, const relation *rel,
                           const tuple *old_tuple, const tuple *new_tuple)
{
    if (pgspout_position_cmp(pos, t->moved_noted) <= 0)
        return false; /* noted before a restart replayed it */
    const bf_key *bound = bf_table_sent_bound(t);
    if (bound && bound->n == 0)
        return false; /* nothing sent yet: ranges read every row */
    bf_key from = {0};
    bf_moved m = {{0}, {0}, {0}};
    bool moved = key_values(rel, &t->keycols, new_tuple, old_tuple, &m.key) &&
                 key_values(rel, &t->keycols, old_tuple, NULL, &from) &&
                 !bf_key_equal(&from, &m.key) &&
                 (!t->last_sent || key_pending(t, &from));
    if (bound)
        bf_key_copy(&m.bound, bound);
    bool added = false;
    bool changed = moved && remember_moved_locked(bf, b, t, &m, &added);
    if (moved)
        t->moved_noted = pos;
    if (added)
        log_info("backfill %s: %s: an update without its unchanged TOASTed "
                 "values moved a row to another key; the row is read again "
                 "there",
                 b->id, t->name);
    bf_key_clear(&from);
    bf_key_clear(&m.key);
    bf_key_clear(&m.bound);
    return changed;
}

/* Tables being copied by a chunk key: a row not copied yet may be moved
 * behind the copy's cursor. */
static void note_moved(backfill *bf, const relation *rel, pgspout_position pos,
                       const tuple *old_tuple, const tuple *new_tuple)
{
    pthread_mutex_lock(&bf->lock);
    bool changed = false;
    for (size_t i = 0; i < bf->st.nbackfills; i++) {
        bf_backfill *b = &bf->st.backfills[i];
        for (size_t j = 0; j < b->ntables; j++) {
            bf_table *t = &b->tables[j];
            if (t->oid == rel->oid && t->status == BF_COPYING && t->keycols.n)
                changed |=
                    note_moved_row(bf, b, t, pos, rel, old_tuple, new_tuple);
        }
    }
    /* Saved before anything after this change can be confirmed. */
    if (changed && !bf_save_locked(bf))
        bf->moved_unsaved = true;
    if (changed)
        pthread_cond_broadcast(&bf->changed);
    pthread_mutex_unlock(&bf->lock);
}

void backfill_note_change(backfill *bf, const relation *rel, uint32_t xid,
                          pgspout_position pos, char op, char old_kind,
                          const tuple *old_tuple, const tuple *new_tuple)
{
    /* pgoutput sends the old key only when it changed (or the whole old
     * row, under REPLICA IDENTITY FULL, which gives every value). */
    if (op == 'U' && old_kind && lacks_values(new_tuple, old_kind, old_tuple))
        note_moved(bf, rel, pos, old_tuple, new_tuple);
    if (atomic_load(&bf->open_windows) == 0)
        return;
    strbuf key = STRBUF_INIT, old_key = STRBUF_INIT;
    pthread_mutex_lock(&bf->lock);
    for (size_t i = 0; i < bf->nwindows; i++) {
        bf_window *w = &bf->windows[i];
        /* ctid ranges: a change names no row of the chunk. */
        if (w->phase == WINDOW_OPEN && w->oid == rel->oid && w->keycols.n)
            note_in_window(w, rel, xid, op, old_kind, old_tuple, new_tuple,
                           &key, &old_key);
    }
    pthread_mutex_unlock(&bf->lock);
    sbuf_free(&key);
    sbuf_free(&old_key);
}

void backfill_note_truncate(backfill *bf, uint32_t relid, uint32_t xid)
{
    if (atomic_load(&bf->open_windows) == 0)
        return;
    pthread_mutex_lock(&bf->lock);
    for (size_t i = 0; i < bf->nwindows; i++)
        if (bf->windows[i].phase == WINDOW_OPEN && bf->windows[i].oid == relid)
            bf_notes_any_row(bf->windows[i].notes, xid);
    pthread_mutex_unlock(&bf->lock);
}

void backfill_committed(backfill *bf, uint32_t xid)
{
    bf_recent_add(&bf->recent, xid);
}

void backfill_note_commit(backfill *bf, uint64_t end_lsn)
{
    pthread_mutex_lock(&bf->lock);
    for (size_t i = 0; i < bf->nwindows; i++) {
        bf_window *w = &bf->windows[i];
        if (w->hw_in_txn) {
            w->hw_in_txn = false;
            w->hw_end = end_lsn;
        }
    }
    pthread_mutex_unlock(&bf->lock);
}

/* ---- emission ---- */

static bool parse_header(bf_emission *em, const char *header)
{
    json_t *root = json_loads(header, 0, NULL);
    json_t *cols = json_object_get(root, "columns");
    json_t *key = json_object_get(root, "chunk_key");
    const char *schema = json_string_value(json_object_get(root, "schema"));
    const char *table = json_string_value(json_object_get(root, "table"));
    const char *ri = json_string_value(json_object_get(root, "replident"));
    bool ok = schema && table && ri && json_is_array(cols) &&
              json_array_size(cols) > 0 && json_is_array(key);
    int n = ok ? (int)json_array_size(cols) : 0;
    em->cols = xcalloc(n ? (size_t)n : 1, sizeof *em->cols);
    for (int i = 0; i < n && ok; i++) {
        json_t *c = json_array_get(cols, (size_t)i);
        const char *name = json_string_value(json_object_get(c, "name"));
        ok = name != NULL;
        em->cols[i].name = xstrdup(name ? name : "");
        em->cols[i].type_oid =
            (uint32_t)json_integer_value(json_object_get(c, "type"));
        em->cols[i].typmod =
            (int32_t)json_integer_value(json_object_get(c, "typmod"));
        em->cols[i].key = json_is_true(json_object_get(c, "key"));
        em->desc.ncols = i + 1;
    }
    em->nkey = ok ? (int)json_array_size(key) : 0;
    em->key_index = xcalloc((size_t)em->nkey + 1, sizeof *em->key_index);
    for (int i = 0; i < em->nkey && ok; i++) {
        em->key_index[i] =
            (int)json_integer_value(json_array_get(key, (size_t)i));
        ok = em->key_index[i] >= 0 && em->key_index[i] < n;
    }
    if (ok) {
        em->schema = xstrdup(schema);
        em->table = xstrdup(table);
        em->desc.oid =
            (uint32_t)json_integer_value(json_object_get(root, "oid"));
        em->desc.schema = em->schema;
        em->desc.table = em->table;
        em->desc.replident = ri[0];
        em->desc.cols = em->cols;
    }
    json_decref(root);
    return ok;
}

const backfill_rows_desc *backfill_emission_desc(backfill *bf)
{
    return bf->em.active ? &bf->em.desc : NULL;
}

uint64_t backfill_emission_rows(backfill *bf)
{
    return bf->em.rows;
}

/* The row's chunk key as its columns' text; false when one is not text. */
static bool emitted_key(const bf_emission *em, const colval *cols, bf_key *out)
{
    char **values = xcalloc((size_t)em->nkey, sizeof *values);
    int got = 0;
    for (; got < em->nkey && cols[em->key_index[got]].kind == COLVAL_TEXT;
         got++) {
        const colval *v = &cols[em->key_index[got]];
        values[got] = xstrndup(v->data, v->len);
    }
    bool ok = got == em->nkey;
    if (ok)
        bf_key_set(out, values, (size_t)got);
    for (int i = 0; i < got; i++)
        free(values[i]);
    free(values);
    return ok;
}

/* Whether the row is dropped; one a change left without values is read
 * again by key after the chunk. */
static bool stale_row(bf_emission *em, const colval *cols)
{
    if (!em->drops || bf_drops_count(em->drops) == 0 || em->nkey == 0)
        return false;
    strbuf key = STRBUF_INIT;
    bool known = true;
    for (int i = 0; i < em->nkey && known; i++) {
        const colval *v = &cols[em->key_index[i]];
        known = v->kind == COLVAL_TEXT;
        if (known)
            bf_key_encode_column(&key, v->data, v->len);
    }
    const char *data = key.data ? key.data : "";
    bool stale = known && bf_drops_contains(em->drops, data, key.len);
    bf_key k = {0};
    if (stale && bf_drops_reread(em->drops, data, key.len) &&
        emitted_key(em, cols, &k))
        reread_add(em, &k);
    sbuf_free(&key);
    return stale;
}

int backfill_emission_next(backfill *bf, tuple *t, uint64_t *index, arena *mem,
                           char *err, size_t errlen)
{
    bf_emission *em = &bf->em;
    for (;;) {
        colval *cols;
        int r =
            bf_spill_next(&em->reader, em->desc.ncols, &cols, mem, err, errlen);
        if (r == 0 && em->next_index != em->rows + 1) {
            snprintf(err, errlen, "%s holds %llu rows, the state says %llu",
                     em->reader.path, (unsigned long long)em->next_index - 1,
                     (unsigned long long)em->rows);
            r = -1;
        }
        if (r <= 0)
            return r;
        *index = em->next_index++;
        if (stale_row(em, cols)) {
            arena_undo(mem, cols);
            continue;
        }
        t->ncols = (uint16_t)em->desc.ncols;
        t->in_arena = true;
        t->cols = cols;
        em->emitted++;
        return 1;
    }
}

void backfill_emission_end(backfill *bf, bool completed)
{
    pthread_mutex_lock(&bf->lock);
    bf_emission *em = &bf->em;
    bf_window *w = em->active ? find_window(bf, em->token) : NULL;
    if (w && completed) {
        w->phase = WINDOW_PROCESSED;
        w->emitted = em->emitted;
        bf_table *t;
        bf_backfill *b;
        bf_chunk *c = bf_find_chunk(&bf->st, em->token, &t, &b);
        if (c) {
            c->processed = true;
            reread_queue_locked(bf, b, t, c, &em->reread);
        }
        pthread_cond_broadcast(&bf->changed);
    }
    emission_clear(em);
    pthread_mutex_unlock(&bf->lock);
}

/* ---- confirming ---- */

static uint64_t hold_locked(const backfill *bf)
{
    if (bf->moved_unsaved)
        return 0;
    uint64_t limit = UINT64_MAX;
    for (size_t i = 0; i < bf->nwindows; i++)
        if (bf->windows[i].lw_commit_lsn < limit)
            limit = bf->windows[i].lw_commit_lsn;
    return limit;
}

static void chunk_done_locked(backfill *bf, const bf_window *w)
{
    bf_table *t;
    bf_backfill *b;
    bf_chunk *c = bf_find_chunk(&bf->st, w->token, &t, &b);
    if (!c)
        return; /* marked done before; the state is being saved again */
    t->rows_copied += w->emitted;
    stats_backfill_chunk_done(t->name);
    bf->doomed = xrealloc(bf->doomed, (bf->ndoomed + 1) * sizeof *bf->doomed);
    bf->doomed[bf->ndoomed++] = c->spill ? bf_spill_path(bf, c->spill) : NULL;
    bf_table_remove_chunk(t, (size_t)(c - t->chunks));
    bf_status_changed_locked(bf, b, t);
    if (t->at_end && t->nchunks == 0 && t->moved.n == 0)
        bf_table_settle_locked(bf, b, t);
}

uint64_t backfill_confirm_limit(backfill *bf, uint64_t durable_end)
{
    pthread_mutex_lock(&bf->lock);
    bool any = false;
    for (size_t i = 0; i < bf->nwindows; i++) {
        const bf_window *w = &bf->windows[i];
        if (w->phase == WINDOW_PROCESSED && w->hw_end &&
            w->hw_end <= durable_end) {
            chunk_done_locked(bf, w);
            any = true;
        }
    }
    if (bf->moved_unsaved && bf_save_locked(bf))
        bf->moved_unsaved = false;
    /* Done chunks let go of the confirmation only once the state says so
     * on disk; otherwise the next confirmation tries again. */
    if (any && bf_save_locked(bf)) {
        for (size_t i = bf->nwindows; i-- > 0;) {
            bf_window *w = &bf->windows[i];
            if (w->phase == WINDOW_PROCESSED && w->hw_end &&
                w->hw_end <= durable_end)
                remove_window(bf, w);
        }
        pthread_cond_broadcast(&bf->changed);
    }
    uint64_t limit = hold_locked(bf);
    pthread_mutex_unlock(&bf->lock);
    return limit;
}

uint64_t backfill_hold(backfill *bf)
{
    pthread_mutex_lock(&bf->lock);
    uint64_t limit = hold_locked(bf);
    pthread_mutex_unlock(&bf->lock);
    return limit;
}

void backfill_confirmed(backfill *bf)
{
    pthread_mutex_lock(&bf->lock);
    for (size_t i = 0; i < bf->ndoomed; i++) {
        if (bf->doomed[i])
            unlink(bf->doomed[i]);
        free(bf->doomed[i]);
    }
    bf->ndoomed = 0;
    pthread_mutex_unlock(&bf->lock);
}

bool backfill_finished(backfill *bf, const char *id, bool *failed)
{
    pthread_mutex_lock(&bf->lock);
    bf_backfill *b = bf_state_find(&bf->st, id);
    bool done = b && (b->status == BF_DONE || b->status == BF_FAILED);
    *failed = b && b->status == BF_FAILED;
    pthread_mutex_unlock(&bf->lock);
    return done;
}

/* ---- tables ---- */

static void backfill_settle_locked(backfill *bf, bf_backfill *b)
{
    bool all = true, failed = false;
    for (size_t i = 0; i < b->ntables; i++) {
        all = all && (b->tables[i].status == BF_DONE ||
                      b->tables[i].status == BF_FAILED);
        failed = failed || b->tables[i].status == BF_FAILED;
    }
    if (!all || b->status == BF_DONE || b->status == BF_FAILED)
        return;
    b->status = failed ? BF_FAILED : BF_DONE;
    uint64_t rows = 0;
    for (size_t i = 0; i < b->ntables; i++)
        rows += b->tables[i].rows_copied;
    if (failed)
        log_error("backfill %s failed (%llu rows copied); see the status of "
                  "its tables",
                  b->id, (unsigned long long)rows);
    else
        log_info("backfill %s done: %zu tables, %llu rows", b->id, b->ntables,
                 (unsigned long long)rows);
    bf_status_changed_locked(bf, b, NULL);
    pthread_cond_broadcast(&bf->changed);
}

void bf_table_settle_locked(backfill *bf, bf_backfill *b, bf_table *t)
{
    if (t->status != BF_FAILED) {
        t->status = BF_DONE;
        bf_progress_table_done(b, t);
    }
    t->owner = -1;
    bf_status_changed_locked(bf, b, t);
    backfill_settle_locked(bf, b);
}

void bf_table_fail_locked(backfill *bf, bf_backfill *b, bf_table *t,
                          const char *error)
{
    log_error("backfill %s: table %s failed: %s", b->id, t->name, error);
    t->status = BF_FAILED;
    free(t->error);
    t->error = xstrdup(error);
    bf_moved_clear(&t->moved);
    t->moved_claimed = 0;
    /* Chunks already handed to the stream stay until they are done. */
    for (size_t i = t->nchunks; i-- > 0;) {
        bf_chunk *c = &t->chunks[i];
        if (c->processed)
            continue;
        if (c->spill) {
            char *path = bf_spill_path(bf, c->spill);
            unlink(path);
            free(path);
        }
        bf_table_remove_chunk(t, i);
    }
    bf_table_settle_locked(bf, b, t);
    bf_save_locked(bf);
}
