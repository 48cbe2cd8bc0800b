#include "url_list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Adds the URL in start[0..n), trimmed; false with err when it is bad. */
static bool add_url(kit_url_list *l, const char *option, const char *start,
                    size_t n, bool strip_slash, char *err, size_t errlen)
{
    while (n && is_blank(*start))
        start++, n--;
    while (n &&
           (is_blank(start[n - 1]) || (strip_slash && start[n - 1] == '/')))
        n--;
    if (!n)
        return true;
    if (l->n == KIT_MAX_URLS) {
        snprintf(err, errlen, "%s: at most %d URLs", option, KIT_MAX_URLS);
        return false;
    }
    char *url = xstrndup(start, n);
    l->urls[l->n++] = url;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen,
                 "%s: each URL must start with http:// or https://", option);
        return false;
    }
    return true;
}

bool kit_url_list_parse(kit_url_list *l, const char *option, const char *list,
                        bool strip_trailing_slash, char *err, size_t errlen)
{
    const char *p = list ? list : "";
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *start = p;
        p += n;
        if (*p == ',')
            p++;
        if (!add_url(l, option, start, n, strip_trailing_slash, err, errlen)) {
            kit_url_list_free(l);
            return false;
        }
    }
    if (l->n == 0) {
        snprintf(err, errlen, "%s: no URL given", option);
        return false;
    }
    return true;
}

const char *kit_url_list_next(kit_url_list *l)
{
    unsigned n = atomic_fetch_add(&l->next, 1);
    return l->urls[n % l->n];
}

void kit_url_list_free(kit_url_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->urls[i]);
    l->n = 0;
}
