#include "dead_letter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sinkkit_dead_letter {
    int fd;
    pthread_mutex_t lock;
};

sinkkit_dead_letter *sinkkit_dead_letter_open(const char *path, char *err,
                                              size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open dead-letter file %s: %s", path,
                 strerror(errno));
        return NULL;
    }
    sinkkit_dead_letter *dl = calloc(1, sizeof *dl);
    if (!dl) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
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
    size_t cap = 4 * ((len + 2) / 3) + 1;
    unsigned char *b64 = malloc(cap);
    if (!b64)
        return json_null();
    int n = EVP_EncodeBlock(
        b64, (const unsigned char *)(payload ? payload : ""), (int)len);
    json_t *v = json_pack("{s:s%}", "base64", (const char *)b64, (size_t)n);
    free(b64);
    return v;
}

bool sinkkit_dead_letter_write(sinkkit_dead_letter *dl, const char *sink,
                               pgspout_position pos, const char *reason,
                               const char *payload, size_t len, char *err,
                               size_t errlen)
{
    char lsn[32];
    snprintf(lsn, sizeof lsn, "%" PRIX32 "/%" PRIX32,
             (uint32_t)(pos.commit_lsn >> 32), (uint32_t)pos.commit_lsn);
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
    size_t done = 0;
    while (done < text_len + 1) {
        ssize_t w = write(dl->fd, text + done, text_len + 1 - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "cannot write the dead-letter file: %s",
                     strerror(errno));
            ok = false;
            break;
        }
        done += (size_t)w;
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

void sinkkit_dead_letter_close(sinkkit_dead_letter *dl)
{
    if (!dl)
        return;
    close(dl->fd);
    pthread_mutex_destroy(&dl->lock);
    free(dl);
}
