/*
 * fuzz_common: helpers of the fuzz targets (see fuzz.h).
 */
#include "fuzz.h"

#include <ftw.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *fuzz_src_dir(void)
{
    const char *env = getenv("ATES_SRC");
    return env && *env ? env : ATES_SOURCE_DIR;
}

static char dir[256];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tmp(void) { nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS); }

const char *fuzz_tmp_dir(void)
{
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        if (base && *base) mkdir(base, 0700); /* may exist */
        snprintf(dir, sizeof(dir), "%s/ates-fuzz-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(remove_tmp);
    }
    return dir;
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}
