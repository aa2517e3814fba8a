/*
 * contract: splitting a TaskCreated v1 title "[JIRA-1] Title" into the Jira
 * id and the title proper, and leaving every other title alone.
 */
#include <string.h>

#include "plugins/contract/contract.h"
#include "t.h"

static void split(const char *text, const char *want_title, const char *want_jira)
{
    char title[64], jira[CONTRACT_JIRA_MAX + 1];
    contract_split_v1_title(text, title, sizeof(title), jira);
    T_EQ_STR(title, want_title);
    T_EQ_STR(jira, want_jira);
}

int main(void)
{
    split("[UBERPOP-42] Fix the nest", "Fix the nest", "UBERPOP-42");
    split("  [ UBERPOP-0 ]   Early bird  ", "Early bird", "UBERPOP-0"); /* blanks trimmed */
    split("[A-1]x", "x", "A-1");
    split("Fix the nest", "Fix the nest", "");               /* no id */
    split("Fix [UBERPOP-1] later", "Fix [UBERPOP-1] later", ""); /* not leading */
    split("[UBERPOP-1]", "[UBERPOP-1]", "");                 /* nothing after it */
    split("[UBERPOP-1]   ", "[UBERPOP-1]   ", "");
    split("[] Title", "[] Title", "");                       /* empty id */
    split("[UBER POP] Title", "[UBER POP] Title", "");       /* blank inside: not one id */
    split("[[X] Title", "[[X] Title", "");
    split("[UBERPOP-1 Title", "[UBERPOP-1 Title", "");       /* never closed */
    /* an id longer than the bound is not split */
    char longid[CONTRACT_JIRA_MAX + 16] = "[";
    memset(longid + 1, 'A', CONTRACT_JIRA_MAX + 1);
    strcat(longid, "] T");
    char title[128], jira[CONTRACT_JIRA_MAX + 1];
    contract_split_v1_title(longid, title, sizeof(title), jira);
    T_EQ_STR(jira, "");
    T_EQ_STR(title, longid);
    /* outputs are bounded: a title longer than the buffer is cut, not overrun */
    char small[8];
    contract_split_v1_title("[A-1] a rather long title", small, sizeof(small), jira);
    T_EQ_STR(small, "a rathe");
    T_EQ_STR(jira, "A-1");
    return t_done();
}
