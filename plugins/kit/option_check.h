/* Refusing options from a sink's check_options (ABI 1.7, sink.h).
 *
 * The kit's sinks word a bad option the same way in create's log and in
 * check_options: the message starts with the option's name ("url: no URL
 * given", "option topic: must not be empty"). In check_options the host
 * names the option itself, with the file and line it came from, so the
 * name is taken off the front of the message there. */
#ifndef KIT_OPTION_CHECK_H
#define KIT_OPTION_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Fills check_options' out-parameters: `option` (NULL or "" when no single
 * option is at fault) into option_out, `message` without a leading
 * "option NAME: ", "NAME: " or "NAME " (either with "option " or without)
 * into why. Always returns false, so that a
 * check_options can end with `return ok || kit_option_refuse(...)`. */
bool kit_option_refuse(const char *option, const char *message,
                       char *option_out, size_t option_size, char *why,
                       size_t why_size);

#endif
