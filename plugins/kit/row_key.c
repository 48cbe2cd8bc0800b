#include "row_key.h"

#include <string.h>

bool kit_has_typed_columns(const pgspout_host_api *host)
{
    return PGSPOUT_HAS_FIELD(host, pgspout_host_api, event_value) &&
           host->event_value;
}

/* The old value of key column i leaves the old row's key as the event's. */
static bool old_value_keeps_key(const pgspout_host_api *host,
                                const pgspout_event *ev, int i)
{
    const char *old_text, *key_text;
    size_t old_len, key_len;
    pgspout_value_state old_state =
        host->event_value(ev, PGSPOUT_ROW_OLD, i, &old_text, &old_len);
    if (old_state == PGSPOUT_VALUE_ABSENT ||
        old_state == PGSPOUT_VALUE_UNCHANGED_TOAST)
        return true;
    pgspout_value_state key_state =
        host->event_value(ev, PGSPOUT_ROW_KEY, i, &key_text, &key_len);
    if (old_state != key_state)
        return false;
    return old_len == key_len &&
           (old_len == 0 || memcmp(old_text, key_text, old_len) == 0);
}

bool kit_key_unchanged(const pgspout_host_api *host, const pgspout_event *ev)
{
    if (!kit_has_typed_columns(host) || host->event_op(ev) != PGSPOUT_OP_UPDATE)
        return false;
    int n = host->event_column_count(ev);
    for (int i = 0; i < n; i++)
        if (host->event_column_is_key(ev, i) &&
            !old_value_keeps_key(host, ev, i))
            return false;
    return true;
}

bool kit_single_key_text(const pgspout_host_api *host, const pgspout_event *ev,
                         uint32_t *type_oid, const char **text, size_t *len)
{
    if (!kit_has_typed_columns(host))
        return false;
    int n = host->event_column_count(ev), key = -1;
    for (int i = 0; i < n; i++) {
        if (!host->event_column_is_key(ev, i))
            continue;
        if (key >= 0)
            return false;
        key = i;
    }
    if (key < 0 || host->event_value(ev, PGSPOUT_ROW_KEY, key, text, len) !=
                       PGSPOUT_VALUE_TEXT)
        return false;
    *type_oid = host->event_column_type_oid(ev, key);
    return true;
}

bool kit_has_unchanged_toast(const pgspout_host_api *host,
                             const pgspout_event *ev, bool *known)
{
    *known = kit_has_typed_columns(host);
    if (!*known)
        return false;
    int n = host->event_column_count(ev);
    for (int i = 0; i < n; i++)
        if (host->event_value(ev, PGSPOUT_ROW_NEW, i, NULL, NULL) ==
            PGSPOUT_VALUE_UNCHANGED_TOAST)
            return true;
    return false;
}
