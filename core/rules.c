/*
 * rules: the library of rule files and the per-thread Lua states
 * (see rules.h; the sandbox is rules_sandbox.c, conversions rules_json.c,
 * the watcher rules_watch.c).
 *
 * The library holds, per file of the directory (at most RULES_MAX_FILES
 * names [A-Za-z0-9_-]+.lua, each at most RULES_MAX_BYTES), the source in
 * force (an immutable, refcounted rules_src_t), when it was swapped in and
 * the error of the last attempt; a mutex guards it and a generation counter
 * is bumped under that mutex on every swap.
 *
 * Reload is a transaction per file (Redis functions.c): a file whose bytes
 * differ from the bytes last tried is compiled, run, checked for its
 * required functions and selftested in a scratch state; only then does it
 * replace the version in force. Otherwise the old version stays and the
 * error is recorded. Bytes that already failed are not retried until they
 * change (so the 1 s rescan does not re-log the same error), unless they
 * failed for a reason that may pass: the budget ran out (on a busy machine
 * the wall-clock bound can end a selftest that passes at rest), or no
 * state could be made. Those are tried again after 1 s, 2 s, 4 s, ... at
 * most RULES_RETRY_MAX_MS apart, so a rule rejected while the machine was
 * loaded at start does not stay "none" until someone touches the file.
 *
 * Each calling thread owns a rules_tls_t (a pthread key per rules_t): a
 * lua_State built from a snapshot of the library and rebuilt when the
 * generation moved. A swap never touches a running call: the thread holds
 * its own compiled copy and the refs of the sources it was built from.
 * States are freed at thread exit (key destructor) or by rules_close
 * (which must run after the other calling threads stopped calling).
 *
 * Errors of rules_call: DIAG_UNAVAILABLE when the file or the function does
 * not exist (nothing can decide) and when the rule fails (error, budget,
 * memory, a result JSON cannot hold; the message starts with "file:line: "):
 * both wait for the operator. DIAG_INTERNAL only for the caller's mistakes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "clock.h"
#include "diag.h"
#include "log.h"
#include "rules_internal.h"

typedef struct rules_src {
    atomic_int refs;
    size_t len;
    char version[RULES_VERSION_LEN];
    char bytes[]; /* len bytes + NUL */
} rules_src_t;

typedef struct rules_file {
    char name[RULES_NAME_MAX];
    rules_src_t *src;         /* version in force; NULL if none ever loaded */
    int64_t loaded_at;        /* wall ms when src was swapped in */
    char *error;              /* error of the last attempt; NULL if it succeeded */
    unsigned char tried[32];  /* SHA-256 of the bytes last attempted */
    bool tried_set;
    int64_t retry_at;         /* monotonic ms to try the same bytes again; 0: only once changed */
    int64_t retry_ms;         /* the wait before retry_at, doubled each time */
} rules_file_t;

#define RULES_RETRY_FIRST_MS 1000
#define RULES_RETRY_MAX_MS 60000

typedef struct rules_req {
    char file[RULES_NAME_MAX];
    char fn[RULES_NAME_MAX];
} rules_req_t;

typedef struct rules_tls {
    rules_t *r;
    rules_vm_t vm;                       /* vm.L NULL until built */
    uint64_t gen;                        /* generation vm was built from */
    int n;                               /* files of the snapshot */
    char names[RULES_MAX_FILES][RULES_NAME_MAX];
    rules_src_t *srcs[RULES_MAX_FILES];  /* refs held while vm uses them */
    char *errs[RULES_MAX_FILES];         /* load error in this vm (unexpected) */
    unsigned index, builds;              /* math.random stream */
    struct rules_tls *prev, *next;       /* r->states */
} rules_tls_t;

