/*
 * config: defaults < config/ates.lua < ATES_* environment (see config.h).
 *
 * The Lua file runs in a fresh state whose _ENV holds only pure functions
 * (base without load/dofile/require, string, table, math) and os.getenv,
 * under an instruction budget, so a config file can compute values but not
 * touch files, processes or the network.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "mail.h"

#define CONFIG_LUA_BUDGET 10000000 /* instructions for evaluating the file */

static config_t g_config;

const config_t *config_get(void) { return &g_config; }
void config_set_global(const config_t *cfg) { g_config = *cfg; }

/* One setting: its Lua key, its environment variable, and where it goes. */
typedef enum {
    K_STR, K_PATH, K_INT, K_HHMM, K_ADDR, K_LEVEL, K_SEED, K_SMTP, K_ROLES, K_URL, K_COUNT,
    K_FROM, K_BOOL
} kind_t;
typedef struct setting {
    const char *key;
    const char *env;
    kind_t kind;
    size_t offset;
    size_t size;
} setting_t;

#define S(key, env, kind, field)                                                               \
    {key, env, kind, offsetof(config_t, field), sizeof(((config_t *)0)->field)}

static const setting_t settings[] = {
    S("http_addr", "ATES_HTTP_ADDR", K_ADDR, http_addr),
    S("nats_url", "ATES_NATS_URL", K_STR, nats_url),
    S("data_dir", "ATES_DATA_DIR", K_PATH, data_dir),
    S("rules_dir", "ATES_RULES_DIR", K_PATH, rules_dir),
    S("web_dir", "ATES_WEB_DIR", K_PATH, web_dir),
    S("schemas_dir", "ATES_SCHEMAS_DIR", K_PATH, schemas_dir),
    S("admin_email", "ATES_ADMIN_EMAIL", K_STR, admin_email),
    S("admin_password", "ATES_ADMIN_PASSWORD", K_STR, admin_password),
    S("access_ttl", "ATES_ACCESS_TTL", K_INT, access_ttl),
    S("tz", "ATES_TZ", K_STR, tz),
    S("day_close", "ATES_DAY_CLOSE", K_HHMM, day_close_minute),
    S("seed", "ATES_SEED", K_SEED, seed),
    S("smtp_url", "ATES_SMTP_URL", K_SMTP, smtp_url),
    S("log", "ATES_LOG", K_LEVEL, log_level),
    S("ops_roles", "ATES_OPS_ROLES", K_ROLES, ops_roles),
    S("jwks_url", "ATES_JWKS_URL", K_URL, jwks_url),
    S("http_threads", "ATES_HTTP_THREADS", K_COUNT, http_threads),
    S("mail_from", "ATES_MAIL_FROM", K_FROM, mail_from),
    S("notify_mail", "ATES_NOTIFY_MAIL", K_BOOL, notify_mail),
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void defaults(config_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->http_addr, sizeof(c->http_addr), "127.0.0.1:8080");
    snprintf(c->http_host, sizeof(c->http_host), "127.0.0.1");
    c->http_port = 8080;
    snprintf(c->nats_url, sizeof(c->nats_url), "nats://127.0.0.1:4222");
    snprintf(c->data_dir, sizeof(c->data_dir), "./data");
    snprintf(c->rules_dir, sizeof(c->rules_dir), "./rules");
    snprintf(c->web_dir, sizeof(c->web_dir), "./web");
    snprintf(c->schemas_dir, sizeof(c->schemas_dir), "./config/schemas");
    snprintf(c->admin_email, sizeof(c->admin_email), "admin@uberpopug.inc");
    c->access_ttl = 300;
    snprintf(c->tz, sizeof(c->tz), "UTC");
    c->day_close_minute = 0;
    snprintf(c->smtp_url, sizeof(c->smtp_url), "%s", "");
    c->log_level = LOG_INFO;
    snprintf(c->ops_roles, sizeof(c->ops_roles), "admin");
    snprintf(c->mail_from, sizeof(c->mail_from), "%s", MAIL_FROM_DEFAULT);
}

static bool two_digits(const char *p, int *v)
{
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9') return false;
    *v = (p[0] - '0') * 10 + (p[1] - '0');
    return true;
}

