/*
 * config: the process configuration. config/ates.lua (a Lua chunk returning
 * a table, run with no io/os except os.getenv) gives values; the ATES_*
 * environment variables of the CONTRACT override them; defaults fill the
 * rest. A bad value is a clear message and exit status 2 (the caller exits).
 */
#ifndef ATES_CONFIG_H
#define ATES_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CONFIG_STR 256

typedef struct config {
    char http_addr[CONFIG_STR];   /* "127.0.0.1:8080" as given */
    char http_host[CONFIG_STR];   /* its host part */
    int http_port;                /* its port part */
    char nats_url[1024];          /* comma-separated server list */
    char data_dir[PATH_MAX];
    char rules_dir[PATH_MAX];
    char web_dir[PATH_MAX];
    char schemas_dir[PATH_MAX];   /* config/schemas; ATES_SCHEMAS_DIR overrides */
    char admin_email[CONFIG_STR];
    char admin_password[CONFIG_STR]; /* "" = generate on first start */
    int access_ttl;               /* seconds, > 0 */
    char tz[CONFIG_STR];          /* IANA zone name, "UTC" by default */
    int day_close_minute;         /* ATES_DAY_CLOSE as minutes after midnight */
    bool seed_set;                /* ATES_SEED given */
    uint64_t seed;                /* ATES_SEED, or random when !seed_set */
    char smtp_url[CONFIG_STR];    /* "" = spool mail to DATA/mail */
    log_level_t log_level;
    int http_threads;             /* ATES_HTTP_THREADS: handler threads, 0 = automatic */
    char jwks_url[CONFIG_STR];    /* ATES_JWKS_URL: also trust the keys published there */
    char ops_roles[CONFIG_STR];   /* roles allowed on operator routes (GET /api/rules) */
    char mail_from[CONFIG_STR];   /* ATES_MAIL_FROM: From of every mail, "Name <addr>" */
    bool notify_mail;             /* ATES_NOTIFY_MAIL: notify also mails each notice */
    char file[PATH_MAX];          /* the config file read, "" if none */
} config_t;

/*
 * Fill *out: defaults, then `file` (when NULL, ./config/ates.lua if it
 * exists; a named file that does not exist is an error), then the
 * environment. Returns 0, or -1 with a diag naming the key or variable and
 * what is wrong with it.
 */
int config_load(config_t *out, const char *file);

/* The process-wide configuration once loaded (set by config_set_global). */
const config_t *config_get(void);
void config_set_global(const config_t *cfg);

/* Parsers shared with tests: "HH:MM" -> minutes; "host:port". */
int config_parse_hhmm(const char *text, int *minutes);
int config_parse_addr(const char *text, char *host, int host_len, int *port);

#endif
