/*
 * test_clock: RFC 3339 formatting and parsing, day validation and calendar
 * arithmetic, time zone configuration.
 */
#include "core/clock.h"
#include "core/diag.h"
#include "t.h"

static const char *fmt(int64_t ms)
{
    static char b[CLOCK_RFC3339_LEN];
    clock_rfc3339(ms, b);
    return b;
}

static int64_t parse(const char *text)
{
    int64_t ms = -777;
    T_EQ_INT(clock_parse_rfc3339(text, &ms), 0);
    return ms;
}

static void bad_time(const char *text)
{
    int64_t ms = 42;
    diag_clear();
    T_EQ_INT(clock_parse_rfc3339(text, &ms), -1);
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    T_EQ_INT(ms, 42); /* untouched */
}

static void test_rfc3339(void)
{
    T_EQ_STR(fmt(0), "1970-01-01T00:00:00.000Z");
    T_EQ_STR(fmt(-1), "1969-12-31T23:59:59.999Z");
    T_EQ_STR(fmt(-86400000), "1969-12-31T00:00:00.000Z");
    T_EQ_STR(fmt(1795514400123), "2026-11-24T10:00:00.123Z");
    T_EQ_STR(fmt(951782400000), "2000-02-29T00:00:00.000Z");

    T_EQ_INT(parse("1970-01-01T00:00:00Z"), 0);
    T_EQ_INT(parse("1969-12-31T23:59:59.999Z"), -1);
    T_EQ_INT(parse("2026-11-24T10:00:00.123Z"), 1795514400123);
    T_EQ_INT(parse("2026-11-24t10:00:00.123z"), 1795514400123);
    T_EQ_INT(parse("2026-11-24T15:30:00.123+05:30"), 1795514400123);
    T_EQ_INT(parse("2026-11-24T05:00:00.123-05:00"), 1795514400123);
    T_EQ_INT(parse("2026-11-24T10:00:00.1Z"), 1795514400100);
    T_EQ_INT(parse("2026-11-24T10:00:00.123999Z"), 1795514400123); /* truncated to ms */
    T_EQ_INT(parse("2026-11-24T10:00:00Z"), 1795514400000);
    T_EQ_INT(parse("2024-02-29T00:00:00Z"), 1709164800000);

    /* roundtrip over a spread of instants, negative ones included */
    for (int64_t ms = -5000000000000; ms < 5000000000000; ms += 123456789011) {
        T_EQ_INT(parse(fmt(ms)), ms);
        T_EQ_STR(fmt(parse(fmt(ms))), fmt(ms));
    }

    bad_time("2026-02-30T00:00:00Z");
    bad_time("2025-02-29T00:00:00Z");
    bad_time("2026-13-01T00:00:00Z");
    bad_time("2026-11-24T10:00:00");         /* no zone */
    bad_time("2026-11-24 10:00:00Z");        /* no T */
    bad_time("2026-11-24T24:00:00Z");
    bad_time("2026-11-24T10:60:00Z");
    bad_time("2026-11-24T10:00:00.Z");       /* empty fraction */
    bad_time("2026-11-24T10:00:00+0530");    /* offset without colon */
    bad_time("2026-11-24T10:00:00+24:00");
    bad_time("2026-11-24T10:00:00Zjunk");
    bad_time("2026-11-24");
    bad_time("garbage");
    bad_time("");
    bad_time("2026-1-24T10:00:00Z");
    int64_t ms = 0;
    T_EQ_INT(clock_parse_rfc3339(NULL, &ms), -1);
}

static void test_days(void)
{
    T_EQ_INT(clock_day_check("2026-11-24"), 0);
    T_EQ_INT(clock_day_check("2024-02-29"), 0);
    T_EQ_INT(clock_day_check("2000-02-29"), 0);
    diag_clear();
    T_EQ_INT(clock_day_check("1900-02-29"), -1);
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    T_EQ_INT(clock_day_check("2025-02-29"), -1);
    T_EQ_INT(clock_day_check("2026-04-31"), -1);
    T_EQ_INT(clock_day_check("2026-00-10"), -1);
    T_EQ_INT(clock_day_check("2026-11-24T00:00:00Z"), -1);
    T_EQ_INT(clock_day_check("2026-11-4"), -1);
    T_EQ_INT(clock_day_check(""), -1);
    T_EQ_INT(clock_day_check(NULL), -1);

    char d[CLOCK_DAY_LEN];
    T_EQ_INT(clock_day_add("2026-01-31", 1, d), 0);
    T_EQ_STR(d, "2026-02-01");
    T_EQ_INT(clock_day_add("2026-03-01", -1, d), 0);
    T_EQ_STR(d, "2026-02-28");
    T_EQ_INT(clock_day_add("2024-03-01", -1, d), 0);
    T_EQ_STR(d, "2024-02-29");
    T_EQ_INT(clock_day_add("2026-12-31", 1, d), 0);
    T_EQ_STR(d, "2027-01-01");
    T_EQ_INT(clock_day_add("2027-01-01", -1, d), 0);
    T_EQ_STR(d, "2026-12-31");
    T_EQ_INT(clock_day_add("2026-11-24", 0, d), 0);
    T_EQ_STR(d, "2026-11-24");
    T_EQ_INT(clock_day_add("2024-01-01", 366, d), 0);
    T_EQ_STR(d, "2025-01-01");
    T_EQ_INT(clock_day_add("2026-03-28", 2, d), 0); /* no time zone: DST does not matter */
    T_EQ_STR(d, "2026-03-30");
    T_EQ_INT(clock_day_add("2026-02-30", 1, d), -1);
}

static void test_configure(void)
{
    diag_clear();
    T_EQ_INT(clock_configure("Mars/Olympus", 0), -1);
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    T_EQ_INT(clock_configure("../etc/passwd", 0), -1);
    T_EQ_INT(clock_configure("/etc/localtime", 0), -1);
    T_EQ_INT(clock_configure("Europe", 0), -1); /* a directory */
    T_EQ_INT(clock_configure("", 0), -1);
    T_EQ_INT(clock_configure(NULL, 0), -1);
    T_EQ_INT(clock_configure("UTC", -1), -1);
    T_EQ_INT(clock_configure("UTC", 1440), -1);

    T_EQ_INT(clock_configure("Europe/Berlin", 90), 0);
    T_EQ_INT(clock_close_minute(), 90);
    char d[CLOCK_DAY_LEN];
    /* 2026-06-15T23:30Z is 01:30 CEST on the 16th: at the close, so the 17th */
    clock_day_of(1781566200000, d);
    T_EQ_STR(d, "2026-06-17");
    clock_day_of(1781566200000 - 1, d);
    T_EQ_STR(d, "2026-06-16");
    T_EQ_INT(clock_configure("UTC", 0), 0);
    clock_day_of(1781566200000, d);
    T_EQ_STR(d, "2026-06-15");
    clock_day_of(-1, d);
    T_EQ_STR(d, "1969-12-31");

    T_CHECK(clock_now_ms() > 1700000000000);
    int64_t a = clock_monotonic_ms(), b = clock_monotonic_ms();
    T_CHECK(b >= a);
}

int main(void)
{
    test_rfc3339();
    test_days();
    test_configure();
    return t_done();
}
