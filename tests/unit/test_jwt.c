/*
 * test_jwt: Ed25519 tokens, key files and JWKS (core/jwt.c).
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "core/diag.h"
#include "core/jwt.h"
#include "t.h"

#define NOW 1800000000LL

static char base[512];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", base, name);
}

static jwt_claims_t claims_for(const char *sub, const char *role, int64_t exp)
{
    jwt_claims_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", sub);
    snprintf(c.role, sizeof(c.role), "%s", role);
    c.iat = NOW - 10;
    c.exp = exp;
    return c;
}

/* Verification must fail with DIAG_UNAUTHORIZED and a message. */
static int rejected(const jwt_keys_t *k, const char *token, int64_t now)
{
    jwt_claims_t c;
    diag_clear();
    if (jwt_verify(k, token, now, &c) == 0) return 0;
    return diag_last()->kind == DIAG_UNAUTHORIZED && diag_last()->message[0] != '\0';
}

static void b64(const char *text, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, (const unsigned char *)text, strlen(text),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* A token header.payload.sig with the given JSON texts, signature as is. */
static void hand_token(char *out, size_t cap, const char *hdr, const char *payload, const char *sig)
{
    char h[512], p[512];
    b64(hdr, h, sizeof(h));
    b64(payload, p, sizeof(p));
    snprintf(out, cap, "%s.%s.%s", h, p, sig);
}

static void test_roundtrip(jwt_keys_t *a, char *tok, size_t cap)
{
    jwt_claims_t in = claims_for("0190b2c4-aaaa-7bbb-8ccc-000000000001", "admin", NOW + 3600);
    jwt_claims_t out;
    T_EQ_INT(jwt_sign(a, &in, tok, cap), 0);
    T_CHECK(strlen(tok) < 1024);
    T_EQ_INT(jwt_verify(a, tok, NOW, &out), 0);
    T_EQ_STR(out.sub, in.sub);
    T_EQ_STR(out.role, "admin");
    T_EQ_INT(out.iat, NOW - 10);
    T_EQ_INT(out.exp, NOW + 3600);

    /* The header is exactly the agreed one, with the JWKS kid. */
    unsigned char hdr[256];
    size_t hlen = 0;
    const char *dot = strchr(tok, '.');
    T_EQ_INT(sodium_base642bin(hdr, sizeof(hdr) - 1, tok, (size_t)(dot - tok), NULL, &hlen, NULL,
                               sodium_base64_VARIANT_URLSAFE_NO_PADDING),
             0);
    hdr[hlen] = '\0';
    cJSON *jwks = jwt_jwks(a);
    cJSON *k0 = cJSON_GetArrayItem(cJSON_GetObjectItem(jwks, "keys"), 0);
    char want[128];
    snprintf(want, sizeof(want), "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
             cJSON_GetStringValue(cJSON_GetObjectItem(k0, "kid")));
    T_EQ_STR((const char *)hdr, want);
    cJSON_Delete(jwks);

    /* Expiry: valid one second before exp, refused at exp and after. */
    T_EQ_INT(jwt_verify(a, tok, NOW + 3599, &out), 0);
    T_CHECK(rejected(a, tok, NOW + 3600));
    T_CHECK(rejected(a, tok, NOW + 99999));
    T_CHECK(strstr(diag_last()->message, "expired") != NULL);

    /* Too small a buffer fails, does not truncate. */
    char small[64];
    T_EQ_INT(jwt_sign(a, &in, small, sizeof(small)), -1);
    T_EQ_INT(jwt_sign(a, &in, tok, strlen(tok)), -1);
    T_EQ_INT(jwt_sign(a, &in, tok, cap), 0);
}

static void test_tampering(jwt_keys_t *a, const char *tok)
{
    char bad[2048];
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');

    /* Payload swapped for one claiming another role; header and sig kept. */
    char p[512];
    b64("{\"sub\":\"0190b2c4-aaaa-7bbb-8ccc-000000000001\",\"role\":\"worker\","
        "\"iat\":1799999990,\"exp\":1800003600}",
        p, sizeof(p));
    snprintf(bad, sizeof(bad), "%.*s.%s%s", (int)(d1 - tok), tok, p, d2);
    T_CHECK(rejected(a, bad, NOW));
    T_CHECK(strstr(diag_last()->message, "signature") != NULL);

    /* One signature character changed (the first: the last holds padding bits). */
    snprintf(bad, sizeof(bad), "%s", tok);
    size_t s = (size_t)(d2 - tok) + 1;
    bad[s] = bad[s] == 'A' ? 'B' : 'A';
    T_CHECK(rejected(a, bad, NOW));
    T_CHECK(strstr(diag_last()->message, "signature") != NULL);

    /* Signature dropped or truncated. */
    snprintf(bad, sizeof(bad), "%.*s.", (int)(d2 - tok), tok);
    T_CHECK(rejected(a, bad, NOW));
    snprintf(bad, sizeof(bad), "%.*s", (int)strlen(tok) - 4, tok);
    T_CHECK(rejected(a, bad, NOW));

    const char *payload = "{\"sub\":\"x\",\"role\":\"admin\",\"iat\":1,\"exp\":1900000000}";
    hand_token(bad, sizeof(bad), "{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, "");
    T_CHECK(rejected(a, bad, NOW));
    T_CHECK(strstr(diag_last()->message, "alg") != NULL);
    /* alg none carrying the real token's signature */
    hand_token(bad, sizeof(bad), "{\"alg\":\"none\"}", payload, d2 + 1);
    T_CHECK(rejected(a, bad, NOW));
    hand_token(bad, sizeof(bad), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload,
               "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
    T_CHECK(rejected(a, bad, NOW));
    T_CHECK(strstr(diag_last()->message, "alg") != NULL);
    hand_token(bad, sizeof(bad), "{\"typ\":\"JWT\"}", payload, d2 + 1);
    T_CHECK(rejected(a, bad, NOW));
    hand_token(bad, sizeof(bad), "{\"alg\":7}", payload, d2 + 1);
    T_CHECK(rejected(a, bad, NOW));
}

/* Claims checks behind a valid signature: jwt_sign writes edge values
 * (empty sub or role, exp == now) that verify must still refuse. */
static void test_claims(jwt_keys_t *a)
{
    char tok[1024];
    jwt_claims_t c = claims_for("", "admin", NOW + 60);
    T_EQ_INT(jwt_sign(a, &c, tok, sizeof(tok)), 0);
    T_CHECK(rejected(a, tok, NOW)); /* empty sub */
    T_CHECK(strstr(diag_last()->message, "sub") != NULL);
    c = claims_for("u1", "", NOW + 60);
    T_EQ_INT(jwt_sign(a, &c, tok, sizeof(tok)), 0);
    T_CHECK(rejected(a, tok, NOW)); /* empty role */
    c = claims_for("u1", "worker", NOW);
    T_EQ_INT(jwt_sign(a, &c, tok, sizeof(tok)), 0);
    T_CHECK(rejected(a, tok, NOW)); /* exp == now */
    c = claims_for("u1", "worker", 1LL << 60);
    T_EQ_INT(jwt_sign(a, &c, tok, sizeof(tok)), -1); /* beyond 2^53 */
}

static void test_garbage(jwt_keys_t *a)
{
    T_CHECK(rejected(a, "", NOW));
    T_CHECK(rejected(a, "a.b", NOW));
    T_CHECK(strstr(diag_last()->message, "segments") != NULL);
    T_CHECK(rejected(a, "a.b.c.d", NOW));
    T_CHECK(rejected(a, "..", NOW));
    T_CHECK(rejected(a, "...", NOW));
    T_CHECK(rejected(a, "!!!.@@@.###", NOW));
    T_CHECK(strstr(diag_last()->message, "base64") != NULL);
    T_CHECK(rejected(a, "eyJhbGciOiJFZERTQSJ9=.e30.AAAA", NOW)); /* padding */
    T_CHECK(rejected(a, NULL, NOW));

    char tok[1024], p[64];
    b64("hello, not json", p, sizeof(p));
    snprintf(tok, sizeof(tok), "%s.e30.AAAA", p);
    T_CHECK(rejected(a, tok, NOW));
    T_CHECK(strstr(diag_last()->message, "JSON") != NULL);
    b64("{\"alg\":\"EdDSA\"} trailing", p, sizeof(p));
    snprintf(tok, sizeof(tok), "%s.e30.AAAA", p);
    T_CHECK(rejected(a, tok, NOW));
    b64("[\"alg\",\"EdDSA\"]", p, sizeof(p));
    snprintf(tok, sizeof(tok), "%s.e30.AAAA", p);
    T_CHECK(rejected(a, tok, NOW));

    size_t n = 100000;
    char *big = malloc(n + 1);
    memset(big, 'A', n);
    big[10] = '.';
    big[n / 2] = '.';
    big[n] = '\0';
    T_CHECK(rejected(a, big, NOW));
    T_CHECK(strstr(diag_last()->message, "too long") != NULL);
    big[4097] = '\0';
    T_CHECK(rejected(a, big, NOW));
    free(big);
}

static void test_files(const char *dir_a, jwt_keys_t *a, const char *tok)
{
    char path[700];
    struct stat st;
    snprintf(path, sizeof(path), "%s/ed25519.pem", dir_a);
    T_EQ_INT(stat(path, &st), 0);
    T_EQ_INT(st.st_mode & 0777, 0600);
    T_EQ_INT(stat(dir_a, &st), 0);
    T_EQ_INT(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/ed25519.pub.pem", dir_a);
    T_EQ_INT(stat(path, &st), 0);

    /* Reopening loads the same key: same kid, old tokens still verify. */
    jwt_keys_t *again = NULL;
    jwt_claims_t c;
    T_EQ_INT(jwt_keys_open(&again, dir_a, 1), 0);
    cJSON *j1 = jwt_jwks(a), *j2 = jwt_jwks(again);
    T_CHECK(cJSON_Compare(j1, j2, 1));
    T_EQ_INT(jwt_verify(again, tok, NOW, &c), 0);
    cJSON_Delete(j1);
    cJSON_Delete(j2);
    jwt_keys_close(again);

    /* A verify-only directory: just the public file. */
    char dir_v[600], cmd_src[700], cmd_dst[700];
    path_in(dir_v, sizeof(dir_v), "verify-only");
    T_EQ_INT(mkdir(dir_v, 0700), 0);
    snprintf(cmd_src, sizeof(cmd_src), "%s/ed25519.pub.pem", dir_a);
    snprintf(cmd_dst, sizeof(cmd_dst), "%s/ed25519.pub.pem", dir_v);
    T_EQ_INT(link(cmd_src, cmd_dst), 0);
    jwt_keys_t *v = NULL;
    T_EQ_INT(jwt_keys_open(&v, dir_v, 0), 0);
    T_EQ_INT(jwt_verify(v, tok, NOW, &c), 0);
    jwt_claims_t in = claims_for("u", "admin", NOW + 5);
    char out[1024];
    T_EQ_INT(jwt_sign(v, &in, out, sizeof(out)), -1);
    jwt_keys_close(v);

    /* Nothing there and no create: an error, and no files appear. */
    char dir_e[600];
    path_in(dir_e, sizeof(dir_e), "empty");
    T_EQ_INT(mkdir(dir_e, 0700), 0);
    v = (jwt_keys_t *)1;
    T_EQ_INT(jwt_keys_open(&v, dir_e, 0), -1);
    T_CHECK(v == NULL);
    snprintf(path, sizeof(path), "%s/ed25519.pem", dir_e);
    T_CHECK(access(path, F_OK) != 0);
}

static void test_other_key_and_jwks(jwt_keys_t *a, const char *tok_a)
{
    char dir_b[600], tok_b[1024];
    jwt_keys_t *b = NULL;
    jwt_claims_t c;
    path_in(dir_b, sizeof(dir_b), "b");
    T_EQ_INT(jwt_keys_open(&b, dir_b, 1), 0);
    jwt_claims_t in = claims_for("u-b", "worker", NOW + 60);
    T_EQ_INT(jwt_sign(b, &in, tok_b, sizeof(tok_b)), 0);
    T_CHECK(rejected(a, tok_b, NOW));
    T_CHECK(rejected(b, tok_a, NOW));

    /* A's JWKS names one key, shaped as agreed. */
    cJSON *jwks = jwt_jwks(a);
    cJSON *keys = cJSON_GetObjectItem(jwks, "keys");
    T_EQ_INT(cJSON_GetArraySize(keys), 1);
    cJSON *k0 = cJSON_GetArrayItem(keys, 0);
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(k0, "kty")), "OKP");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(k0, "crv")), "Ed25519");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(k0, "alg")), "EdDSA");
    T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(k0, "use")), "sig");
    T_EQ_INT(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(k0, "x"))), 43);
    T_EQ_INT(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(k0, "kid"))), 16);

    /* B learns A's key from the JWKS: A's tokens verify, B's still do. */
    T_EQ_INT(jwt_keys_add_jwks(b, jwks), 0);
    T_EQ_INT(jwt_verify(b, tok_a, NOW, &c), 0);
    T_EQ_STR(c.role, "admin");
    T_EQ_INT(jwt_verify(b, tok_b, NOW, &c), 0);
    T_EQ_STR(c.sub, "u-b");
    T_EQ_INT(jwt_keys_add_jwks(b, jwks), 0); /* idempotent */
    cJSON *jb = jwt_jwks(b);
    T_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(jb, "keys")), 2);
    cJSON_Delete(jb);
    cJSON_Delete(jwks);

    /* Malformed JWKS are refused; foreign key types are skipped. */
    const char *bad[] = {
        "[]",
        "{\"keys\":{}}",
        "{\"keys\":[1]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"short\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *j = cJSON_Parse(bad[i]);
        T_EQ_INT(jwt_keys_add_jwks(b, j), -1);
        cJSON_Delete(j);
    }
    cJSON *rsa = cJSON_Parse("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}");
    T_EQ_INT(jwt_keys_add_jwks(b, rsa), 0);
    cJSON_Delete(rsa);
    jwt_keys_close(b);
}

