#include "http_listen.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* Splits "HOST:PORT" / "[V6]:PORT" into host and port (copies). */
const char *http_listen_split(const char *listen, char **host, char **port)
{
    const char *colon;
    *host = *port = NULL;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return "expected [IPV6]:PORT, e.g. [::1]:9187";
        *host = xstrndup(listen + 1, (size_t)(close - listen - 1));
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return "has no port: expected ADDR:PORT, e.g. 127.0.0.1:9187";
        if (memchr(listen, ':', (size_t)(colon - listen)))
            return "an IPv6 address goes in brackets: [::1]:9187";
        *host = xstrndup(listen, (size_t)(colon - listen));
    }
    *port = xstrdup(colon + 1);
    return NULL;
}

static bool valid_port(const char *port)
{
    if (!*port || strlen(port) > 5)
        return false;
    for (const char *p = port; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    long v = strtol(port, NULL, 10);
    return v >= 1 && v <= 65535;
}

const char *http_listen_problem(const char *listen)
{
    char *host, *port;
    const char *problem = http_listen_split(listen, &host, &port);
    if (!problem && !*host)
        problem = "has no address: expected ADDR:PORT (e.g. 127.0.0.1:9187; "
                  "0.0.0.0:9187 for every interface)";
    else if (!problem && !*port)
        problem = "has no port: expected ADDR:PORT, e.g. 127.0.0.1:9187";
    else if (!problem && !valid_port(port))
        problem = "has an invalid port (1 to 65535)";
    free(host);
    free(port);
    return problem;
}
