#include "backfill_state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "lsn.h"
#include "strbuf.h"

#define STATE_FILE "backfill.state"
/* 2: moved keys and chunks of keys (a version 1 state reads as one with
 * none; an older pgspout refuses a version 2 state rather than read its
 * chunks of keys as ranges). 3: keys to read have a lower limit, `after`
 * (a version 2 state reads as one with none; a version 2 pgspout would
 * read such keys past it, the row twice). */
#define STATE_VERSION 3

/* ---- keys ---- */

void bf_key_set(bf_key *k, char *const *values, size_t n)
{
    bf_key_clear(k);
    k->n = n;
    k->v = n ? xcalloc(n, sizeof *k->v) : NULL;
    for (size_t i = 0; i < n; i++)
        k->v[i] = xstrdup(values[i]);
}

void bf_key_copy(bf_key *dst, const bf_key *src)
{
    if (dst != src)
        bf_key_set(dst, src->v, src->n);
}

void bf_key_clear(bf_key *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
    k->v = NULL;
    k->n = 0;
}

bool bf_key_equal(const bf_key *a, const bf_key *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

bf_moved *bf_moved_find(const bf_moved_list *l, size_t from, const bf_key *key)
{
    for (size_t i = from; i < l->n; i++)
        if (bf_key_equal(&l->v[i].key, key))
            return &l->v[i];
    return NULL;
}

static bool moved_equal(const bf_moved *a, const bf_moved *b)
{
    return bf_key_equal(&a->key, &b->key) &&
           bf_key_equal(&a->bound, &b->bound) &&
           bf_key_equal(&a->after, &b->after);
}

void bf_moved_append(bf_moved_list *l, const bf_moved *m)
{
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    bf_moved *e = &l->v[l->n++];
    memset(e, 0, sizeof *e);
    bf_key_copy(&e->key, &m->key);
    bf_key_copy(&e->bound, &m->bound);
    bf_key_copy(&e->after, &m->after);
}

bool bf_moved_add(bf_moved_list *l, const bf_moved *m)
{
    for (size_t i = 0; i < l->n; i++)
        if (moved_equal(&l->v[i], m))
            return false;
    bf_moved_append(l, m);
    return true;
}

static void moved_entry_clear(bf_moved *m)
{
    bf_key_clear(&m->key);
    bf_key_clear(&m->bound);
    bf_key_clear(&m->after);
}

void bf_moved_move_front(bf_moved_list *dst, bf_moved_list *src, size_t n)
{
    if (n > src->n)
        n = src->n;
    if (n == 0)
        return; /* src->v may be NULL: memmove must not see it */
    for (size_t i = 0; i < n; i++) {
        bf_moved_add(dst, &src->v[i]);
        moved_entry_clear(&src->v[i]);
    }
    memmove(src->v, src->v + n, (src->n - n) * sizeof *src->v);
    src->n -= n;
}

void bf_moved_clear(bf_moved_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        moved_entry_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static const char *const status_names[] = {"pending", "copying", "done",
                                           "failed"};

const char *bf_status_name(bf_status s)
{
    return (unsigned)s < 4 ? status_names[s] : "pending";
}

static bool status_from_name(const char *name, bf_status *s)
{
    for (int i = 0; name && i < 4; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *s = (bf_status)i;
            return true;
        }
    }
    return false;
}

/* ---- the model ---- */

void bf_chunk_clear(bf_chunk *c)
{
    bf_key_clear(&c->keycols);
    bf_key_clear(&c->lo);
    bf_key_clear(&c->hi);
    bf_moved_clear(&c->keys);
    free(c->spill);
    free(c->snapshot);
    memset(c, 0, sizeof *c);
}

static void table_clear(bf_table *t)
{
    free(t->name);
    free(t->error);
    bf_key_clear(&t->cursor);
    bf_key_clear(&t->keycols);
    bf_moved_clear(&t->moved);
    for (size_t i = 0; i < t->nchunks; i++)
        bf_chunk_clear(&t->chunks[i]);
    free(t->chunks);
    memset(t, 0, sizeof *t);
}

static void free_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

static void backfill_clear(bf_backfill *b)
{
    free(b->id);
    free_list(b->include, b->n_include);
    free_list(b->exclude, b->n_exclude);
    free(b->where);
    free(b->error);
    for (size_t i = 0; i < b->ntables; i++)
        table_clear(&b->tables[i]);
    free(b->tables);
    memset(b, 0, sizeof *b);
}

void bf_state_clear(bf_state *st)
{
    free(st->system_id);
    free(st->database);
    free(st->slot);
    for (size_t i = 0; i < st->nbackfills; i++)
        backfill_clear(&st->backfills[i]);
    free(st->backfills);
    memset(st, 0, sizeof *st);
}

bf_backfill *bf_state_find(bf_state *st, const char *id)
{
    for (size_t i = 0; i < st->nbackfills; i++)
        if (strcmp(st->backfills[i].id, id) == 0)
            return &st->backfills[i];
    return NULL;
}

bf_backfill *bf_state_add(bf_state *st)
{
    st->backfills =
        xrealloc(st->backfills, (st->nbackfills + 1) * sizeof *st->backfills);
    bf_backfill *b = &st->backfills[st->nbackfills++];
    memset(b, 0, sizeof *b);
    return b;
}

bf_table *bf_backfill_add_table(bf_backfill *b, uint32_t oid, const char *name)
{
    b->tables = xrealloc(b->tables, (b->ntables + 1) * sizeof *b->tables);
    bf_table *t = &b->tables[b->ntables++];
    memset(t, 0, sizeof *t);
    t->oid = oid;
    t->name = xstrdup(name);
    t->next_chunk = 1;
    t->rows_estimated = -1;
    t->owner = -1;
    return t;
}

void bf_backfill_drop_table(bf_backfill *b, size_t i)
{
    table_clear(&b->tables[i]);
    memmove(&b->tables[i], &b->tables[i + 1],
            (b->ntables - i - 1) * sizeof *b->tables);
    b->ntables--;
}

bf_chunk *bf_table_add_chunk(bf_table *t)
{
    t->chunks = xrealloc(t->chunks, (t->nchunks + 1) * sizeof *t->chunks);
    bf_chunk *c = &t->chunks[t->nchunks++];
    memset(c, 0, sizeof *c);
    return c;
}

void bf_table_remove_chunk(bf_table *t, size_t i)
{
    bf_chunk_clear(&t->chunks[i]);
    memmove(&t->chunks[i], &t->chunks[i + 1],
            (t->nchunks - i - 1) * sizeof *t->chunks);
    t->nchunks--;
}

const bf_key *bf_table_sent_bound(const bf_table *t)
{
    const bf_chunk *first = NULL;
    for (size_t i = 0; i < t->nchunks; i++) {
        const bf_chunk *c = &t->chunks[i];
        if (!c->keys.n && !c->processed && (!first || c->n < first->n))
            first = c;
    }
    if (first)
        return &first->lo;
    return t->at_end ? NULL : &t->cursor;
}

/* ---- to JSON ---- */

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *list_to_json(char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

static json_t *key_to_json(const bf_key *k)
{
    return k->n ? list_to_json(k->v, k->n) : json_null();
}

static json_t *moved_to_json(const bf_moved_list *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_pack("{s o s o s o}", "key",
                                           key_to_json(&l->v[i].key), "bound",
                                           key_to_json(&l->v[i].bound), "after",
                                           key_to_json(&l->v[i].after)));
    return a;
}

static json_t *lsn_to_json(uint64_t lsn)
{
    char text[LSN_FORMAT_BUFSIZE];
    return json_string(lsn_format(lsn, text, sizeof text));
}

static json_t *chunk_to_json(const bf_chunk *c)
{
    json_t *o = json_pack(
        "{sI s o s o s I s b s o s s s o s i s o s I}", "n", (json_int_t)c->n,
        "lo", key_to_json(&c->lo), "hi", key_to_json(&c->hi), "rows",
        (json_int_t)c->rows, "last", c->last, "spill", string_or_null(c->spill),
        "token", c->token, "snapshot", string_or_null(c->snapshot), "attempts",
        c->attempts, "key", list_to_json(c->keycols.v, c->keycols.n),
        "spill_bytes", (json_int_t)c->spill_bytes);
    if (c->keys.n)
        json_object_set_new(o, "keys", moved_to_json(&c->keys));
    return o;
}

static json_t *table_to_json(const bf_table *t)
{
    json_t *chunks = json_array();
    for (size_t i = 0; i < t->nchunks; i++)
        json_array_append_new(chunks, chunk_to_json(&t->chunks[i]));
    json_t *o = json_pack(
        "{sI s s s s s o s I s I s I s o s b s o s o s o}", "oid",
        (json_int_t)t->oid, "name", t->name, "state", bf_status_name(t->status),
        "error", string_or_null(t->error), "rows_estimated",
        (json_int_t)t->rows_estimated, "rows_copied",
        (json_int_t)t->rows_copied, "next_chunk", (json_int_t)t->next_chunk,
        "cursor", key_to_json(&t->cursor), "at_end", t->at_end, "chunks",
        chunks, "key", list_to_json(t->keycols.v, t->keycols.n), "moved",
        moved_to_json(&t->moved));
    if (t->moved_noted.commit_lsn)
        json_object_set_new(o, "moved_noted",
                            json_pack("{s o s I}", "commit_lsn",
                                      lsn_to_json(t->moved_noted.commit_lsn),
                                      "seq", (json_int_t)t->moved_noted.seq));
    return o;
}

static json_t *backfill_to_json(const bf_backfill *b)
{
    json_t *tables = json_array();
    for (size_t i = 0; i < b->ntables; i++)
        json_array_append_new(tables, table_to_json(&b->tables[i]));
    return json_pack(
        "{s s s o s o s o s o s I s s s o s b s o}", "id", b->id, "include",
        list_to_json(b->include, b->n_include), "exclude",
        list_to_json(b->exclude, b->n_exclude), "where",
        string_or_null(b->where), "request_lsn", lsn_to_json(b->request_lsn),
        "requested_at", (json_int_t)b->requested_at_us, "state",
        bf_status_name(b->status), "error", string_or_null(b->error),
        "resolved", b->resolved, "tables", tables);
}

char *bf_state_to_json(const bf_state *st)
{
    json_t *backfills = json_array();
    for (size_t i = 0; i < st->nbackfills; i++)
        json_array_append_new(backfills, backfill_to_json(&st->backfills[i]));
    json_t *root = json_pack("{s i s o s o s o s o}", "version", STATE_VERSION,
                             "system_id", string_or_null(st->system_id),
                             "database", string_or_null(st->database), "slot",
                             string_or_null(st->slot), "backfills", backfills);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return xnonnull(text);
}

/* ---- from JSON ---- */

static char *dup_string(json_t *v)
{
    return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

static bool list_from_json(json_t *a, char ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (json_is_null(a) || !a)
        return true;
    if (!json_is_array(a))
        return false;
    *items = xcalloc(json_array_size(a) + 1, sizeof **items);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e))
            return false;
        (*items)[(*n)++] = xstrdup(json_string_value(e));
    }
    return true;
}

