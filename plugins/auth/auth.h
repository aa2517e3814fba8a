/*
 * auth: accounts, roles, beak-shape (email + password) login, access and
 * refresh tokens, and the account events (CONTRACT §2 auth, §3
 * ates.accounts.*). Private to plugins/auth: no other plugin includes it.
 */
#ifndef ATES_AUTH_H
#define ATES_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/plugin.h"
#include "core/uuid.h"

#define AUTH_EMAIL_MAX 254
#define AUTH_NAME_MAX 200      /* characters */
#define AUTH_ROLE_MAX 16
#define AUTH_PASSWORD_MIN 8
#define AUTH_PASSWORD_MAX 1024 /* bytes */
#define AUTH_ADMIN_ROLE "admin"

/* An account as stored (without its password hash). */
typedef struct auth_account {
    char id[UUID_LEN];
    char email[AUTH_EMAIL_MAX + 1];
    char name[AUTH_NAME_MAX * 4 + 1]; /* UTF-8 */
    char role[AUTH_ROLE_MAX];
    bool active;
    int64_t created_at; /* ms */
} auth_account_t;

extern const char *const auth_migrations[];

/* --- accounts.c ---------------------------------------------------------- */
bool auth_role_valid(const char *role);
/* Field checks with a DIAG_VALIDATION diag naming the field. */
int auth_check_email(const char *email);
int auth_check_name(const char *name);
int auth_check_role(const char *role);
int auth_check_password(const char *password);
/* Argon2id (libsodium, interactive limits) into out[crypto_pwhash_STRBYTES]. */
int auth_hash_password(const char *password, char *out);

/* Create an account and emit AccountCreated, in one transaction of its own.
 * DIAG_CONFLICT when the email is taken. */
int auth_account_create(db_t *db, const char *email, const char *name, const char *role,
                        const char *password, auth_account_t *out);
/* 1 found, 0 not found, -1 error. */
int auth_account_get(db_conn_t *c, const char *id, auth_account_t *out);
cJSON *auth_account_json(const auth_account_t *a);

/* Route handlers (ud = service_t). */
void auth_on_accounts_create(http_req_t *req, void *ud);
void auth_on_accounts_list(http_req_t *req, void *ud);
void auth_on_accounts_get(http_req_t *req, void *ud);
void auth_on_accounts_patch(http_req_t *req, void *ud);

/* --- tokens.c ------------------------------------------------------------ */
/* Revoke every live refresh token of an account, inside tx. */
int auth_revoke_account_tokens(db_conn_t *tx, const char *account_id);
/* Prepare the dummy hash used to make unknown-email logins cost the same. */
int auth_tokens_init(void);

void auth_on_login(http_req_t *req, void *ud);
void auth_on_refresh(http_req_t *req, void *ud);
void auth_on_logout(http_req_t *req, void *ud);
void auth_on_me(http_req_t *req, void *ud);
void auth_on_jwks(http_req_t *req, void *ud);

/* --- cli.c --------------------------------------------------------------- */
int auth_cmd_user_add(const config_t *cfg, int argc, char **argv);

#endif
