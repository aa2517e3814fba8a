/*
 * ates: the command line. `ates [--config FILE] COMMAND [ARGS]`; every
 * command answers --help. Exit status: 0 success, 1 failure, 2 bad usage
 * or configuration.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <limits.h>
#include <sys/stat.h>
#include <lua.h>
#include <microhttpd.h>
#include <nats/nats.h>
#include <openssl/opensslv.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bus.h"
#include "core/config.h"
#include "core/diag.h"
#include "core/plugin.h"
#include "core/rules.h"
#include "core/runtime.h"
#include "core/schema.h"

typedef struct command {
    const char *name;
    const char *summary;
    const char *usage;
    int (*run)(const char *config_file, int argc, char **argv);
} command_t;

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    return false;
}

/* Load the configuration or explain why not (exit status 2). */
static int load_config(const char *file, config_t *cfg)
{
    if (config_load(cfg, file) < 0) {
        fprintf(stderr, "ates: configuration: %s\n", diag_last()->message);
        return -1;
    }
    log_set_level(cfg->log_level);
    return 0;
}

/* --- serve -------------------------------------------------------------- */

static int cmd_serve(const char *config_file, int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"services", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    const char *services = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:s:", opts, NULL)) != -1) {
        if (c == 'c') config_file = optarg;
        else if (c == 's') services = optarg;
        else return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "ates serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    config_t cfg;
    if (load_config(config_file, &cfg) < 0) return 2;
    return runtime_serve(&cfg, services);
}

/* --- rules check -------------------------------------------------------- */

static int cmd_rules(const char *config_file, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "ates rules: expected 'check' (see ates rules --help)\n");
        return 2;
    }
    if (argc > 3) {
        fprintf(stderr, "ates rules check: too many arguments\n");
        return 2;
    }
    const char *arg = argc == 3 ? argv[2] : NULL;
    config_t cfg;
    char dir[PATH_MAX];
    const char *only = NULL;
    struct stat st;
    if (!arg) {
        if (load_config(config_file, &cfg) < 0) return 2;
        arg = cfg.rules_dir;
    }
    snprintf(dir, sizeof(dir), "%s", arg);
    if (stat(arg, &st) == 0 && S_ISREG(st.st_mode)) { /* one file: a draft before it is saved over */
        char *slash = strrchr(dir, '/');
        only = slash ? arg + (slash - dir) + 1 : arg;
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof(dir), ".");
        if (!dir[0]) snprintf(dir, sizeof(dir), "/");
    }
    /* what the services call must be there */
    rules_need_t need[64];
    int nneed = 0;
    for (const plugin_t *const *p = ates_plugins; *p; p++)
        for (const plugin_rule_t *r = (*p)->rules; r && r->file && nneed < 64; r++)
            need[nneed++] = (rules_need_t){r->file, r->fn};
    int rc = rules_check_dir(dir, only, need, nneed, stderr);
    if (rc == 0) printf("%s%s%s: ok\n", only ? only : "rules in ", only ? " in " : "", dir);
    return rc == 0 ? 0 : 1;
}

/* --- events tail -------------------------------------------------------- */

static volatile bool tail_stop;
static void on_stop_signal(int sig)
{
    (void)sig;
    tail_stop = true;
}

static int cmd_events(const char *config_file, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "tail") != 0) {
        fprintf(stderr, "ates events: expected 'tail' (see ates events --help)\n");
        return 2;
    }
    static const struct option opts[] = {{"from-start", no_argument, NULL, 'f'},
                                         {"max", required_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    bool from_start = false;
    long max = 0;
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "fm:", opts, NULL)) != -1) {
        if (c == 'f') {
            from_start = true;
        } else if (c == 'm') {
            char *end;
            max = strtol(optarg, &end, 10);
            if (*end || max < 0) {
                fprintf(stderr, "ates events tail: --max takes a count\n");
                return 2;
            }
        } else {
            return 2;
        }
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "ates events tail: one subject at most ('%s' is one too many)\n", argv[optind + 1]);
        return 2;
    }
    const char *subject = optind < argc ? argv[optind] : "ates.>";
    config_t cfg;
    if (load_config(config_file, &cfg) < 0) return 2;
    schema_registry_t *schemas = NULL;
    bus_t *bus = NULL;
    int rc = 1;
    if (schema_registry_load(&schemas, cfg.schemas_dir) < 0 ||
        bus_open(&bus, cfg.nats_url, schemas) < 0) {
        fprintf(stderr, "ates events tail: %s\n", diag_last()->message);
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (bus_tail(bus, subject, from_start, max, stdout, &tail_stop) < 0) {
        fprintf(stderr, "ates events tail: %s\n", diag_last()->message);
        goto out;
    }
    rc = 0;
out:
    bus_close(bus);
    schema_registry_free(schemas);
    return rc;
}

/* --- replay ------------------------------------------------------------- */

static int cmd_replay(const char *config_file, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "ates replay: expected one service name (see ates replay --help)\n");
        return 2;
    }
    config_t cfg;
    if (load_config(config_file, &cfg) < 0) return 2;
    return runtime_replay(&cfg, argv[1], stdout);
}

/* --- version ------------------------------------------------------------ */

static int cmd_version(const char *config_file, int argc, char **argv)
{
    (void)config_file;
    (void)argc;
    (void)argv;
    printf("ates %s\n", ATES_VERSION);
    printf("  %s, libmicrohttpd %s, SQLite %s, nats.c %s, cJSON %s, %s, libsodium %s\n",
           LUA_RELEASE, MHD_get_version(), sqlite3_libversion(), nats_GetVersion(),
           cJSON_Version(), OPENSSL_VERSION_TEXT, sodium_version_string());
    printf("  services:");
    for (const plugin_t *const *p = ates_plugins; *p; p++) printf(" %s", (*p)->name);
    printf("\n");
    return 0;
}