/* Four processes create the same key directory at once: one key wins and
 * every process ends up with it. */
static void test_race(void)
{
    char dir[600], kids[4][32];
    int fds[4][2];
    path_in(dir, sizeof(dir), "race/keys");
    for (int i = 0; i < 4; i++) {
        T_EQ_INT(pipe(fds[i]), 0);
        pid_t pid = fork();
        if (pid == 0) {
            jwt_keys_t *k = NULL;
            char kid[32] = "failed";
            if (jwt_keys_open(&k, dir, 1) == 0) {
                cJSON *j = jwt_jwks(k);
                cJSON *k0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 0);
                snprintf(kid, sizeof(kid), "%s",
                         cJSON_GetStringValue(cJSON_GetObjectItem(k0, "kid")));
                cJSON_Delete(j);
                jwt_keys_close(k);
            }
            (void)!write(fds[i][1], kid, sizeof(kid));
            _exit(0);
        }
        close(fds[i][1]);
    }
    for (int i = 0; i < 4; i++) {
        memset(kids[i], 0, sizeof(kids[i]));
        T_EQ_INT(read(fds[i][0], kids[i], sizeof(kids[i])), (long)sizeof(kids[i]));
        close(fds[i][0]);
        wait(NULL);
    }
    jwt_keys_t *k = NULL;
    T_EQ_INT(jwt_keys_open(&k, dir, 0), 0);
    cJSON *j = jwt_jwks(k);
    T_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "keys")), 1);
    const char *kid = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "keys"), 0), "kid"));
    for (int i = 0; i < 4; i++)
        T_EQ_STR(kids[i], kid);
    cJSON_Delete(j);
    jwt_keys_close(k);
}

int main(void)
{
    if (t_tmpdir(base, sizeof(base), "jwt") < 0) return 1;

    char dir_a[600], tok[1024];
    jwt_keys_t *a = NULL;
    path_in(dir_a, sizeof(dir_a), "a/keys"); /* parent made too */
    T_EQ_INT(jwt_keys_open(&a, dir_a, 1), 0);
    if (!a) return t_done();
    test_roundtrip(a, tok, sizeof(tok));
    test_tampering(a, tok);
    test_claims(a);
    test_garbage(a);
    test_files(dir_a, a, tok);
    test_other_key_and_jwks(a, tok);
    test_race();
    jwt_keys_close(a);

    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return t_done();
}
