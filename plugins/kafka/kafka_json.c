#include "kafka_json.h"

#include <string.h>

static size_t skip_blanks(const char *s, size_t len, size_t i)
{
    while (i < len &&
           (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
        i++;
    return i;
}

/* Index just past the string starting at s[i] == '"', or 0 if unclosed. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return 0;
}

/* Index just past the value starting at s[i], or 0 when malformed. Nested
 * objects and arrays are skipped by counting brackets outside strings. */
static size_t skip_value(const char *s, size_t len, size_t i)
{
    if (i >= len)
        return 0;
    if (s[i] == '"')
        return skip_string(s, len, i);
    if (s[i] != '{' && s[i] != '[') {
        size_t start = i;
        while (i < len && !strchr(",]} \n\t\r", s[i]))
            i++;
        return i > start ? i : 0;
    }
    size_t depth = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, len, i);
            if (!i)
                return 0;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return i + 1;
        i++;
    }
    return 0;
}

/* One item at s[*i]: "name": value for an object, value for an array. */
static bool scan_item(const char *s, size_t len, size_t *i, bool object,
                      json_span *name, json_span *value)
{
    *name = (json_span){NULL, 0};
    if (object) {
        if (*i >= len || s[*i] != '"')
            return false;
        size_t end = skip_string(s, len, *i);
        if (!end)
            return false;
        *name = (json_span){s + *i, end - *i};
        *i = skip_blanks(s, len, end);
        if (*i >= len || s[*i] != ':')
            return false;
        *i = skip_blanks(s, len, *i + 1);
    }
    size_t end = skip_value(s, len, *i);
    if (!end)
        return false;
    *value = (json_span){s + *i, end - *i};
    *i = skip_blanks(s, len, end);
    return true;
}

bool kafka_json_each(const char *json, size_t len, json_item_fn fn, void *ctx)
{
    size_t i = skip_blanks(json, len, 0);
    if (i >= len || (json[i] != '{' && json[i] != '['))
        return false;
    bool object = json[i] == '{';
    char close = object ? '}' : ']';
    i = skip_blanks(json, len, i + 1);
    if (i < len && json[i] == close)
        return true;
    for (;;) {
        json_span name, value;
        if (!scan_item(json, len, &i, object, &name, &value))
            return false;
        if (!fn(ctx, name, value))
            return false;
        if (i < len && json[i] == close)
            return true;
        if (i >= len || json[i] != ',')
            return false;
        i = skip_blanks(json, len, i + 1);
    }
}

bool json_span_eq(json_span a, json_span b)
{
    return a.p && b.p && a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

typedef struct member_search {
    json_span name, found;
} member_search;

static bool match_member(void *ctx, json_span name, json_span value)
{
    member_search *m = ctx;
    if (!json_span_eq(name, m->name))
        return true;
    m->found = value;
    return false;
}

json_span kafka_json_member(const char *json, size_t len, json_span name)
{
    member_search m = {name, {NULL, 0}};
    kafka_json_each(json, len, match_member, &m);
    return m.found;
}
