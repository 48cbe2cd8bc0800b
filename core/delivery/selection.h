/* Which sinks the changes arriving under a relation go to. A partition is
 * judged together with the partitioned tables above it (its chain): a
 * filter selects a change when it has no include pattern or one matches
 * the relation or one of its ancestors, and no exclude pattern matches any
 * of them. The global filter applies first, each sink's own on top. */
#ifndef PGSPOUT_SELECTION_H
#define PGSPOUT_SELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "pattern.h"

/* Sink handles stay opaque here (sink_host.h is delivery's own). */
typedef struct pgspout_sink_handle sink_handle;

/* One bit per sink in a mask. */
#define SELECTION_MAX_SINKS 64

typedef struct selection selection;

/* Keeps the pointers: global and the sinks must outlive the selection. At
 * most SELECTION_MAX_SINKS sinks (none to judge the global filter alone). */
selection *selection_new(const table_filter *global, sink_handle *const *sinks,
                         size_t nsinks);
void selection_free(selection *s);

/* False when no filter has any pattern: everything goes to every sink. */
bool selection_has_patterns(const selection *s);

/* Whether the global filter selects changes arriving under
 * chain->tables[0]. */
bool selection_global(const selection *s, const catalog_chain *chain);

/* The sinks (bit i: sinks[i]) that receive those changes; 0 when the global
 * filter does not select them. */
uint64_t selection_mask(const selection *s, const catalog_chain *chain);

/* With publish_via_partition_root the changes of every leaf partition of a
 * partitioned relation arrive under the relation's name, and nothing tells
 * which partition a row came from. When a leaf is selected (by the global
 * filter or a sink's) unlike the relation itself, its changes could only be
 * dropped or streamed against the filter: returns false with a message
 * naming the pattern, the partition, the relation, the publication and the
 * ways out. publication describes it for that message, e.g.
 * `publication "pgspout"`. */
bool selection_check_partitions(const selection *s, const catalog_source *src,
                                const char *publication, char *err,
                                size_t errlen);

#endif
