#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* statx */
#endif

#include "file_identity.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "alloc.h"
#include "fileio.h"
#include "lsn.h"

#define STATE_SUFFIX ".pgspout-state"
#define STATE_MAGIC "pgspout-file-state 1"
/* Far more than a state line takes: anything longer is not one. */
#define STATE_MAX 512

static void identity_from_statx(const struct statx *stx, file_identity *id)
{
    memset(id, 0, sizeof *id);
    id->dev = makedev(stx->stx_dev_major, stx->stx_dev_minor);
    id->ino = stx->stx_ino;
    id->has_btime = (stx->stx_mask & STATX_BTIME) != 0;
    if (id->has_btime) {
        id->btime_sec = stx->stx_btime.tv_sec;
        id->btime_nsec = stx->stx_btime.tv_nsec;
    }
}

bool file_identity_of(int fd, const char *path, file_identity *id,
                      file_error *err)
{
    struct statx stx;

    if (statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &stx) != 0)
        return file_fail(err, errno, "cannot stat \"%s\": %s", path,
                         strerror(errno));
    identity_from_statx(&stx, id);
    return true;
}

bool file_identity_equal(const file_identity *a, const file_identity *b)
{
    if (a->dev != b->dev || a->ino != b->ino)
        return false;
    return !a->has_btime || !b->has_btime ||
           (a->btime_sec == b->btime_sec && a->btime_nsec == b->btime_nsec);
}

char *file_state_path(const char *path)
{
    char *dir, *state;
    const char *base;

    file_split_path(path, &dir, &base);
    state = xasprintf("%s/.%s" STATE_SUFFIX, dir, base);
    free(dir);
    return state;
}

static void format_state(const file_state *state, char *text, size_t len)
{
    char btime[48] = "none", before[64] = "none", lsn[LSN_FORMAT_BUFSIZE];
    const file_identity *id = &state->file;

    if (id->has_btime)
        snprintf(btime, sizeof btime, "%" PRId64 ".%09" PRIu32, id->btime_sec,
                 id->btime_nsec);
    if (state->has_before)
        snprintf(before, sizeof before, "%s:%" PRIu64,
                 lsn_format(state->before.commit_lsn, lsn, sizeof lsn),
                 state->before.seq);
    snprintf(text, len,
             STATE_MAGIC " device=%" PRIu64 " inode=%" PRIu64
                         " btime=%s before=%s\n",
             id->dev, id->ino, btime, before);
}

static bool parse_btime(const char *text, file_identity *id)
{
    long long sec;
    unsigned nsec;
    int used = 0;

    if (strcmp(text, "none") == 0)
        return true;
    if (sscanf(text, "%lld.%9u%n", &sec, &nsec, &used) != 2 ||
        text[used] != '\0')
        return false;
    id->has_btime = true;
    id->btime_sec = sec;
    id->btime_nsec = nsec;
    return true;
}

static bool parse_before(char *text, file_state *state)
{
    char *colon = strchr(text, ':'), *end;

    if (strcmp(text, "none") == 0)
        return true;
    if (!colon)
        return false;
    *colon = '\0';
    if (!lsn_parse(text, &state->before.commit_lsn))
        return false;
    errno = 0;
    state->before.seq = strtoull(colon + 1, &end, 10);
    /* No lower bound: seq 0 is a non-transactional message's. */
    if (errno || end == colon + 1 || *end != '\0')
        return false;
    state->has_before = true;
    return true;
}

static bool parse_state(char *text, file_state *state)
{
    char btime[64], before[64];
    int used = 0;

    memset(state, 0, sizeof *state);
    if (sscanf(text,
               STATE_MAGIC " device=%" SCNu64 " inode=%" SCNu64
                           " btime=%63s before=%63s%n",
               &state->file.dev, &state->file.ino, btime, before, &used) != 4 ||
        strcmp(text + used, "\n") != 0)
        return false;
    return parse_btime(btime, &state->file) && parse_before(before, state);
}

