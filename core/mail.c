/*
 * mail: checking and formatting a message (see mail.h). Pure functions: no
 * I/O, no clock, no global state, so the bytes of a mail depend only on its
 * fields, the From value and the date given.
 */
#include "mail.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag.h"

#define MAIL_LINE_MAX 76    /* quoted-printable output line, without CRLF */
#define MAIL_WORD_RAW 39    /* bytes per encoded-word: 52 base64 chars, a 64-char word */

/* --- checks -------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 if malformed. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned min;
    unsigned cp;
    if ((c & 0xE0) == 0xC0) {
        n = 2, min = 0x80, cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, min = 0x800, cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, min = 0x10000, cp = c & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (!n) return false;
        p += n;
    }
    return true;
}

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("._+=-", c) != NULL;
}

static int check_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > MAIL_ID_MAX)
        return diag_set(DIAG_VALIDATION, "mail id must have 1..%d characters", MAIL_ID_MAX);
    for (size_t i = 0; i < n; i++)
        if (!id_char(id[i]))
            return diag_set(DIAG_VALIDATION, "mail id may hold only A-Z a-z 0-9 . _ + = -");
    if (id[0] == '.' || id[n - 1] == '.' || strstr(id, ".."))
        return diag_set(DIAG_VALIDATION, "mail id may not start or end with '.' nor hold '..'");
    return 0;
}

/* One addr-spec: local@domain, no spaces, controls or specials. */
static int check_addr(const char *what, const char *a)
{
    size_t n = a ? strlen(a) : 0;
    if (n < 3 || n > MAIL_ADDR_MAX)
        return diag_set(DIAG_VALIDATION, "%s must be an address of 3..%d bytes", what, MAIL_ADDR_MAX);
    if (!utf8_valid(a)) return diag_set(DIAG_VALIDATION, "%s is not UTF-8", what);
    const char *at = strchr(a, '@');
    if (!at || strchr(at + 1, '@') || at == a || !at[1] || at[1] == '.' || a[n - 1] == '.')
        return diag_set(DIAG_VALIDATION, "%s must be one address local@domain", what);
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p <= 0x20 || *p == 0x7F || strchr("<>()[]\\,;:\"", *p))
            return diag_set(DIAG_VALIDATION, "%s holds a space, a control or a special character",
                            what);
    return 0;
}

int mail_check(const mail_msg_t *m)
{
    if (!m) return diag_set(DIAG_VALIDATION, "no mail");
    if (check_id(m->id) < 0 || check_addr("mail to", m->to) < 0) return -1;
    size_t n = m->subject ? strlen(m->subject) : 0;
    if (n == 0 || n > MAIL_SUBJECT_MAX)
        return diag_set(DIAG_VALIDATION, "mail subject must have 1..%d bytes", MAIL_SUBJECT_MAX);
    if (!utf8_valid(m->subject)) return diag_set(DIAG_VALIDATION, "mail subject is not UTF-8");
    for (const unsigned char *p = (const unsigned char *)m->subject; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7F)
            return diag_set(DIAG_VALIDATION, "mail subject holds a control character (CR/LF?)");
    if (!m->text) return diag_set(DIAG_VALIDATION, "mail text missing");
    if (strlen(m->text) > MAIL_TEXT_MAX)
        return diag_set(DIAG_VALIDATION, "mail text over %d bytes", MAIL_TEXT_MAX);
    if (!utf8_valid(m->text)) return diag_set(DIAG_VALIDATION, "mail text is not UTF-8");
    return 0;
}

static bool phrase_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr(" !#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

int mail_from_addr(const char *from, char out[MAIL_ADDR_MAX + 1])
{
    size_t n = from ? strlen(from) : 0;
    if (n == 0 || n > MAIL_FROM_MAX)
        return diag_set(DIAG_VALIDATION, "mail from must have 1..%d bytes", MAIL_FROM_MAX);
    const char *lt = strchr(from, '<');
    const char *addr = from;
    size_t alen = n;
    if (lt) {
        if (from[n - 1] != '>')
            return diag_set(DIAG_VALIDATION, "mail from: 'Name <address>' must end with '>'");
        for (const char *p = from; p < lt; p++)
            if (!phrase_char(*p))
                return diag_set(DIAG_VALIDATION, "mail from: the display name may hold only "
                                                 "letters, digits, spaces and !#$%%&'*+-/=?^_`{|}~.");
        addr = lt + 1;
        alen = (size_t)(from + n - 1 - addr);
    }
    if (alen > MAIL_ADDR_MAX) return diag_set(DIAG_VALIDATION, "mail from: address too long");
    char buf[MAIL_ADDR_MAX + 1];
    memcpy(buf, addr, alen);
    buf[alen] = '\0';
    for (const unsigned char *p = (const unsigned char *)buf; *p; p++)
        if (*p >= 0x80) return diag_set(DIAG_VALIDATION, "mail from must be ASCII");
    if (check_addr("mail from", buf) < 0) return -1;
    memcpy(out, buf, alen + 1);
    return 0;
}

int mail_check_from(const char *from)
{
    char addr[MAIL_ADDR_MAX + 1];
    return mail_from_addr(from, addr);
}

/* --- a growing output buffer --------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->oom = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *s) { sb_put(b, s, strlen(s)); }

/* --- date ---------------------------------------------------------------- */

void mail_date(int64_t ms, char out[MAIL_DATE_LEN])
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* the remainders only bound the fields for the compiler: they are in range */
    snprintf(out, MAIL_DATE_LEN, "%s, %02u %s %04u %02u:%02u:%02u +0000", days[tm.tm_wday % 7],
             (unsigned)tm.tm_mday % 32u, months[tm.tm_mon % 12], (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)tm.tm_hour % 24u, (unsigned)tm.tm_min % 60u, (unsigned)tm.tm_sec % 61u);
}

