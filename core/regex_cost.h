/* An estimate of what glibc's regcomp() builds for a POSIX ERE, computed
 * from the expression's structure before compiling it, so that a table
 * pattern that would take gigabytes or minutes to compile ("((a{255}){255})
 * {255}") is refused instead.
 *
 * glibc expands a bounded repetition into that many copies of what it
 * repeats ("x{3}" is "xxx", "x+" is "xx*", "x{0,3}" is "((x?x)?x)?") and
 * then stores, for every node, the set of nodes reachable from it without
 * consuming a character (its epsilon closure). The estimate therefore
 * counts nodes after expansion plus the total size of those closure sets:
 * the latter is what grows quadratically in long alternations ("a|b|c|...")
 * and in chains of optional parts ("(a?){40}"). It is a model, not a
 * measurement, checked against glibc 2.36: within a factor of about three
 * of the memory regcomp() really takes, from ordinary patterns to
 * pathological ones.
 *
 * The caller reports the expression's structure as it parses it. */
#ifndef PGSPOUT_REGEX_COST_H
#define PGSPOUT_REGEX_COST_H

#include <stddef.h>

typedef struct regex_cost regex_cost;

regex_cost *regex_cost_new(void);
void regex_cost_free(regex_cost *rc);

/* A single-position atom: a character (nodes = its UTF-8 byte length, as
 * glibc matches a multibyte character byte by byte), "." or a bracket. */
void regex_cost_atom(regex_cost *rc, double nodes);
/* "^" or "$": zero-width. */
void regex_cost_anchor(regex_cost *rc);
void regex_cost_open_group(regex_cost *rc);
/* Closes the innermost group, which becomes the last atom of its parent. */
void regex_cost_close_group(regex_cost *rc);
/* "|"; an empty group is to be reported, and written, as "(|)". */
void regex_cost_alternative(regex_cost *rc);
/* Applies {lo,hi} to the last atom; hi < 0 means unbounded ("*" is {0,},
 * "+" is {1,}, "?" is {0,1}). {0} counts as the empty alternation "(|)",
 * which the caller is to write instead of the atom and its bound. */
void regex_cost_repeat(regex_cost *rc, int lo, int hi);
/* The estimates for the whole expression (groups left open are closed):
 * size, glibc's compiled form in units of about 16 bytes; width, the
 * largest set of nodes reachable at one point without consuming input
 * (at the start or right after a character). regexec() merges such sets
 * at every step, in time about the square of the width, and caches each
 * set it meets for the life of the compiled expression. */
void regex_cost_finish(regex_cost *rc, double *size, double *width);

#endif
