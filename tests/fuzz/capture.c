/* Captures real pgoutput messages as fuzz seeds: streams a slot with
 * START_REPLICATION and writes each XLogData payload to its own file in
 * OUTDIR, prefixed with the flags byte fuzz_pgoutput.c reads (protocol
 * version, in_stream, stream_abort_has_lsn) so that every seed decodes in
 * the parser state it was sent in.
 *
 * Usage: capture CONNINFO SLOT PUBLICATION PROTO ENDPOS OUTDIR [OPTIONS]
 * OPTIONS is appended to the START_REPLICATION option list, e.g.
 * "streaming 'on', binary 'true'". Stops once the server reports a WAL end
 * at or past ENDPOS and nothing arrived for a second (or after 30 s).
 *
 * When OUTDIR ends in ".frames" it is instead one file that receives every
 * CopyData message the server sent, XLogData and keepalives alike, each as
 * a 4-byte big-endian length and the message: a whole stream, for the unit
 * tests that replay one (tests/unit/capture_stream.py). */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

static uint64_t read_u64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

static bool parse_lsn(const char *text, uint64_t *lsn)
{
    unsigned hi, lo;
    if (sscanf(text, "%X/%X", &hi, &lo) != 2)
        return false;
    *lsn = (uint64_t)hi << 32 | lo;
    return true;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends one CopyData message to a .frames file. */
static bool write_frame(FILE *f, const char *buf, int len)
{
    unsigned char head[4] = {(unsigned char)(len >> 24),
                             (unsigned char)(len >> 16),
                             (unsigned char)(len >> 8), (unsigned char)len};
    return fwrite(head, 1, 4, f) == 4 &&
           fwrite(buf, 1, (size_t)len, f) == (size_t)len;
}

static void write_u64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

/* Confirms what was received, so the walsender keeps sending keepalives
 * with its current WAL end. */
static void send_status(PGconn *conn, uint64_t lsn)
{
    char msg[34];
    msg[0] = 'r';
    write_u64(msg + 1, lsn);
    write_u64(msg + 9, lsn);
    write_u64(msg + 17, lsn);
    write_u64(msg + 25, 0);
    msg[33] = 1; /* ask for a reply: it carries the WAL end */
    PQputCopyData(conn, msg, sizeof msg);
    PQflush(conn);
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: capture CONNINFO SLOT PUBLICATION PROTO "
                        "ENDPOS OUTDIR [OPTIONS]\n");
        return 2;
    }
    const char *slot = argv[2], *publication = argv[3], *outdir = argv[6];
    int proto = atoi(argv[4]);
    uint64_t endpos;
    if (proto < 1 || proto > 4 || !parse_lsn(argv[5], &endpos)) {
        fprintf(stderr, "capture: bad PROTO or ENDPOS\n");
        return 2;
    }
    const char *options = argc > 7 ? argv[7] : "";
    bool abort_has_lsn = strstr(options, "parallel") != NULL;
    size_t outlen = strlen(outdir);
    FILE *frames = NULL;
    if (outlen > 7 && strcmp(outdir + outlen - 7, ".frames") == 0 &&
        !(frames = fopen(outdir, "wb"))) {
        fprintf(stderr, "capture: %s: %s\n", outdir, strerror(errno));
        return 1;
    }

    char conninfo[4096];
    snprintf(conninfo, sizeof conninfo, "%s replication=database", argv[1]);
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "capture: %s", PQerrorMessage(conn));
        return 1;
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "START_REPLICATION SLOT \"%s\" LOGICAL 0/0 (proto_version '%d', "
             "publication_names '\"%s\"'%s%s)",
             slot, proto, publication, *options ? ", " : "", options);
    PGresult *res = PQexec(conn, cmd);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        fprintf(stderr, "capture: %s: %s", cmd, PQerrorMessage(conn));
        return 1;
    }
    PQclear(res);

    bool in_stream = false;
    uint64_t wal_end = 0, received = 0;
    unsigned count = 0;
    double start = now_s(), last_data = start;
    int sock = PQsocket(conn);
    while (now_s() - start < 30) {
        if (wal_end >= endpos && now_s() - last_data > 1.0)
            break;
        char *buf = NULL;
        int len = PQgetCopyData(conn, &buf, 1);
        if (len == 0) {
            fd_set fds;
            FD_ZERO(&fds);
            FD_SET(sock, &fds);
            struct timeval tv = {0, 200000};
            if (select(sock + 1, &fds, NULL, NULL, &tv) == 0)
                send_status(conn, received);
            PQconsumeInput(conn);
            continue;
        }
        if (len < 0) {
            fprintf(stderr, "capture: stream ended: %s", PQerrorMessage(conn));
            break;
        }
        if (frames && !write_frame(frames, buf, len)) {
            fprintf(stderr, "capture: %s: %s\n", outdir, strerror(errno));
            return 1;
        }
        if (buf[0] == 'k' && len >= 18) {
            uint64_t end = read_u64(buf + 1);
            if (end > wal_end)
                wal_end = end;
        } else if (buf[0] == 'w' && len > 25) {
            uint64_t start_lsn = read_u64(buf + 1);
            uint64_t end = read_u64(buf + 9);
            if (end > wal_end)
                wal_end = end;
            if (start_lsn > received)
                received = start_lsn;
            const char *payload = buf + 25;
            size_t plen = (size_t)len - 25;
            last_data = now_s();
            if (frames) {
                count++;
                PQfreemem(buf);
                continue;
            }
            char path[4096];
            snprintf(path, sizeof path, "%s/p%d-%05u-%c.bin", outdir, proto,
                     count++, payload[0]);
            FILE *f = fopen(path, "wb");
            if (!f) {
                fprintf(stderr, "capture: %s: %s\n", path, strerror(errno));
                return 1;
            }
            unsigned char flags =
                (unsigned char)((proto - 1) | (in_stream ? 4 : 0) |
                                (abort_has_lsn ? 8 : 0));
            fputc(flags, f);
            fwrite(payload, 1, plen, f);
            fclose(f);
            if (payload[0] == 'S')
                in_stream = true;
            else if (payload[0] == 'E')
                in_stream = false;
        }
        PQfreemem(buf);
    }
    printf("captured %u messages (protocol %d)\n", count, proto);
    if (frames && fclose(frames) != 0) {
        fprintf(stderr, "capture: %s: %s\n", outdir, strerror(errno));
        return 1;
    }
    PQfinish(conn);
    return count > 0 ? 0 : 1;
}
