/*
 * accounts: the account records, their checks, and the admin routes
 * (POST/GET /api/accounts, GET/PATCH /api/accounts/{id}). Every create and
 * every change emits its event through the outbox in the same transaction.
 */
#include <sodium.h>
#include <string.h>

#include "auth.h"
#include "core/clock.h"
#include "core/diag.h"
#include "core/json.h"
#include "core/log.h"

static const char *const roles[] = {"admin", "manager", "accountant", "popug"};

bool auth_role_valid(const char *role)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(role, roles[i]) == 0) return true;
    return false;
}

/* Code points of UTF-8 text (continuation bytes are not counted). */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

int auth_check_email(const char *email)
{
    size_t len = strlen(email);
    const char *at = strchr(email, '@');
    if (len < 3 || len > AUTH_EMAIL_MAX || !at || at == email || !at[1] || strchr(at + 1, '@'))
        return diag_set(DIAG_VALIDATION, "email must look like name@domain (at most %d characters)",
                        AUTH_EMAIL_MAX);
    for (const char *p = email; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return diag_set(DIAG_VALIDATION, "email must not contain spaces or control characters");
    return 0;
}

int auth_check_name(const char *name)
{
    size_t n = utf8_len(name);
    if (n < 1 || n > AUTH_NAME_MAX || strlen(name) > (size_t)AUTH_NAME_MAX * 4)
        return diag_set(DIAG_VALIDATION, "name must have 1..%d characters", AUTH_NAME_MAX);
    bool blank = true;
    for (const char *p = name; *p; p++) {
        if ((unsigned char)*p < ' ')
            return diag_set(DIAG_VALIDATION, "name must not contain control characters");
        blank = blank && *p == ' ';
    }
    return blank ? diag_set(DIAG_VALIDATION, "name must not be blank") : 0;
}

int auth_check_role(const char *role)
{
    if (!auth_role_valid(role))
        return diag_set(DIAG_VALIDATION, "role must be one of admin, manager, accountant, popug");
    return 0;
}

int auth_check_password(const char *password)
{
    size_t len = strlen(password);
    if (len < AUTH_PASSWORD_MIN || len > AUTH_PASSWORD_MAX)
        return diag_set(DIAG_VALIDATION, "password must have %d..%d characters", AUTH_PASSWORD_MIN,
                        AUTH_PASSWORD_MAX);
    return 0;
}

int auth_hash_password(const char *password, char *out)
{
    if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return diag_set(DIAG_UNAVAILABLE, "password hashing ran out of memory");
    return 0;
}

cJSON *auth_account_json(const auth_account_t *a)
{
    char when[CLOCK_RFC3339_LEN];
    clock_rfc3339(a->created_at, when);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "email", a->email);
    cJSON_AddStringToObject(o, "name", a->name);
    cJSON_AddStringToObject(o, "role", a->role);
    cJSON_AddBoolToObject(o, "active", a->active);
    cJSON_AddStringToObject(o, "created_at", when);
    return o;
}

/* The data of AccountCreated / AccountUpdated. */
static cJSON *event_data(const auth_account_t *a)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "account_id", a->id);
    cJSON_AddStringToObject(d, "email", a->email);
    cJSON_AddStringToObject(d, "name", a->name);
    cJSON_AddStringToObject(d, "role", a->role);
    cJSON_AddBoolToObject(d, "active", a->active);
    return d;
}

#define ACCOUNT_COLS "id, email, name, role, active, created_at"

static void read_row(sqlite3_stmt *st, auth_account_t *a)
{
    /* Written whole first: cppcheck (ctuuninitvar) takes snprintf(a->id, ...) for a read. */
    *a = (auth_account_t){0};
    snprintf(a->id, sizeof(a->id), "%s", db_col_text(st, 0));
    snprintf(a->email, sizeof(a->email), "%s", db_col_text(st, 1));
    snprintf(a->name, sizeof(a->name), "%s", db_col_text(st, 2));
    snprintf(a->role, sizeof(a->role), "%s", db_col_text(st, 3));
    a->active = sqlite3_column_int(st, 4) != 0;
    a->created_at = sqlite3_column_int64(st, 5);
}

int auth_account_get(db_conn_t *c, const char *id, auth_account_t *out)
{
    sqlite3_stmt *st = db_stmt(c, "SELECT " ACCOUNT_COLS " FROM accounts WHERE id = ?1");
    if (!st || db_bind_text(st, 1, id) < 0) return -1;
    int rc = db_step(c, st);
    if (rc <= 0) return rc < 0 ? -1 : 0;
    read_row(st, out);
    sqlite3_reset(st);
    return 1;
}

