#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bq_row.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "hex.h"
#include "position_id.h"
#include "strbuf.h"

void bq_insert_id(pgspout_position pos, const char *suffix, char *buf,
                  size_t buflen)
{
    char id[KIT_POSITION_ID_MAX];
    kit_position_id(pos, id, sizeof id);
    snprintf(buf, buflen, "%s%s", id, suffix ? suffix : "");
}

/* bytea in PostgreSQL's hex output ("\x0a0b") to base64. */
static json_t *bytea_to_base64(const char *s, char *err, size_t errlen)
{
    if (s[0] != '\\' || s[1] != 'x') {
        snprintf(err, errlen,
                 "bytea value not in hex output format (set bytea_output "
                 "= hex)");
        return NULL;
    }
    s += 2;
    size_t n = strlen(s);
    if (n % 2) {
        snprintf(err, errlen, "bytea value with an odd number of hex digits");
        return NULL;
    }
    unsigned char *bytes = xmalloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit_value(s[2 * i]);
        int lo = hex_digit_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(bytes);
            snprintf(err, errlen, "bytea value with a non-hex digit");
            return NULL;
        }
        bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    char *b64 = base64_encode(bytes, n / 2);
    free(bytes);
    json_t *v = json_string(b64);
    free(b64);
    return v;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), valid far beyond BigQuery's years 1 to 9999. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

bool bq_timestamptz(const char *pg, char *buf, size_t buflen)
{
    if (strcmp(pg, "infinity") == 0) {
        snprintf(buf, buflen, "9999-12-31T23:59:59.999999Z");
        return true;
    }
    if (strcmp(pg, "-infinity") == 0) {
        snprintf(buf, buflen, "0001-01-01T00:00:00Z");
        return true;
    }
    int64_t year;
    int mon, day, hh, mm, ss, used = 0;
    if (sscanf(pg, "%" SCNd64 "-%d-%d %d:%d:%d%n", &year, &mon, &day, &hh, &mm,
               &ss, &used) != 6)
        return false;
    const char *p = pg + used;
    char frac[16] = "";
    if (*p == '.') {
        size_t n = 0;
        p++;
        while (isdigit((unsigned char)*p) && n < sizeof frac - 1)
            frac[n++] = *p++;
        frac[n] = '\0';
    }
    int sign = 0, oh = 0, om = 0, os = 0;
    if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        int n = 0;
        if (sscanf(p, "%2d%n", &oh, &n) != 1)
            return false;
        p += n;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &om, &n) != 1)
                return false;
            p += 1 + n;
            if (*p == ':') {
                if (sscanf(p + 1, "%2d%n", &os, &n) != 1)
                    return false;
                p += 1 + n;
            }
        }
    }
    if (strcmp(p, " BC") == 0) {
        year = 1 - year; /* 1 BC is year 0 */
        p += 3;
    }
    if (*p)
        return false;
    int64_t secs = days_from_civil(year, mon, day) * 86400 + hh * 3600 +
                   mm * 60 + ss - sign * (oh * 3600 + om * 60 + os);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    civil_from_days(days, &year, &mon, &day);
    int n = snprintf(buf, buflen, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d%s%sZ",
                     year, mon, day, (int)(rem / 3600), (int)(rem / 60 % 60),
                     (int)(rem % 60), *frac ? "." : "", frac);
    return n > 0 && (size_t)n < buflen;
}