static bool key_from_json(json_t *a, bf_key *k)
{
    memset(k, 0, sizeof *k);
    return list_from_json(a, &k->v, &k->n);
}

/* Absent (a state written before moved keys were kept): none. */
static bool moved_from_json(json_t *a, bf_moved_list *l)
{
    memset(l, 0, sizeof *l);
    if (!a)
        return true;
    if (!json_is_array(a))
        return false;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *o = json_array_get(a, i);
        bf_moved m = {{0}, {0}, {0}};
        /* "after" is absent from a file written before it existed. */
        bool ok =
            json_is_object(o) && json_is_array(json_object_get(o, "key")) &&
            key_from_json(json_object_get(o, "key"), &m.key) && m.key.n > 0 &&
            key_from_json(json_object_get(o, "bound"), &m.bound) &&
            key_from_json(json_object_get(o, "after"), &m.after);
        if (ok)
            bf_moved_add(l, &m);
        moved_entry_clear(&m);
        if (!ok)
            return false;
    }
    return true;
}

static uint64_t uint_of(json_t *obj, const char *name)
{
    json_int_t v = json_integer_value(json_object_get(obj, name));
    return v > 0 ? (uint64_t)v : 0;
}

static bool chunk_from_json(json_t *o, bf_chunk *c)
{
    const char *token = json_string_value(json_object_get(o, "token"));
    if (!json_is_object(o) || !token || strlen(token) > BF_TOKEN_LEN)
        return false;
    c->n = uint_of(o, "n");
    c->rows = uint_of(o, "rows");
    c->last = json_is_true(json_object_get(o, "last"));
    c->spill = dup_string(json_object_get(o, "spill"));
    c->snapshot = dup_string(json_object_get(o, "snapshot"));
    c->attempts = (int)uint_of(o, "attempts");
    c->spill_bytes = uint_of(o, "spill_bytes");
    snprintf(c->token, sizeof c->token, "%s", token);
    return key_from_json(json_object_get(o, "key"), &c->keycols) &&
           key_from_json(json_object_get(o, "lo"), &c->lo) &&
           key_from_json(json_object_get(o, "hi"), &c->hi) &&
           moved_from_json(json_object_get(o, "keys"), &c->keys) &&
           (c->spill == NULL || strchr(c->spill, '/') == NULL);
}

