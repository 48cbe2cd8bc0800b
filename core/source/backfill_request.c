/* Backfill requests: the message, its record in the state, and the tables
 * it resolves to (the publication's, as the request's patterns and the
 * daemon's filters select them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backfill_internal.h"
#include "backfill_message.h"
#include "log.h"
#include "lsn.h"
#include "pattern.h"
#include "strbuf.h"

static void free_patterns(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

/* The message as the one module that reads and writes it
 * (backfill_message.h) parses it: a malformed request, or one whose where
 * could change the structure of the chunk query, is refused there. False
 * (with the reason in why) when it is not a well-formed request. */
static bool request_from_message(const char *content, size_t len,
                                 bf_backfill *b, char *why, size_t whylen)
{
    backfill_request r;
    if (backfill_message_parse(content, len, &r, why, whylen) !=
        BACKFILL_MESSAGE_REQUEST)
        return false;
    b->id = r.id;
    b->where = r.where;
    b->include = r.include;
    b->n_include = r.n_include;
    b->exclude = r.exclude;
    b->n_exclude = r.n_exclude;
    free(r.slot);
    return true;
}

static void drop_last_backfill(bf_state *st)
{
    bf_backfill *b = &st->backfills[st->nbackfills - 1];
    free(b->id);
    free(b->where);
    free_patterns(b->include, b->n_include);
    free_patterns(b->exclude, b->n_exclude);
    st->nbackfills--;
}

backfill_verdict bf_request(backfill *bf, const backfill_txn *txn,
                            const char *content, size_t len, char *err,
                            size_t errlen)
{
    bf_backfill parsed;
    memset(&parsed, 0, sizeof parsed);
    char why[256];
    bool valid = request_from_message(content, len, &parsed, why, sizeof why);
    backfill_verdict v = BACKFILL_NOTHING;
    pthread_mutex_lock(&bf->lock);
    bf_backfill *known = valid ? bf_state_find(&bf->st, parsed.id) : NULL;
    if (!valid) {
        log_warning("ignoring a malformed backfill request (%s): %.*s", why,
                    (int)(len > 300 ? 300 : len), content);
    } else if (known) {
        /* Sent again after a restart: recorded already. */
        v = known->resolved ? BACKFILL_NOTHING : BACKFILL_RESOLVE;
    } else if (!bf_ensure_dir_locked(bf, err, errlen)) {
        v = BACKFILL_FAILED;
    } else {
        bf_backfill *b = bf_state_add(&bf->st);
        *b = parsed;
        memset(&parsed, 0, sizeof parsed);
        b->request_lsn = txn->commit_lsn;
        b->requested_at_us = txn->commit_time_us;
        b->status = BF_PENDING;
        if (bf_save_locked(bf)) {
            log_info("backfill %s requested", b->id);
            bf->needs_resolution = true;
            bf_status_changed_locked(bf, b, NULL);
            v = BACKFILL_RESOLVE;
        } else {
            drop_last_backfill(&bf->st);
            snprintf(err, errlen, "cannot record backfill request");
            v = BACKFILL_FAILED;
        }
    }
    pthread_mutex_unlock(&bf->lock);
    free(parsed.id);
    free(parsed.where);
    free_patterns(parsed.include, parsed.n_include);
    free_patterns(parsed.exclude, parsed.n_exclude);
    if (v == BACKFILL_FAILED) {
        size_t used = strlen(err);
        snprintf(err + used, errlen - used,
                 "; a backfill request cannot be acted on, so nothing after "
                 "it is confirmed");
    }
    return v;
}

bool backfill_needs_resolution(backfill *bf)
{
    pthread_mutex_lock(&bf->lock);
    bool needs = bf->needs_resolution;
    pthread_mutex_unlock(&bf->lock);
    return needs;
}

/* ---- resolving ---- */

/* The request's include pattern that selects a relation judged with the
 * partitioned tables above it (its chain), as the daemon's filters judge
 * it: "" when it has no include pattern, NULL when it does not select the
 * relation. */
static const char *request_selects(const table_filter *f,
                                   const catalog_chain *chain)
{
    const char *include = table_filter_has_include(f) ? NULL : "";
    for (size_t i = 0; i < chain->n; i++) {
        const catalog_table *t = &chain->tables[i];
        if (table_filter_exclude_match(f, t->schema, t->table, t->visible))
            return NULL;
        if (!include)
            include =
                table_filter_include_match(f, t->schema, t->table, t->visible);
    }
    return include;
}

typedef struct pattern_use {
    const char *pattern;
    bool matched, streamed;
    strbuf excluded; /* tables it selects that the daemon does not stream */
} pattern_use;

static pattern_use *use_of(pattern_use *uses, size_t n, const char *pattern)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(uses[i].pattern, pattern) == 0)
            return &uses[i];
    return NULL;
}

static void add_table_once(bf_backfill *b, const catalog_table *t)
{
    for (size_t i = 0; i < b->ntables; i++)
        if (b->tables[i].oid == t->oid)
            return;
    bf_table *x = bf_backfill_add_table(b, t->oid, t->quoted);
    x->status = BF_PENDING;
}

/* Why the request cannot be done, or NULL: each include pattern must
 * select a table the publication publishes and the daemon streams. */
static char *request_problem(const bf_backfill *b, pattern_use *uses,
                             const char *publication)
{
    for (size_t i = 0; i < b->n_include; i++) {
        pattern_use *u = &uses[i];
        if (!u->matched)
            return xasprintf("pattern \"%s\" matches no table that "
                             "publication \"%s\" publishes",
                             u->pattern, publication);
        if (!u->streamed)
            return xasprintf("pattern \"%s\" selects only tables that "
                             "pgspout's filters exclude (%s)",
                             u->pattern, u->excluded.data);
    }
    return NULL;
}

