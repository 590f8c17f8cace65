/*
 * The TAP output of the unit tests (t/unit/NAME_test.c): ok(cond, name)
 * prints "ok N - name" or "not ok N - name" and counts the failures;
 * tap_done() prints the plan line "1..N" last and returns the exit status
 * (0 when all passed, 1 otherwise).
 */

#ifndef _WORKSIBLE_TAP_H_INCLUDED_
#define _WORKSIBLE_TAP_H_INCLUDED_

#include <stdio.h>


static int  tap_n;
static int  tap_failed;


static void
ok(int cond, const char *name)
{
    tap_n++;
    printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, name);

    if (!cond) {
        tap_failed++;
    }
}


static int
tap_done(void)
{
    printf("1..%d\n", tap_n);

    return tap_failed ? 1 : 0;
}


#endif /* _WORKSIBLE_TAP_H_INCLUDED_ */