/* Absent (none noted, or a state written before it was kept): zero. */
static bool position_from_json(json_t *o, pgspout_position *pos)
{
    memset(pos, 0, sizeof *pos);
    if (!o)
        return true;
    const char *lsn = json_string_value(json_object_get(o, "commit_lsn"));
    pos->seq = uint_of(o, "seq");
    return lsn && lsn_parse(lsn, &pos->commit_lsn);
}

static bool table_from_json(json_t *o, bf_table *t)
{
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "name")))
        return false;
    t->oid = (uint32_t)uint_of(o, "oid");
    free(t->name);
    t->name = dup_string(json_object_get(o, "name"));
    t->error = dup_string(json_object_get(o, "error"));
    t->rows_estimated =
        (int64_t)json_integer_value(json_object_get(o, "rows_estimated"));
    t->rows_copied = uint_of(o, "rows_copied");
    t->next_chunk = uint_of(o, "next_chunk");
    t->at_end = json_is_true(json_object_get(o, "at_end"));
    json_t *chunks = json_object_get(o, "chunks");
    if (!status_from_name(json_string_value(json_object_get(o, "state")),
                          &t->status) ||
        !key_from_json(json_object_get(o, "cursor"), &t->cursor) ||
        !key_from_json(json_object_get(o, "key"), &t->keycols) ||
        !moved_from_json(json_object_get(o, "moved"), &t->moved) ||
        !position_from_json(json_object_get(o, "moved_noted"),
                            &t->moved_noted) ||
        !json_is_array(chunks))
        return false;
    for (size_t i = 0; i < json_array_size(chunks); i++)
        if (!chunk_from_json(json_array_get(chunks, i), bf_table_add_chunk(t)))
            return false;
    return true;
}