static void note_excluded(pattern_use *u, const catalog_table *t,
                          const char *why)
{
    sbuf_appendf(&u->excluded, "%s%s%s%s%s", u->excluded.len ? ", " : "",
                 t->quoted, why ? " (" : "", why ? why : "", why ? ")" : "");
}

static void resolve_one(backfill *bf, bf_backfill *b, const table_filter *f,
                        const catalog_source *const *sources,
                        const uint64_t *routes, const bool *ok,
                        char *const *why, size_t n)
{
    pattern_use *uses = xcalloc(b->n_include + 1, sizeof *uses);
    for (size_t i = 0; i < b->n_include; i++)
        uses[i].pattern = b->include[i];
    for (size_t i = 0; i < n; i++) {
        const char *by = request_selects(f, &sources[i]->chain);
        if (!by)
            continue;
        const catalog_table *t = &sources[i]->chain.tables[0];
        pattern_use *u = *by ? use_of(uses, b->n_include, by) : NULL;
        if (u)
            u->matched = true;
        if (!ok[i] || routes[i] == 0) {
            if (u)
                note_excluded(u, t, ok[i] ? NULL : why[i]);
            else
                log_debug("backfill %s: %s is not streamed, not copied", b->id,
                          t->quoted);
            continue;
        }
        if (u)
            u->streamed = true;
        add_table_once(b, t);
    }
    char *problem = request_problem(b, uses, bf->publication);
    if (problem) {
        log_error("backfill %s failed: %s; nothing was copied", b->id, problem);
        b->status = BF_FAILED;
        b->error = problem;
        while (b->ntables > 0)
            bf_backfill_drop_table(b, b->ntables - 1);
    } else {
        log_info("backfill %s: %zu table%s to copy", b->id, b->ntables,
                 b->ntables == 1 ? "" : "s");
        b->status = b->ntables ? BF_PENDING : BF_DONE;
    }
    for (size_t i = 0; i < b->n_include; i++)
        sbuf_free(&uses[i].excluded);
    free(uses);
}

static table_filter *request_filter(backfill *bf, bf_backfill *b, char *err,
                                    size_t errlen)
{
    table_filter *f = table_filter_build(
        b->include, b->n_include, "backfill request include", b->exclude,
        b->n_exclude, "backfill request exclude", bf->dbname, err, errlen);
    if (f && bf->have_db &&
        !table_filter_follow_database(f, &bf->db, err, errlen)) {
        table_filter_free(f);
        f = NULL;
    }
    return f;
}

void backfill_resolve(backfill *bf, const catalog_source *const *sources,
                      const uint64_t *routes, const bool *ok, char *const *why,
                      size_t n)
{
    pthread_mutex_lock(&bf->lock);
    for (size_t i = 0; i < bf->st.nbackfills; i++) {
        bf_backfill *b = &bf->st.backfills[i];
        if (b->resolved)
            continue;
        char err[1024];
        table_filter *f = request_filter(bf, b, err, sizeof err);
        if (f) {
            resolve_one(bf, b, f, sources, routes, ok, why, n);
            table_filter_free(f);
        } else {
            log_error("backfill %s failed: %s", b->id, err);
            b->status = BF_FAILED;
            b->error = xstrdup(err);
        }
        b->resolved = true;
        bf_status_changed_locked(bf, b, NULL);
        for (size_t j = 0; j < b->ntables; j++)
            b->tables[j].status_dirty = true;
    }
    bf->needs_resolution = false;
    bf_save_locked(bf);
    pthread_cond_broadcast(&bf->changed);
    pthread_mutex_unlock(&bf->lock);
}

/* ---- the initial backfill ---- */

bool backfill_request_initial(PGconn *conn, const stop_state *stop,
                              const char *slot, uint64_t lsn, char *id,
                              size_t idlen, char *err, size_t errlen)
{
    char text[LSN_FORMAT_BUFSIZE];
    snprintf(id, idlen, "initial-%s", lsn_format(lsn, text, sizeof text));
    /* No patterns: every table the daemon's filters select. */
    backfill_request r = {.slot = (char *)slot, .id = id};
    char *content = backfill_request_json(&r);
    const char *params[] = {content};
    PGresult *res = bf_exec(
        conn, stop,
        "SELECT pg_catalog.pg_logical_emit_message(true, 'pgspout', $1)", 1,
        params, PGRES_TUPLES_OK, "cannot request the initial backfill", err,
        errlen, NULL);
    free(content);
    PQclear(res);
    return res != NULL;
}

bool backfill_initial_id(const char *state_dir, const char *system_id,
                         const char *database, const char *slot, char *id,
                         size_t idlen)
{
    bf_state st;
    char err[512];
    if (!state_dir || !bf_state_load(state_dir, &st, err, sizeof err))
        return false;
    bool has = false;
    bool same = st.system_id && st.slot && st.database &&
                strcmp(st.system_id, system_id) == 0 &&
                strcmp(st.database, database) == 0 &&
                strcmp(st.slot, slot) == 0;
    for (size_t i = 0; same && i < st.nbackfills && !has; i++) {
        has = strncmp(st.backfills[i].id, "initial-", 8) == 0;
        if (has)
            snprintf(id, idlen, "%s", st.backfills[i].id);
    }
    bf_state_clear(&st);
    return has;
}
