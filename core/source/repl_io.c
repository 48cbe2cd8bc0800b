#include "repl_io.h"

#include <stdlib.h>

#include "replication.h"
#include "stats.h"
#include "strbuf.h"

struct repl_io {
    repl_stream rs;
    source_io io;
};

/* A read that found nothing also checks that the server is still there:
 * one silent too long is taken for lost (see repl_check_alive). */
static repl_read_result io_read(void *ctx, repl_msg *msg, int timeout_ms,
                                int wake_fd, char *err, size_t errlen)
{
    repl_io *io = ctx;
    repl_read_result r =
        repl_read(&io->rs, msg, timeout_ms, wake_fd, err, errlen);
    if (r == REPL_READ_TIMEOUT && !repl_check_alive(&io->rs, err, errlen))
        return REPL_READ_LOST;
    if (r == REPL_READ_MESSAGE)
        stats_received_bytes(msg->payload_len);
    return r;
}

static void io_free_buffer(void *buffer)
{
    PQfreemem(buffer);
}

static void io_note_received(void *ctx, uint64_t lsn)
{
    repl_io *io = ctx;
    repl_note_received(&io->rs, lsn);
    stats_received_lsn(lsn);
}

static bool io_confirm(void *ctx, uint64_t lsn, char *err, size_t errlen)
{
    repl_io *io = ctx;
    bool ok = repl_confirm(&io->rs, lsn, err, errlen);
    if (ok)
        stats_confirmed_lsn(lsn);
    return ok;
}

static bool io_reply(void *ctx, char *err, size_t errlen)
{
    repl_io *io = ctx;
    return repl_send_status(&io->rs, false, err, errlen);
}

static bool io_finish(void *ctx, char *err, size_t errlen)
{
    repl_io *io = ctx;
    return repl_finish(&io->rs, err, errlen);
}

static bool io_connected(void *ctx)
{
    repl_io *io = ctx;
    return PQstatus(io->rs.conn) == CONNECTION_OK;
}

repl_io *repl_io_start(PGconn *repl, const stop_state *stop, const char *slot,
                       const char *publication, bool streaming,
                       int status_interval_ms, int server_timeout_ms, char *err,
                       size_t errlen, bool *retryable)
{
    repl_io *io = xcalloc(1, sizeof *io);
    int version = streaming && PQserverVersion(repl) >= 140000
                      ? SOURCE_PGOUTPUT_STREAM_PROTO_VERSION
                      : SOURCE_PGOUTPUT_PROTO_VERSION;
    if (!repl_start(&io->rs, repl, stop, slot, publication, version,
                    status_interval_ms, server_timeout_ms, err, errlen)) {
        *retryable = io->rs.start_retryable;
        free(io);
        return NULL;
    }
    io->io = (source_io){
        .ctx = io,
        .proto_version = version,
        .read = io_read,
        .free_buffer = io_free_buffer,
        .note_received = io_note_received,
        .confirm = io_confirm,
        .reply = io_reply,
        .finish = io_finish,
        .connected = io_connected,
    };
    return io;
}

const source_io *repl_io_source(repl_io *io)
{
    return &io->io;
}

void repl_io_free(repl_io *io)
{
    if (!io)
        return;
    repl_stop(&io->rs);
    free(io);
}
