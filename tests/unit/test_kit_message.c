/* The sink kit's reading of a message event's prefix from its JSON. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "message.h"

static void check_prefix(const char *json, const char *want)
{
    char *got = kit_message_prefix(json, strlen(json));
    if (want)
        CHECK_STR(got, want);
    else
        CHECK(got == NULL);
    free(got);
}

int main(void)
{
    check_prefix("{\"op\":\"message\",\"schema\":null,\"table\":null,"
                 "\"prefix\":\"outbox\",\"content\":\"{\\\"prefix\\\":1}\","
                 "\"transactional\":true}",
                 "outbox");
    /* Escapes are decoded; an empty prefix is one. */
    check_prefix("{\"prefix\":\"a\\\"b\\u00e9\"}", "a\"b\xC3\xA9");
    check_prefix("{\"prefix\":\"\",\"content_base64\":\"/wA=\"}", "");
    /* Not a message. */
    check_prefix("{\"op\":\"insert\"}", NULL);
    check_prefix("{\"prefix\":null}", NULL);
    check_prefix("not json", NULL);
    return check_summary();
}
