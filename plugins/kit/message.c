#include "message.h"

#include <jansson.h>

#include "alloc.h"

char *kit_message_prefix(const char *event_json, size_t len)
{
    /* Messages are rare next to changes, and the content that follows the
     * prefix is bounded by what the sink will send anyway: a full parse is
     * simpler than a scanner of our own and costs no more than the copy
     * the sink makes of the event. */
    json_t *root = json_loadb(event_json, len, 0, NULL);
    json_t *prefix = root ? json_object_get(root, "prefix") : NULL;
    char *out = json_is_string(prefix) ? xstrndup(json_string_value(prefix),
                                                  json_string_length(prefix))
                                       : NULL;
    json_decref(root);
    return out;
}
