/*
 * tokens: login, refresh rotation with reuse detection, logout, /me and the
 * JWKS. Access tokens are short-lived EdDSA JWTs; refresh tokens are 256
 * random bits, stored only as their SHA-256, grouped in families: a
 * rotation spends the presented token and issues the next of its family;
 * presenting a spent token revokes the family (someone replayed it).
 *
 * Throttling: failed logins are rows of login_failures (so the count
 * survives a restart); AUTH_THROTTLE_FAILS failures for one email within
 * AUTH_THROTTLE_WINDOW_MS answer 429 until the oldest of them ages out.
 */
#include <sodium.h>
#include <string.h>

#include "auth.h"
#include "core/clock.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/log.h"

#define AUTH_THROTTLE_FAILS 5
#define AUTH_THROTTLE_WINDOW_MS (15LL * 60 * 1000)
#define AUTH_REFRESH_TTL_MS (30LL * 24 * 3600 * 1000)
#define AUTH_REFRESH_BYTES 32
#define AUTH_TOKEN_TEXT 64   /* base64url of 32 bytes is 43 chars */
#define AUTH_HASH_HEX 65

/* A hash of a random password: unknown emails are verified against it so a
 * miss costs the same Argon2id work as a wrong password. */
static char dummy_hash[crypto_pwhash_STRBYTES];

int auth_tokens_init(void)
{
    if (sodium_init() < 0) return diag_set(DIAG_INTERNAL, "libsodium failed to initialise");
    char pw[33];
    unsigned char raw[16];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(pw, sizeof(pw), raw, sizeof(raw));
    return auth_hash_password(pw, dummy_hash);
}

static void sha256_hex(const char *text, char out[AUTH_HASH_HEX])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
    sodium_bin2hex(out, AUTH_HASH_HEX, h, sizeof(h));
}

/* --- throttling ---------------------------------------------------------- */

/* 0 allowed; -1 throttled (*retry_after seconds) or error (diag). */
static int throttle_check(db_conn_t *c, const char *email, int64_t now, int64_t *retry_after)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT count(*), min(at) FROM login_failures "
                                  "WHERE email = ?1 AND at > ?2");
    if (!st || db_bind_text(st, 1, email) < 0 ||
        db_bind_int64(st, 2, now - AUTH_THROTTLE_WINDOW_MS) < 0 || db_step(c, st) != 1)
        return -1;
    int64_t fails = sqlite3_column_int64(st, 0), oldest = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    if (fails < AUTH_THROTTLE_FAILS) return 0;
    *retry_after = (oldest + AUTH_THROTTLE_WINDOW_MS - now) / 1000 + 1;
    return diag_set(DIAG_TOO_MANY, "too many failed logins for this email; try again in %lld s",
                    (long long)*retry_after);
}

static int throttle_record(db_conn_t *c, const char *email, int64_t now)
{
    if (db_begin(c) < 0) return -1;
    sqlite3_stmt *st = db_stmt(c, "DELETE FROM login_failures WHERE email = ?1 AND at <= ?2");
    if (!st || db_bind_text(st, 1, email) < 0 ||
        db_bind_int64(st, 2, now - AUTH_THROTTLE_WINDOW_MS) < 0 || db_step_done(c, st) < 0)
        goto fail;
    st = db_stmt(c, "INSERT INTO login_failures(email, at) VALUES (?1, ?2)");
    if (!st || db_bind_text(st, 1, email) < 0 || db_bind_int64(st, 2, now) < 0 ||
        db_step_done(c, st) < 0 || db_commit(c) < 0)
        goto fail;
    return 0;
fail:
    db_rollback(c);
    return -1;
}

/* --- issuing ------------------------------------------------------------- */