static bool backfill_from_json(json_t *o, bf_backfill *b)
{
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "id")))
        return false;
    b->id = dup_string(json_object_get(o, "id"));
    b->where = dup_string(json_object_get(o, "where"));
    b->error = dup_string(json_object_get(o, "error"));
    b->requested_at_us =
        (int64_t)json_integer_value(json_object_get(o, "requested_at"));
    b->resolved = json_is_true(json_object_get(o, "resolved"));
    const char *lsn = json_string_value(json_object_get(o, "request_lsn"));
    json_t *tables = json_object_get(o, "tables");
    if (!lsn || !lsn_parse(lsn, &b->request_lsn) ||
        !status_from_name(json_string_value(json_object_get(o, "state")),
                          &b->status) ||
        !list_from_json(json_object_get(o, "include"), &b->include,
                        &b->n_include) ||
        !list_from_json(json_object_get(o, "exclude"), &b->exclude,
                        &b->n_exclude) ||
        !json_is_array(tables))
        return false;
    for (size_t i = 0; i < json_array_size(tables); i++) {
        json_t *t = json_array_get(tables, i);
        if (!table_from_json(t, bf_backfill_add_table(b, 0, "")))
            return false;
    }
    return true;
}

static bool state_from_root(json_t *root, bf_state *st)
{
    json_t *backfills = json_object_get(root, "backfills");
    json_int_t version = json_integer_value(json_object_get(root, "version"));
    if (version < 1 || version > STATE_VERSION || !json_is_array(backfills))
        return false;
    st->system_id = dup_string(json_object_get(root, "system_id"));
    st->database = dup_string(json_object_get(root, "database"));
    st->slot = dup_string(json_object_get(root, "slot"));
    for (size_t i = 0; i < json_array_size(backfills); i++)
        if (!backfill_from_json(json_array_get(backfills, i), bf_state_add(st)))
            return false;
    return true;
}

bool bf_state_from_json(const char *text, bf_state *st, char *err,
                        size_t errlen)
{
    memset(st, 0, sizeof *st);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "not JSON (line %d: %s)", jerr.line, jerr.text);
        return false;
    }
    bool ok = json_is_object(root) && state_from_root(root, st);
    json_decref(root);
    if (!ok) {
        snprintf(err, errlen, "not a backfill state this pgspout wrote");
        bf_state_clear(st);
    }
    return ok;
}

/* ---- the file ---- */

bool bf_state_load(const char *dir, bf_state *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    char *path = xasprintf("%s/%s", dir, STATE_FILE);
    size_t len;
    char *text = read_whole_file(path, &len);
    bool ok = true;
    if (!text && errno != ENOENT) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        ok = false;
    } else if (text) {
        char why[256];
        ok = bf_state_from_json(text, st, why, sizeof why);
        if (!ok)
            snprintf(err, errlen, "%s: %s", path, why);
    }
    free(text);
    free(path);
    return ok;
}

static bool fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

bool bf_state_save(const char *dir, const bf_state *st, char *err,
                   size_t errlen)
{
    char *text = bf_state_to_json(st);
    char *tmp = xasprintf("%s/%s.tmp", dir, STATE_FILE);
    char *path = xasprintf("%s/%s", dir, STATE_FILE);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write_all(fd, text, strlen(text)) &&
              write_all(fd, "\n", 1) && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved = errno;
    }
    if (ok && !fsync_dir(dir)) {
        ok = false;
        saved = errno;
    }
    if (!ok)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
    free(text);
    free(tmp);
    free(path);
    return ok;
}