int config_parse_hhmm(const char *text, int *minutes)
{
    int h, m;
    if (!text || strlen(text) != 5 || !two_digits(text, &h) || text[2] != ':' ||
        !two_digits(text + 3, &m) || h > 23 || m > 59)
        return diag_set(DIAG_VALIDATION, "'%s' is not a time of day HH:MM", text ? text : "");
    *minutes = h * 60 + m;
    return 0;
}

int config_parse_addr(const char *text, char *host, int host_len, int *port)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon || colon == text || (int)(colon - text) >= host_len)
        return diag_set(DIAG_VALIDATION, "'%s' is not host:port", text ? text : "");
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return diag_set(DIAG_VALIDATION, "'%s' has a bad port", text);
    const char *h = text;
    int hl = (int)(colon - text);
    if (h[0] == '[' && h[hl - 1] == ']') { /* [::1]:8080 */
        h++;
        hl -= 2;
    }
    snprintf(host, (size_t)host_len, "%.*s", hl, h);
    *port = (int)p;
    return 0;
}

static bool roles_valid(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '_' || *s == ',')) return false;
    return true;
}

/* Store `text` (from `origin`, "ATES_X" or "ates.lua: key") into the setting. */
static int apply(config_t *c, const setting_t *s, const char *text, const char *origin)
{
    char *field = (char *)c + s->offset;
    char *end;
    switch (s->kind) {
    case K_STR:
    case K_PATH:
    case K_SMTP:
    case K_ROLES:
    case K_URL:
        if (strlen(text) >= s->size)
            return diag_set(DIAG_VALIDATION, "%s: value longer than %zu bytes", origin, s->size - 1);
        if (s->kind == K_PATH && !*text)
            return diag_set(DIAG_VALIDATION, "%s: empty path", origin);
        if (s->kind == K_SMTP && *text && strncmp(text, "smtp://", 7) != 0)
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not smtp://host:port", origin, text);
        if (s->kind == K_URL && *text && strncmp(text, "http://", 7) != 0 &&
            strncmp(text, "https://", 8) != 0)
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not an http(s) URL", origin, text);
        if (s->kind == K_ROLES && !roles_valid(text))
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not a comma-separated role list", origin,
                            text);
        memcpy(field, text, strlen(text) + 1);
        return 0;
    case K_INT: {
        errno = 0;
        long v = strtol(text, &end, 10);
        if (errno || *end || end == text || v <= 0 || v > 86400)
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not a whole number of seconds in 1..86400",
                            origin, text);
        *(int *)field = (int)v;
        return 0;
    }
    case K_COUNT: {
        errno = 0;
        long v = strtol(text, &end, 10);
        if (errno || *end || end == text || v < 0 || v > 1024)
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not a count in 0..1024", origin, text);
        *(int *)field = (int)v;
        return 0;
    }
    case K_HHMM:
        if (config_parse_hhmm(text, (int *)field) < 0)
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not a time of day HH:MM", origin, text);
        return 0;
    case K_ADDR:
        if (strlen(text) >= s->size ||
            config_parse_addr(text, c->http_host, sizeof(c->http_host), &c->http_port) < 0)
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not host:port", origin, text);
        memcpy(field, text, strlen(text) + 1);
        return 0;
    case K_LEVEL:
        if (log_level_parse(text, (log_level_t *)field) < 0)
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not one of error, warn, info, debug",
                            origin, text);
        return 0;
    case K_FROM:
        if (strlen(text) >= s->size || mail_check_from(text) < 0)
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not 'Name <address>' or an address",
                            origin, text);
        memcpy(field, text, strlen(text) + 1);
        return 0;
    case K_BOOL:
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "on"))
            *(bool *)field = true;
        else if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "no") ||
                 !strcmp(text, "off"))
            *(bool *)field = false;
        else
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not one of true, false, 1, 0, yes, no, on, off",
                            origin, text);
        return 0;
    case K_SEED: {
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || *end || end == text || text[0] == '-')
            return diag_set(DIAG_VALIDATION, "%s: '%s' is not a non-negative integer", origin, text);
        c->seed = v;
        c->seed_set = true;
        return 0;
    }
    }
    return diag_set(DIAG_INTERNAL, "unknown setting kind");
}

