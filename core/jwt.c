/*
 * jwt: EdDSA (Ed25519) JSON Web Tokens (see jwt.h).
 *
 * A token is b64url(header) "." b64url(payload) "." b64url(signature), no
 * padding. The header is always {"alg":"EdDSA","typ":"JWT","kid":K} where K
 * is the first 16 hex digits of SHA-256 over the 32 raw public key bytes.
 *
 * Key files are created so that processes starting together agree on one
 * key: the private key is written to a private temp file and published with
 * link(2), which fails if the name exists, so exactly one writer wins and
 * every loser loads the winner's complete file. The public file is derived
 * from the private key and published with rename(2) (same bytes from anyone).
 *
 * A jwt_keys_t is read-only after open/add_jwks, so verify and sign may run
 * from many threads at once; jwt_keys_add_jwks must not race with them.
 */
#include "jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "diag.h"
#include "json.h"
#include "log.h"

#define JWT_MAX_KEYS 8
#define JWT_MAX_TOKEN 4096
#define JWT_RAW_LEN 32 /* Ed25519 public key bytes */
#define JWT_SIG_LEN 64 /* Ed25519 signature bytes */
#define JWT_KID_LEN 17 /* 16 hex + NUL */

typedef struct jwt_pub {
    EVP_PKEY *pkey;
    unsigned char raw[JWT_RAW_LEN];
    char kid[JWT_KID_LEN];
} jwt_pub_t;

struct jwt_keys {
    EVP_PKEY *priv; /* NULL when this process only verifies */
    char priv_kid[JWT_KID_LEN];
    jwt_pub_t pub[JWT_MAX_KEYS];
    int npub;
};

/* ---- helpers ------------------------------------------------------------ */

static int crypto_init(void)
{
    if (sodium_init() < 0) return diag_set(DIAG_INTERNAL, "sodium_init failed");
    return 0;
}

static void make_kid(const unsigned char raw[JWT_RAW_LEN], char kid[JWT_KID_LEN])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256(h, raw, JWT_RAW_LEN);
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    memcpy(kid, hex, JWT_KID_LEN - 1);
    kid[JWT_KID_LEN - 1] = '\0';
}

/* Decode base64url without padding into buf; -1 on bad input or overflow. */
static int b64_decode(const char *s, size_t len, unsigned char *buf, size_t cap, size_t *out)
{
    if (sodium_base642bin(buf, cap, s, len, NULL, out, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    return 0;
}

/* Encode into buf (NUL-terminated); -1 when cap is too small. */
static int b64_encode(const unsigned char *bin, size_t len, char *buf, size_t cap)
{
    if (cap < sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING)) return -1;
    sodium_bin2base64(buf, cap, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

/* Add the public half of `pkey` (private or public Ed25519) unless known. */
static int keys_add_pkey(jwt_keys_t *k, EVP_PKEY *pkey, char kid_out[JWT_KID_LEN])
{
    unsigned char raw[JWT_RAW_LEN];
    size_t rlen = sizeof(raw);
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519)
        return diag_set(DIAG_INTERNAL, "key is not Ed25519");
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &rlen) != 1 || rlen != JWT_RAW_LEN)
        return diag_set(DIAG_INTERNAL, "cannot read the Ed25519 public key");
    for (int i = 0; i < k->npub; i++) {
        if (memcmp(k->pub[i].raw, raw, JWT_RAW_LEN) == 0) {
            if (kid_out) memcpy(kid_out, k->pub[i].kid, JWT_KID_LEN);
            return 0;
        }
    }
    if (k->npub >= JWT_MAX_KEYS)
        return diag_set(DIAG_INTERNAL, "too many public keys (max %d)", JWT_MAX_KEYS);
    jwt_pub_t *p = &k->pub[k->npub];
    p->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, JWT_RAW_LEN);
    if (!p->pkey) return diag_set(DIAG_INTERNAL, "cannot build the Ed25519 public key");
    memcpy(p->raw, raw, JWT_RAW_LEN);
    make_kid(raw, p->kid);
    if (kid_out) memcpy(kid_out, p->kid, JWT_KID_LEN);
    k->npub++;
    return 0;
}

/* ---- key files ---------------------------------------------------------- */

