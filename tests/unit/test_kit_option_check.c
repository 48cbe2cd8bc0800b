/* kit_option_refuse: the option's name taken off the front of a message
 * create would log, in each wording the kit's sinks use. */
#include "check.h"
#include "option_check.h"

static const char *why_of(const char *option, const char *message, char *named)
{
    static char why[128];
    int refused =
        kit_option_refuse(option, message, named, 64, why, sizeof why);
    CHECK(refused == 0);
    return why;
}

int main(void)
{
    char named[64];
    CHECK_STR(why_of("url", "url: no URL given", named), "no URL given");
    CHECK_STR(named, "url");
    CHECK_STR(why_of("topic", "option topic: must not be empty", named),
              "must not be empty");
    CHECK_STR(
        why_of("kafka.acks", "option kafka.acks is not accepted: x", named),
        "is not accepted: x");
    CHECK_STR(named, "kafka.acks");
    /* Another option's name, or a longer one, stays in the reason. */
    CHECK_STR(why_of("password", "username and password go together", named),
              "username and password go together");
    CHECK_STR(why_of("url", "urls: x", named), "urls: x");
    CHECK_STR(why_of(NULL, "something else", named), "something else");
    CHECK_STR(named, "");
    /* Truncated, never overrun. */
    char tiny_name[4], tiny_why[6];
    kit_option_refuse("secret", "secret: a long reason", tiny_name,
                      sizeof tiny_name, tiny_why, sizeof tiny_why);
    CHECK_STR(tiny_name, "sec");
    CHECK_STR(tiny_why, "a lon");
    return check_summary();
}
