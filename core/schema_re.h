/*
 * schema_re: the small regex engine behind the "pattern" keyword of
 * schema.c (private to it). ECMA-262 syntax, subset: literals, escaped
 * punctuation, \n \t \r \f \v, ., [classes] with ranges and ^ negation,
 * \d \w \s \D \W \S, greedy quantifiers * + ? {n} {n,} {n,m} (n, m <= 1000),
 * anchors ^ $. No groups, alternation, lazy quantifiers or back references:
 * such a pattern fails to compile, so a schema never checks less than it
 * says. Works on Unicode code points (UTF-8 decoded; a malformed byte counts
 * as one character). A search is unanchored unless the pattern says ^ / $.
 * Matching backtracks under a step budget, so no pattern can hang.
 */
#ifndef ATES_SCHEMA_RE_H
#define ATES_SCHEMA_RE_H

#include <stddef.h>

typedef struct schema_re schema_re_t;

/* Compile `pattern`. NULL on an unsupported pattern (or out of memory),
 * with the reason and byte offset in err. */
schema_re_t *schema_re_compile(const char *pattern, char *err, size_t errlen);
void schema_re_free(schema_re_t *re);

/* 1 when `re` matches somewhere in `subject`, 0 when not, -1 when the step
 * budget ran out first, -2 out of memory. */
int schema_re_search(const schema_re_t *re, const char *subject);

/* The length of `s` in code points, counted the way the engine reads them. */
size_t schema_re_length(const char *s);

#endif
