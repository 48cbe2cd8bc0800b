/* Finding, loading and validating sink shared objects. */
#ifndef PGSPOUT_LOADER_H
#define PGSPOUT_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "pgspout/sink.h"

typedef struct sink_library {
    char *path;   /* absolute path of the shared object */
    void *handle; /* lt_dlhandle */
    const pgspout_sink_descriptor *desc;
} sink_library;

/* Must be called once before anything else here. */
bool loader_init(char *err, size_t errlen);
void loader_shutdown(void);

/* Loads a sink by name (pgspout_<name>.so, searched in dirs in order) or by
 * absolute path. Relative paths are refused: nothing is ever loaded from the
 * working directory. On failure, err names the file and what is wrong. */
bool sink_library_open(const char *name_or_path, char *const *dirs,
                       size_t ndirs, sink_library *lib, char *err,
                       size_t errlen);
void sink_library_close(sink_library *lib);

/* Checks a descriptor the way the host does before calling anything in it.
 * Exposed for unit tests. */
bool sink_descriptor_validate(const pgspout_sink_descriptor *desc, char *err,
                              size_t errlen);

/* Every loadable sink in dirs (the first of each name wins), for
 * --list-sinks. Files that fail to load are reported through `refused`. */
typedef void (*sink_refused_fn)(const char *path, const char *why);
size_t sink_library_list(char *const *dirs, size_t ndirs, sink_library **libs,
                         sink_refused_fn refused);

#endif