struct rules {
    char dir[PATH_MAX];
    uint64_t seed;
    pthread_mutex_t mu; /* guards files, nfiles, req, nreq */
    rules_file_t files[RULES_MAX_FILES]; /* sorted by name */
    int nfiles;
    rules_req_t req[RULES_MAX_REQ];
    int nreq;
    _Atomic uint64_t gen;
    pthread_mutex_t reload_mu; /* one reload at a time */
    pthread_key_t key;         /* the calling thread's rules_tls_t */
    pthread_mutex_t states_mu; /* guards states */
    rules_tls_t *states;       /* every thread's state, for rules_close */
    atomic_uint nthreads;
    rules_watch_t *watch;
    char keep[PATH_MAX]; /* rules_keep: where each version in force is kept; "" none */
};

typedef char rules_names_t[RULES_MAX_FILES][RULES_NAME_MAX];

/* --- sources and files --------------------------------------------------- */

static void src_unref(rules_src_t *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) free(s);
}

static rules_src_t *src_ref(rules_src_t *s)
{
    if (s) atomic_fetch_add(&s->refs, 1);
    return s;
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n <= 4 || n >= RULES_NAME_MAX || strcmp(name + n - 4, ".lua") != 0) return false;
    for (size_t i = 0; i < n - 4; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", name[i]))
            return false;
    return true;
}

static int cmp_names(const void *a, const void *b) { return strcmp(a, b); }

/* The sorted rule file names of `dir`; -1 (diag) if it cannot be read. */
static int scan_dir(const char *dir, rules_names_t names, int *n)
{
    DIR *d = opendir(dir);
    if (!d) return diag_set(DIAG_INTERNAL, "rules: cannot open %s: %s", dir, strerror(errno));
    struct dirent *e;
    *n = 0;
    while ((e = readdir(d))) {
        if (!name_ok(e->d_name)) continue;
        if (*n == RULES_MAX_FILES) {
            log_warn("rules: more than %d files in %s, %s ignored", RULES_MAX_FILES, dir, e->d_name);
            continue;
        }
        memcpy(names[(*n)++], e->d_name, strlen(e->d_name) + 1); /* name_ok: fits */
    }
    closedir(d);
    qsort(names, (size_t)*n, RULES_NAME_MAX, cmp_names);
    return 0;
}

/* The bytes of dir/name (malloc'd, NUL-terminated); 1 when the file
 * vanished, -1 (diag) on other failures. */
static int read_file(const char *dir, const char *name, char **buf, size_t *len)
{
    char path[PATH_MAX + RULES_NAME_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return 1;
    if (fd < 0) return diag_set(DIAG_INTERNAL, "%s: cannot open: %s", name, strerror(errno));
    struct stat st;
    size_t got = 0;
    char *b = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        diag_set(DIAG_INTERNAL, "%s: not a regular file", name);
        goto out;
    }
    b = malloc((size_t)RULES_MAX_BYTES + 2);
    if (!b) {
        diag_set(DIAG_INTERNAL, "%s: out of memory", name);
        goto out;
    }
    for (ssize_t k; got <= (size_t)RULES_MAX_BYTES; got += (size_t)k) {
        k = read(fd, b + got, (size_t)RULES_MAX_BYTES + 1 - got);
        if (k < 0 && errno == EINTR) k = 0;
        else if (k < 0) {
            diag_set(DIAG_INTERNAL, "%s: read: %s", name, strerror(errno));
            goto out;
        } else if (k == 0) break;
    }
    if (got > (size_t)RULES_MAX_BYTES) {
        diag_set(DIAG_INTERNAL, "%s: larger than %d bytes", name, RULES_MAX_BYTES);
        goto out;
    }
    b[got] = '\0';
    *buf = b;
    *len = got;
    b = NULL;
out:
    free(b);
    close(fd);
    return *buf ? 0 : -1;
}

static void sha256(const char *bytes, size_t len, unsigned char md[32])
{
    unsigned int mdlen = 32;
    EVP_Digest(bytes, len, md, &mdlen, EVP_sha256(), NULL);
}

