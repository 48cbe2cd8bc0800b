#include "dead_letter.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "base64.h"
#include "fileio.h"
#include "lsn.h"

struct kit_dead_letter {
    int fd;
    pthread_mutex_t lock;
};

kit_dead_letter *kit_dead_letter_open(const char *path, char *err,
                                      size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open dead-letter file %s: %s", path,
                 strerror(errno));
        return NULL;
    }
    kit_dead_letter *dl = xcalloc(1, sizeof *dl);
    dl->fd = fd;
    pthread_mutex_init(&dl->lock, NULL);
    return dl;
}

/* The payload itself when it is JSON, so the file stays readable. */
static json_t *record_value(const char *payload, size_t len)
{
    if (payload && len > 0) {
        json_t *v = json_loadb(payload, len, JSON_DECODE_ANY, NULL);
        if (v)
            return v;
    }
    char *b64 = base64_encode(payload ? payload : "", len);
    json_t *v = json_pack("{s:s}", "base64", b64);
    free(b64);
    return v;
}

bool kit_dead_letter_write(kit_dead_letter *dl, const char *sink,
                           pgspout_position pos, const char *reason,
                           const char *payload, size_t len, char *err,
                           size_t errlen)
{
    char lsn[LSN_FORMAT_BUFSIZE];
    lsn_format(pos.commit_lsn, lsn, sizeof lsn);
    json_t *line =
        json_pack("{s:s, s:s, s:s, s:I, s:o}", "reason", reason, "sink", sink,
                  "commit_lsn", lsn, "seq", (json_int_t)pos.seq, "record",
                  record_value(payload, len));
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
    if (!text) {
        snprintf(err, errlen, "cannot encode a dead-letter line");
        return false;
    }
    size_t text_len = strlen(text);
    text[text_len] = '\n'; /* replaces the terminator; length kept below */
    bool ok = true;
    pthread_mutex_lock(&dl->lock);
    if (!write_all(dl->fd, text, text_len + 1)) {
        snprintf(err, errlen, "cannot write the dead-letter file: %s",
                 strerror(errno));
        ok = false;
    }
    if (ok && fsync(dl->fd) != 0) {
        snprintf(err, errlen, "cannot fsync the dead-letter file: %s",
                 strerror(errno));
        ok = false;
    }
    pthread_mutex_unlock(&dl->lock);
    free(text);
    return ok;
}

void kit_dead_letter_close(kit_dead_letter *dl)
{
    if (!dl)
        return;
    close(dl->fd);
    pthread_mutex_destroy(&dl->lock);
    free(dl);
}