/* mkdir -p with mode 0700 for every directory it creates. */
static int make_dirs(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof(path)) return diag_set(DIAG_INTERNAL, "bad key directory");
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return diag_set(DIAG_INTERNAL, "mkdir %s: %s", path, strerror(errno));
        path[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return diag_set(DIAG_INTERNAL, "%s is not a directory", dir);
    return 0;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Write `len` bytes to a fresh temp file in `dir` (mode `mode`), synced.
 * The temp file name is left in tmp. */
static int write_temp(const char *dir, const void *data, size_t len, mode_t mode, char *tmp,
                      size_t tmp_cap)
{
    if ((size_t)snprintf(tmp, tmp_cap, "%s/.ed25519.tmp.XXXXXX", dir) >= tmp_cap)
        return diag_set(DIAG_INTERNAL, "key path too long");
    int fd = mkstemp(tmp); /* O_EXCL, mode 0600 */
    if (fd < 0) return diag_set(DIAG_INTERNAL, "create %s: %s", tmp, strerror(errno));
    int rc = -1;
    const char *p = data;
    size_t off = 0;
    if (fchmod(fd, mode) != 0) goto out;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto out;
        off += (size_t)n;
    }
    if (fsync(fd) != 0) goto out;
    rc = 0;
out:
    if (rc != 0) {
        diag_set(DIAG_INTERNAL, "write %s: %s", tmp, strerror(errno));
        unlink(tmp);
    }
    close(fd);
    return rc;
}

/* PEM text of a key into a malloc'd buffer (private: PKCS#8). */
static char *pem_text(EVP_PKEY *pkey, int private, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (!bio) return NULL;
    int ok = private ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
                     : PEM_write_bio_PUBKEY(bio, pkey);
    char *mem = NULL;
    long n = BIO_get_mem_data(bio, &mem);
    if (ok == 1 && n > 0 && (out = malloc((size_t)n))) {
        memcpy(out, mem, (size_t)n);
        *len = (size_t)n;
    }
    if (mem && n > 0) OPENSSL_cleanse(mem, (size_t)n);
    BIO_free(bio);
    return out;
}

/* Generate a key and publish it at `path` unless someone else already did;
 * either way `path` then holds a complete key. */
static int create_private(const char *dir, const char *path)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char tmp[4200];
    size_t len = 0;
    char *pem = NULL;
    int rc = -1;
    if (!pkey) return diag_set(DIAG_INTERNAL, "Ed25519 key generation failed");
    if (!(pem = pem_text(pkey, 1, &len))) {
        diag_set(DIAG_INTERNAL, "cannot encode the private key");
        goto out;
    }
    if (write_temp(dir, pem, len, 0600, tmp, sizeof(tmp)) != 0) goto out;
    if (link(tmp, path) == 0) {
        log_info("generated a new Ed25519 key pair in %s", dir);
        sync_dir(dir);
        rc = 0;
    } else if (errno == EEXIST) {
        rc = 0; /* another process won the race: use its key */
    } else {
        diag_set(DIAG_INTERNAL, "link %s: %s", path, strerror(errno));
    }
    unlink(tmp);
out:
    if (pem) {
        OPENSSL_cleanse(pem, len);
        free(pem);
    }
    EVP_PKEY_free(pkey);
    return rc;
}

static int write_public(const char *dir, const char *path, EVP_PKEY *pkey)
{
    char tmp[4200];
    size_t len = 0;
    char *pem = pem_text(pkey, 0, &len);
    int rc = -1;
    if (!pem) return diag_set(DIAG_INTERNAL, "cannot encode the public key");
    if (write_temp(dir, pem, len, 0644, tmp, sizeof(tmp)) != 0) goto out;
    if (rename(tmp, path) != 0) {
        diag_set(DIAG_INTERNAL, "rename %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    sync_dir(dir);
    rc = 0;
out:
    free(pem);
    return rc;
}

/* Load a PEM key; 1 when loaded, 0 when the file is missing, -1 on error. */
static int load_pem(const char *path, int private, EVP_PKEY **out)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT) return 0;
        return diag_set(DIAG_INTERNAL, "open %s: %s", path, strerror(errno));
    }
    EVP_PKEY *pkey =
        private ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey) return diag_set(DIAG_INTERNAL, "%s: not a PEM key", path);
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        return diag_set(DIAG_INTERNAL, "%s: not an Ed25519 key", path);
    }
    *out = pkey;
    return 1;
}

