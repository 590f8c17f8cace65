/*
 * RFC 3339 date-times (see ngx_worksible_time.h), proleptic Gregorian
 * calendar arithmetic after H. Hinnant's days_from_civil/civil_from_days.
 */

#include <stdio.h>
#include <string.h>

#include "ngx_worksible_time.h"


static int ngx_worksible_time_digits(const char **p, int n, int *out);
static int ngx_worksible_time_days_in_month(int y, int m);
static int64_t ngx_worksible_time_days_from_civil(int64_t y, int m, int d);
static void ngx_worksible_time_civil_from_days(int64_t z, int64_t *y, int *m,
    int *d);


int
ngx_worksible_rfc3339_parse(const char *text, size_t len, char *canon,
    size_t size, int64_t *sec, long *usec, const char **why)
{
    int          y, mo, d, h, mi, se, oh, om, sign, digits, m2, d2;
    long         frac;
    int64_t      t, y2, tod;
    const char  *p;
    char         s[NGX_WORKSIBLE_RFC3339_MAX + 1];

    *why = "expected YYYY-MM-DDTHH:MM:SS followed by Z or +HH:MM";

    /* a copy that ends in NUL; nothing valid is longer */

    if (len > NGX_WORKSIBLE_RFC3339_MAX || memchr(text, '\0', len) != NULL) {
        return -1;
    }

    memcpy(s, text, len);
    s[len] = '\0';
    p = s;

    if (ngx_worksible_time_digits(&p, 4, &y) != 0 || *p++ != '-'
        || ngx_worksible_time_digits(&p, 2, &mo) != 0 || *p++ != '-'
        || ngx_worksible_time_digits(&p, 2, &d) != 0)
    {
        return -1;
    }

    if (*p != 'T' && *p != 't') {
        return -1;
    }

    p++;

    if (ngx_worksible_time_digits(&p, 2, &h) != 0 || *p++ != ':'
        || ngx_worksible_time_digits(&p, 2, &mi) != 0 || *p++ != ':'
        || ngx_worksible_time_digits(&p, 2, &se) != 0)
    {
        return -1;
    }

    frac = 0;

    if (*p == '.') {
        p++;

        for (digits = 0; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 6) {
                frac = frac * 10 + (*p - '0');
            }
        }

        if (digits == 0) {
            *why = "a fraction of a second needs at least one digit";
            return -1;
        }

        for ( /* void */ ; digits < 6; digits++) {
            frac *= 10;
        }
    }

    oh = 0;
    om = 0;
    sign = 1;

    if (*p == 'Z' || *p == 'z') {
        p++;

    } else if (*p == '+' || *p == '-') {
        sign = (*p++ == '-') ? -1 : 1;

        if (ngx_worksible_time_digits(&p, 2, &oh) != 0 || *p++ != ':'
            || ngx_worksible_time_digits(&p, 2, &om) != 0)
        {
            *why = "the offset must be +HH:MM or -HH:MM";
            return -1;
        }

        if (oh > 23 || om > 59) {
            *why = "offset out of range";
            return -1;
        }

    } else {
        *why = "missing time zone (Z or +HH:MM)";
        return -1;
    }

    if (*p != '\0') {
        return -1;
    }

    if (y == 0 || mo < 1 || mo > 12 || d < 1
        || d > ngx_worksible_time_days_in_month(y, mo))
    {
        *why = "no such date";
        return -1;
    }

    if (h > 23 || mi > 59 || se > 60) {
        *why = "no such time";
        return -1;
    }

    t = ngx_worksible_time_days_from_civil(y, mo, d) * 86400
        + h * 3600 + mi * 60 + se - sign * (oh * 3600 + om * 60);

    if (se == 60) {
        /* the second before must be 23:59:59 UTC on a month's last day */
        tod = (t - 1) % 86400;
        if (tod < 0) {
            tod += 86400;
        }

        ngx_worksible_time_civil_from_days((t - 1 - tod) / 86400, &y2, &m2, &d2);

        if (tod != 86399 || d2 != ngx_worksible_time_days_in_month((int) y2, m2)) {
            *why = "second 60 is only a leap second at 23:59:60 UTC at the "
                   "end of a month";
            return -1;
        }
    }

    tod = t % 86400;
    if (tod < 0) {
        tod += 86400;
    }

    ngx_worksible_time_civil_from_days((t - tod) / 86400, &y2, &m2, &d2);

    snprintf(canon, size, "%04lld-%02d-%02d %02d:%02d:%02d.%06ld+00",
             (long long) y2, m2, d2, (int) (tod / 3600),
             (int) (tod / 60 % 60), (int) (tod % 60), frac);

    *sec = t;
    *usec = frac;

    return 0;
}


/*
 * Reads exactly n decimal digits at *p into *out and advances *p.
 * Returns 0, or -1 (nothing consumed) when there are fewer.
 */

static int
ngx_worksible_time_digits(const char **p, int n, int *out)
{
    int          i, v;
    const char  *s;

    s = *p;
    v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        v = v * 10 + (s[i] - '0');
    }

    *p = s + n;
    *out = v;

    return 0;
}


/*
 * Days in month m (1..12) of proleptic Gregorian year y.
 */

static int
ngx_worksible_time_days_in_month(int y, int m)
{
    static const int  days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                 30, 31 };

    if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        return 29;
    }

    return days[m - 1];
}


/*
 * Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil).
 */

static int64_t
ngx_worksible_time_days_from_civil(int64_t y, int m, int d)
{
    int64_t   era;
    unsigned  yoe, doy, doe;

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (unsigned) (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + (int64_t) doe - 719468;
}


/*
 * The proleptic Gregorian date of day z since 1970-01-01 (H. Hinnant's
 * civil_from_days).
 */

static void
ngx_worksible_time_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t   era;
    unsigned  doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned) (z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;

    *d = (int) (doy - (153 * mp + 2) / 5 + 1);
    *m = (int) (mp < 10 ? mp + 3 : mp - 9);
    *y = (int64_t) yoe + era * 400 + (*m <= 2);
}

