/* The sink kit's list of service URLs: an option naming one or several
 * endpoints (comma-separated) that requests rotate over, as the elastic and
 * webhook sinks take it. */
#ifndef KIT_URL_LIST_H
#define KIT_URL_LIST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define KIT_MAX_URLS 16

typedef struct kit_url_list {
    char *urls[KIT_MAX_URLS];
    size_t n;
    atomic_uint next;
} kit_url_list;

/* Parses `list` (the value of option `option`, named in errors) into l,
 * zero-initialised: URLs separated by commas, blanks around each ignored,
 * each starting with http:// or https://; trailing slashes are removed
 * when strip_trailing_slash (the sink appends paths). false with err set
 * on a bad or empty list or more than KIT_MAX_URLS; l is then freed. */
bool kit_url_list_parse(kit_url_list *l, const char *option, const char *list,
                        bool strip_trailing_slash, char *err, size_t errlen);

/* The next URL in turn (thread-safe). */
const char *kit_url_list_next(kit_url_list *l);

void kit_url_list_free(kit_url_list *l);

#endif