/* The library entry of `name` (r->mu held); created in order if `create`. */
static rules_file_t *file_get(rules_t *r, const char *name, bool create)
{
    int i = 0;
    while (i < r->nfiles && strcmp(r->files[i].name, name) < 0) i++;
    if (i < r->nfiles && strcmp(r->files[i].name, name) == 0) return &r->files[i];
    if (!create || r->nfiles == RULES_MAX_FILES) return NULL;
    memmove(&r->files[i + 1], &r->files[i], (size_t)(r->nfiles - i) * sizeof r->files[0]);
    r->nfiles++;
    memset(&r->files[i], 0, sizeof r->files[i]);
    snprintf(r->files[i].name, RULES_NAME_MAX, "%s", name);
    return &r->files[i];
}

static void file_set_error(rules_file_t *f, const char *error)
{
    free(f->error);
    f->error = error ? strdup(error) : NULL;
}

/* --- reload -------------------------------------------------------------- */

/* Swap in `buf` for `f` if verification passed (r->mu held); 1 if swapped.
 * The generation moves with the swap, under the same lock: whoever sees the
 * new version (rules_status) also sees that its calls must rebuild. */
static int file_settle(rules_t *r, rules_file_t *f, const char *buf, size_t len,
                       const unsigned char md[32], const char *error)
{
    const char *old = f->src ? f->src->version : "none";
    if (!buf && !error) error = "no bytes read";
    if (error) {
        if (!f->error || strcmp(f->error, error) != 0)
            log_warn("rules: %s rejected, version %s stays in force: %s", f->name, old, error);
        file_set_error(f, error);
        return 0;
    }
    char version[RULES_VERSION_LEN];
    for (size_t i = 0; i < 6; i++) snprintf(version + 2 * i, 3, "%02x", md[i]);
    if (f->src && strcmp(f->src->version, version) == 0) { /* the same bytes, back */
        if (f->error) log_info("rules: %s version %s is back", f->name, version);
        file_set_error(f, NULL);
        return 0;
    }
    rules_src_t *s = malloc(sizeof *s + len + 1);
    if (!s) {
        file_set_error(f, "out of memory");
        return 0;
    }
    atomic_init(&s->refs, 1);
    s->len = len;
    memcpy(s->bytes, buf, len + 1);
    memcpy(s->version, version, RULES_VERSION_LEN);
    log_info("rules: %s version %s in force (was %s)", f->name, s->version, old);
    src_unref(f->src);
    f->src = s;
    atomic_fetch_add(&r->gen, 1);
    f->loaded_at = clock_now_ms();
    file_set_error(f, NULL);
    return 1;
}

/* A copy of a version that came into force, in the keep directory, for the
 * next start (rules_keep). Written whole or not at all. */
static void keep_write(const rules_t *r, const char *name, const char *bytes, size_t len)
{
    if (!r->keep[0]) return;
    char path[PATH_MAX + RULES_NAME_MAX + 8], tmp[PATH_MAX + RULES_NAME_MAX + 8];
    snprintf(path, sizeof path, "%s/%s", r->keep, name);
    /* its own temp name: ates close-day may keep into the same directory */
    snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", r->keep, name, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    for (size_t off = 0; ok && off < len;) {
        ssize_t w = write(fd, bytes + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        ok = w > 0;
        if (ok) off += (size_t)w;
    }
    if (fd >= 0 && (fdatasync(fd) != 0 || close(fd) != 0)) ok = false;
    if (ok && rename(tmp, path) == 0) return;
    log_warn("rules: cannot keep %s in %s for the next start: %s", name, r->keep, strerror(errno));
    unlink(tmp);
}

/* The functions services require of `name` (r->mu held): their count. */
static int required_of(const rules_t *r, const char *name, const char *fns[RULES_MAX_REQ],
                       char fnbuf[RULES_MAX_REQ][RULES_NAME_MAX])
{
    int n = 0;
    for (int i = 0; i < r->nreq; i++) {
        if (strcmp(r->req[i].file, name) != 0) continue;
        memcpy(fnbuf[n], r->req[i].fn, RULES_NAME_MAX);
        fns[n] = fnbuf[n];
        n++;
    }
    return n;
}

