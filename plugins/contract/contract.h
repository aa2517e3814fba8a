/*
 * contract: helpers for reading the events of CONTRACT §3 that more than one
 * service consumes. Not a service: it holds no state, opens no database and
 * knows only the event formats, so every plugin may include it without
 * coupling to another plugin.
 */
#ifndef ATES_CONTRACT_H
#define ATES_CONTRACT_H

#include <stddef.h>

#define CONTRACT_JIRA_MAX 64 /* TaskCreated v2 jira_id bound */

/*
 * A TaskCreated v1 title carries the Jira id in brackets: "[UBERPOP-42] Fix
 * the nest". contract_split_v1_title copies the title proper into
 * title[0..cap) and the id into jira (NUL-terminated; "" when none), with
 * the blanks around both trimmed. A title not of that form (no leading
 * bracket, an empty or blank-holding id, nothing after the bracket, an id
 * longer than CONTRACT_JIRA_MAX) is copied as it is, with no id. Both
 * outputs are truncated to their bounds, never overrun.
 */
void contract_split_v1_title(const char *text, char *title, size_t cap,
                             char jira[CONTRACT_JIRA_MAX + 1]);

#endif