static int open_files(jwt_keys_t *k, const char *dir, int create)
{
    char priv_path[4200], pub_path[4200];
    EVP_PKEY *pub = NULL;
    int rc = -1;
    if ((size_t)snprintf(priv_path, sizeof(priv_path), "%s/ed25519.pem", dir) >=
            sizeof(priv_path) ||
        (size_t)snprintf(pub_path, sizeof(pub_path), "%s/ed25519.pub.pem", dir) >= sizeof(pub_path))
        return diag_set(DIAG_INTERNAL, "key directory path too long");
    if (create) {
        if (make_dirs(dir) != 0) return -1;
        if (access(priv_path, F_OK) != 0 && create_private(dir, priv_path) != 0) return -1;
    }
    int have_priv = load_pem(priv_path, 1, &k->priv);
    if (have_priv < 0) return -1;
    int have_pub = load_pem(pub_path, 0, &pub);
    if (have_pub < 0) return -1;
    if (have_pub) {
        if (keys_add_pkey(k, pub, NULL) != 0) goto out;
    } else if (!have_priv || !create) {
        diag_set(DIAG_INTERNAL, "missing public key %s", pub_path);
        goto out;
    } else if (write_public(dir, pub_path, k->priv) != 0) {
        goto out;
    }
    /* The private key's public half must verify our own tokens even when
     * the .pub file holds another (e.g. rotated) key. */
    if (have_priv && keys_add_pkey(k, k->priv, k->priv_kid) != 0) goto out;
    rc = 0;
out:
    EVP_PKEY_free(pub);
    return rc;
}

int jwt_keys_open(jwt_keys_t **out, const char *dir, int create)
{
    *out = NULL;
    if (!dir) return diag_set(DIAG_INTERNAL, "no key directory");
    if (crypto_init() != 0) return -1;
    jwt_keys_t *k = calloc(1, sizeof(*k));
    if (!k) return diag_set(DIAG_INTERNAL, "out of memory");
    if (open_files(k, dir, create) != 0) {
        jwt_keys_close(k);
        return -1;
    }
    *out = k;
    return 0;
}

void jwt_keys_close(jwt_keys_t *keys)
{
    if (!keys) return;
    EVP_PKEY_free(keys->priv);
    for (int i = 0; i < keys->npub; i++)
        EVP_PKEY_free(keys->pub[i].pkey);
    free(keys);
}

/* ---- JWKS --------------------------------------------------------------- */

static int add_jwk(jwt_keys_t *keys, const cJSON *jwk)
{
    const cJSON *kty = cJSON_GetObjectItemCaseSensitive(jwk, "kty");
    const cJSON *crv = cJSON_GetObjectItemCaseSensitive(jwk, "crv");
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(jwk, "alg");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(jwk, "x");
    unsigned char raw[JWT_RAW_LEN];
    size_t rlen = 0;
    if (!cJSON_IsString(kty) || strcmp(kty->valuestring, "OKP") != 0 || !cJSON_IsString(crv) ||
        strcmp(crv->valuestring, "Ed25519") != 0)
        return 0; /* not an Ed25519 key: not ours to use */
    if (alg && (!cJSON_IsString(alg) || strcmp(alg->valuestring, "EdDSA") != 0)) return 0;
    if (!cJSON_IsString(x) ||
        b64_decode(x->valuestring, strlen(x->valuestring), raw, sizeof(raw), &rlen) != 0 ||
        rlen != JWT_RAW_LEN)
        return diag_set(DIAG_VALIDATION, "JWKS key has a bad 'x'");
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, JWT_RAW_LEN);
    if (!pkey) return diag_set(DIAG_VALIDATION, "JWKS key is not a valid Ed25519 key");
    int rc = keys_add_pkey(keys, pkey, NULL);
    EVP_PKEY_free(pkey);
    return rc;
}

int jwt_keys_add_jwks(jwt_keys_t *keys, const cJSON *jwks)
{
    const cJSON *arr = cJSON_IsObject(jwks) ? cJSON_GetObjectItemCaseSensitive(jwks, "keys") : NULL;
    const cJSON *jwk;
    if (!cJSON_IsArray(arr)) return diag_set(DIAG_VALIDATION, "JWKS must be {\"keys\":[...]}");
    cJSON_ArrayForEach(jwk, arr)
    {
        if (!cJSON_IsObject(jwk)) return diag_set(DIAG_VALIDATION, "JWKS key is not an object");
        if (add_jwk(keys, jwk) != 0) return -1;
    }
    return 0;
}

