/*
 * jwt: EdDSA (Ed25519) JSON Web Tokens with OpenSSL.
 *
 * Keys live in a directory (DATA/keys): ed25519.pem (private, 0600) and
 * ed25519.pub.pem. A service that only verifies loads the public key; the
 * one that signs needs the private key. Verification accepts only
 * {"alg":"EdDSA"} headers, checks the signature with every loaded public
 * key (so keys can rotate), then `exp` against the clock.
 */
#ifndef ATES_JWT_H
#define ATES_JWT_H

#include <stdint.h>
#include <cjson/cJSON.h>

typedef struct jwt_keys jwt_keys_t;

#define JWT_SUB_LEN 64
#define JWT_ROLE_LEN 32

typedef struct jwt_claims {
    char sub[JWT_SUB_LEN];   /* the subject (account id) */
    char role[JWT_ROLE_LEN];
    int64_t iat;             /* seconds since the epoch */
    int64_t exp;
} jwt_claims_t;

/* Load the key pair from `dir`; with `create`, generate and write it first
 * when missing (dir made 0700, private key 0600). Without `create`, a
 * missing private key is fine (verify only) but a missing public key is an
 * error. */
int jwt_keys_open(jwt_keys_t **out, const char *dir, int create);
void jwt_keys_close(jwt_keys_t *keys);
/* Add a public key given as a JWKS JSON object ({"keys":[{kty:OKP,crv:Ed25519,x,kid}]}). */
int jwt_keys_add_jwks(jwt_keys_t *keys, const cJSON *jwks);

/* Sign claims (iat, exp, sub, role) into `out`; -1 when no private key or
 * `out_len` is too small. */
int jwt_sign(const jwt_keys_t *keys, const jwt_claims_t *claims, char *out, size_t out_len);
/* Verify `token` at time `now` (seconds); fill *claims. -1 with a diag of
 * kind DIAG_UNAUTHORIZED and a message saying why. */
int jwt_verify(const jwt_keys_t *keys, const char *token, int64_t now, jwt_claims_t *claims);
/* {"keys":[...]} with every public key (kty OKP, crv Ed25519, x, kid, alg, use). */
cJSON *jwt_jwks(const jwt_keys_t *keys);

#endif
