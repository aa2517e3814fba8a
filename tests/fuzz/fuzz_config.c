/*
 * fuzz_config: config/ates.lua as an operator might write it, badly. The
 * input is the file; loading it must give a config or a clear error, never
 * a crash, a hang (the instruction budget) or unbounded memory.
 * Also the "HH:MM" and "host:port" parsers on the same text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/diag.h"
#include "fuzz.h"

static char g_file[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(g_file, sizeof(g_file), "%s/ates.lua", fuzz_tmp_dir());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(g_file, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    config_t cfg;
    if (config_load(&cfg, g_file) < 0 && !diag_last()->message[0]) {
        fprintf(stderr, "fuzz_config: an error without a message\n");
        abort();
    }
    char *text = fuzz_strndup(data, size);
    int minutes;
    if (config_parse_hhmm(text, &minutes) == 0 && (minutes < 0 || minutes >= 24 * 60)) abort();
    char host[256];
    int port;
    if (config_parse_addr(text, host, sizeof(host), &port) == 0 && (port < 0 || port > 65535))
        abort();
    free(text);
    return 0;
}