/* The whole (small) file at `name`; *len is 0 when it does not exist. */
static bool read_small_file(const char *name, char *text, size_t cap,
                            size_t *len, file_error *err)
{
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    *len = 0;
    if (fd < 0 && errno == ENOENT)
        return true;
    if (fd < 0)
        return file_fail(err, errno, "cannot open \"%s\": %s", name,
                         strerror(errno));
    do
        n = read(fd, text, cap - 1);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int errnum = errno;
        close(fd);
        return file_fail(err, errnum, "cannot read \"%s\": %s", name,
                         strerror(errnum));
    }
    close(fd);
    text[n] = '\0';
    *len = (size_t)n;
    return true;
}

bool file_state_read(const char *path, bool *found, file_state *state,
                     file_error *err)
{
    char *name = file_state_path(path);
    char text[STATE_MAX];
    size_t len;
    bool ok;

    *found = false;
    ok = read_small_file(name, text, sizeof text, &len, err);
    if (ok && len > 0) {
        *found = true;
        if (strlen(text) != len || !parse_state(text, state))
            ok = file_fail(err, 0,
                           "\"%s\" is not a pgspout file sink state (it "
                           "should hold one line \"" STATE_MAGIC
                           " device=... inode=... btime=... before=...\"); "
                           "refusing to guess which file the sink wrote last",
                           name);
    }
    free(name);
    return ok;
}

/* Writes `text` to the new file `fd`, makes it durable and renames it
 * over `name`. */
static bool install(int fd, const char *tmp, const char *name, const char *text,
                    bool sync, file_error *err)
{
    if (!write_all(fd, text, strlen(text)))
        return file_fail(err, errno, "cannot write \"%s\": %s", tmp,
                         strerror(errno));
    if (sync && fsync(fd) != 0)
        return file_fail(err, errno, "cannot fsync \"%s\": %s", tmp,
                         strerror(errno));
    if (rename(tmp, name) != 0)
        return file_fail(err, errno, "cannot rename \"%s\" to \"%s\": %s", tmp,
                         name, strerror(errno));
    return true;
}

bool file_state_write(const char *path, const file_state *state, bool sync,
                      file_error *err)
{
    char *name = file_state_path(path), *tmp = xasprintf("%s.tmp", name);
    char text[STATE_MAX];
    int fd;
    bool ok;

    format_state(state, text, sizeof text);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ok = file_fail(err, errno, "cannot create \"%s\": %s", tmp,
                       strerror(errno));
    } else {
        ok = install(fd, tmp, name, text, sync, err);
        close(fd);
        if (!ok)
            unlink(tmp);
    }
    free(tmp);
    free(name);
    return ok;
}

/* Whether the directory entry `name` of the open directory `dirfd` is the
 * regular file `id`. */
static bool entry_is(int dirfd, const char *name, const file_identity *id)
{
    struct statx stx;
    file_identity entry;

    if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW,
              STATX_TYPE | STATX_INO | STATX_BTIME, &stx) != 0 ||
        !S_ISREG(stx.stx_mode))
        return false;
    identity_from_statx(&stx, &entry);
    return file_identity_equal(&entry, id);
}

bool file_find_by_identity(const char *path, const file_identity *id,
                           char **found, file_error *err)
{
    char *dir;
    const char *base;
    DIR *d;
    struct dirent *entry;

    *found = NULL;
    d = file_open_parent_dir(path, &dir, &base, err);
    if (!d)
        return false;
    /* The inode number in each entry spares a stat of every other file. */
    while ((entry = readdir(d)) != NULL) {
        if ((uint64_t)entry->d_ino != id->ino ||
            !entry_is(dirfd(d), entry->d_name, id))
            continue;
        *found = xasprintf("%s/%s", dir, entry->d_name);
        break;
    }
    closedir(d);
    free(dir);
    return true;
}
