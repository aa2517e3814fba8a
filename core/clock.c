/*
 * clock: wall time, RFC 3339, and business-day arithmetic (see clock.h).
 *
 * Calendar dates are handled as day numbers (days since 1970-01-01) with
 * Howard Hinnant's civil-date algorithms, so date arithmetic never goes
 * through a time zone. Local time goes through localtime_r with the TZ set
 * once by clock_configure; a day's close instant is found from the wall
 * time (exact match, or a search across a DST gap), never with mktime.
 */
#include "clock.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "diag.h"

static int g_close_minute;

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

/* Write `v` as exactly `n` decimal digits (the value is taken mod 10^n). */
static char *put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/* "YYYY-MM-DD" of a day number, without the NUL; returns the end. */
static char *put_date(char *p, int64_t daynum)
{
    int y, m, d;
    civil_from_days(daynum, &y, &m, &d);
    p = put_digits(p, (unsigned)y, 4);
    *p++ = '-';
    p = put_digits(p, (unsigned)m, 2);
    *p++ = '-';
    return put_digits(p, (unsigned)d, 2);
}

static void format_day(int64_t daynum, char out[CLOCK_DAY_LEN]) { *put_date(out, daynum) = '\0'; }

static bool zone_exists(const char *tz)
{
    if (strcmp(tz, "UTC") == 0 || strcmp(tz, "GMT") == 0) return true;
    if (tz[0] == '\0' || tz[0] == '/' || strstr(tz, "..")) return false;
    for (const char *p = tz; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("/_+-", *p))) return false;
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int clock_configure(const char *tz, int close_minute)
{
    if (!tz || !zone_exists(tz))
        return diag_set(DIAG_VALIDATION, "unknown time zone '%s'", tz ? tz : "(null)");
    if (close_minute < 0 || close_minute >= 24 * 60)
        return diag_set(DIAG_VALIDATION, "day close minute %d is outside 0..1439", close_minute);
    setenv("TZ", tz, 1);
    tzset();
    g_close_minute = close_minute;
    return 0;
}

int clock_close_minute(void) { return g_close_minute; }

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

void clock_rfc3339(int64_t ms, char out[CLOCK_RFC3339_LEN])
{
    int64_t secs = floor_div(ms, 1000);
    int frac = (int)(ms - secs * 1000);
    int64_t days = floor_div(secs, 86400);
    int sod = (int)(secs - days * 86400);
    char *p = put_date(out, days);
    *p++ = 'T';
    p = put_digits(p, (unsigned)(sod / 3600), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod / 60 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)(sod % 60), 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)frac, 3);
    *p++ = 'Z';
    *p = '\0';
}

/* Read exactly `n` digits at *p into *v. */
static bool digits(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return false;
        *v = *v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return true;
}

static bool valid_date(int y, int m, int d)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || m < 1 || m > 12 || d < 1) return false;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 ? leap : 0);
}

int clock_parse_rfc3339(const char *text, int64_t *ms)
{
    const char *p = text;
    int y, mo, d, h, mi, s, frac = 0;
    if (!p || !digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d) || (*p != 'T' && *p != 't') || !*p++ || !digits(&p, 2, &h) ||
        *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' || !digits(&p, 2, &s))
        return diag_set(DIAG_VALIDATION, "'%s' is not an RFC 3339 time", text ? text : "");
    if (*p == '.') {
        p++;
        int n = 0, scale = 100;
        while (isdigit((unsigned char)*p)) {
            if (n++ < 3) {
                frac += (*p - '0') * scale;
                scale /= 10;
            }
            p++;
        }
        if (n == 0) return diag_set(DIAG_VALIDATION, "'%s' has an empty fraction", text);
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
            return diag_set(DIAG_VALIDATION, "'%s' has a bad offset", text);
        offset_min = sign * (oh * 60 + om);
    } else {
        return diag_set(DIAG_VALIDATION, "'%s' has no time zone offset", text);
    }
    if (*p || !valid_date(y, mo, d) || h > 23 || mi > 59 || s > 60)
        return diag_set(DIAG_VALIDATION, "'%s' is not an RFC 3339 time", text);
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + (int64_t)h * 3600 +
                   (int64_t)mi * 60 + s - (int64_t)offset_min * 60;
    *ms = secs * 1000 + frac;
    return 0;
}