static json_t *convert_scalar(const bq_column *col, json_t *v, char *err,
                              size_t errlen)
{
    const char *t = col->type;
    const char *s = json_string_value(v);

    if (strcmp(t, "JSON") == 0) {
        /* insertAll takes a JSON column's value as JSON text. */
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        json_t *out = json_string(text);
        free(text);
        return out;
    }
    if (strcmp(t, "BYTES") == 0) {
        if (!s) {
            snprintf(err, errlen, "bytea value is not a string");
            return NULL;
        }
        return bytea_to_base64(s, err, errlen);
    }
    if (strcmp(t, "TIMESTAMP") == 0 && s) {
        char buf[64];
        if (!bq_timestamptz(s, buf, sizeof buf)) {
            snprintf(err, errlen, "cannot read timestamp \"%.60s\"", s);
            return NULL;
        }
        return json_string(buf);
    }
    if ((strcmp(t, "DATETIME") == 0 || strcmp(t, "DATE") == 0) && s) {
        bool datetime = t[4] == 'T';
        if (strcmp(s, "infinity") == 0)
            return json_string(datetime ? "9999-12-31 23:59:59.999999"
                                        : "9999-12-31");
        if (strcmp(s, "-infinity") == 0)
            return json_string(datetime ? "0001-01-01 00:00:00" : "0001-01-01");
        if (strstr(s, " BC")) {
            snprintf(err, errlen, "BigQuery cannot hold the BC date \"%.60s\"",
                     s);
            return NULL;
        }
        return json_incref(v);
    }
    if (strcmp(t, "STRING") == 0 && !s) {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        json_t *out = json_string(text);
        free(text);
        return out;
    }
    /* Integers, floats (NaN and infinities arrive as the strings BigQuery
     * reads), booleans, exact numeric strings, times: as they are. */
    return json_incref(v);
}

json_t *bq_convert_value(const bq_column *col, json_t *value, char *err,
                         size_t errlen)
{
    if (!col->repeated)
        return convert_scalar(col, value, err, errlen);
    if (!json_is_array(value)) {
        snprintf(err, errlen, "column \"%s\": array expected", col->name);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *elem;
    json_array_foreach(value, i, elem)
    {
        if (json_is_null(elem) || json_is_array(elem)) {
            snprintf(err, errlen,
                     "column \"%s\": BigQuery arrays cannot hold %s", col->name,
                     json_is_null(elem) ? "NULL elements"
                                        : "nested (multi-dimensional) arrays");
            json_decref(out);
            return NULL;
        }
        json_t *c = convert_scalar(col, elem, err, errlen);
        if (!c) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, c);
    }
    return out;
}

static char *compact(json_t *v)
{
    return xnonnull(json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY));
}

/* The key object of the old row: the new key's members, valued from the
 * before image. NULL when the before image lacks one of them. */
static json_t *old_key(json_t *key, json_t *before)
{
    json_t *out = json_object();
    const char *name;
    json_t *v;
    json_object_foreach(key, name, v)
    {
        json_t *old = json_object_get(before, name);
        if (!old) {
            json_decref(out);
            return NULL;
        }
        json_object_set(out, name, old);
    }
    return out;
}

/* A row's values and, among them, the columns whose null is a json/jsonb
 * value holding JSON null rather than SQL NULL (the event's json_null). */
typedef struct row_image {
    json_t *values;
    json_t *json_nulls; /* array of names, or NULL */
} row_image;

static bool name_listed(json_t *names, const char *name)
{
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        if (json_is_string(n) && strcmp(json_string_value(n), name) == 0)
            return true;
    }
    return false;
}

/* One row: values (converted) of the table's columns present in source,
 * plus the metadata. SQL NULL is left out (a NULL cell); JSON null is a
 * value ("null" in a JSON or STRING column). Takes no references from its
 * arguments. */