/* Count hook: a config file that loops forever is an error, not a hang. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    luaL_error(L, "config evaluation exceeded its instruction budget");
}

/* Build the sandbox _ENV on the stack. */
static void push_env(lua_State *L)
{
    static const char *const base[] = {"assert", "error", "ipairs", "next", "pairs", "pcall",
                                       "select", "tonumber", "tostring", "type", "xpcall",
                                       "rawequal", "rawget", "rawlen", "rawset",
                                       "setmetatable", "getmetatable"};
    lua_newtable(L);                           /* env */
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
        lua_getglobal(L, base[i]);             /* env, fn */
        lua_setfield(L, -2, base[i]);          /* env */
    }
    static const char *const libs[] = {"string", "table", "math"};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        lua_getglobal(L, libs[i]);
        lua_setfield(L, -2, libs[i]);
    }
    lua_newtable(L);                           /* env, os */
    lua_getglobal(L, "os");                    /* env, os, realos */
    lua_getfield(L, -1, "getenv");             /* env, os, realos, getenv */
    lua_setfield(L, -3, "getenv");             /* env, os, realos */
    lua_pop(L, 1);                             /* env, os */
    lua_setfield(L, -2, "os");                 /* env */
}

/* Read the table the file returned (at the top of the stack) into c. */
static int read_table(lua_State *L, config_t *c, const char *file)
{
    char origin[PATH_MAX + 64];
    /* Every key must be known: a typo is an error, not a silently ignored line. */
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        bool known = false;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (size_t i = 0; i < NSETTINGS; i++)
                known = known || strcmp(lua_tostring(L, -2), settings[i].key) == 0;
        if (!known) {
            diag_set(DIAG_VALIDATION, "%s: unknown key '%s'", file,
                     lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "(not a string)");
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        lua_getfield(L, -1, s->key);
        int t = lua_type(L, -1);
        snprintf(origin, sizeof(origin), "%s: %s", file, s->key);
        int rc = 0;
        if (t == LUA_TBOOLEAN && s->kind == K_BOOL) {
            rc = apply(c, s, lua_toboolean(L, -1) ? "true" : "false", origin);
        } else if (t == LUA_TSTRING || t == LUA_TNUMBER) {
            char text[1100];
            if (t == LUA_TNUMBER && lua_isinteger(L, -1))
                snprintf(text, sizeof(text), "%lld", (long long)lua_tointeger(L, -1));
            else
                snprintf(text, sizeof(text), "%s", lua_tostring(L, -1));
            rc = apply(c, s, text, origin);
        } else if (t != LUA_TNIL) {
            rc = diag_set(DIAG_VALIDATION, "%s: must be a string or a number%s", origin,
                         s->kind == K_BOOL ? " or a boolean" : "");
        }
        lua_pop(L, 1);
        if (rc < 0) return -1;
    }
    return 0;
}

static int load_file(config_t *c, const char *file)
{
    lua_State *L = luaL_newstate();
    if (!L) return diag_set(DIAG_INTERNAL, "out of memory");
    luaL_openlibs(L);
    int rc = -1;
    if (luaL_loadfilex(L, file, "t") != LUA_OK) {  /* chunk | msg */
        diag_set(DIAG_VALIDATION, "%s", lua_tostring(L, -1));
        goto out;
    }
    push_env(L);                                    /* chunk, env */
    lua_setupvalue(L, -2, 1);                       /* chunk (its _ENV is env) */
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, CONFIG_LUA_BUDGET);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {          /* result | msg */
        diag_set(DIAG_VALIDATION, "%s", lua_tostring(L, -1));
        goto out;
    }
    lua_sethook(L, NULL, 0, 0);
    if (!lua_istable(L, -1)) {
        diag_set(DIAG_VALIDATION, "%s: must return a table", file);
        goto out;
    }
    rc = read_table(L, c, file);
out:
    lua_close(L);
    return rc;
}

static int load_env(config_t *c)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && *v && apply(c, &settings[i], v, settings[i].env) < 0) return -1;
    }
    return 0;
}

int config_load(config_t *out, const char *file)
{
    config_t c;
    defaults(&c);
    struct stat st;
    if (!file && stat("config/ates.lua", &st) == 0) file = "config/ates.lua";
    if (file) {
        if (stat(file, &st) != 0)
            return diag_set(DIAG_VALIDATION, "config file %s: %s", file, strerror(errno));
        if (load_file(&c, file) < 0) return -1;
        snprintf(c.file, sizeof(c.file), "%s", file);
    }
    if (load_env(&c) < 0) return -1;
    if (!c.seed_set) {
        uint64_t s = 0;
        if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s)) s = (uint64_t)time(NULL) ^ (uint64_t)getpid();
        c.seed = s;
    }
    *out = c;
    return 0;
}
