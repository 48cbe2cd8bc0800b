#include "loader.h"

#include <dirent.h>
#include <errno.h>
#include <ltdl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"

#define SINK_FILE_PREFIX "pgspout_"
#define SINK_FILE_SUFFIX ".so"

/* The end of the last field every ABI 1.x descriptor must have. */
#define DESCRIPTOR_V1_0_SIZE                                                   \
    (offsetof(pgspout_sink_descriptor, resume_position) +                      \
     sizeof(((pgspout_sink_descriptor *)0)->resume_position))

bool loader_init(char *err, size_t errlen)
{
    if (lt_dlinit() != 0) {
        snprintf(err, errlen, "cannot initialise libltdl: %s", lt_dlerror());
        return false;
    }
    return true;
}

void loader_shutdown(void)
{
    lt_dlexit();
}

static bool valid_sink_name(const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    }
    return true;
}

/* A prefix option (ABI 1.4) stands for a family of keys passed through as
 * text: it must say so in its name and cannot have a type, a default or be
 * required, which the host could not apply to a family. A sink declaring
 * an older minor cannot know the flag. */
static bool check_prefix_option(const pgspout_sink_descriptor *desc,
                                const pgspout_option_def *o, char *err,
                                size_t errlen)
{
    if (!(o->flags & PGSPOUT_OPTF_PREFIX))
        return true;
    size_t len = strlen(o->name);
    const char *wrong =
        desc->abi_minor < 4                  ? "needs ABI 1.4"
        : len < 2 || o->name[len - 1] != '.' ? "must end with '.'"
        : o->type != PGSPOUT_OPT_STRING      ? "must be of type string"
        : o->default_value                   ? "cannot have a default"
        : (o->flags & PGSPOUT_OPTF_REQUIRED) ? "cannot be required"
                                             : NULL;
    if (!wrong)
        return true;
    snprintf(err, errlen, "sink '%s': prefix option '%s' %s", desc->name,
             o->name, wrong);
    return false;
}

bool sink_descriptor_validate(const pgspout_sink_descriptor *desc, char *err,
                              size_t errlen)
{
    if (desc->magic != PGSPOUT_ABI_MAGIC) {
        snprintf(err, errlen,
                 "bad magic number 0x%08X (expected 0x%08X): not a pgspout "
                 "sink descriptor",
                 desc->magic, PGSPOUT_ABI_MAGIC);
        return false;
    }
    if (desc->abi_major != PGSPOUT_ABI_MAJOR) {
        snprintf(err, errlen,
                 "incompatible ABI major version: sink built for ABI %u.%u, "
                 "this pgspout provides ABI %u.%u (majors must be equal)",
                 desc->abi_major, desc->abi_minor, PGSPOUT_ABI_MAJOR,
                 PGSPOUT_ABI_MINOR);
        return false;
    }
    if (desc->abi_minor > PGSPOUT_ABI_MINOR) {
        snprintf(err, errlen,
                 "sink needs a newer host: sink built for ABI %u.%u, this "
                 "pgspout provides ABI %u.%u (sink minor must be <= host "
                 "minor)",
                 desc->abi_major, desc->abi_minor, PGSPOUT_ABI_MAJOR,
                 PGSPOUT_ABI_MINOR);
        return false;
    }
    if (desc->size < DESCRIPTOR_V1_0_SIZE) {
        snprintf(err, errlen,
                 "descriptor size %u is smaller than ABI %u.0 requires (%zu)",
                 desc->size, PGSPOUT_ABI_MAJOR, DESCRIPTOR_V1_0_SIZE);
        return false;
    }
    if (!valid_sink_name(desc->name)) {
        snprintf(err, errlen,
                 "descriptor field 'name' is missing or not made of "
                 "[a-z0-9_-]");
        return false;
    }
    if (!desc->version || !desc->description) {
        snprintf(err, errlen, "sink '%s': descriptor field '%s' is missing",
                 desc->name, desc->version ? "description" : "version");
        return false;
    }
    const char *missing = !desc->create    ? "create"
                          : !desc->write   ? "write"
                          : !desc->flush   ? "flush"
                          : !desc->destroy ? "destroy"
                                           : NULL;
    if (missing) {
        snprintf(err, errlen, "sink '%s': missing required callback '%s'",
                 desc->name, missing);
        return false;
    }
    for (const pgspout_option_def *o = desc->options; o && o->name; o++) {
        if (o->type < PGSPOUT_OPT_STRING || o->type > PGSPOUT_OPT_DURATION) {
            snprintf(err, errlen, "sink '%s': option '%s' has unknown type %d",
                     desc->name, o->name, (int)o->type);
            return false;
        }
        if (!check_prefix_option(desc, o, err, errlen))
            return false;
    }
    return true;
}

/* dlopen() of a file that is not ELF gives messages that do not say so
 * plainly (libltdl's is just "file not found"), so look first. */
static bool check_shared_object(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return false;
    }
    FILE *f = fopen(path, "rb");
    unsigned char magic[4] = {0};
    size_t n = f ? fread(magic, 1, sizeof magic, f) : 0;
    if (f)
        fclose(f);
    if (n != 4 || memcmp(magic, "\177ELF", 4) != 0) {
        snprintf(err, errlen, "%s: not a shared object (no ELF header)", path);
        return false;
    }
    return true;
}