static json_t *make_row(const char *op, row_image source, json_t *unchanged,
                        const char *key_json, json_t *event,
                        pgspout_position pos, const char *id_suffix,
                        const bq_columns *table, char *err, size_t errlen)
{
    json_t *row = json_object();
    for (size_t i = 0; i < table->n; i++) {
        const bq_column *col = &table->cols[i];
        json_t *v = json_object_get(source.values, col->name);
        if (!v ||
            (json_is_null(v) && !name_listed(source.json_nulls, col->name)))
            continue;
        char why[300] = "";
        json_t *c = bq_convert_value(col, v, why, sizeof why);
        if (!c) {
            snprintf(err, errlen, "column \"%s\": %s", col->name, why);
            json_decref(row);
            return NULL;
        }
        json_object_set_new(row, col->name, c);
    }
    json_object_set_new(row, BQ_COL_OP, json_string(op));
    json_object_set_new(row, BQ_COL_KEY,
                        key_json ? json_string(key_json) : json_null());
    json_object_set_new(row, BQ_COL_COMMIT_LSN,
                        json_integer((json_int_t)pos.commit_lsn));
    json_object_set_new(row, BQ_COL_SEQ, json_integer((json_int_t)pos.seq));
    json_t *ct = json_object_get(event, "commit_time");
    if (json_is_string(ct))
        json_object_set(row, BQ_COL_COMMIT_TIME, ct);
    json_object_set_new(row, BQ_COL_UNCHANGED_TOAST,
                        unchanged ? json_incref(unchanged) : json_array());

    char id[64];
    bq_insert_id(pos, id_suffix, id, sizeof id);
    return json_pack("{s:s, s:o}", "insertId", id, "json", row);
}

/* The after image with the values the server left out as unchanged TOAST
 * filled from a whole before image (REPLICA IDENTITY FULL); *unchanged
 * becomes the columns still missing. New references. */
static row_image fill_from_before(row_image after, row_image before,
                                  json_t **unchanged)
{
    row_image filled = {json_deep_copy(after.values),
                        after.json_nulls ? json_copy(after.json_nulls)
                                         : json_array()};
    json_t *rest = json_array();
    size_t i;
    json_t *name;
    json_array_foreach(*unchanged, i, name)
    {
        const char *n = json_string_value(name);
        json_t *old = n ? json_object_get(before.values, n) : NULL;
        if (!old) {
            json_array_append(rest, name);
            continue;
        }
        json_object_set(filled.values, n, old);
        if (name_listed(before.json_nulls, n))
            json_array_append(filled.json_nulls, name);
    }
    json_decref(*unchanged);
    *unchanged = rest;
    return filled;
}

bool bq_event_rows(json_t *event, pgspout_position pos, const bq_columns *table,
                   json_t *rows, char *err, size_t errlen)
{
    const char *op = json_string_value(json_object_get(event, "op"));
    if (!op) {
        snprintf(err, errlen, "event without an op");
        return false;
    }
    if (strcmp(op, "truncate") == 0) {
        bq_columns none = {NULL, 0};
        row_image nothing = {NULL, NULL};
        json_t *row = make_row(op, nothing, NULL, NULL, event, pos, NULL, &none,
                               err, errlen);
        json_array_append_new(rows, row);
        return true;
    }

    json_t *key = json_object_get(event, "key");
    json_t *nulls = json_object_get(event, "json_null");
    row_image before = {json_object_get(event, "before"),
                        json_object_get(nulls, "before")};
    row_image after = {json_object_get(event, "after"),
                       json_object_get(nulls, "after")};
    json_t *unchanged = json_object_get(event, "unchanged_toast");
    char *key_json = compact(key ? key : json_null());
    bool ok = true;

    if (strcmp(op, "delete") == 0) {
        /* The key's values come from the before image. */
        row_image source = before;
        if (!json_is_object(before.values))
            source.values = key;
        json_t *row = make_row(op, source, NULL, key_json, event, pos, NULL,
                               table, err, errlen);
        ok = row != NULL;
        if (row)
            json_array_append_new(rows, row);
        free(key_json);
        return ok;
    }

    row_image source = {json_incref(after.values),
                        json_incref(after.json_nulls)};
    json_t *still_unchanged = json_incref(unchanged);
    if (strcmp(op, "update") == 0 && json_is_object(before.values)) {
        if (json_array_size(unchanged) > 0) {
            row_image filled =
                fill_from_before(after, before, &still_unchanged);
            json_decref(source.values);
            json_decref(source.json_nulls);
            source = filled;
        }
        /* A changed key moves the row: the old key's row must end. */
        json_t *ok_obj = old_key(key, before.values);
        if (ok_obj) {
            char *old_json = compact(ok_obj);
            if (strcmp(old_json, key_json) != 0) {
                json_t *row = make_row("delete", before, NULL, old_json, event,
                                       pos, "-k", table, err, errlen);
                if (row)
                    json_array_append_new(rows, row);
                else
                    ok = false;
            }
            free(old_json);
            json_decref(ok_obj);
        }
    }
    if (ok) {
        json_t *row = make_row(op, source, still_unchanged, key_json, event,
                               pos, NULL, table, err, errlen);
        if (row)
            json_array_append_new(rows, row);
        else
            ok = false;
    }
    json_decref(source.values);
    json_decref(source.json_nulls);
    json_decref(still_unchanged);
    free(key_json);
    return ok;
}

