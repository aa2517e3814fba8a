/*
 * cli: `ates user add --email E --name N --role R`, the password on stdin.
 * Writes to auth's own database (the account row and its AccountCreated in
 * the outbox, one transaction); the relay of a running auth publishes it.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "core/diag.h"
#include "core/runtime.h"
#include "core/schema.h"
#include <sodium.h>

static int read_password(char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, stdin)) return diag_set(DIAG_VALIDATION, "no password on stdin");
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int auth_cmd_user_add(const config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {{"email", required_argument, NULL, 'e'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"role", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    const char *email = NULL, *name = NULL, *role = NULL;
    int ch;
    optind = 0; /* argv[0] is already an option */
    while ((ch = getopt_long(argc + 1, argv - 1, "e:n:r:", opts, NULL)) != -1) {
        if (ch == 'e') email = optarg;
        else if (ch == 'n') name = optarg;
        else if (ch == 'r') role = optarg;
        else return 2;
    }
    if (!email || !name || !role) {
        fprintf(stderr, "ates user add: --email, --name and --role are required\n");
        return 2;
    }
    char password[AUTH_PASSWORD_MAX + 2];
    if (auth_check_email(email) < 0 || auth_check_name(name) < 0 || auth_check_role(role) < 0 ||
        read_password(password, sizeof(password)) < 0 || auth_check_password(password) < 0) {
        fprintf(stderr, "ates user add: %s\n", diag_last()->message);
        return 2;
    }

    char path[4200];
    schema_registry_t *schemas = NULL;
    db_t *db = NULL;
    auth_account_t a;
    int rc = 1;
    snprintf(path, sizeof(path), "%s/auth.db", cfg->data_dir);
    if (runtime_mkdirs(cfg->data_dir, 0700) < 0 ||
        schema_registry_load(&schemas, cfg->schemas_dir) < 0 ||
        db_open(&db, "auth", path, db_core_migrations, auth_migrations) < 0)
        goto out;
    bus_set_schemas(schemas);
    if (auth_account_create(db, email, name, role, password, &a) < 0) goto out;
    cJSON *json = auth_account_json(&a);
    char *text = cJSON_PrintUnformatted(json);
    printf("%s\n", text ? text : "");
    cJSON_free(text);
    cJSON_Delete(json);
    rc = 0;
out:
    if (rc) fprintf(stderr, "ates user add: %s\n", diag_last()->message);
    sodium_memzero(password, sizeof(password));
    bus_set_schemas(NULL);
    db_close(db);
    schema_registry_free(schemas);
    return rc;
}
