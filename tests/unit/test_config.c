/*
 * config: defaults < config file < environment, and clear errors for bad
 * values (the caller exits 2 on them).
 */
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"
#include "core/diag.h"
#include "t.h"

static char dir[256];

static const char *write_config(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void clear_env(void)
{
    static const char *const vars[] = {"ATES_HTTP_ADDR", "ATES_NATS_URL", "ATES_DATA_DIR",
                                       "ATES_RULES_DIR", "ATES_WEB_DIR", "ATES_SCHEMAS_DIR",
                                       "ATES_ADMIN_EMAIL", "ATES_ADMIN_PASSWORD", "ATES_ACCESS_TTL",
                                       "ATES_TZ", "ATES_DAY_CLOSE", "ATES_SEED", "ATES_SMTP_URL",
                                       "ATES_LOG", "ATES_OPS_ROLES", "ATES_JWKS_URL"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) unsetenv(vars[i]);
}

static void test_defaults(void)
{
    config_t c;
    clear_env();
    T_EQ_INT(config_load(&c, NULL), 0);
    T_EQ_STR(c.http_addr, "127.0.0.1:8080");
    T_EQ_STR(c.http_host, "127.0.0.1");
    T_EQ_INT(c.http_port, 8080);
    T_EQ_STR(c.nats_url, "nats://127.0.0.1:4222");
    T_EQ_STR(c.data_dir, "./data");
    T_EQ_STR(c.admin_email, "admin@uberpopug.inc");
    T_EQ_INT(c.access_ttl, 300);
    T_EQ_STR(c.tz, "UTC");
    T_EQ_INT(c.day_close_minute, 0);
    T_CHECK(!c.seed_set);
    T_EQ_INT(c.log_level, LOG_INFO);
    T_EQ_STR(c.smtp_url, "");
}

static void test_precedence(void)
{
    config_t c;
    clear_env();
    const char *f = write_config("a.lua", "local ttl = 60 * 2\n"
                                          "return { access_ttl = ttl, tz = 'Europe/Berlin',\n"
                                          "  day_close = '18:30', data_dir = '/srv/ates',\n"
                                          "  nats_url = os.getenv('MY_NATS') or 'nats://x:1' }\n");
    setenv("MY_NATS", "nats://a:1,nats://b:2", 1);
    T_EQ_INT(config_load(&c, f), 0);
    T_EQ_INT(c.access_ttl, 120);             /* file beats default */
    T_EQ_STR(c.tz, "Europe/Berlin");
    T_EQ_INT(c.day_close_minute, 18 * 60 + 30);
    T_EQ_STR(c.nats_url, "nats://a:1,nats://b:2"); /* os.getenv works */
    T_EQ_STR(c.file, f);

    setenv("ATES_ACCESS_TTL", "900", 1);
    setenv("ATES_DATA_DIR", "/tmp/d", 1);
    setenv("ATES_SEED", "42", 1);
    setenv("ATES_HTTP_ADDR", "[::1]:9090", 1);
    T_EQ_INT(config_load(&c, f), 0);
    T_EQ_INT(c.access_ttl, 900);             /* environment beats file */
    T_EQ_STR(c.data_dir, "/tmp/d");
    T_EQ_STR(c.tz, "Europe/Berlin");         /* untouched by env stays from file */
    T_CHECK(c.seed_set);
    T_CHECK(c.seed == 42);
    T_EQ_STR(c.http_host, "::1");
    T_EQ_INT(c.http_port, 9090);
    unsetenv("MY_NATS");
}

/* Each bad value is refused with a message naming where it came from. */
static void expect_bad(const char *var, const char *value, const char *needle)
{
    config_t c;
    clear_env();
    setenv(var, value, 1);
    T_EQ_INT(config_load(&c, NULL), -1);
    T_EQ_INT(diag_last()->kind, DIAG_VALIDATION);
    if (!strstr(diag_last()->message, needle)) {
        t_failed++;
        fprintf(stderr, "message for %s=%s lacks '%s': %s\n", var, value, needle,
                diag_last()->message);
    } else {
        t_passed++;
    }
    unsetenv(var);
}

static void test_bad_values(void)
{
    expect_bad("ATES_ACCESS_TTL", "abc", "ATES_ACCESS_TTL");
    expect_bad("ATES_ACCESS_TTL", "0", "ATES_ACCESS_TTL");
    expect_bad("ATES_ACCESS_TTL", "5x", "ATES_ACCESS_TTL");
    expect_bad("ATES_DAY_CLOSE", "24:00", "ATES_DAY_CLOSE");
    expect_bad("ATES_DAY_CLOSE", "7:00", "ATES_DAY_CLOSE");
    expect_bad("ATES_HTTP_ADDR", "localhost", "ATES_HTTP_ADDR");
    expect_bad("ATES_HTTP_ADDR", "127.0.0.1:99999", "ATES_HTTP_ADDR");
    expect_bad("ATES_LOG", "loud", "ATES_LOG");
    expect_bad("ATES_SEED", "-1", "ATES_SEED");
    expect_bad("ATES_SMTP_URL", "http://x", "ATES_SMTP_URL");
    expect_bad("ATES_OPS_ROLES", "Admin;drop", "ATES_OPS_ROLES");
    expect_bad("ATES_JWKS_URL", "file:///etc/passwd", "ATES_JWKS_URL");
}

static void test_bad_files(void)
{
    config_t c;
    clear_env();
    const char *f = write_config("typo.lua", "return { acces_ttl = 5 }\n");
    T_EQ_INT(config_load(&c, f), -1);
    T_CHECK(strstr(diag_last()->message, "acces_ttl") != NULL);
    f = write_config("io.lua", "local f = io.open('/etc/passwd')\nreturn {}\n");
    T_EQ_INT(config_load(&c, f), -1); /* no io */
    f = write_config("exec.lua", "os.execute('true')\nreturn {}\n");
    T_EQ_INT(config_load(&c, f), -1); /* no os.execute */
    f = write_config("loop.lua", "while true do end\n");
    T_EQ_INT(config_load(&c, f), -1); /* budget, not a hang */
    T_CHECK(strstr(diag_last()->message, "budget") != NULL);
    f = write_config("num.lua", "return 42\n");
    T_EQ_INT(config_load(&c, f), -1);
    f = write_config("syntax.lua", "return {\n");
    T_EQ_INT(config_load(&c, f), -1);
    T_CHECK(strstr(diag_last()->message, "syntax.lua:") != NULL);
    f = write_config("type.lua", "return { access_ttl = {} }\n");
    T_EQ_INT(config_load(&c, f), -1);
    T_EQ_INT(config_load(&c, "/nonexistent/ates.lua"), -1);
}

static void test_parsers(void)
{
    int m, port;
    char host[64];
    T_EQ_INT(config_parse_hhmm("00:00", &m), 0);
    T_EQ_INT(m, 0);
    T_EQ_INT(config_parse_hhmm("23:59", &m), 0);
    T_EQ_INT(m, 23 * 60 + 59);
    T_EQ_INT(config_parse_hhmm("12:60", &m), -1);
    T_EQ_INT(config_parse_hhmm("", &m), -1);
    /* exactly two digits each: no sign, no blank (sscanf's %d took them) */
    T_EQ_INT(config_parse_hhmm("09:05", &m), 0);
    T_EQ_INT(m, 9 * 60 + 5);
    T_EQ_INT(config_parse_hhmm(" 9:05", &m), -1);
    T_EQ_INT(config_parse_hhmm("+9:05", &m), -1);
    T_EQ_INT(config_parse_hhmm("-0:30", &m), -1);
    T_EQ_INT(config_parse_hhmm("12:+5", &m), -1);
    T_EQ_INT(config_parse_hhmm("12: 5", &m), -1);
    T_EQ_INT(config_parse_hhmm("12:-0", &m), -1);
    T_EQ_INT(config_parse_hhmm("1230 ", &m), -1);
    T_EQ_INT(config_parse_hhmm("24:00", &m), -1);
    T_EQ_INT(config_parse_addr("0.0.0.0:0", host, sizeof(host), &port), 0);
    T_EQ_INT(port, 0);
    T_EQ_INT(config_parse_addr(":80", host, sizeof(host), &port), -1);
}

int main(void)
{
    if (t_tmpdir(dir, sizeof(dir), "ates-config") < 0) return 1;
    T_CHECK(chdir(dir) == 0); /* no ./config/ates.lua here */
    test_defaults();
    test_precedence();
    test_bad_values();
    test_bad_files();
    test_parsers();
    T_EQ_INT(t_rmdir(dir), 0);
    return t_done();
}