const char *bq_error_reason(json_t *body)
{
    json_t *errors = json_object_get(json_object_get(body, "error"), "errors");
    const char *reason =
        json_string_value(json_object_get(json_array_get(errors, 0), "reason"));
    if (!reason)
        reason = json_string_value(
            json_object_get(json_object_get(body, "error"), "status"));
    return reason ? reason : "";
}

void bq_error_message(const kit_http_response *resp, char *buf, size_t buflen)
{
    if (resp->status == 0) {
        snprintf(buf, buflen, "%s", resp->error ? resp->error : "no response");
        return;
    }
    json_t *body = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
    const char *message = json_string_value(
        json_object_get(json_object_get(body, "error"), "message"));
    const char *reason = bq_error_reason(body);
    if (message)
        snprintf(buf, buflen, "HTTP %ld %s: %s", resp->status, reason, message);
    else
        snprintf(buf, buflen, "HTTP %ld", resp->status);
    json_decref(body);
}

/* insertErrors reasons worth sending the rows again for; "stopped" marks
 * rows BigQuery did not insert because another row of the request failed. */
static bool transient_row_reason(const char *reason)
{
    static const char *const reasons[] = {"stopped",       "backendError",
                                          "internalError", "rateLimitExceeded",
                                          "timeout",       "quotaExceeded"};
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
        if (strcmp(reason, reasons[i]) == 0)
            return true;
    return false;
}

/* What insertErrors say about one record: its rows' errors, gathered. */
typedef struct record_errors {
    bool any, permanent;
    strbuf why;
} record_errors;

static void note_row_error(record_errors *re, json_int_t row, json_t *e)
{
    const char *reason = json_string_value(json_object_get(e, "reason"));
    const char *message = json_string_value(json_object_get(e, "message"));
    const char *location = json_string_value(json_object_get(e, "location"));
    reason = reason ? reason : "unknown";
    bool transient = transient_row_reason(reason);
    re->any = true;
    re->permanent |= !transient;
    /* The permanent errors say what to fix; "stopped" says nothing. */
    if (transient && strcmp(reason, "stopped") == 0)
        return;
    if (re->why.len < 400)
        sbuf_appendf(&re->why, "%srow %lld: %s%s%s%s%s",
                     re->why.len ? "; " : "", (long long)row, reason,
                     location && *location ? " at " : "",
                     location ? location : "", message ? ": " : "",
                     message ? message : "");
}

static void set_row_outcome(record_errors *re, kit_outcome *o)
{
    if (!re->any) {
        o->kind = KIT_DONE;
        return;
    }
    kit_outcome_set(o, re->permanent ? KIT_REJECTED : KIT_RETRY,
                    "insertAll row errors: %s",
                    re->why.len ? re->why.data : "rows not inserted");
}

/* Maps each insertErrors entry to the record its row index falls in. An
 * index that fits no record (a service that numbers rows otherwise) leaves
 * nothing to go by: then every record takes all the errors, as one. */
