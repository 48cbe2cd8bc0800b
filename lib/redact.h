/* Keeping secrets out of text that is about to be logged: every
 * occurrence of a secret is replaced in place. */
#ifndef PGSPOUT_REDACT_H
#define PGSPOUT_REDACT_H

/* Replaces every occurrence of `secret` in the NUL-terminated s, in place:
 * with "[redacted]" when the secret is at least that long (so the text
 * only shrinks), else with as many '*'. NULL or empty secrets change
 * nothing. */
void redact(char *s, const char *secret);

#endif