/* Reload one file; returns 1 when its version changed. */
static int reload_file(rules_t *r, const char *name)
{
    char *buf = NULL;
    size_t len = 0;
    unsigned char md[32] = {0};
    const char *fns[RULES_MAX_REQ];
    char fnbuf[RULES_MAX_REQ][RULES_NAME_MAX];
    int nfns = 0, changed = 0;
    int rc = read_file(r->dir, name, &buf, &len);
    if (rc > 0) return 0; /* vanished: the next scan drops it */
    if (rc == 0) sha256(buf, len, md);

    pthread_mutex_lock(&r->mu);
    rules_file_t *f = file_get(r, name, true);
    bool same = f && rc == 0 && f->tried_set && memcmp(f->tried, md, sizeof md) == 0 &&
                !(f->retry_at && clock_monotonic_ms() >= f->retry_at);
    if (f) nfns = required_of(r, name, fns, fnbuf);
    pthread_mutex_unlock(&r->mu);
    if (!f || same) goto out;

    bool transient = false;
    if (rc == 0) rc = rules__verify(name, buf, len, fns, nfns, &transient);
    const char *error = rc == 0 ? NULL : diag_last()->message;
    pthread_mutex_lock(&r->mu);
    f = file_get(r, name, false); /* only reloads add or drop entries: still there */
    if (f) {
        bool again = f->tried_set && buf && memcmp(f->tried, md, sizeof md) == 0;
        f->tried_set = buf != NULL;
        if (buf) memcpy(f->tried, md, sizeof md);
        if (!transient)
            f->retry_ms = 0;
        else if (!again || !f->retry_ms)
            f->retry_ms = RULES_RETRY_FIRST_MS;
        else if ((f->retry_ms *= 2) > RULES_RETRY_MAX_MS)
            f->retry_ms = RULES_RETRY_MAX_MS;
        f->retry_at = transient ? clock_monotonic_ms() + f->retry_ms : 0;
        if (transient)
            log_info("rules: %s: the same bytes are tried again in %lld s", name,
                     (long long)(f->retry_ms / 1000));
        changed = file_settle(r, f, buf, len, md, error);
    }
    pthread_mutex_unlock(&r->mu);
    if (changed) keep_write(r, name, buf, len);
out:
    free(buf);
    return changed;
}

/* The entries whose file is gone: one with a version in force keeps it
 * (an editor that deletes before it writes, a file moved away by mistake:
 * nothing that needs the rule should fail meanwhile), and says so in its
 * error until the file is back; one without is dropped. No version changes
 * here. */
static void drop_deleted(rules_t *r, rules_names_t names, int n)
{
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nfiles;) {
        rules_file_t *f = &r->files[i];
        if (bsearch(f->name, names, (size_t)n, RULES_NAME_MAX, cmp_names)) {
            i++;
            continue;
        }
        if (f->src) {
            char why[160];
            snprintf(why, sizeof why, "the file is gone; version %s stays in force", f->src->version);
            if (!f->error || strcmp(f->error, why) != 0)
                log_warn("rules: %s removed; version %s stays in force until it is back", f->name,
                         f->src->version);
            file_set_error(f, why);
            f->tried_set = false; /* whatever comes back is read anew */
            i++;
            continue;
        }
        log_info("rules: %s removed (it had no version in force)", f->name);
        src_unref(f->src);
        free(f->error);
        memmove(f, f + 1, (size_t)(r->nfiles - i - 1) * sizeof *f);
        r->nfiles--;
    }
    pthread_mutex_unlock(&r->mu);
}

int rules_reload(rules_t *r)
{
    rules_names_t *names = malloc(sizeof *names);
    int n = 0, changed = 0;
    if (!names) return diag_set(DIAG_INTERNAL, "rules: out of memory");
    pthread_mutex_lock(&r->reload_mu);
    if (scan_dir(r->dir, *names, &n) != 0) {
        changed = -1;
        goto out;
    }
    for (int i = 0; i < n; i++) changed += reload_file(r, (*names)[i]);
    drop_deleted(r, *names, n); /* the generation moved with each swap */
out:
    pthread_mutex_unlock(&r->reload_mu);
    free(names);
    return changed;
}

