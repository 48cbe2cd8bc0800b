#include "backfill_read.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "pgconn.h"

/* A read whose server sends nothing for this long is taken for lost (a
 * read is bounded by its size, not by a total time). */
#define READ_SILENCE_US (INT64_C(60) * 1000000)
/* How often a wait looks at the stop. */
#define POLL_STEP_MS 100

static bool take_row(bf_piece *p, char *row, int len, char *err, size_t errlen)
{
    bool keep = p->keep_all || p->rows < p->limit;
    bool ok = !keep || bf_spill_append(p->sw, row, (size_t)len, err, errlen);
    p->rows += keep;
    p->more = p->more || !keep;
    if (keep && !p->keep_all) {
        /* Only the last row's key is needed (where the chunk ends): it
         * is parsed once at the end rather than every row on the way. */
        PQfreemem(p->last_line);
        p->last_line = row;
        p->last_len = len;
    } else {
        PQfreemem(row);
    }
    return ok;
}

/* The rows already received: 1 when the COPY ended, 0 when more are to
 * come, -1 on a failure. */
static int take_received(bf_piece *p, char *err, size_t errlen)
{
    for (;;) {
        char *row = NULL;
        int len = PQgetCopyData(p->conn, &row, 1);
        if (len > 0 && !take_row(p, row, len, err, errlen))
            return -1;
        if (len > 0)
            continue;
        if (len == 0)
            return 0;
        if (len == -1)
            return 1;
        pq_copy_error(p->conn, "reading the chunk failed", err, errlen);
        return -1;
    }
}

/* COPY's final result. */
static bool copy_result(PGconn *conn, char *err, size_t errlen, bool *retryable)
{
    bool ok = true;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        if (ok && PQresultStatus(res) != PGRES_COMMAND_OK) {
            pq_copy_error(conn, "reading the chunk failed", err, errlen);
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            *retryable = PQstatus(conn) != CONNECTION_OK ||
                         (state && pq_sqlstate_retryable(state));
            ok = false;
        }
        PQclear(res);
    }
    return ok;
}

static bool wait_failed(const char *why, char *err, size_t errlen)
{
    snprintf(err, errlen, "reading the chunk failed: %s", why);
    return false;
}

/* Waits until a socket of a piece still reading has something, and takes
 * it in. */
static bool wait_for_rows(bf_piece *pieces, int n, const stop_state *stop,
                          char *err, size_t errlen)
{
    struct pollfd fds[BF_MAX_READERS];
    int of[BF_MAX_READERS], m = 0;
    int64_t now = now_us();
    for (int i = 0; i < n && m < BF_MAX_READERS; i++) {
        if (pieces[i].done)
            continue;
        if (now - pieces[i].heard_us > READ_SILENCE_US)
            return wait_failed("the server sent nothing for 60 s", err, errlen);
        fds[m] =
            (struct pollfd){.fd = PQsocket(pieces[i].conn), .events = POLLIN};
        of[m++] = i;
    }
    if (stop_requested(stop))
        return wait_failed("stop requested", err, errlen);
    if (poll(fds, (nfds_t)m, POLL_STEP_MS) < 0 && errno != EINTR)
        return wait_failed(strerror(errno), err, errlen);
    for (int k = 0; k < m; k++) {
        bf_piece *p = &pieces[of[k]];
        if (!fds[k].revents)
            continue;
        p->heard_us = now_us();
        if (!PQconsumeInput(p->conn))
            return wait_failed(PQerrorMessage(p->conn), err, errlen);
    }
    return true;
}

bool bf_pieces_drain(bf_piece *pieces, int n, const stop_state *stop, char *err,
                     size_t errlen, bool *retryable)
{
    int64_t now = now_us();
    for (int i = 0; i < n; i++)
        pieces[i].heard_us = now;
    for (;;) {
        *retryable = true;
        int reading = 0;
        for (int i = 0; i < n; i++) {
            bf_piece *p = &pieces[i];
            int got = p->done ? 1 : take_received(p, err, errlen);
            if (got < 0)
                return false;
            if (got == 1 && !p->done &&
                !copy_result(p->conn, err, errlen, retryable))
                return false;
            p->done = got == 1;
            reading += !p->done;
        }
        if (!reading)
            return true;
        if (!wait_for_rows(pieces, n, stop, err, errlen))
            return false;
    }
}

void bf_piece_clear(bf_piece *p)
{
    PQfreemem(p->last_line);
    p->last_line = NULL;
    p->last_len = 0;
}
