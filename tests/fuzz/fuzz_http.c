/*
 * fuzz_http: the whole HTTP request path without a socket. Every linked
 * service runs embedded (its database, rules and routes; no NATS, no
 * threads) and each input becomes one request through http_inject: router,
 * authentication, JSON body parsing and the real handlers.
 *
 * Input: byte 0 picks the credentials (none, a bearer token of each role,
 * the cookie, a forged token); the rest is "METHOD TARGET\n", header lines
 * "Name: value\n", an empty line, then the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/http.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/runtime.h"
#include "fuzz.h"

#define MAX_HEADERS 32
static runtime_t *g_rt;
static char g_token[4][1024]; /* admin, manager, accountant, popug */

static void sign(const jwt_keys_t *keys, int i, const char *role)
{
    jwt_claims_t c = {.iat = time(NULL), .exp = time(NULL) + 30 * 86400};
    snprintf(c.sub, sizeof(c.sub), "0190f000-0000-7000-8000-00000000000%d", i);
    snprintf(c.role, sizeof(c.role), "%s", role);
    if (jwt_sign(keys, &c, g_token[i], sizeof(g_token[i])) < 0) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    config_t cfg;
    char file[512];
    snprintf(file, sizeof(file), "%s/ates.lua", fuzz_tmp_dir());
    FILE *f = fopen(file, "w");
    if (!f || fputs("return {}\n", f) < 0 || fclose(f) != 0) abort();
    if (config_load(&cfg, file) < 0) {
        fprintf(stderr, "fuzz_http: config: %s\n", diag_last()->message);
        abort();
    }
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s/data", fuzz_tmp_dir());
    snprintf(cfg.rules_dir, sizeof(cfg.rules_dir), "%s/rules", fuzz_src_dir());
    snprintf(cfg.schemas_dir, sizeof(cfg.schemas_dir), "%s/config/schemas", fuzz_src_dir());
    snprintf(cfg.web_dir, sizeof(cfg.web_dir), "%s/web", fuzz_src_dir());
    snprintf(cfg.admin_password, sizeof(cfg.admin_password), "fuzz-admin-password");
    cfg.seed_set = true;
    cfg.seed = 42;
    cfg.log_level = LOG_ERROR;
    log_set_level(cfg.log_level);
    if (runtime_embed_open(&g_rt, &cfg, "") < 0) {
        fprintf(stderr, "fuzz_http: cannot start: %s\n", diag_last()->message);
        abort();
    }
    const jwt_keys_t *keys = runtime_embed_keys(g_rt);
    sign(keys, 0, "admin");
    sign(keys, 1, "manager");
    sign(keys, 2, "accountant");
    sign(keys, 3, "popug");
    return 0;
}

/* Cut the next line ("\n" or "\r\n") off *p; NULL at the end. */
static char *next_line(char **p)
{
    if (!*p) return NULL;
    char *line = *p;
    char *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = NULL;
    }
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r') line[len - 1] = '\0';
    return line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int mode = data[0] % 8;
    char *text = fuzz_strndup(data + 1, size - 1);
    size_t text_len = size - 1;
    char *p = text;
    char *reqline = next_line(&p);
    char *sp = reqline ? strchr(reqline, ' ') : NULL;
    if (!sp || sp == reqline) goto out;
    *sp = '\0';
    const char *method = reqline, *target = sp + 1;

    const char *hdr[2 * MAX_HEADERS + 6];
    int nh = 0;
    char auth[sizeof(g_token) + 32], cookie[sizeof(g_token) + 32];
    if (mode >= 1 && mode <= 4) {
        snprintf(auth, sizeof(auth), "Bearer %s", g_token[mode - 1]);
        hdr[nh++] = "Authorization";
        hdr[nh++] = auth;
    } else if (mode == 5 || mode == 7) {
        snprintf(cookie, sizeof(cookie), "ates_token=%s", g_token[mode == 5 ? 3 : 0]);
        hdr[nh++] = "Cookie";
        hdr[nh++] = cookie;
    } else if (mode == 6) {
        hdr[nh++] = "Authorization";
        hdr[nh++] = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
    }
    char *line;
    while (nh < 2 * MAX_HEADERS && (line = next_line(&p)) && *line) {
        char *colon = strchr(line, ':');
        if (!colon || colon == line) continue;
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ') value++;
        hdr[nh++] = line;
        hdr[nh++] = value;
    }
    hdr[nh] = NULL;
    const char *body = p ? p : "";
    size_t body_len = p ? text_len - (size_t)(p - text) : 0;
    int status = http_inject(runtime_embed_http(g_rt), method, target, hdr, body, body_len);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "%s %s -> %d\n", method, target, status);
    if (status < 100 || status > 599) abort();
    if (status == 500) {
        /* a 500 is a bug: the server must answer bad input with a 4xx */
        fprintf(stderr, "fuzz_http: %s %s answered 500\n", method, target);
        abort();
    }
out:
    free(text);
    return 0;
}