/* --- Subject: plain, or RFC 2047 encoded words --------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void sb_base64(sbuf_t *b, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n) v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        char q[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63],
                     i + 1 < n ? b64[(v >> 6) & 63] : '=', i + 2 < n ? b64[v & 63] : '='};
        sb_put(b, q, 4);
    }
}

static bool subject_plain(const char *s)
{
    if (strlen("Subject: ") + strlen(s) > 78 || strstr(s, "=?")) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p >= 0x80 || *p < 0x20) return false;
    return true;
}

/* "Subject: " and the value, folded into encoded words of whole characters. */
static void sb_subject(sbuf_t *b, const char *s)
{
    sb_str(b, "Subject: ");
    if (subject_plain(s)) {
        sb_str(b, s);
        sb_str(b, "\r\n");
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    bool first = true;
    while (left > 0) {
        size_t take = 0;
        while (take < left) { /* whole UTF-8 sequences, at most MAIL_WORD_RAW bytes */
            size_t n = utf8_seq(p + take);
            if (n == 0) n = 1; /* checked before; never splits a valid sequence */
            if (take + n > MAIL_WORD_RAW) break;
            take += n;
        }
        if (!first) sb_str(b, "\r\n ");
        sb_str(b, "=?UTF-8?B?");
        sb_base64(b, p, take);
        sb_str(b, "?=");
        p += take;
        left -= take;
        first = false;
    }
    sb_str(b, "\r\n");
}

/* --- body: quoted-printable, CRLF hard breaks ----------------------------- */

typedef struct qp {
    sbuf_t *b;
    size_t col; /* characters on the current output line */
} qp_t;

/* One output byte, literal or as =XX, after a soft break when the line is
 * full. A '.' that would open a line is encoded: SMTP gives such lines a
 * meaning. */
static void qp_byte(qp_t *q, unsigned char c, bool encode)
{
    static const char hex[] = "0123456789ABCDEF";
    if (q->col + (encode ? 3 : 1) > MAIL_LINE_MAX - 1) { /* keep room for the soft-break '=' */
        sb_str(q->b, "=\r\n");
        q->col = 0;
    }
    if (c == '.' && q->col == 0) encode = true;
    if (encode) {
        char e[3] = {'=', hex[c >> 4], hex[c & 15]};
        sb_put(q->b, e, 3);
        q->col += 3;
    } else {
        char t = (char)c;
        sb_put(q->b, &t, 1);
        q->col++;
    }
}

static void qp_hard_break(qp_t *q)
{
    sb_str(q->b, "\r\n");
    q->col = 0;
}

static void sb_body(sbuf_t *b, const char *text)
{
    qp_t q = {b, 0};
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        if (*p == '\r' || *p == '\n') {
            p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
            qp_hard_break(&q);
            continue;
        }
        bool eol = p[1] == '\0' || p[1] == '\r' || p[1] == '\n';
        bool literal = (*p >= 33 && *p <= 126 && *p != '=') || ((*p == ' ' || *p == '\t') && !eol);
        qp_byte(&q, *p, !literal);
        p++;
    }
    if (q.col > 0) qp_hard_break(&q); /* the last line ends with CRLF too */
}

int mail_format(char **out, size_t *len, const mail_msg_t *m, const char *from, int64_t date_ms)
{
    *out = NULL;
    *len = 0;
    if (mail_check(m) < 0 || mail_check_from(from) < 0) return -1;
    sbuf_t b = {0};
    char date[MAIL_DATE_LEN];
    mail_date(date_ms, date);
    sb_str(&b, "Date: ");
    sb_str(&b, date);
    sb_str(&b, "\r\nFrom: ");
    sb_str(&b, from);
    sb_str(&b, "\r\nTo: ");
    sb_str(&b, m->to);
    sb_str(&b, "\r\n");
    sb_subject(&b, m->subject);
    sb_str(&b, "Message-ID: <");
    sb_str(&b, m->id);
    sb_str(&b, "@ates>\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: quoted-printable\r\n"
               "\r\n");
    sb_body(&b, m->text);
    if (b.oom) {
        free(b.p);
        return diag_set(DIAG_INTERNAL, "out of memory");
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