bool rules_in_force(rules_t *r, const char *file)
{
    pthread_mutex_lock(&r->mu);
    const rules_file_t *f = file_get(r, file, false);
    bool in_force = f && f->src;
    pthread_mutex_unlock(&r->mu);
    return in_force;
}

uint64_t rules_generation(const rules_t *r) { return atomic_load(&((rules_t *)r)->gen); }

/* --- per-thread states --------------------------------------------------- */

static void tls_release(rules_tls_t *t)
{
    rules__vm_close(&t->vm);
    for (int i = 0; i < t->n; i++) {
        src_unref(t->srcs[i]);
        free(t->errs[i]);
        t->srcs[i] = NULL;
        t->errs[i] = NULL;
    }
    t->n = 0;
}

/* Key destructor: the thread exits. */
static void tls_destroy(void *p)
{
    rules_tls_t *t = p;
    rules_t *r = t->r;
    pthread_mutex_lock(&r->states_mu);
    if (t->prev) t->prev->next = t->next;
    else r->states = t->next;
    if (t->next) t->next->prev = t->prev;
    pthread_mutex_unlock(&r->states_mu);
    tls_release(t);
    free(t);
}

static rules_tls_t *tls_get(rules_t *r)
{
    rules_tls_t *t = pthread_getspecific(r->key);
    if (t) return t;
    t = calloc(1, sizeof *t);
    if (!t) {
        diag_set(DIAG_INTERNAL, "rules: out of memory");
        return NULL;
    }
    t->r = r;
    t->index = atomic_fetch_add(&r->nthreads, 1);
    pthread_mutex_lock(&r->states_mu);
    t->next = r->states;
    if (t->next) t->next->prev = t;
    r->states = t;
    pthread_mutex_unlock(&r->states_mu);
    pthread_setspecific(r->key, t);
    return t;
}

/* (Re)build the thread's state from the library as it is now. */
static int tls_build(rules_tls_t *t)
{
    rules_t *r = t->r;
    tls_release(t);
    pthread_mutex_lock(&r->mu);
    t->gen = atomic_load(&r->gen);
    for (int i = 0; i < r->nfiles; i++) {
        if (!r->files[i].src) continue;
        memcpy(t->names[t->n], r->files[i].name, RULES_NAME_MAX);
        t->srcs[t->n++] = src_ref(r->files[i].src);
    }
    pthread_mutex_unlock(&r->mu);
    uint64_t stream = ((uint64_t)t->index << 32) | t->builds++;
    if (rules__vm_open(&t->vm, r->seed, stream) != 0) {
        tls_release(t);
        return -1;
    }
    for (int i = 0; i < t->n; i++) {
        if (rules__vm_load(&t->vm, t->names[i], t->srcs[i]->bytes, t->srcs[i]->len) == 0)
            continue;
        t->errs[i] = strdup(diag_last()->message);
        log_error("rules: %s version %s failed to load in a thread: %s", t->names[i],
                  t->srcs[i]->version, diag_last()->message);
    }
    return 0;
}

/* The calling thread's state, current, with `file` loaded in it at *idx;
 * NULL with a diag. */
static rules_tls_t *tls_ready(rules_t *r, const char *file, int *idx)
{
    rules_tls_t *t = tls_get(r);
    if (!t) return NULL;
    if (!t->vm.L || t->gen != atomic_load(&r->gen))
        if (tls_build(t) != 0) return NULL;
    int i = 0;
    while (i < t->n && strcmp(t->names[i], file) != 0) i++;
    if (i == t->n) {
        diag_set(DIAG_UNAVAILABLE, "rules: %s is not loaded", file);
        return NULL;
    }
    if (t->errs[i]) {
        diag_set(DIAG_UNAVAILABLE, "%s", t->errs[i]);
        return NULL;
    }
    *idx = i;
    return t;
}

/* A rule that failed (an error, its budget, its memory, a result JSON
 * cannot hold) is the operator's to fix, not a fault of the server: the
 * caller answers 503 with the rule's own "file:line: message", and an
 * event that needed it waits for the fix instead of being dead-lettered. */
