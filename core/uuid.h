/*
 * uuid: UUIDv7 (RFC 9562) from getrandom: 48-bit ms timestamp, then a
 * 12-bit sequence that keeps ids made in one millisecond in order within
 * the process, then random bits. Text form, lower case, 36 chars.
 */
#ifndef ATES_UUID_H
#define ATES_UUID_H

#include <stdbool.h>

#define UUID_LEN 37 /* 36 + NUL */

void uuid_v7(char out[UUID_LEN]);
/* true when `text` is a UUID in the canonical 8-4-4-4-12 hex form. */
bool uuid_valid(const char *text);

#endif
