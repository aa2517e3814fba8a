/*
 * tool_jwt: forge access tokens for the Python auth tests.
 *
 *   tool_jwt sign KEYDIR SUB ROLE IAT EXP
 *
 * prints a token signed with the key pair in KEYDIR (generated there when
 * missing). With the server's own DATA/keys it makes a token the server
 * accepts; with a fresh directory, one it must reject; with EXP in the past,
 * an expired one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag.h"
#include "core/jwt.h"

static int usage(void)
{
    fprintf(stderr, "usage: tool_jwt sign KEYDIR SUB ROLE IAT EXP\n");
    return 2;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') return -1;
    *out = (int64_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 7 || strcmp(argv[1], "sign") != 0) return usage();
    jwt_claims_t claims;
    memset(&claims, 0, sizeof(claims));
    if (strlen(argv[3]) >= sizeof(claims.sub) || strlen(argv[4]) >= sizeof(claims.role)) {
        fprintf(stderr, "tool_jwt: SUB or ROLE too long\n");
        return 2;
    }
    snprintf(claims.sub, sizeof(claims.sub), "%s", argv[3]);
    snprintf(claims.role, sizeof(claims.role), "%s", argv[4]);
    if (parse_i64(argv[5], &claims.iat) != 0 || parse_i64(argv[6], &claims.exp) != 0) {
        fprintf(stderr, "tool_jwt: IAT and EXP are integers (seconds)\n");
        return 2;
    }
    jwt_keys_t *keys = NULL;
    if (jwt_keys_open(&keys, argv[2], 1) != 0) {
        fprintf(stderr, "tool_jwt: keys in %s: %s\n", argv[2], diag_last()->message);
        return 1;
    }
    char token[2048];
    int rc = jwt_sign(keys, &claims, token, sizeof(token));
    if (rc != 0)
        fprintf(stderr, "tool_jwt: sign: %s\n", diag_last()->message);
    else
        printf("%s\n", token);
    jwt_keys_close(keys);
    return rc == 0 ? 0 : 1;
}
