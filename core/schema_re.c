/*
 * schema_re: a backtracking regex engine for JSON Schema "pattern" (see
 * schema_re.h for the syntax). A pattern compiles to a flat list of
 * single-character atoms, each with a repetition range; matching tries the
 * longest repetition first and gives back one character at a time. The
 * recursion is one level per atom (at most RE_MAX_TOKENS), and every step is
 * counted against a budget of RE_MAX_STEPS plus a share linear in the
 * subject's length, so a simple pattern never fails on a long string and a
 * pathological one (a*a*a*...c) fails instead of hanging.
 */
#include "schema_re.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RE_MAX_PATTERN 1024
#define RE_MAX_TOKENS 128
#define RE_MAX_RANGES 256
#define RE_MAX_REPEAT 1000
#define RE_INF INT_MAX
#define RE_MAX_STEPS 1000000L

/* ------------------------------------------------------------------ utf-8 */

/* The code point at s[*i] (n bytes in all), advancing *i. A malformed or
 * truncated sequence yields its first byte as one character. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    unsigned c = s[*i];
    size_t len = c < 0x80             ? 1
                 : (c & 0xE0) == 0xC0 ? 2
                 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4
                                      : 1;
    if (len == 1 || *i + len > n) {
        (*i)++;
        return c;
    }
    uint32_t cp = c & (0xFFu >> (len + 1));
    for (size_t k = 1; k < len; k++) {
        unsigned cc = s[*i + k];
        if ((cc & 0xC0) != 0x80) {
            (*i)++;
            return c;
        }
        cp = cp << 6 | (cc & 0x3F);
    }
    *i += len;
    return cp;
}

size_t schema_re_length(const char *s)
{
    size_t n = strlen(s), i = 0, count = 0;
    while (i < n) {
        utf8_next((const unsigned char *)s, n, &i);
        count++;
    }
    return count;
}

/* ------------------------------------------------------------------ regex */

typedef enum re_kind { RE_CHAR, RE_ANY, RE_CLASS, RE_BOL, RE_EOL } re_kind_t;

typedef struct re_tok {
    re_kind_t kind;
    uint32_t ch;     /* RE_CHAR: the code point */
    bool negate;     /* RE_CLASS: [^...], \D, \W, \S */
    uint16_t r0, rn; /* RE_CLASS: its ranges are range[r0 .. r0+rn) */
    int min, max;    /* repetition (max RE_INF: unbounded); 1,1 when plain */
} re_tok_t;

struct schema_re {
    re_tok_t tok[RE_MAX_TOKENS];
    int ntok;
    uint32_t range[RE_MAX_RANGES][2]; /* inclusive code point ranges */
    int nrange;
    const unsigned char *pat; /* while compiling */
    size_t len, pos;
    char err[128];
};
typedef struct schema_re re_t;

