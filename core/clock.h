/*
 * clock: wall time in milliseconds, RFC 3339 formatting, and the business
 * day. A business day is a local date in ATES_TZ; it closes at ATES_DAY_CLOSE
 * local time (00:00 means midnight at its end; 18:00 means an instant at or
 * after 18:00 already belongs to the next day).
 */
#ifndef ATES_CLOCK_H
#define ATES_CLOCK_H

#include <stdint.h>
#include <time.h>

#define CLOCK_DAY_LEN 11     /* "YYYY-MM-DD" + NUL */
#define CLOCK_RFC3339_LEN 25 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" + NUL */

/* Set TZ for the process (once, before threads start) and the close time as
 * minutes after local midnight (0..1439). Returns -1 (diag) on a bad zone. */
int clock_configure(const char *tz, int close_minute);
int clock_close_minute(void);

int64_t clock_now_ms(void);      /* CLOCK_REALTIME, ms since the epoch */
int64_t clock_monotonic_ms(void);
int64_t clock_thread_cpu_us(void); /* CPU time the calling thread has used, in microseconds */

/* "2026-11-24T10:00:00.123Z" (UTC). */
void clock_rfc3339(int64_t ms, char out[CLOCK_RFC3339_LEN]);
/* Parses RFC 3339 with optional fraction and Z or +hh:mm; -1 on bad text. */
int clock_parse_rfc3339(const char *text, int64_t *ms);

/* The business day that instant `ms` belongs to. */
void clock_day_of(int64_t ms, char out[CLOCK_DAY_LEN]);
/* Validates "YYYY-MM-DD" (a real calendar date); -1 (diag validation) if not. */
int clock_day_check(const char *day);
/* day + delta days (calendar arithmetic, no time zone involved). */
int clock_day_add(const char *day, int delta, char out[CLOCK_DAY_LEN]);
/* Day numbers: days since 1970-01-01 (proleptic Gregorian, no time zone),
 * for ranges and arithmetic. -1 (diag validation) on a bad day. */
int clock_day_number(const char *day, int32_t *out);
void clock_day_string(int32_t n, char out[CLOCK_DAY_LEN]);
/* The day number of the current business day. */
int32_t clock_today(void);
/* The instant (ms) at which business day `day` closes, in ATES_TZ; handles
 * DST gaps (a close time that does not exist that day moves forward) and
 * overlaps (the first occurrence). -1 on a bad day. */
int clock_day_close_ms(const char *day, int64_t *ms);

#endif
