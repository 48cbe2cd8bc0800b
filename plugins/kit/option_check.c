#include "option_check.h"

#include <stdio.h>
#include <string.h>

/* `text` past `prefix` when it starts with it, else `text`. */
static const char *skip(const char *text, const char *prefix, size_t len)
{
    return strncmp(text, prefix, len) == 0 ? text + len : text;
}

bool kit_option_refuse(const char *option, const char *message,
                       char *option_out, size_t option_size, char *why,
                       size_t why_size)
{
    option = option ? option : "";
    snprintf(option_out, option_size, "%s", option);
    const char *reason = message;
    size_t len = strlen(option);
    if (len) {
        const char *named = skip(message, "option ", 7);
        if (strncmp(named, option, len) == 0 && named[len] == ':')
            reason = named + len + 1 + (named[len + 1] == ' ');
        else if (strncmp(named, option, len) == 0 && named[len] == ' ')
            reason = named + len + 1; /* "NAME is not accepted: ..." */
    }
    snprintf(why, why_size, "%s", reason);
    return false;
}