static const uint32_t re_digit[][2] = {{'0', '9'}};
static const uint32_t re_word[][2] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
static const uint32_t re_space[][2] = {
    {9, 13},          {' ', ' '},       {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};

static int re_fail(re_t *re, const char *what)
{
    snprintf(re->err, sizeof(re->err), "%s at offset %zu", what, re->pos);
    return -1;
}

static int re_add_range(re_t *re, uint32_t lo, uint32_t hi)
{
    if (re->nrange >= RE_MAX_RANGES) return re_fail(re, "too many class ranges");
    re->range[re->nrange][0] = lo;
    re->range[re->nrange][1] = hi;
    re->nrange++;
    return 0;
}

/* Add the ranges of \d, \w or \s (lower case `e`); 1 when `e` is none. */
static int re_add_shorthand(re_t *re, int e)
{
    const uint32_t(*set)[2];
    size_t n;
    switch (e) {
    case 'd':
        set = re_digit, n = sizeof(re_digit) / sizeof(*re_digit);
        break;
    case 'w':
        set = re_word, n = sizeof(re_word) / sizeof(*re_word);
        break;
    case 's':
        set = re_space, n = sizeof(re_space) / sizeof(*re_space);
        break;
    default:
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (re_add_range(re, set[i][0], set[i][1]) < 0) return -1;
    return 0;
}

/* The character of a literal escape (the byte after '\\' at re->pos). */
static int re_escape_char(re_t *re, uint32_t *out)
{
    int e = re->pos < re->len ? re->pat[re->pos] : 0;
    switch (e) {
    case 'n':
        *out = '\n';
        break;
    case 't':
        *out = '\t';
        break;
    case 'r':
        *out = '\r';
        break;
    case 'f':
        *out = '\f';
        break;
    case 'v':
        *out = '\v';
        break;
    default:
        if (e == 0) return re_fail(re, "trailing backslash");
        if (e >= 0x80 || !ispunct(e)) return re_fail(re, "unsupported escape");
        *out = (uint32_t)e;
    }
    re->pos++;
    return 0;
}

/* One class member or range endpoint: a literal or an escaped char. */
static int re_class_char(re_t *re, uint32_t *out)
{
    if (re->pat[re->pos] == '\\') {
        re->pos++;
        return re_escape_char(re, out);
    }
    *out = utf8_next(re->pat, re->len, &re->pos);
    return 0;
}

/* A [class]; re->pos is just after '['. */
static int re_parse_class(re_t *re, re_tok_t *t)
{
    t->kind = RE_CLASS;
    t->r0 = (uint16_t)re->nrange;
    if (re->pos < re->len && re->pat[re->pos] == '^') {
        t->negate = true;
        re->pos++;
    }
    if (re->pos < re->len && re->pat[re->pos] == ']') return re_fail(re, "empty class");
    while (re->pos < re->len && re->pat[re->pos] != ']') {
        if (re->pat[re->pos] == '\\' && re->pos + 1 < re->len) {
            int rc = re_add_shorthand(re, re->pat[re->pos + 1]);
            if (rc < 0) return -1;
            if (rc == 0) {
                re->pos += 2;
                continue;
            }
            if (strchr("DWS", re->pat[re->pos + 1])) return re_fail(re, "\\D \\W \\S in a class");
        }
        uint32_t lo, hi;
        if (re_class_char(re, &lo) < 0) return -1;
        hi = lo;
        if (re->pos + 1 < re->len && re->pat[re->pos] == '-' && re->pat[re->pos + 1] != ']') {
            re->pos++;
            if (re->pat[re->pos] == '\\' && re->pos + 1 < re->len &&
                strchr("dwsDWS", re->pat[re->pos + 1]))
                return re_fail(re, "class shorthand as a range end");
            if (re_class_char(re, &hi) < 0) return -1;
            if (hi < lo) return re_fail(re, "range out of order");
        }
        if (re_add_range(re, lo, hi) < 0) return -1;
    }
    if (re->pos >= re->len) return re_fail(re, "unterminated class");
    re->pos++;
    t->rn = (uint16_t)(re->nrange - t->r0);
    return 0;
}

static int re_parse_atom(re_t *re, re_tok_t *t)
{
    int c = re->pat[re->pos];
    memset(t, 0, sizeof(*t));
    t->min = t->max = 1;
    switch (c) {
    case '^':
        t->kind = RE_BOL;
        re->pos++;
        return 0;
    case '$':
        t->kind = RE_EOL;
        re->pos++;
        return 0;
    case '.':
        t->kind = RE_ANY;
        re->pos++;
        return 0;
    case '[':
        re->pos++;
        return re_parse_class(re, t);
    case '(':
    case ')':
    case '|':
        return re_fail(re, "groups and alternation are not supported");
    case '*':
    case '+':
    case '?':
    case '{':
        return re_fail(re, "nothing to repeat");
    case ']':
    case '}':
        return re_fail(re, "unescaped bracket");
    case '\\': {
        re->pos++;
        int e = re->pos < re->len ? re->pat[re->pos] : 0;
        int lower = tolower(e);
        if (e && strchr("dwsDWS", e)) {
            t->kind = RE_CLASS;
            t->negate = e != lower;
            t->r0 = (uint16_t)re->nrange;
            if (re_add_shorthand(re, lower) < 0) return -1;
            t->rn = (uint16_t)(re->nrange - t->r0);
            re->pos++;
            return 0;
        }
        t->kind = RE_CHAR;
        return re_escape_char(re, &t->ch);
    }
    default:
        t->kind = RE_CHAR;
        t->ch = utf8_next(re->pat, re->len, &re->pos);
        return 0;
    }
}

/* A decimal count of a {n,m} quantifier. */
static int re_count(re_t *re, int *out)
{
    size_t start = re->pos;
    long v = 0;
    while (re->pos < re->len && isdigit(re->pat[re->pos]) && v <= RE_MAX_REPEAT)
        v = v * 10 + (re->pat[re->pos++] - '0');
    if (re->pos == start) return re_fail(re, "bad {n,m} quantifier");
    if (v > RE_MAX_REPEAT) return re_fail(re, "repeat count over 1000");
    *out = (int)v;
    return 0;
}

static int re_parse_quantifier(re_t *re, re_tok_t *t)
{
    if (re->pos >= re->len) return 0;
    int c = re->pat[re->pos];
    if (c == '*' || c == '+' || c == '?') {
        t->min = c == '+';
        t->max = c == '?' ? 1 : RE_INF;
        re->pos++;
    } else if (c == '{') {
        re->pos++;
        if (re_count(re, &t->min) < 0) return -1;
        t->max = t->min;
        if (re->pos < re->len && re->pat[re->pos] == ',') {
            re->pos++;
            t->max = RE_INF;
            if (re->pos < re->len && re->pat[re->pos] != '}' && re_count(re, &t->max) < 0)
                return -1;
        }
        if (re->pos >= re->len || re->pat[re->pos] != '}')
            return re_fail(re, "bad {n,m} quantifier");
        re->pos++;
        if (t->max < t->min) return re_fail(re, "{n,m} with m < n");
    } else {
        return 0;
    }
    if (t->kind == RE_BOL || t->kind == RE_EOL) return re_fail(re, "quantified anchor");
    if (re->pos < re->len && re->pat[re->pos] == '?')
        return re_fail(re, "lazy quantifiers are not supported");
    return 0;
}

/* Compile `pattern` into `re`; -1 with re->err on an unsupported pattern. */
static int re_compile(re_t *re, const char *pattern)
{
    re->ntok = re->nrange = 0;
    re->pat = (const unsigned char *)pattern;
    re->len = strlen(pattern);
    re->pos = 0;
    re->err[0] = '\0';
    if (re->len > RE_MAX_PATTERN) return re_fail(re, "pattern longer than 1024 bytes");
    while (re->pos < re->len) {
        if (re->ntok >= RE_MAX_TOKENS) return re_fail(re, "pattern has too many atoms");
        re_tok_t *t = &re->tok[re->ntok++];
        if (re_parse_atom(re, t) < 0 || re_parse_quantifier(re, t) < 0) return -1;
    }
    return 0;
}

typedef struct re_run {
    const re_t *re;
    const uint32_t *s; /* the subject, decoded */
    size_t n;
    long steps, budget;
} re_run_t;

static bool re_tok_matches(const re_t *re, const re_tok_t *t, uint32_t c)
{
    switch (t->kind) {
    case RE_CHAR:
        return c == t->ch;
    case RE_ANY:
        return c != '\n' && c != '\r' && c != 0x2028 && c != 0x2029;
    case RE_CLASS:
        for (int i = t->r0; i < t->r0 + t->rn; i++)
            if (c >= re->range[i][0] && c <= re->range[i][1]) return !t->negate;
        return t->negate;
    default:
        return false;
    }
}

/* Tokens ti.. against s[si..]: 1 match, 0 none, -1 step budget spent. The
 * recursion is at most one level per token. */
static int re_match_here(re_run_t *r, int ti, size_t si)
{
    if (++r->steps > r->budget) return -1;
    if (ti == r->re->ntok) return 1;
    const re_tok_t *t = &r->re->tok[ti];
    if (t->kind == RE_BOL) return si == 0 ? re_match_here(r, ti + 1, si) : 0;
    if (t->kind == RE_EOL) return si == r->n ? re_match_here(r, ti + 1, si) : 0;
    size_t k = 0;
    while ((t->max == RE_INF || k < (size_t)t->max) && si + k < r->n &&
           re_tok_matches(r->re, t, r->s[si + k]))
        k++;
    r->steps += (long)k;
    for (size_t j = k + 1; j-- > (size_t)t->min;) { /* greedy: longest first */
        int rc = re_match_here(r, ti + 1, si + j);
        if (rc != 0) return rc;
    }
    return 0;
}

/* Search `subject` anywhere (unanchored, as JSON Schema says): 1 match,
 * 0 none, -1 step budget spent, -2 out of memory. */
int schema_re_search(const schema_re_t *re, const char *subject)
{
    size_t len = strlen(subject), i = 0, n = 0;
    uint32_t *s = malloc((len + 1) * sizeof(*s));
    if (!s) return -2;
    while (i < len)
        s[n++] = utf8_next((const unsigned char *)subject, len, &i);
    re_run_t r = {.re = re, .s = s, .n = n, .steps = 0};
    r.budget = RE_MAX_STEPS + (long)n * (re->ntok + 1) * 4;
    int rc = 0;
    for (size_t start = 0; start <= n && rc == 0; start++) {
        rc = re_match_here(&r, 0, start);
        if (re->ntok > 0 && re->tok[0].kind == RE_BOL) break;
    }
    free(s);
    return rc;
}

schema_re_t *schema_re_compile(const char *pattern, char *err, size_t errlen)
{
    re_t *re = malloc(sizeof(*re));
    if (!re) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (re_compile(re, pattern) < 0) {
        snprintf(err, errlen, "%s", re->err);
        free(re);
        return NULL;
    }
    return re;
}

void schema_re_free(schema_re_t *re)
{
    free(re);
}
