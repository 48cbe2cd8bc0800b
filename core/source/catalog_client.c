#include "catalog_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "catalog.h"
#include "log.h"
#include "pattern.h"
#include "pgconn.h"
#include "strbuf.h"

struct catalog_client {
    PGconn **conn; /* replaced when it must be reconnected */
    const char *conninfo;
    const char *publication;
    const stop_state *stop;
    char **search_path;
    size_t search_path_len;
    source_catalog iface;
};

static bool in_search_path(const catalog_client *c, const char *schema)
{
    for (size_t i = 0; i < c->search_path_len; i++)
        if (strcmp(c->search_path[i], schema) == 0)
            return true;
    return false;
}

/* The relation's chain and leaves as the catalog has them now. Its own
 * name is the one its changes carry (from the Relation message). A
 * relation dropped since is judged alone, visible when its schema is in
 * search_path. */
static bool relation_source(catalog_client *c, const relation *rel,
                            catalog_source *src, char *err, size_t errlen,
                            bool *retryable)
{
    bool found;
    if (!catalog_relation_source(*c->conn, c->stop, rel->oid, src, &found, err,
                                 errlen, retryable))
        return false;
    if (!found) {
        src->chain.tables = xcalloc(1, sizeof *src->chain.tables);
        src->chain.n = 1;
        src->chain.tables[0].visible = in_search_path(c, rel->schema);
    }
    catalog_table *self = &src->chain.tables[0];
    free(self->schema);
    free(self->table);
    free(self->quoted);
    self->schema = xstrdup(rel->schema);
    self->table = xstrdup(rel->table);
    char *schema = quote_ident_dup(rel->schema),
         *table = quote_ident_dup(rel->table);
    strbuf quoted = STRBUF_INIT;
    sbuf_appendf(&quoted, "%s.%s", schema, table);
    self->quoted = quoted.data;
    free(schema);
    free(table);
    return true;
}

/* A partitioned relation's leaves may arrive under its name: whether they
 * do is the publication's publish_via_partition_root. */
static bool relation_lineage_now(catalog_client *c, const relation *rel,
                                 relation_lineage *lineage, char *err,
                                 size_t errlen, bool *retryable)
{
    memset(lineage, 0, sizeof *lineage);
    lineage->publication = c->publication;
    if (!relation_source(c, rel, &lineage->src, err, errlen, retryable))
        return false;
    bool exists;
    if (lineage->src.nleaves > 0 &&
        !catalog_publication_info(*c->conn, c->stop, c->publication, &exists,
                                  &lineage->via_root, err, errlen, retryable)) {
        catalog_source_clear(&lineage->src);
        return false;
    }
    return true;
}

static bool ask_catalog(catalog_client *c, relation *rel,
                        relation_lineage *lineage, char *err, size_t errlen,
                        bool *retryable)
{
    *retryable = true;
    return catalog_describe_columns(*c->conn, c->stop, rel, err, errlen,
                                    retryable) &&
           (!lineage ||
            relation_lineage_now(c, rel, lineage, err, errlen, retryable));
}

/* Replaces a catalog connection that can take no more queries; on failure
 * leaves none, with err saying why. */
static void reconnect(catalog_client *c, char *err, size_t errlen)
{
    if (catalog_connection_usable(*c->conn))
        return;
    PQfinish(*c->conn);
    *c->conn = pq_connect(c->conninfo, false, c->stop, NULL, err, errlen);
    if (*c->conn)
        log_info("catalog connection re-established");
}

/* One question to the catalog: true when answered, else *retryable says
 * whether asking again may work. */
typedef bool (*catalog_question)(catalog_client *c, void *arg, char *err,
                                 size_t errlen, bool *retryable);

/* Asks until the catalog answers, an error that asking again cannot cure
 * comes, or a stop. */
static source_status ask_until_answered(catalog_client *c,
                                        catalog_question question, void *arg,
                                        char *err, size_t errlen)
{
    if (!catalog_connection_usable(*c->conn))
        snprintf(err, errlen, "the catalog connection is closed");
    for (int attempt = 1;; attempt++) {
        bool retryable = true;
        if (catalog_connection_usable(*c->conn)) {
            if (question(c, arg, err, errlen, &retryable))
                return SOURCE_OK;
            /* A stop that interrupted the question is a stop, not a
             * catalog failure: the run ends cleanly. */
            if (stop_requested(c->stop))
                return SOURCE_STOPPED;
            if (!retryable)
                return SOURCE_FAILED;
        }
        int64_t delay = backoff_delay_ms(attempt);
        log_warning("%s; asking the catalog again in %lld ms (attempt %d); "
                    "nothing new is confirmed meanwhile",
                    err, (long long)delay, attempt);
        if (!stop_sleep(c->stop, delay)) {
            snprintf(err, errlen,
                     "stop requested while waiting for the catalog");
            return SOURCE_STOPPED;
        }
        reconnect(c, err, errlen);
    }
}

typedef struct describe_args {
    relation *rel;
    relation_lineage *lineage;
} describe_args;

static bool ask_describe(catalog_client *c, void *arg, char *err, size_t errlen,
                         bool *retryable)
{
    describe_args *a = arg;
    return ask_catalog(c, a->rel, a->lineage, err, errlen, retryable);
}

static source_status describe(void *ctx, relation *rel,
                              relation_lineage *lineage, char *err,
                              size_t errlen)
{
    describe_args a = {rel, lineage};
    return ask_until_answered(ctx, ask_describe, &a, err, errlen);
}

typedef struct published_args {
    relation_lineage **lineages;
    size_t *count;
} published_args;

static bool ask_published(catalog_client *c, void *arg, char *err,
                          size_t errlen, bool *retryable)
{
    published_args *a = arg;
    bool exists, via_root;
    catalog_source *sources;
    size_t n;
    if (!catalog_publication_info(*c->conn, c->stop, c->publication, &exists,
                                  &via_root, err, errlen, retryable))
        return false;
    if (!exists) {
        snprintf(err, errlen, "publication \"%s\" does not exist",
                 c->publication);
        *retryable = false;
        return false;
    }
    if (!catalog_publication_sources(*c->conn, c->stop, c->publication, true,
                                     &sources, &n, err, errlen)) {
        *retryable = !catalog_connection_usable(*c->conn);
        return false;
    }
    *a->lineages = xcalloc(n + 1, sizeof **a->lineages);
    for (size_t i = 0; i < n; i++) {
        (*a->lineages)[i].src = sources[i];
        (*a->lineages)[i].via_root = via_root;
        (*a->lineages)[i].publication = c->publication;
    }
    free(sources); /* the contents moved */
    *a->count = n;
    return true;
}

static source_status published(void *ctx, relation_lineage **lineages,
                               size_t *count, char *err, size_t errlen)
{
    published_args a = {lineages, count};
    *lineages = NULL;
    *count = 0;
    return ask_until_answered(ctx, ask_published, &a, err, errlen);
}

catalog_client *catalog_client_new(PGconn **conn, const char *conninfo,
                                   const char *publication,
                                   const stop_state *stop)
{
    catalog_client *c = xcalloc(1, sizeof *c);
    c->conn = conn;
    c->conninfo = conninfo;
    c->publication = publication;
    c->stop = stop;
    c->search_path = catalog_search_path(*conn, stop, &c->search_path_len);
    c->iface = (source_catalog){
        .ctx = c, .describe = describe, .published = published};
    return c;
}

const source_catalog *catalog_client_source(catalog_client *c)
{
    return &c->iface;
}

void catalog_client_free(catalog_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->search_path_len; i++)
        free(c->search_path[i]);
    free(c->search_path);
    free(c);
}