static void row_errors_outcomes(json_t *insert_errors,
                                const size_t *record_rows, size_t n,
                                kit_outcome *outcomes)
{
    record_errors *per = xcalloc(n + 1, sizeof *per);
    record_errors *whole = &per[n];
    bool unmapped = false;
    size_t i;
    json_t *ie;
    json_array_foreach(insert_errors, i, ie)
    {
        json_t *index_json = json_object_get(ie, "index");
        json_int_t index = json_integer_value(index_json);
        size_t rec = n;
        json_int_t first = 0;
        if (json_is_integer(index_json) && index >= 0) {
            for (size_t r = 0; r < n; r++) {
                if ((size_t)index < (size_t)first + record_rows[r]) {
                    rec = r;
                    break;
                }
                first += (json_int_t)record_rows[r];
            }
        }
        unmapped |= rec == n;
        size_t j;
        json_t *e;
        json_array_foreach(json_object_get(ie, "errors"), j, e)
        {
            note_row_error(whole, index, e);
            if (rec < n)
                note_row_error(&per[rec], index - first, e);
        }
    }
    for (size_t r = 0; r < n; r++)
        set_row_outcome(unmapped ? whole : &per[r], &outcomes[r]);
    for (size_t r = 0; r <= n; r++)
        sbuf_free(&per[r].why);
    free(per);
}

/* insertAll refuses a request over its size limit (10 MB) with 400,
 * status INVALID_ARGUMENT, reason badRequest and the message "Request
 * payload size exceeds the limit: 10485760 bytes."; Google's front end
 * refuses a far larger one with 413 and an HTML page. Either says nothing
 * about the rows, which fit in smaller requests. */
static bool request_too_large(const kit_http_response *resp, json_t *body)
{
    static const char prefix[] = "Request payload size exceeds the limit";
    const char *message = json_string_value(
        json_object_get(json_object_get(body, "error"), "message"));
    return resp->status == 413 ||
           (resp->status == 400 && message &&
            strncmp(message, prefix, sizeof prefix - 1) == 0);
}

void bq_insert_outcomes(const kit_http_response *resp,
                        const size_t *record_rows, size_t n,
                        kit_outcome *outcomes, bool *auth_failed)
{
    *auth_failed = false;
    if (n == 0)
        return;
    if (resp->status == 200) {
        json_t *body = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
        json_t *errs = json_object_get(body, "insertErrors");
        if (!body) {
            kit_outcome_set_all(outcomes, n, KIT_RETRY,
                                "insertAll answered 200 with an unreadable "
                                "body");
        } else if (json_array_size(errs) > 0) {
            row_errors_outcomes(errs, record_rows, n, outcomes);
        } else {
            for (size_t i = 0; i < n; i++)
                outcomes[i].kind = KIT_DONE;
        }
        json_decref(body);
        return;
    }

    /* An answer about the whole request applies to each of its records. */
    char message[400];
    bq_error_message(resp, message, sizeof message);
    json_t *body = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
    const char *reason = bq_error_reason(body);
    kit_outcome_kind kind;
    if (outcomes[0].kind == KIT_RETRY) {
        kind = KIT_RETRY; /* pre-filled for no answer, 408, 429, 5xx */
    } else if (request_too_large(resp, body)) {
        kind = KIT_TOO_LARGE; /* the kit sends the rows again in halves */
    } else if (resp->status == 401) {
        *auth_failed = true;
        kind = KIT_RETRY;
    } else if (resp->status == 403 &&
               (strcmp(reason, "rateLimitExceeded") == 0 ||
                strcmp(reason, "quotaExceeded") == 0)) {
        kind = KIT_RETRY;
    } else if (resp->status == 400) {
        kind = KIT_REJECTED;
    } else {
        kind = KIT_FATAL;
    }
    kit_outcome_set_all(outcomes, n, kind, "insertAll: %s", message);
    json_decref(body);
}
