/*
 * fuzz_jwt: token verification on hostile tokens, and the sign/verify
 * round trip on hostile claims.
 *
 * Input: byte 0 chooses; odd: the rest is a token to verify (it must be
 * refused unless it is one this key signed); even: the rest is "sub\nrole",
 * signed and then verified, which must give the same claims back.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jwt.h"
#include "fuzz.h"

static jwt_keys_t *g_keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/keys", fuzz_tmp_dir());
    if (jwt_keys_open(&g_keys, dir, 1) < 0) abort();
    return 0;
}

static void round_trip(const char *text)
{
    jwt_claims_t in = {.iat = 1700000000, .exp = 4102444800};
    const char *nl = strchr(text, '\n');
    size_t sub_len = nl ? (size_t)(nl - text) : strlen(text);
    if (sub_len >= sizeof(in.sub)) return;
    memcpy(in.sub, text, sub_len);
    snprintf(in.role, sizeof(in.role), "%s", nl ? nl + 1 : "popug");
    char token[2048];
    if (jwt_sign(g_keys, &in, token, sizeof(token)) < 0) return; /* refused claims are fine */
    /* jwt_sign writes an empty sub or role on purpose (the unit tests check
     * that verify refuses them); every other signed token must verify */
    bool must_verify = in.sub[0] && in.role[0];
    jwt_claims_t out;
    int rc = jwt_verify(g_keys, token, 1800000000, &out);
    if (!must_verify) {
        if (rc == 0) {
            fprintf(stderr, "fuzz_jwt: a token with an empty sub or role verified\n");
            abort();
        }
        return;
    }
    if (rc < 0) {
        fprintf(stderr, "fuzz_jwt: a token we signed does not verify: %s\n", token);
        abort();
    }
    if (strcmp(in.sub, out.sub) != 0 || strcmp(in.role, out.role) != 0 || in.exp != out.exp ||
        in.iat != out.iat) {
        fprintf(stderr, "fuzz_jwt: claims changed in the round trip\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char *text = fuzz_strndup(data + 1, size - 1);
    if (data[0] & 1) {
        jwt_claims_t out;
        if (jwt_verify(g_keys, text, 1800000000, &out) == 0) {
            /* only a token of ours verifies: signing its claims again must give it back */
            char again[2048];
            if (jwt_sign(g_keys, &out, again, sizeof(again)) < 0) abort();
        }
    } else {
        round_trip(text);
    }
    free(text);
    return 0;
}
