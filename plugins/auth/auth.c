/*
 * auth: the plugin table, its schema, and the first start (the bootstrap
 * admin). See auth.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "core/diag.h"
#include "core/log.h"

const char *const auth_migrations[] = {
    "CREATE TABLE accounts ("
    "  id TEXT PRIMARY KEY,"
    "  email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  name TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  active INTEGER NOT NULL DEFAULT 1,"
    "  password_hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE refresh_tokens ("
    "  hash TEXT PRIMARY KEY,"            /* SHA-256 hex of the token */
    "  family TEXT NOT NULL,"             /* one login's chain of rotations */
    "  account_id TEXT NOT NULL REFERENCES accounts(id),"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  spent_at INTEGER,"                 /* rotated away */
    "  revoked_at INTEGER) WITHOUT ROWID;"
    "CREATE INDEX refresh_tokens_family ON refresh_tokens(family);"
    "CREATE INDEX refresh_tokens_account ON refresh_tokens(account_id);"
    "CREATE TABLE login_failures ("
    "  email TEXT NOT NULL COLLATE NOCASE,"
    "  at INTEGER NOT NULL);"
    "CREATE INDEX login_failures_email ON login_failures(email, at);",
    NULL,
};

/* Write the generated password to DATA/admin-password, mode 0600. */
static int write_password_file(const char *data_dir, const char *password)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/admin-password", data_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return diag_set(DIAG_UNAVAILABLE, "open %s: %s", path, strerror(errno));
    char line[128];
    int n = snprintf(line, sizeof(line), "%s\n", password);
    bool ok = fchmod(fd, 0600) == 0 && write(fd, line, (size_t)n) == n;
    close(fd);
    return ok ? 0 : diag_set(DIAG_UNAVAILABLE, "write %s: %s", path, strerror(errno));
}

/* With no account at all, create the first admin. */
static int bootstrap_admin(service_t *svc)
{
    const config_t *cfg = service_config(svc);
    db_conn_t *c = db_conn(service_db(svc));
    sqlite3_stmt *st = c ? db_stmt(c, "SELECT EXISTS (SELECT 1 FROM accounts)") : NULL;
    if (!st || db_step(c, st) != 1) return -1;
    bool any = sqlite3_column_int(st, 0) != 0;
    sqlite3_reset(st);
    if (any) return 0;

    char generated[40] = "";
    const char *password = cfg->admin_password;
    if (!*password) {
        unsigned char raw[18];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(generated, sizeof(generated), raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        password = generated;
    }
    auth_account_t admin;
    if (auth_account_create(service_db(svc), cfg->admin_email, "Admin", AUTH_ADMIN_ROLE, password,
                            &admin) < 0)
        return -1;
    log_info("created the first admin %s (%s)", admin.email, admin.id);
    if (*generated) {
        if (write_password_file(cfg->data_dir, generated) < 0) return -1;
        printf("aTES first admin: %s  password: %s  (also in %s/admin-password)\n", admin.email,
               generated, cfg->data_dir);
        fflush(stdout);
    }
    return 0;
}

static int auth_start(service_t *svc)
{
    if (auth_tokens_init() < 0) return -1;
    return bootstrap_admin(svc);
}

static const bus_stream_t streams[] = {
    {"ATES_ACCOUNTS", "ates.accounts.>"},
    {NULL, NULL},
};

static const http_route_t routes[] = {
    {"POST", "/api/auth/login", auth_on_login, HTTP_PUBLIC, NULL},
    {"POST", "/api/auth/refresh", auth_on_refresh, HTTP_PUBLIC, NULL},
    {"POST", "/api/auth/logout", auth_on_logout, HTTP_PUBLIC, NULL},
    {"GET", "/api/auth/me", auth_on_me, HTTP_AUTH, NULL},
    {"GET", "/api/auth/jwks", auth_on_jwks, HTTP_PUBLIC, NULL},
    {"POST", "/api/accounts", auth_on_accounts_create, HTTP_AUTH, AUTH_ADMIN_ROLE},
    {"GET", "/api/accounts", auth_on_accounts_list, HTTP_AUTH, AUTH_ADMIN_ROLE},
    {"GET", "/api/accounts/{id}", auth_on_accounts_get, HTTP_AUTH, AUTH_ADMIN_ROLE},
    {"PATCH", "/api/accounts/{id}", auth_on_accounts_patch, HTTP_AUTH, AUTH_ADMIN_ROLE},
    {NULL, NULL, NULL, 0, NULL},
};

static const plugin_command_t commands[] = {
    {"user add", "create an account (password from stdin)",
     "usage: ates user add --email E --name N --role R   (the password is read from stdin)\n"
     "  Creates the account in DATA/auth.db and queues its AccountCreated event;\n"
     "  a running `ates serve` with auth publishes it. Roles: admin, manager,\n"
     "  accountant, popug. Exit 0 on success, 1 on a conflict, 2 on bad input.\n",
     auth_cmd_user_add},
    {NULL, NULL, NULL, NULL},
};

const plugin_t auth_plugin = {
    .name = "auth",
    .migrations = auth_migrations,
    .streams = streams,
    .routes = routes,
    .commands = commands,
    .start = auth_start,
};