int auth_account_create(db_t *db, const char *email, const char *name, const char *role,
                        const char *password, auth_account_t *out)
{
    if (auth_check_email(email) < 0 || auth_check_name(name) < 0 || auth_check_role(role) < 0 ||
        auth_check_password(password) < 0)
        return -1;
    char hash[crypto_pwhash_STRBYTES];
    if (auth_hash_password(password, hash) < 0) return -1; /* slow: outside the transaction */

    auth_account_t a = {.active = true, .created_at = clock_now_ms()};
    uuid_v7(a.id);
    snprintf(a.email, sizeof(a.email), "%s", email);
    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(a.role, sizeof(a.role), "%s", role);

    db_conn_t *tx = db_conn(db);
    if (!tx || db_begin(tx) < 0) return -1;
    sqlite3_stmt *st = db_stmt(tx, "INSERT INTO accounts(id, email, name, role, active, "
                                   "password_hash, created_at, updated_at) "
                                   "VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?6)");
    if (!st || db_bind_text(st, 1, a.id) < 0 || db_bind_text(st, 2, a.email) < 0 ||
        db_bind_text(st, 3, a.name) < 0 || db_bind_text(st, 4, a.role) < 0 ||
        db_bind_text(st, 5, hash) < 0 || db_bind_int64(st, 6, a.created_at) < 0)
        goto fail;
    if (db_step_done(tx, st) < 0) {
        if (diag_last()->kind == DIAG_CONFLICT)
            diag_set(DIAG_CONFLICT, "an account with email %s exists", email);
        goto fail;
    }
    if (bus_emit(tx, "ates.accounts.created", "AccountCreated", 1, event_data(&a), NULL) < 0 ||
        db_commit(tx) < 0)
        goto fail;
    if (out) *out = a;
    return 0;
fail:
    db_rollback(tx);
    return -1;
}

/* --- routes -------------------------------------------------------------- */

void auth_on_accounts_create(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    static const char *const fields[] = {"email", "name", "role", "password", NULL};
    const cJSON *body = http_body_object(req);
    if (!body || !http_body_only(req, fields)) return;
    const char *email = NULL, *name = NULL, *role = NULL, *password = NULL;
    auth_account_t a;
    if (json_get_string(body, "email", true, &email) < 0 ||
        json_get_string(body, "name", true, &name) < 0 ||
        json_get_string(body, "role", true, &role) < 0 ||
        json_get_string(body, "password", true, &password) < 0 ||
        auth_account_create(service_db(svc), email, name, role, password, &a) < 0) {
        http_reply_diag(req);
        return;
    }
    log_info("account %s (%s) created by %s", a.id, a.role, http_auth(req)->account_id);
    http_reply_json(req, 201, auth_account_json(&a));
}

void auth_on_accounts_list(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    int limit;
    const char *after = NULL;
    if (http_page(req, &limit, &after) < 0) return;
    db_conn_t *c = db_conn(service_db(svc));
    /* ids are UUIDv7: their order is creation order */
    sqlite3_stmt *st = c ? db_stmt(c, "SELECT " ACCOUNT_COLS " FROM accounts "
                                      "WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2")
                         : NULL;
    if (!st || db_bind_text(st, 1, after) < 0 || db_bind_int64(st, 2, limit + 1) < 0) {
        http_reply_diag(req);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    auth_account_t a;
    int n = 0, rc;
    char last[UUID_LEN] = "";
    while ((rc = db_step(c, st)) == 1) {
        if (n++ == limit) break; /* one more than a page: there is a next page */
        read_row(st, &a);
        snprintf(last, sizeof(last), "%s", a.id);
        cJSON_AddItemToArray(items, auth_account_json(&a));
    }
    sqlite3_reset(st);
    if (rc < 0) {
        cJSON_Delete(items);
        http_reply_diag(req);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "items", items);
    json_add_string_or_null(out, "next", n > limit ? last : NULL);
    http_reply_json(req, 200, out);
}

void auth_on_accounts_get(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    auth_account_t a;
    db_conn_t *c = db_conn(service_db(svc));
    int rc = c ? auth_account_get(c, http_param(req, "id"), &a) : -1;
    if (rc < 0) http_reply_diag(req);
    else if (rc == 0) http_reply_error(req, DIAG_NOT_FOUND, "no account %s", http_param(req, "id"));
    else http_reply_json(req, 200, auth_account_json(&a));
}

/* The fields a PATCH may change, read and checked before any write. */
typedef struct patch {
    const char *name, *role;
    bool has_active, active;
} patch_t;

static int read_patch(const cJSON *body, patch_t *p)
{
    static const char *const fields[] = {"name", "role", "active", NULL};
    if (json_only_fields(body, fields) < 0) return -1;
    if (json_get_string(body, "name", false, &p->name) < 0 ||
        json_get_string(body, "role", false, &p->role) < 0)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(body, "active")) {
        if (json_get_bool(body, "active", true, &p->active) < 0) return -1;
        p->has_active = true;
    }
    if (p->name && auth_check_name(p->name) < 0) return -1;
    if (p->role && auth_check_role(p->role) < 0) return -1;
    return 0;
}