static int parse_day(const char *day, int64_t *daynum)
{
    const char *p = day;
    int y, m, d;
    if (!p || !digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &m) || *p++ != '-' ||
        !digits(&p, 2, &d) || *p || !valid_date(y, m, d)) {
        /* not `return diag_set(...)`: the analyzer cannot see that it is -1
         * and would take *daynum as possibly unset on success */
        diag_set(DIAG_VALIDATION, "'%s' is not a day (YYYY-MM-DD)", day ? day : "");
        return -1;
    }
    *daynum = days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

int clock_day_check(const char *day)
{
    int64_t n;
    return parse_day(day, &n);
}

int clock_day_number(const char *day, int32_t *out)
{
    int64_t n;
    if (parse_day(day, &n) < 0) return -1;
    *out = (int32_t)n;
    return 0;
}

void clock_day_string(int32_t n, char out[CLOCK_DAY_LEN]) { format_day(n, out); }

int32_t clock_today(void)
{
    char day[CLOCK_DAY_LEN];
    int32_t n = 0;
    clock_day_of(clock_now_ms(), day);
    clock_day_number(day, &n);
    return n;
}

int clock_day_add(const char *day, int delta, char out[CLOCK_DAY_LEN])
{
    int64_t n;
    if (parse_day(day, &n) < 0) return -1;
    format_day(n + delta, out);
    return 0;
}

/* Local wall time of instant `t`, as seconds since 1970-01-01 00:00 local. */
static int64_t wall_of(time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    int64_t day = days_from_civil(tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
    return day * 86400 + (int64_t)tm.tm_hour * 3600 + (int64_t)tm.tm_min * 60 + tm.tm_sec;
}

static int64_t offset_at(time_t t) { return wall_of(t) - (int64_t)t; }

/* The first instant at which local wall time reaches `wall` (seconds, as
 * from wall_of). In a DST overlap that is the first occurrence; in a gap it
 * is the instant the clock jumps over `wall` (02:30 in a 02:00->03:00 gap
 * gives 03:00). The offsets a day before and after bracket the instant,
 * assuming at most one offset change within a day of it. */
static int64_t local_to_utc(int64_t wall)
{
    int64_t a = wall - offset_at((time_t)(wall - 86400));
    int64_t b = wall - offset_at((time_t)(wall + 86400));
    int64_t lo = a < b ? a : b, hi = a < b ? b : a;
    if (wall_of((time_t)lo) == wall) return lo;
    if (wall_of((time_t)hi) == wall) return hi;
    /* A gap: wall(lo) < wall <= wall(hi); find the first instant past it. */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (wall_of((time_t)mid) >= wall)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* Close instant (ms) of day number `n`. */
static int64_t close_of(int64_t n)
{
    int64_t wall = n * 86400 + (int64_t)g_close_minute * 60;
    if (g_close_minute == 0) wall += 86400; /* midnight at the end of the day */
    return local_to_utc(wall) * 1000;
}

/* The day an instant belongs to is the one whose close is the first after
 * it: close(n - 1) <= ms < close(n). The local date and time give the
 * answer except around DST changes (in an overlap 02:10 can come after a
 * 02:30 close), so it is checked against the close instants. */
void clock_day_of(int64_t ms, char out[CLOCK_DAY_LEN])
{
    time_t t = (time_t)floor_div(ms, 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    int64_t n = days_from_civil(tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
    if (g_close_minute > 0 && tm.tm_hour * 60 + tm.tm_min >= g_close_minute) n++;
    for (int i = 0; i < 3 && close_of(n) <= ms; i++) n++;
    for (int i = 0; i < 3 && close_of(n - 1) > ms; i++) n--;
    format_day(n, out);
}

int clock_day_close_ms(const char *day, int64_t *ms)
{
    int64_t n;
    if (parse_day(day, &n) < 0) return -1;
    *ms = close_of(n);
    return 0;
}
