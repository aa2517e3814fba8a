/*
 * t.h: the unit-test harness. Each test file is its own executable; it ends
 * with `return t_done();`, which prints "N passed, N failed" and exits
 * non-zero on any failure. t_tmpdir and t_rmdir make and remove a private
 * temporary directory.
 */
#ifndef ATES_T_H
#define ATES_T_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int t_passed, t_failed;

#define T_CHECK(cond)                                                                          \
    do {                                                                                       \
        if (cond) {                                                                            \
            t_passed++;                                                                        \
        } else {                                                                               \
            t_failed++;                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
        }                                                                                      \
    } while (0)

#define T_EQ_INT(a, b)                                                                         \
    do {                                                                                       \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                                \
        if (t_a_ == t_b_) {                                                                    \
            t_passed++;                                                                        \
        } else {                                                                               \
            t_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__, #a, #b,     \
                    t_a_, t_b_);                                                               \
        }                                                                                      \
    } while (0)

#define T_EQ_STR(a, b)                                                                         \
    do {                                                                                       \
        const char *t_a_ = (a), *t_b_ = (b);                                                   \
        if (t_a_ && t_b_ && strcmp(t_a_, t_b_) == 0) {                                         \
            t_passed++;                                                                        \
        } else {                                                                               \
            t_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s == %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, \
                    t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");                           \
        }                                                                                      \
    } while (0)

/*
 * A fresh private directory "<$ATES_TEST_TMP or /tmp>/<prefix>-XXXXXX" in dir
 * (cap bytes); the base is made first if missing. 0, or -1 after printing why.
 */
static inline int t_tmpdir(char *dir, size_t cap, const char *prefix)
{
    const char *root = getenv("ATES_TEST_TMP");
    if (!root || !*root) root = "/tmp";
    mkdir(root, 0700);
    int n = snprintf(dir, cap, "%s/%s-XXXXXX", root, prefix);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "t_tmpdir: %s/%s-XXXXXX does not fit in %zu bytes\n", root, prefix, cap);
        return -1;
    }
    if (!mkdtemp(dir)) {
        fprintf(stderr, "t_tmpdir: mkdtemp in %s: %s\n", root, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * Remove dir and all it holds (rm -rf); quiet when it is already gone.
 * 0, or -1 after printing why.
 */
static inline int t_rmdir(const char *dir)
{
    char cmd[4096 + 16];
    if (strchr(dir, '\'')) {
        fprintf(stderr, "t_rmdir: refusing a path with a quote: %s\n", dir);
        return -1;
    }
    int n = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (n < 0 || (size_t)n >= sizeof(cmd)) {
        fprintf(stderr, "t_rmdir: path too long: %s\n", dir);
        return -1;
    }
    if (system(cmd) != 0) {
        fprintf(stderr, "t_rmdir: cannot remove %s\n", dir);
        return -1;
    }
    return 0;
}

static inline int t_done(void)
{
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#endif