static int rule_failed(void)
{
    const diag_t *d = diag_last();
    if (d->kind != DIAG_INTERNAL) return -1;
    return diag_set(DIAG_UNAVAILABLE, "%s", d->message);
}

int rules_call(rules_t *r, const char *file, const char *fn, const cJSON *args, cJSON **result,
               char version[RULES_VERSION_LEN])
{
    *result = NULL;
    if (args && !cJSON_IsArray(args))
        return diag_set(DIAG_INTERNAL, "rules: arguments of %s %s() must be a JSON array", file, fn);
    int i;
    rules_tls_t *t = tls_ready(r, file, &i);
    if (!t) return -1;
    if (rules__vm_call(&t->vm, file, fn, args, result) != 0) return rule_failed();
    if (version) memcpy(version, t->srcs[i]->version, RULES_VERSION_LEN);
    return 0;
}

/* --- bound arguments ------------------------------------------------------ */

int rules_args_new(rules_t *r, int n, rules_args_t **out)
{
    *out = NULL;
    if (n < 0 || n > RULES_ARGS_MAX)
        return diag_set(DIAG_INTERNAL, "rules: %d arguments (at most %d)", n, RULES_ARGS_MAX);
    rules_args_t *a = calloc(1, sizeof *a);
    if (!a) return diag_set(DIAG_INTERNAL, "rules: out of memory");
    a->r = r;
    a->n = n;
    *out = a;
    return 0;
}

void rules_args_free(rules_args_t *a)
{
    if (!a) return;
    rules_tls_t *t = pthread_getspecific(a->r->key);
    if (t) rules__vm_unbind(&t->vm, a);
    free(a);
}

int rules_args_set(rules_args_t *a, int pos, const cJSON *value)
{
    if (pos < 0 || pos >= a->n) return diag_set(DIAG_INTERNAL, "rules: no argument %d", pos);
    a->val[pos] = value;
    if (a->bound[pos]) a->dirty = true;
    a->bound[pos] = false;
    return 0;
}

int rules_args_bind(rules_args_t *a, int pos, const cJSON *value)
{
    if (pos < 0 || pos >= a->n) return diag_set(DIAG_INTERNAL, "rules: no argument %d", pos);
    a->val[pos] = value;
    a->bound[pos] = true;
    a->any_bound = true;
    a->dirty = true;
    return 0;
}

int rules_call_args(rules_args_t *a, const char *file, const char *fn, cJSON **result,
                    char version[RULES_VERSION_LEN])
{
    *result = NULL;
    int i;
    rules_tls_t *t = tls_ready(a->r, file, &i);
    if (!t) return -1;
    if (a->any_bound && (a->dirty || a->vm_serial != t->vm.serial)) {
        rules__vm_unbind(&t->vm, a); /* only if it lives in this state */
        if (rules__vm_bind(&t->vm, a) != 0) return -1;
        a->dirty = false;
    }
    if (rules__vm_call_args(&t->vm, file, fn, a, result) != 0) return rule_failed();
    if (version) memcpy(version, t->srcs[i]->version, RULES_VERSION_LEN);
    return 0;
}

/* --- open, close, require, status, check ---------------------------------- */