static bool open_path(const char *path, sink_library *lib, char *err,
                      size_t errlen)
{
    char why[512];
    memset(lib, 0, sizeof *lib);
    if (!check_shared_object(path, err, errlen))
        return false;

    lt_dladvise advise;
    lt_dladvise_init(&advise);
    /* Sinks keep their symbols to themselves so two sinks that embed the
     * same library (or the same helper names) cannot collide. */
    lt_dladvise_local(&advise);
    lt_dlhandle handle = lt_dlopenadvise(path, advise);
    lt_dladvise_destroy(&advise);
    if (!handle) {
        snprintf(err, errlen, "%s: cannot load shared object: %s", path,
                 lt_dlerror());
        return false;
    }
    typedef const pgspout_sink_descriptor *(*entry_fn)(void);
    entry_fn entry =
        (entry_fn)(uintptr_t)lt_dlsym(handle, PGSPOUT_SINK_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, errlen, "%s: does not export %s(): not a pgspout sink",
                 path, PGSPOUT_SINK_ENTRY_SYMBOL);
        lt_dlclose(handle);
        return false;
    }
    const pgspout_sink_descriptor *desc = entry();
    if (!desc) {
        snprintf(err, errlen, "%s: %s() returned no descriptor", path,
                 PGSPOUT_SINK_ENTRY_SYMBOL);
        lt_dlclose(handle);
        return false;
    }
    if (!sink_descriptor_validate(desc, why, sizeof why)) {
        snprintf(err, errlen, "%s: %s", path, why);
        lt_dlclose(handle);
        return false;
    }
    lib->path = xstrdup(path);
    lib->handle = handle;
    lib->desc = desc;
    return true;
}

bool sink_library_open(const char *name_or_path, char *const *dirs,
                       size_t ndirs, sink_library *lib, char *err,
                       size_t errlen)
{
    if (strchr(name_or_path, '/')) {
        if (name_or_path[0] != '/') {
            snprintf(err, errlen,
                     "sink '%s': a sink given as a path must be absolute "
                     "(nothing is loaded from the working directory)",
                     name_or_path);
            return false;
        }
        return open_path(name_or_path, lib, err, errlen);
    }
    if (!valid_sink_name(name_or_path)) {
        snprintf(err, errlen,
                 "sink '%s': not a sink name ([a-z0-9_-]) nor an absolute "
                 "path",
                 name_or_path);
        return false;
    }
    strbuf path = STRBUF_INIT;
    for (size_t i = 0; i < ndirs; i++) {
        sbuf_reset(&path);
        sbuf_appendf(&path, "%s/" SINK_FILE_PREFIX "%s" SINK_FILE_SUFFIX,
                     dirs[i], name_or_path);
        if (access(path.data, F_OK) != 0)
            continue;
        bool ok = open_path(path.data, lib, err, errlen);
        if (ok && strcmp(lib->desc->name, name_or_path) != 0) {
            snprintf(err, errlen, "%s: declares sink name '%s', expected '%s'",
                     path.data, lib->desc->name, name_or_path);
            sink_library_close(lib);
            ok = false;
        }
        sbuf_free(&path);
        return ok;
    }
    sbuf_free(&path);
    strbuf dirlist = STRBUF_INIT;
    for (size_t i = 0; i < ndirs; i++)
        sbuf_appendf(&dirlist, "%s%s", i ? ", " : "", dirs[i]);
    snprintf(err, errlen,
             "sink '%s' not found: no " SINK_FILE_PREFIX "%s" SINK_FILE_SUFFIX
             " in %s",
             name_or_path, name_or_path,
             dirlist.len ? dirlist.data : "(no plugin directory)");
    sbuf_free(&dirlist);
    return false;
}

void sink_library_close(sink_library *lib)
{
    if (lib->handle)
        lt_dlclose((lt_dlhandle)lib->handle);
    free(lib->path);
    memset(lib, 0, sizeof *lib);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t sink_library_list(char *const *dirs, size_t ndirs, sink_library **libs,
                         sink_refused_fn refused)
{
    size_t count = 0, cap = 0;
    *libs = NULL;
    for (size_t d = 0; d < ndirs; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir)
            continue;
        char **names = NULL;
        size_t nnames = 0;
        struct dirent *de;
        while ((de = readdir(dir))) {
            size_t len = strlen(de->d_name);
            size_t pre = strlen(SINK_FILE_PREFIX),
                   suf = strlen(SINK_FILE_SUFFIX);
            if (len <= pre + suf ||
                strncmp(de->d_name, SINK_FILE_PREFIX, pre) != 0 ||
                strcmp(de->d_name + len - suf, SINK_FILE_SUFFIX) != 0)
                continue;
            names = xrealloc(names, (nnames + 1) * sizeof *names);
            names[nnames++] = xstrdup(de->d_name);
        }
        closedir(dir);
        qsort(names, nnames, sizeof *names, compare_names);
        for (size_t i = 0; i < nnames; i++) {
            /* Room for the whole path in a message about it. */
            char path[4096], err[4096 + 1024];
            snprintf(path, sizeof path, "%s/%s", dirs[d], names[i]);
            sink_library lib;
            if (!open_path(path, &lib, err, sizeof err)) {
                if (refused)
                    refused(path, err);
            } else {
                bool seen = false;
                for (size_t j = 0; j < count && !seen; j++)
                    seen = strcmp((*libs)[j].desc->name, lib.desc->name) == 0;
                if (seen) {
                    sink_library_close(&lib);
                } else {
                    if (count == cap) {
                        cap = cap ? cap * 2 : 8;
                        *libs = xrealloc(*libs, cap * sizeof **libs);
                    }
                    (*libs)[count++] = lib;
                }
            }
            free(names[i]);
        }
        free(names);
    }
    return count;
}
