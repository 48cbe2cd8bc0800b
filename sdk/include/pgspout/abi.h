/* pgspout sink ABI: version numbers, magic, entry symbol.
 *
 * Compatibility rule (as GStreamer's): the host loads a sink when the ABI
 * majors are equal and the sink's minor is <= the host's minor. Within one
 * major, every struct the host and a sink exchange only grows at its end, so
 * an older sink's smaller descriptor and an older host's smaller function
 * table stay readable; each side checks the other's `size` before touching a
 * field that a later minor appended. Nor does a sink ever receive a value it
 * cannot know: an event op added in a later minor (PGSPOUT_OP_READ, 1.2)
 * reaches a sink declaring an older minor as the op it generalises (an
 * insert), in the accessors and in the JSON alike. An op that generalises
 * nothing a sink knew (PGSPOUT_OP_MESSAGE, PGSPOUT_OP_BEGIN and
 * PGSPOUT_OP_COMMIT, 1.5) never reaches a sink declaring an older minor: the
 * host leaves such events out of its share, so they count as delivered and
 * durable for it and never hold the confirmed position back. */
#ifndef PGSPOUT_ABI_H
#define PGSPOUT_ABI_H

#include <stddef.h>
#include <stdint.h>

#define PGSPOUT_ABI_MAGIC 0x50475350u /* "PGSP" */
#define PGSPOUT_ABI_MAJOR 1
#define PGSPOUT_ABI_MINOR 7

/* The one symbol every sink exports (declared in sink.h). */
#define PGSPOUT_SINK_ENTRY_SYMBOL "pgspout_sink_entry"

#if defined(__GNUC__)
#define PGSPOUT_EXPORT __attribute__((visibility("default")))
#define PGSPOUT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PGSPOUT_EXPORT
#define PGSPOUT_PRINTF(fmt, args)
#endif

/* True when a struct received from the other side, which announced its own
 * size in `size`, is large enough to hold `field`. Lets either side use a
 * field appended in a later minor without ever relying on its own sizeof of
 * the other side's struct. */
#define PGSPOUT_HAS_FIELD(ptr, type, field)                                    \
    ((ptr)->size >= offsetof(type, field) + sizeof(((type *)0)->field))

#endif
