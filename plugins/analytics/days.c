/*
 * days: business days as day numbers (days since 1970-01-01, proleptic
 * Gregorian, no time zone: H. Hinnant's days_from_civil), and the from/to
 * range of a query.
 */
#include <stdio.h>

#include "analytics.h"
#include "core/diag.h"

/* The number written by n digits at s (checked by clock_day_check). */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

int an_day_number(const char *day, int32_t *out)
{
    if (!day || clock_day_check(day) < 0) return -1;
    int y = digits(day, 4), m = digits(day + 5, 2), d = digits(day + 8, 2);
    if (m <= 2) y--;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    *out = era * 146097 + doe - 719468;
    return 0;
}

void an_day_string(int32_t n, char out[CLOCK_DAY_LEN])
{
    int z = n + 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    int doe = z - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int y = yoe + era * 400;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int mp = (5 * doy + 2) / 153;
    int d = doy - (153 * mp + 2) / 5 + 1;
    int m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) y++;
    snprintf(out, CLOCK_DAY_LEN, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)m % 100u,
             (unsigned)d % 100u);
}

int32_t an_today(void)
{
    char day[CLOCK_DAY_LEN];
    int32_t n = 0;
    clock_day_of(clock_now_ms(), day);
    an_day_number(day, &n);
    return n;
}

int an_query_range(http_req_t *req, int32_t *from, int32_t *to)
{
    const char *f = http_query(req, "from"), *t = http_query(req, "to");
    if (t) {
        if (an_day_number(t, to) < 0) return diag_set(DIAG_VALIDATION, "to must be a day YYYY-MM-DD");
    } else {
        *to = an_today();
    }
    if (f) {
        if (an_day_number(f, from) < 0)
            return diag_set(DIAG_VALIDATION, "from must be a day YYYY-MM-DD");
    } else {
        *from = *to;
    }
    if (*from > *to) return diag_set(DIAG_VALIDATION, "from must not be after to");
    if (*to - *from + 1 > AN_MAX_DAYS)
        return diag_set(DIAG_VALIDATION, "a range covers at most %d days", AN_MAX_DAYS);
    return 0;
}
