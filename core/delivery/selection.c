#include "selection.h"

#include <stdio.h>
#include <stdlib.h>

#include "sink_host.h"
#include "strbuf.h"

struct selection {
    const table_filter *global;
    sink_handle *const *sinks;
    size_t nsinks;
};

/* How one filter judges a chain, and what decided it. */
typedef struct verdict {
    bool selected;
    const char *pattern;         /* the deciding pattern; NULL: none did */
    const catalog_table *member; /* the chain member it matched */
} verdict;

selection *selection_new(const table_filter *global, sink_handle *const *sinks,
                         size_t nsinks)
{
    selection *s = xcalloc(1, sizeof *s);
    s->global = global;
    s->sinks = sinks;
    s->nsinks = nsinks;
    return s;
}

void selection_free(selection *s)
{
    free(s);
}

bool selection_has_patterns(const selection *s)
{
    bool any = !table_filter_is_empty(s->global);
    for (size_t i = 0; i < s->nsinks && !any; i++)
        any = !table_filter_is_empty(s->sinks[i]->filter);
    return any;
}

/* An exclude pattern matching any member wins; otherwise an include
 * pattern must match some member, unless there is none. */
static verdict judge(const table_filter *f, const catalog_chain *chain)
{
    for (size_t i = 0; i < chain->n; i++) {
        const catalog_table *t = &chain->tables[i];
        const char *p =
            table_filter_exclude_match(f, t->schema, t->table, t->visible);
        if (p)
            return (verdict){false, p, t};
    }
    if (!table_filter_has_include(f))
        return (verdict){true, NULL, NULL};
    for (size_t i = 0; i < chain->n; i++) {
        const catalog_table *t = &chain->tables[i];
        const char *p =
            table_filter_include_match(f, t->schema, t->table, t->visible);
        if (p)
            return (verdict){true, p, t};
    }
    return (verdict){false, NULL, NULL};
}

bool selection_global(const selection *s, const catalog_chain *chain)
{
    return judge(s->global, chain).selected;
}

uint64_t selection_mask(const selection *s, const catalog_chain *chain)
{
    if (!selection_global(s, chain))
        return 0;
    uint64_t mask = 0;
    for (size_t i = 0; i < s->nsinks; i++)
        if (judge(s->sinks[i]->filter, chain).selected)
            mask |= UINT64_C(1) << i;
    return mask;
}

/* False, with the message, when filter f judges a leaf unlike its
 * partitioned relation. sink names the sink whose filter f is (NULL: the
 * global filter). */
static bool leaf_agrees(const table_filter *f, const char *sink,
                        const catalog_chain *rel, const catalog_chain *leaf,
                        const char *publication, char *err, size_t errlen)
{
    verdict r = judge(f, rel), l = judge(f, leaf);
    if (r.selected == l.selected)
        return true;
    const char *name = rel->tables[0].quoted;
    char why[1024];
    /* The leaf's chain ends with the relation's, so whatever judged it
     * differently matched a partition between the two. */
    if (l.pattern)
        snprintf(why, sizeof why, "%s pattern \"%s\" %s partition %s",
                 l.selected ? "include" : "exclude", l.pattern,
                 l.selected ? "selects" : "excludes", l.member->quoted);
    else
        snprintf(why, sizeof why, "the filter %s partition %s",
                 l.selected ? "selects" : "leaves out", leaf->tables[0].quoted);
    snprintf(err, errlen,
             "%s%s%s%s but not %s: %s has "
             "publish_via_partition_root = true, so the server sends the "
             "changes of every partition of %s under the name %s, without "
             "saying which partition a row came from, and a partition cannot "
             "be selected apart from it; select or exclude %s as a whole, or "
             "use a publication created with publish_via_partition_root = "
             "false, whose changes carry the partitions' names",
             sink ? "sink \"" : "", sink ? sink : "", sink ? "\": " : "", why,
             name, publication, name, name, name);
    return false;
}

bool selection_check_partitions(const selection *s, const catalog_source *src,
                                const char *publication, char *err,
                                size_t errlen)
{
    if (!selection_has_patterns(s))
        return true;
    bool rel_selected = selection_global(s, &src->chain);
    for (size_t i = 0; i < src->nleaves; i++) {
        const catalog_chain *leaf = &src->leaves[i];
        if (!leaf_agrees(s->global, NULL, &src->chain, leaf, publication, err,
                         errlen))
            return false;
        /* Sinks filter on top of the global filter: moot without it. */
        for (size_t k = 0; k < s->nsinks && rel_selected; k++)
            if (!leaf_agrees(s->sinks[k]->filter, s->sinks[k]->name,
                             &src->chain, leaf, publication, err, errlen))
                return false;
    }
    return true;
}