cJSON *jwt_jwks(const jwt_keys_t *keys)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "keys") : NULL;
    if (!arr) goto oom;
    for (int i = 0; i < keys->npub; i++) {
        char x[64];
        cJSON *jwk = cJSON_CreateObject();
        if (!jwk) goto oom;
        cJSON_AddItemToArray(arr, jwk);
        b64_encode(keys->pub[i].raw, JWT_RAW_LEN, x, sizeof(x));
        if (!cJSON_AddStringToObject(jwk, "kty", "OKP") ||
            !cJSON_AddStringToObject(jwk, "crv", "Ed25519") ||
            !cJSON_AddStringToObject(jwk, "x", x) ||
            !cJSON_AddStringToObject(jwk, "kid", keys->pub[i].kid) ||
            !cJSON_AddStringToObject(jwk, "alg", "EdDSA") ||
            !cJSON_AddStringToObject(jwk, "use", "sig"))
            goto oom;
    }
    return root;
oom:
    cJSON_Delete(root);
    diag_set(DIAG_INTERNAL, "out of memory");
    return NULL;
}

/* ---- sign --------------------------------------------------------------- */

static char *payload_json(const jwt_claims_t *c)
{
    if (strnlen(c->sub, JWT_SUB_LEN) == JWT_SUB_LEN ||
        strnlen(c->role, JWT_ROLE_LEN) == JWT_ROLE_LEN) {
        diag_set(DIAG_INTERNAL, "claims sub/role not terminated");
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    char *s = NULL;
    if (!o || !cJSON_AddStringToObject(o, "sub", c->sub) ||
        !cJSON_AddStringToObject(o, "role", c->role)) {
        diag_set(DIAG_INTERNAL, "out of memory");
        goto out;
    }
    if (json_add_int64(o, "iat", c->iat) != 0 || json_add_int64(o, "exp", c->exp) != 0) goto out;
    if (!(s = json_print(o))) diag_set(DIAG_INTERNAL, "out of memory");
out:
    cJSON_Delete(o);
    return s;
}

int jwt_sign(const jwt_keys_t *keys, const jwt_claims_t *claims, char *out, size_t out_len)
{
    char header[96], input[JWT_MAX_TOKEN];
    unsigned char sig[JWT_SIG_LEN];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *md = NULL;
    int rc = -1;
    if (!keys || !keys->priv) return diag_set(DIAG_INTERNAL, "no private key to sign with");
    char *payload = payload_json(claims);
    if (!payload) return -1;
    snprintf(header, sizeof(header), "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
             keys->priv_kid);
    size_t hlen = strlen(header), plen = strlen(payload);
    size_t h64 = sodium_base64_ENCODED_LEN(hlen, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1;
    if (b64_encode((const unsigned char *)header, hlen, input, sizeof(input)) != 0 ||
        h64 + 1 >= sizeof(input) ||
        b64_encode((const unsigned char *)payload, plen, input + h64 + 1,
                   sizeof(input) - h64 - 1) != 0) {
        diag_set(DIAG_INTERNAL, "claims too large for a token");
        goto out;
    }
    input[h64] = '.';
    size_t ilen = strlen(input);
    if (!(md = EVP_MD_CTX_new()) || EVP_DigestSignInit(md, NULL, NULL, NULL, keys->priv) != 1 ||
        EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, ilen) != 1 ||
        sig_len != JWT_SIG_LEN) {
        diag_set(DIAG_INTERNAL, "Ed25519 signing failed");
        goto out;
    }
    size_t s64 = sodium_base64_ENCODED_LEN(JWT_SIG_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (out_len < ilen + 1 + s64) { /* s64 counts the NUL */
        diag_set(DIAG_INTERNAL, "token buffer too small (%zu < %zu)", out_len, ilen + 1 + s64);
        goto out;
    }
    snprintf(out, out_len, "%s.", input); /* fits: checked just above */
    b64_encode(sig, sig_len, out + ilen + 1, out_len - ilen - 1);
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    free(payload);
    return rc;
}

/* ---- verify ------------------------------------------------------------- */

/* Decode one base64url JSON segment into a cJSON object. */
static cJSON *segment_json(const char *s, size_t len, const char *what)
{
    unsigned char buf[JWT_MAX_TOKEN];
    size_t n = 0;
    if (b64_decode(s, len, buf, sizeof(buf) - 1, &n) != 0) {
        diag_set(DIAG_UNAUTHORIZED, "token %s is not base64url", what);
        return NULL;
    }
    buf[n] = '\0'; /* and require it: no trailing bytes after the JSON */
    cJSON *o = cJSON_ParseWithLengthOpts((const char *)buf, n + 1, NULL, 1);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        diag_set(DIAG_UNAUTHORIZED, "token %s is not a JSON object", what);
        return NULL;
    }
    return o;
}

static int check_signature(const jwt_keys_t *keys, const char *token, size_t signed_len,
                           const char *sig64, size_t sig64_len)
{
    unsigned char sig[JWT_SIG_LEN + 8];
    size_t sig_len = 0;
    if (b64_decode(sig64, sig64_len, sig, sizeof(sig), &sig_len) != 0)
        return diag_set(DIAG_UNAUTHORIZED, "token signature is not base64url");
    if (sig_len != JWT_SIG_LEN)
        return diag_set(DIAG_UNAUTHORIZED, "token signature has the wrong length");
    for (int i = 0; i < keys->npub; i++) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (!md) return diag_set(DIAG_INTERNAL, "out of memory");
        int ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, keys->pub[i].pkey) == 1 &&
                 EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)token, signed_len) == 1;
        EVP_MD_CTX_free(md);
        if (ok) return 0;
    }
    return diag_set(DIAG_UNAUTHORIZED, "token signature does not match any known key");
}