int rules_open(rules_t **out, const char *dir, uint64_t seed)
{
    *out = NULL;
    rules_t *r = calloc(1, sizeof *r);
    if (!r) return diag_set(DIAG_INTERNAL, "rules: out of memory");
    if (strlen(dir) >= sizeof r->dir || pthread_key_create(&r->key, tls_destroy) != 0) {
        free(r);
        return diag_set(DIAG_INTERNAL, "rules: bad directory or no thread key");
    }
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    r->seed = seed;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->reload_mu, NULL);
    pthread_mutex_init(&r->states_mu, NULL);
    atomic_init(&r->gen, 1);
    if (rules_reload(r) < 0) {
        rules_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

/* Put the kept copy of `name` in force when it has no version (r->reload_mu
 * held). */
static void keep_restore(rules_t *r, const char *name)
{
    const char *fns[RULES_MAX_REQ];
    char fnbuf[RULES_MAX_REQ][RULES_NAME_MAX];
    pthread_mutex_lock(&r->mu);
    rules_file_t *f = file_get(r, name, false);
    bool has = f && f->src;
    int nfns = required_of(r, name, fns, fnbuf);
    pthread_mutex_unlock(&r->mu);
    if (has) return;
    char *buf = NULL;
    size_t len = 0;
    if (read_file(r->keep, name, &buf, &len) != 0) return;
    unsigned char md[32];
    sha256(buf, len, md);
    bool transient = false;
    if (rules__verify(name, buf, len, fns, nfns, &transient) == 0) {
        pthread_mutex_lock(&r->mu);
        f = file_get(r, name, true);
        char *why = f && f->error ? strdup(f->error) : NULL;
        if (f && file_settle(r, f, buf, len, md, NULL) == 1) {
            char note[RULES_NAME_MAX + 600];
            snprintf(note, sizeof note, "%.500s; version %s, kept from the last run, is in force",
                     why ? why : "the file is gone", f->src->version);
            log_warn("rules: %s", note);
            file_set_error(f, note);
        }
        free(why);
        pthread_mutex_unlock(&r->mu);
    } else {
        log_warn("rules: the kept copy of %s does not load either: %s", name, diag_last()->message);
    }
    free(buf);
}

int rules_keep(rules_t *r, const char *dir)
{
    if (strlen(dir) >= sizeof r->keep) return diag_set(DIAG_VALIDATION, "rules: keep directory path too long");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return diag_set(DIAG_INTERNAL, "rules: cannot make %s: %s", dir, strerror(errno));
    rules_names_t *names = malloc(sizeof *names);
    if (!names) return diag_set(DIAG_INTERNAL, "rules: out of memory");
    pthread_mutex_lock(&r->reload_mu);
    snprintf(r->keep, sizeof r->keep, "%s", dir);
    int n = 0, rc = scan_dir(r->keep, *names, &n);
    for (int i = 0; rc == 0 && i < n; i++) keep_restore(r, (*names)[i]); /* each swap moves the generation */
    /* and what came from the rules directory is kept from now on */
    for (int i = 0; rc == 0; i++) {
        pthread_mutex_lock(&r->mu);
        rules_src_t *src = i < r->nfiles ? src_ref(r->files[i].src) : NULL;
        bool more = i < r->nfiles;
        char name[RULES_NAME_MAX];
        if (more) snprintf(name, sizeof name, "%s", r->files[i].name);
        pthread_mutex_unlock(&r->mu);
        if (!more) break;
        if (src) keep_write(r, name, src->bytes, src->len);
        src_unref(src);
    }
    pthread_mutex_unlock(&r->reload_mu);
    free(names);
    return rc;
}

void rules_close(rules_t *r)
{
    if (!r) return;
    rules_watch_stop(r);
    pthread_key_delete(r->key);
    pthread_mutex_lock(&r->states_mu);
    while (r->states) {
        rules_tls_t *t = r->states;
        r->states = t->next;
        tls_release(t);
        free(t);
    }
    pthread_mutex_unlock(&r->states_mu);
    for (int i = 0; i < r->nfiles; i++) {
        src_unref(r->files[i].src);
        free(r->files[i].error);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->reload_mu);
    pthread_mutex_destroy(&r->states_mu);
    free(r);
}

int rules_require(rules_t *r, const char *file, const char *fn)
{
    if (!name_ok(file) || !*fn || strlen(fn) >= RULES_NAME_MAX)
        return diag_set(DIAG_INTERNAL, "rules: bad requirement %s %s()", file, fn);
    pthread_mutex_lock(&r->mu);
    int i = 0;
    while (i < r->nreq && (strcmp(r->req[i].file, file) != 0 || strcmp(r->req[i].fn, fn) != 0)) i++;
    if (i == r->nreq && r->nreq < RULES_MAX_REQ) {
        snprintf(r->req[i].file, RULES_NAME_MAX, "%s", file);
        snprintf(r->req[i].fn, RULES_NAME_MAX, "%s", fn);
        r->nreq++;
    }
    bool full = i == RULES_MAX_REQ;
    rules_file_t *f = file_get(r, file, false);
    rules_src_t *s = f ? src_ref(f->src) : NULL;
    pthread_mutex_unlock(&r->mu);
    if (full) return diag_set(DIAG_INTERNAL, "rules: more than %d requirements", RULES_MAX_REQ);
    if (!s) return diag_set(DIAG_UNAVAILABLE, "rules: %s has no version in force", file);
    const char *fns[1] = {fn};
    int rc = rules__verify(file, s->bytes, s->len, fns, 1, NULL);
    src_unref(s);
    return rc;
}

cJSON *rules_status(rules_t *r)
{
    cJSON *root = cJSON_CreateObject(), *items = cJSON_AddArrayToObject(root, "items");
    if (!items) {
        cJSON_Delete(root);
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nfiles; i++) {
        const rules_file_t *f = &r->files[i];
        cJSON *it = cJSON_CreateObject();
        char at[CLOCK_RFC3339_LEN];
        if (!cJSON_AddItemToArray(items, it)) {
            cJSON_Delete(it);
            continue;
        }
        cJSON_AddStringToObject(it, "file", f->name);
        if (f->src) {
            clock_rfc3339(f->loaded_at, at);
            cJSON_AddStringToObject(it, "version", f->src->version);
            cJSON_AddStringToObject(it, "loaded_at", at);
        } else {
            cJSON_AddNullToObject(it, "version");
            cJSON_AddNullToObject(it, "loaded_at");
        }
        if (f->error) cJSON_AddStringToObject(it, "error", f->error);
        else cJSON_AddNullToObject(it, "error");
    }
    pthread_mutex_unlock(&r->mu);
    return root;
}

int rules_check_dir(const char *dir, const char *only, const rules_need_t *need, int nneed,
                    void *err_file)
{
    FILE *err = err_file;
    rules_names_t *names = malloc(sizeof *names);
    int n = 0, failed = 0;
    if (!names || scan_dir(dir, *names, &n) != 0) {
        fprintf(err, "%s\n", names ? diag_last()->message : "rules: out of memory");
        free(names);
        return -1;
    }
    /* a file some service calls that is not there */
    for (int k = 0; k < nneed; k++) {
        const char *file = need[k].file, *fn = need[k].fn;
        bool first = true; /* said once per file */
        for (int e = 0; e < k; e++) first = first && strcmp(need[e].file, file) != 0;
        if (!first || (only && strcmp(only, file) != 0)) continue;
        if (!bsearch(file, *names, (size_t)n, RULES_NAME_MAX, cmp_names)) {
            fprintf(err, "%s: missing (the services call its %s())\n", file, fn);
            failed++;
        }
    }
    for (int i = 0; i < n; i++) {
        if (only && strcmp(only, (*names)[i]) != 0) continue;
        const char *fns[RULES_MAX_REQ];
        int nfns = 0;
        for (int k = 0; k < nneed && nfns < RULES_MAX_REQ; k++)
            if (strcmp(need[k].file, (*names)[i]) == 0) fns[nfns++] = need[k].fn;
        char *buf = NULL;
        size_t len = 0;
        int rc = read_file(dir, (*names)[i], &buf, &len);
        if (rc > 0) continue;
        if (rc != 0 || rules__verify((*names)[i], buf, len, fns, nfns, NULL) != 0) {
            fprintf(err, "%s\n", diag_last()->message);
            failed++;
        }
        free(buf);
    }
    if (only && !bsearch(only, *names, (size_t)n, RULES_NAME_MAX, cmp_names)) {
        fprintf(err, "%s: not a rule file in %s (NAME.lua)\n", only, dir);
        failed++;
    }
    free(names);
    return failed ? -1 : 0;
}

const char *rules__dir(const rules_t *r) { return r->dir; }
rules_watch_t **rules__watch_slot(rules_t *r) { return &r->watch; }
