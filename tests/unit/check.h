/* Minimal unit-test support: each CHECK prints one TAP line; a test program
 * ends with `return check_summary();`, which prints "N passed, N failed" and
 * returns non-zero when anything failed. */
#ifndef PGSPOUT_TEST_CHECK_H
#define PGSPOUT_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                            \
    check_report((cond) != 0, #cond, __FILE__, __LINE__, NULL, NULL)

#define CHECK_STR(actual, expected)                                            \
    do {                                                                       \
        const char *a_ = (actual), *e_ = (expected);                           \
        check_report(a_ &&e_ ? strcmp(a_, e_) == 0 : a_ == e_,                 \
                     #actual " == " #expected, __FILE__, __LINE__, a_, e_);    \
    } while (0)

static inline void check_report(int ok, const char *what, const char *file,
                                int line, const char *actual,
                                const char *expected)
{
    if (ok) {
        check_passed++;
        printf("ok %d - %s\n", check_passed + check_failed, what);
        return;
    }
    check_failed++;
    printf("not ok %d - %s (%s:%d)\n", check_passed + check_failed, what, file,
           line);
    if (actual || expected)
        printf("#   actual:   %s\n#   expected: %s\n",
               actual ? actual : "(null)", expected ? expected : "(null)");
}

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
