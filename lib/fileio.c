#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"

/* Bytes a read asks for once the file's known size is used up. */
#define READ_STEP 4096

static void wipe_and_free(strbuf *sb)
{
    if (sb->data)
        explicit_bzero(sb->data, sb->cap);
    sbuf_free(sb);
}

char *read_whole_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    strbuf sb = STRBUF_INIT;
    struct stat st;
    /* Room for the whole file and one byte more, so that the read which
     * finds the end needs no growth. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        sbuf_reserve(&sb, (size_t)st.st_size + 1);
    for (;;) {
        if (sb.cap - sb.len < 2)
            sbuf_reserve(&sb, READ_STEP);
        ssize_t n = read(fd, sb.data + sb.len, sb.cap - sb.len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int errnum = errno;
            wipe_and_free(&sb);
            close(fd);
            errno = errnum;
            return NULL;
        }
        if (n == 0)
            break;
        sb.len += (size_t)n;
    }
    close(fd);
    sb.data[sb.len] = '\0';
    *len = sb.len;
    return sbuf_detach(&sb);
}

bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        if (n == 0) {
            errno = EIO; /* no progress and no reason: do not spin */
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}