static int copy_claim(const cJSON *o, const char *key, char *dst, size_t cap)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(it))
        return diag_set(DIAG_UNAUTHORIZED, "token '%s' missing or not a string", key);
    size_t len = strlen(it->valuestring);
    if (len == 0 || len >= cap)
        return diag_set(DIAG_UNAUTHORIZED, "token '%s' has a bad length", key);
    memcpy(dst, it->valuestring, len + 1);
    return 0;
}

static int read_claims(const cJSON *p, int64_t now, jwt_claims_t *c)
{
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(p, "exp");
    const cJSON *iat = cJSON_GetObjectItemCaseSensitive(p, "iat");
    memset(c, 0, sizeof(*c));
    if (copy_claim(p, "sub", c->sub, sizeof(c->sub)) != 0 ||
        copy_claim(p, "role", c->role, sizeof(c->role)) != 0)
        return -1;
    if (!json_is_int(exp, &c->exp))
        return diag_set(DIAG_UNAUTHORIZED, "token 'exp' missing or not an integer");
    if (iat && !json_is_int(iat, &c->iat))
        return diag_set(DIAG_UNAUTHORIZED, "token 'iat' is not an integer");
    if (c->exp <= now) return diag_set(DIAG_UNAUTHORIZED, "token expired");
    return 0;
}

int jwt_verify(const jwt_keys_t *keys, const char *token, int64_t now, jwt_claims_t *claims)
{
    cJSON *header = NULL, *payload = NULL;
    int rc = -1;
    if (!keys || !token) return diag_set(DIAG_UNAUTHORIZED, "no token");
    size_t len = strnlen(token, JWT_MAX_TOKEN + 1);
    if (len > JWT_MAX_TOKEN) return diag_set(DIAG_UNAUTHORIZED, "token too long");
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return diag_set(DIAG_UNAUTHORIZED, "token must have three segments");
    if (!(header = segment_json(token, (size_t)(dot1 - token), "header"))) goto out;
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "EdDSA") != 0) {
        diag_set(DIAG_UNAUTHORIZED, "token alg must be EdDSA");
        goto out;
    }
    if (check_signature(keys, token, (size_t)(dot2 - token), dot2 + 1,
                        len - (size_t)(dot2 + 1 - token)) != 0)
        goto out;
    if (!(payload = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload"))) goto out;
    rc = read_claims(payload, now, claims);
out:
    cJSON_Delete(header);
    cJSON_Delete(payload);
    return rc;
}