static const command_t commands[] = {
    {"serve", "run services (default: all) until Ctrl-C",
     "usage: ates serve [--config FILE] [--services LIST]\n"
     "  Runs the services of LIST (comma separated) in this process: HTTP on\n"
     "  ATES_HTTP_ADDR, events over ATES_NATS_URL, data under ATES_DATA_DIR.\n",
     cmd_serve},
    {"rules", "check rule files",
     "usage: ates rules check [DIR | FILE]\n"
     "  Loads every rule file of DIR (default ATES_RULES_DIR), or only FILE, as a\n"
     "  reload would, with the functions the services call, and runs its\n"
     "  selftest(); prints file:line: message per failure, and a line per rule\n"
     "  file the services need that is missing; exits 1 on any.\n",
     cmd_rules},
    {"events", "print events as JSON lines",
     "usage: ates events tail [SUBJECT] [--from-start] [--max N]\n"
     "  Prints every event on SUBJECT (default ates.>) as one JSON line\n"
     "  {subject, headers, event}. --from-start replays what the streams hold first;\n"
     "  --max stops after N events (0, the default: no limit; Ctrl-C stops).\n"
     "  It waits for NATS when it is down, saying so on stderr.\n",
     cmd_events},
    {"replay", "rebuild a service's projections from the streams",
     "usage: ates replay SERVICE\n"
     "  Rebuilds SERVICE's projections (e.g. analytics) from JetStream: deletes its\n"
     "  durable consumers, empties its projections and inbox, then consumes every\n"
     "  stream it reads from the first message until it has caught up with what the\n"
     "  streams held when it began, and prints the count and rate.\n"
     "  Stop SERVICE first: replay refuses while a process serves it on this data\n"
     "  dir, and `ates serve` of SERVICE refuses to start while replay runs; other\n"
     "  services may keep running. Interrupted (Ctrl-C), the next `ates serve`\n"
     "  finishes the rebuild. Exit status 0 done, 1 failure, 2 bad usage.\n",
     cmd_replay},
    {"version", "print versions", "usage: ates version\n", cmd_version},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: ates [--config FILE] COMMAND [ARGS]   (ates COMMAND --help)\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
    for (const plugin_t *const *p = ates_plugins; *p; p++)
        for (const plugin_command_t *c = (*p)->commands; c && c->name; c++)
            fprintf(out, "  %-16s %s\n", c->name, c->summary);
}

/* true when the first word of command name `name` is `word`. */
static bool first_word_is(const char *name, const char *word)
{
    const char *space = strchr(name, ' ');
    size_t first = space ? (size_t)(space - name) : strlen(name);
    return strlen(word) == first && strncmp(word, name, first) == 0;
}

/* A plugin command whose words match argv[0] (and argv[1]); *words = how many. */
static const plugin_command_t *find_plugin_command(int argc, char **argv, int *words)
{
    for (const plugin_t *const *p = ates_plugins; *p; p++) {
        for (const plugin_command_t *c = (*p)->commands; c && c->name; c++) {
            if (!first_word_is(c->name, argv[0])) continue;
            const char *space = strchr(c->name, ' ');
            if (!space) {
                *words = 1;
                return c;
            }
            if (argc > 1 && strcmp(argv[1], space + 1) == 0) {
                *words = 2;
                return c;
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *config_file = NULL;
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--config") == 0) {
        config_file = argv[i + 1];
        i += 2;
    }
    if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
        strcmp(argv[i], "help") == 0) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? 2 : 0;
    }
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    for (size_t k = 0; k < NCOMMANDS; k++) {
        if (strcmp(sub_argv[0], commands[k].name) != 0) continue;
        if (wants_help(sub_argc, sub_argv)) {
            fputs(commands[k].usage, stdout);
            if (commands[k].run == cmd_serve) {
                printf("  Services:");
                for (const plugin_t *const *p = ates_plugins; *p; p++) printf(" %s", (*p)->name);
                printf("\n");
            }
            return 0;
        }
        return commands[k].run(config_file, sub_argc, sub_argv);
    }
    int words = 0;
    const plugin_command_t *pc = find_plugin_command(sub_argc, sub_argv, &words);
    if (pc) {
        if (wants_help(sub_argc, sub_argv)) {
            fputs(pc->usage, stdout);
            return 0;
        }
        config_t cfg;
        if (load_config(config_file, &cfg) < 0) return 2;
        return pc->run(&cfg, sub_argc - words, sub_argv + words);
    }
    /* the first word of a two-word command ("user" of "user add"): its usages */
    bool group = false;
    for (const plugin_t *const *p = ates_plugins; *p; p++)
        for (const plugin_command_t *c = (*p)->commands; c && c->name; c++) {
            if (!strchr(c->name, ' ') || !first_word_is(c->name, sub_argv[0])) continue;
            group = true;
            fputs(c->usage, wants_help(sub_argc, sub_argv) ? stdout : stderr);
        }
    if (group) {
        if (wants_help(sub_argc, sub_argv)) return 0;
        fprintf(stderr, "ates %s: expected one of the commands above\n", sub_argv[0]);
        return 2;
    }
    fprintf(stderr, "ates: unknown command '%s'\n", sub_argv[0]);
    usage(stderr);
    return 2;
}
