/*
 * fetch: a small HTTP client (libcurl) for what one service needs from
 * another's public endpoints, e.g. the JWKS of auth when services run in
 * separate processes with separate data dirs.
 */
#ifndef ATES_FETCH_H
#define ATES_FETCH_H

#include <cjson/cJSON.h>

#define FETCH_MAX_BODY (256 * 1024)

/* GET `url` and parse the JSON body into *out. -1 with a diag
 * (DIAG_UNAVAILABLE for transport errors and non-2xx answers, DIAG_VALIDATION
 * for a body that is not JSON or is over FETCH_MAX_BODY). */
int fetch_json(const char *url, long timeout_ms, cJSON **out);

#endif