/* Insert a new refresh token of `family` for the account, inside tx. */
static int refresh_issue(db_conn_t *tx, const char *account_id, const char *family, int64_t now,
                         char token[AUTH_TOKEN_TEXT])
{
    unsigned char raw[AUTH_REFRESH_BYTES];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(token, AUTH_TOKEN_TEXT, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char hash[AUTH_HASH_HEX];
    sha256_hex(token, hash);
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO refresh_tokens(hash, family, account_id, "
                                   "created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!st || db_bind_text(st, 1, hash) < 0 || db_bind_text(st, 2, family) < 0 ||
        db_bind_text(st, 3, account_id) < 0 || db_bind_int64(st, 4, now) < 0 ||
        db_bind_int64(st, 5, now + AUTH_REFRESH_TTL_MS) < 0)
        return -1;
    return db_step_done(tx, st);
}

static void set_cookie(http_req_t *req, const char *token, int max_age)
{
    char cookie[1400];
    snprintf(cookie, sizeof(cookie), "ates_token=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d",
             token, max_age);
    http_add_header(req, "Set-Cookie", cookie);
}

/* Answer 200 with a fresh access token for `a` and the refresh token. */
static void reply_pair(http_req_t *req, service_t *svc, const auth_account_t *a,
                       const char *refresh)
{
    const config_t *cfg = service_config(svc);
    int64_t now = clock_now_ms() / 1000;
    jwt_claims_t claims = {.iat = now, .exp = now + cfg->access_ttl};
    snprintf(claims.sub, sizeof(claims.sub), "%s", a->id);
    snprintf(claims.role, sizeof(claims.role), "%s", a->role);
    char access[1024];
    if (jwt_sign(service_keys(svc), &claims, access, sizeof(access)) < 0) {
        http_reply_diag(req);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "access_token", access);
    cJSON_AddStringToObject(out, "token_type", "Bearer");
    json_add_int64(out, "expires_in", cfg->access_ttl);
    cJSON_AddStringToObject(out, "refresh_token", refresh);
    cJSON_AddItemToObject(out, "account", auth_account_json(a));
    set_cookie(req, access, cfg->access_ttl);
    http_add_header(req, "Cache-Control", "no-store");
    http_reply_json(req, 200, out);
}

/* --- login --------------------------------------------------------------- */

/* Look up the account and hash of `email`: 1 found, 0 not, -1 error. */
static int find_login(db_conn_t *c, const char *email, auth_account_t *a,
                      char hash[crypto_pwhash_STRBYTES])
{
    sqlite3_stmt *st = db_stmt(c, "SELECT id, email, name, role, active, created_at, password_hash "
                                  "FROM accounts WHERE email = ?1");
    if (!st || db_bind_text(st, 1, email) < 0) return -1;
    int rc = db_step(c, st);
    if (rc <= 0) return rc < 0 ? -1 : 0;
    snprintf(a->id, sizeof(a->id), "%s", db_col_text(st, 0));
    snprintf(a->email, sizeof(a->email), "%s", db_col_text(st, 1));
    snprintf(a->name, sizeof(a->name), "%s", db_col_text(st, 2));
    snprintf(a->role, sizeof(a->role), "%s", db_col_text(st, 3));
    a->active = sqlite3_column_int(st, 4) != 0;
    a->created_at = sqlite3_column_int64(st, 5);
    snprintf(hash, crypto_pwhash_STRBYTES, "%s", db_col_text(st, 6));
    sqlite3_reset(st);
    return 1;
}

static int login_succeeded(db_conn_t *tx, const auth_account_t *a, int64_t now,
                           char refresh[AUTH_TOKEN_TEXT])
{
    char family[UUID_LEN];
    uuid_v7(family);
    if (db_begin(tx) < 0) return -1;
    sqlite3_stmt *st = db_stmt(tx, "DELETE FROM login_failures WHERE email = ?1");
    if (!st || db_bind_text(st, 1, a->email) < 0 || db_step_done(tx, st) < 0 ||
        refresh_issue(tx, a->id, family, now, refresh) < 0 || db_commit(tx) < 0) {
        db_rollback(tx);
        return -1;
    }
    return 0;
}

void auth_on_login(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    static const char *const fields[] = {"email", "password", NULL};
    const cJSON *body = http_body_object(req);
    if (!body || !http_body_only(req, fields)) return;
    const char *email = NULL, *password = NULL;
    if (json_get_string(body, "email", true, &email) < 0 ||
        json_get_string(body, "password", true, &password) < 0) {
        http_reply_diag(req);
        return;
    }
    db_conn_t *c = db_conn(service_db(svc));
    int64_t now = clock_now_ms(), retry_after = 0;
    if (!c) {
        http_reply_diag(req);
        return;
    }
    if (throttle_check(c, email, now, &retry_after) < 0) {
        if (diag_last()->kind == DIAG_TOO_MANY) {
            char secs[32];
            snprintf(secs, sizeof(secs), "%lld", (long long)retry_after);
            http_add_header(req, "Retry-After", secs);
        }
        http_reply_diag(req);
        return;
    }
    auth_account_t a;
    char hash[crypto_pwhash_STRBYTES];
    int found = find_login(c, email, &a, hash);
    if (found < 0) {
        http_reply_diag(req);
        return;
    }
    /* Always one Argon2id verification, found or not. */
    bool ok = crypto_pwhash_str_verify(found ? hash : dummy_hash, password, strlen(password)) == 0;
    if (!ok || !found || !a.active) {
        if (throttle_record(c, email, now) < 0) log_diag(LOG_WARN, "login throttle");
        http_reply_error(req, DIAG_UNAUTHORIZED, "wrong email or password");
        return;
    }
    char refresh[AUTH_TOKEN_TEXT];
    if (login_succeeded(c, &a, now, refresh) < 0) {
        http_reply_diag(req);
        return;
    }
    reply_pair(req, svc, &a, refresh);
}

/* --- refresh and logout -------------------------------------------------- */

static int revoke_family(db_conn_t *tx, const char *family, int64_t now)
{
    sqlite3_stmt *st = db_stmt(tx, "UPDATE refresh_tokens SET revoked_at = ?2 "
                                   "WHERE family = ?1 AND revoked_at IS NULL");
    if (!st || db_bind_text(st, 1, family) < 0 || db_bind_int64(st, 2, now) < 0) return -1;
    return db_step_done(tx, st);
}

int auth_revoke_account_tokens(db_conn_t *tx, const char *account_id)
{
    sqlite3_stmt *st = db_stmt(tx, "UPDATE refresh_tokens SET revoked_at = ?2 "
                                   "WHERE account_id = ?1 AND revoked_at IS NULL");
    if (!st || db_bind_text(st, 1, account_id) < 0 || db_bind_int64(st, 2, clock_now_ms()) < 0)
        return -1;
    return db_step_done(tx, st);
}

/* Rotate `token` inside tx: fills *a and the next token, or -1 with a diag
 * (DIAG_UNAUTHORIZED for every reason the token is not good). A reused
 * token's family is revoked and that revocation must be committed, so
 * *commit_anyway is set. */
static int rotate(db_conn_t *tx, const char *token, int64_t now, auth_account_t *a,
                  char next[AUTH_TOKEN_TEXT], bool *commit_anyway)
{
    char hash[AUTH_HASH_HEX], family[UUID_LEN], account[UUID_LEN];
    sha256_hex(token, hash);
    sqlite3_stmt *st = db_stmt(tx, "SELECT family, account_id, expires_at, spent_at IS NOT NULL, "
                                   "revoked_at IS NOT NULL FROM refresh_tokens WHERE hash = ?1");
    if (!st || db_bind_text(st, 1, hash) < 0) return -1;
    int rc = db_step(tx, st);
    if (rc <= 0) return rc < 0 ? -1 : diag_set(DIAG_UNAUTHORIZED, "unknown refresh token");
    snprintf(family, sizeof(family), "%s", db_col_text(st, 0));
    snprintf(account, sizeof(account), "%s", db_col_text(st, 1));
    int64_t expires = sqlite3_column_int64(st, 2);
    bool spent = sqlite3_column_int(st, 3), revoked = sqlite3_column_int(st, 4);
    sqlite3_reset(st);
    if (revoked) return diag_set(DIAG_UNAUTHORIZED, "refresh token revoked");
    if (spent) {
        log_warn("refresh token of family %s presented again: revoking the family", family);
        *commit_anyway = true;
        if (revoke_family(tx, family, now) < 0) return -1;
        return diag_set(DIAG_UNAUTHORIZED, "refresh token already used; its sessions are revoked");
    }
    if (expires <= now) return diag_set(DIAG_UNAUTHORIZED, "refresh token expired");
    rc = auth_account_get(tx, account, a);
    if (rc <= 0 || !a->active)
        return rc < 0 ? -1 : diag_set(DIAG_UNAUTHORIZED, "account inactive");
    st = db_stmt(tx, "UPDATE refresh_tokens SET spent_at = ?2 WHERE hash = ?1");
    if (!st || db_bind_text(st, 1, hash) < 0 || db_bind_int64(st, 2, now) < 0 ||
        db_step_done(tx, st) < 0)
        return -1;
    return refresh_issue(tx, account, family, now, next);
}

void auth_on_refresh(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    static const char *const fields[] = {"refresh_token", NULL};
    const cJSON *body = http_body_object(req);
    if (!body || !http_body_only(req, fields)) return;
    const char *token = NULL;
    if (json_get_string(body, "refresh_token", true, &token) < 0) {
        http_reply_diag(req);
        return;
    }
    db_conn_t *tx = db_conn(service_db(svc));
    if (!tx || db_begin(tx) < 0) {
        http_reply_diag(req);
        return;
    }
    auth_account_t a;
    char next[AUTH_TOKEN_TEXT];
    bool commit_anyway = false;
    if (rotate(tx, token, clock_now_ms(), &a, next, &commit_anyway) < 0) {
        diag_t why = *diag_last();
        if (commit_anyway && db_commit(tx) == 0) diag_set(why.kind, "%s", why.message);
        else db_rollback(tx);
        http_reply_diag(req);
        return;
    }
    if (db_commit(tx) < 0) {
        http_reply_diag(req);
        return;
    }
    reply_pair(req, svc, &a, next);
}

void auth_on_logout(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    static const char *const fields[] = {"refresh_token", NULL};
    const cJSON *body = http_body_object(req);
    if (!body || !http_body_only(req, fields)) return;
    const char *token = NULL;
    if (json_get_string(body, "refresh_token", true, &token) < 0) {
        http_reply_diag(req);
        return;
    }
    char hash[AUTH_HASH_HEX];
    sha256_hex(token, hash);
    db_conn_t *tx = db_conn(service_db(svc));
    if (!tx || db_begin(tx) < 0) {
        http_reply_diag(req);
        return;
    }
    sqlite3_stmt *st = db_stmt(tx, "UPDATE refresh_tokens SET revoked_at = ?2 WHERE revoked_at IS NULL "
                                   "AND family = (SELECT family FROM refresh_tokens WHERE hash = ?1)");
    if (!st || db_bind_text(st, 1, hash) < 0 || db_bind_int64(st, 2, clock_now_ms()) < 0 ||
        db_step_done(tx, st) < 0 || db_commit(tx) < 0) {
        db_rollback(tx);
        http_reply_diag(req);
        return;
    }
    set_cookie(req, "", 0);
    http_reply_empty(req, 204);
}

/* --- me, jwks ------------------------------------------------------------ */

void auth_on_me(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    auth_account_t a;
    db_conn_t *c = db_conn(service_db(svc));
    int rc = c ? auth_account_get(c, http_auth(req)->account_id, &a) : -1;
    if (rc < 0) http_reply_diag(req);
    else if (rc == 0) http_reply_error(req, DIAG_UNAUTHORIZED, "the token's account does not exist");
    else http_reply_json(req, 200, auth_account_json(&a));
}

void auth_on_jwks(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    cJSON *jwks = jwt_jwks(service_keys(svc));
    if (!jwks) {
        http_reply_error(req, DIAG_INTERNAL, "no keys");
        return;
    }
    http_add_header(req, "Cache-Control", "public, max-age=300");
    http_reply_json(req, 200, jwks);
}
