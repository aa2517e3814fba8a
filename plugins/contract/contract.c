/*
 * contract: event-format helpers shared by the services. See contract.h.
 */
#include "contract.h"

#include <stdio.h>
#include <string.h>

static int blank(char c) { return c == ' ' || c == '\t'; }

void contract_split_v1_title(const char *text, char *title, size_t cap,
                             char jira[CONTRACT_JIRA_MAX + 1])
{
    snprintf(title, cap, "%s", text);
    jira[0] = '\0';
    const char *p = text;
    while (blank(*p)) p++;
    const char *close = *p == '[' ? strchr(p, ']') : NULL;
    if (!close) return;
    const char *a = p + 1, *b = close;
    while (a < b && blank(*a)) a++;
    while (b > a && blank(b[-1])) b--;
    const char *rest = close + 1;
    while (blank(*rest)) rest++;
    size_t rlen = strlen(rest);
    while (rlen > 0 && blank(rest[rlen - 1])) rlen--;
    if (a == b || b - a > CONTRACT_JIRA_MAX || rlen == 0) return;
    for (const char *q = a; q < b; q++)
        if (*q == '[' || blank(*q)) return; /* not one id */
    snprintf(jira, CONTRACT_JIRA_MAX + 1, "%.*s", (int)(b - a), a);
    snprintf(title, cap, "%.*s", (int)rlen, rest);
}