/* 1 when another active admin than `id` exists. */
static int other_admin(db_conn_t *tx, const char *id)
{
    sqlite3_stmt *st = db_stmt(tx, "SELECT 1 FROM accounts WHERE role = ?2 "
                                   "AND active = 1 AND id <> ?1 LIMIT 1");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, AUTH_ADMIN_ROLE) < 0) return -1;
    int rc = db_step(tx, st);
    sqlite3_reset(st);
    return rc;
}

/* Apply p to account `id` inside tx; *changed tells whether anything did. */
static int apply_patch(db_conn_t *tx, const char *id, const patch_t *p, auth_account_t *a,
                       bool *changed)
{
    int rc = auth_account_get(tx, id, a);
    if (rc < 0) return -1;
    if (rc == 0) {
        diag_set(DIAG_NOT_FOUND, "no account %s", id);
        return -1; /* not `return diag_set()`: the analyzer would take *a as unset on success */
    }
    auth_account_t before = *a;
    if (p->name) snprintf(a->name, sizeof(a->name), "%s", p->name);
    if (p->role) snprintf(a->role, sizeof(a->role), "%s", p->role);
    if (p->has_active) a->active = p->active;
    bool lost_admin = strcmp(before.role, AUTH_ADMIN_ROLE) == 0 && before.active &&
                      (strcmp(a->role, AUTH_ADMIN_ROLE) != 0 || !a->active);
    if (lost_admin && (rc = other_admin(tx, id)) <= 0)
        return rc < 0 ? -1
                      : diag_set(DIAG_CONFLICT, "the last active admin cannot be demoted or deactivated");
    *changed = strcmp(before.name, a->name) != 0 || strcmp(before.role, a->role) != 0 ||
               before.active != a->active;
    if (!*changed) return 0;
    sqlite3_stmt *st = db_stmt(tx, "UPDATE accounts SET name = ?2, role = ?3, active = ?4, "
                                   "updated_at = ?5 WHERE id = ?1");
    if (!st || db_bind_text(st, 1, id) < 0 || db_bind_text(st, 2, a->name) < 0 ||
        db_bind_text(st, 3, a->role) < 0 || db_bind_int64(st, 4, a->active) < 0 ||
        db_bind_int64(st, 5, clock_now_ms()) < 0 || db_step_done(tx, st) < 0)
        return -1;
    bool revoke = strcmp(before.role, a->role) != 0 || (before.active && !a->active);
    if (revoke && auth_revoke_account_tokens(tx, id) < 0) return -1;
    return bus_emit(tx, "ates.accounts.updated", "AccountUpdated", 1, event_data(a), NULL);
}

void auth_on_accounts_patch(http_req_t *req, void *ud)
{
    service_t *svc = ud;
    const cJSON *body = http_body_object(req);
    if (!body) return;
    patch_t p = {0};
    auth_account_t a;
    bool changed = false;
    db_conn_t *tx = db_conn(service_db(svc));
    if (read_patch(body, &p) < 0 || !tx || db_begin(tx) < 0) {
        http_reply_diag(req);
        return;
    }
    if (apply_patch(tx, http_param(req, "id"), &p, &a, &changed) < 0 || db_commit(tx) < 0) {
        db_rollback(tx);
        http_reply_diag(req);
        return;
    }
    if (changed) log_info("account %s changed by %s", a.id, http_auth(req)->account_id);
    http_reply_json(req, 200, auth_account_json(&a));
}
