/*
 * ahead: a helper thread preparing items ahead of their taker (see ahead.h).
 *
 * ready and taken move without the lock; a side that must wait says so
 * (under mu) and the other wakes it when it has moved AHEAD_WAKE further.
 */
#include "ahead.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "diag.h"
#include "log.h"

struct ahead {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ahead_prepare_fn prepare;
    ahead_setup_fn setup;
    ahead_teardown_fn teardown;
    void *ud;
    int window;
    char service[32], trace[128]; /* the starter's, for the helper's log lines */
    int run;                 /* under mu: bumped by ahead_run */
    atomic_int n;            /* items of the current run (set under mu) */
    bool stop;               /* under mu */
    atomic_int ready;        /* items [0, ready) of the current run are prepared */
    atomic_int taken;        /* the taker is done with [0, taken) */
    atomic_int want;         /* the taker waits until ready >= want (0: it does not) */
    atomic_bool waiting;     /* the helper waits for room */
    atomic_bool failed;      /* the helper stopped on a failure: kind, message (under mu) */
    diag_kind_t kind;
    char message[sizeof(((diag_t *)0)->message)];
};

static void wake(ahead_t *a)
{
    pthread_mutex_lock(&a->mu);
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void fail(ahead_t *a)
{
    pthread_mutex_lock(&a->mu);
    a->kind = diag_last()->kind == DIAG_OK ? DIAG_INTERNAL : diag_last()->kind;
    snprintf(a->message, sizeof(a->message), "%s",
             diag_last()->message[0] ? diag_last()->message : "preparing failed without a diag");
    atomic_store(&a->failed, true);
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* The helper, before item i of run `run`: false when it is to stop or the
 * run is over. */
static bool room_for(ahead_t *a, int run, int i)
{
    if (i - atomic_load(&a->taken) < a->window) return true;
    pthread_mutex_lock(&a->mu);
    atomic_store(&a->waiting, true);
    while (!a->stop && a->run == run && i - atomic_load(&a->taken) > a->window - AHEAD_WAKE)
        pthread_cond_wait(&a->cv, &a->mu);
    atomic_store(&a->waiting, false);
    bool go = !a->stop && a->run == run;
    pthread_mutex_unlock(&a->mu);
    return go;
}

static void *helper_main(void *arg)
{
    ahead_t *a = arg;
    char name[16]; /* for top -H and perf: "h:<service>" */
    snprintf(name, sizeof(name), "h:%.13s", a->service[0] ? a->service : "ates");
    pthread_setname_np(pthread_self(), name);
    log_set_service(a->service[0] ? a->service : NULL);
    log_set_trace(a->trace[0] ? a->trace : NULL);
    if (a->setup && a->setup(a->ud) < 0) {
        fail(a);
        goto out;
    }
    int seen = 0;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (!a->stop && a->run == seen) pthread_cond_wait(&a->cv, &a->mu);
        bool stop = a->stop;
        seen = a->run;
        int n = atomic_load(&a->n);
        pthread_mutex_unlock(&a->mu);
        if (stop) break;
        for (int i = 0; i < n && room_for(a, seen, i); i++) {
            if (a->prepare(a->ud, i) < 0) {
                fail(a);
                goto out;
            }
            atomic_store(&a->ready, i + 1);
            int want = atomic_load(&a->want);
            if (want && i + 1 >= want) wake(a);
        }
    }
out:
    if (a->teardown) a->teardown(a->ud);
    return NULL;
}

int ahead_start(ahead_t **out, int window, ahead_prepare_fn prepare, ahead_setup_fn setup,
                ahead_teardown_fn teardown, void *ud)
{
    *out = NULL;
    if (window < 2 * AHEAD_WAKE) return diag_set(DIAG_INTERNAL, "ahead: window %d too small", window);
    ahead_t *a = calloc(1, sizeof(*a));
    if (!a) return diag_set(DIAG_INTERNAL, "out of memory");
    a->prepare = prepare;
    a->setup = setup;
    a->teardown = teardown;
    a->ud = ud;
    a->window = window;
    snprintf(a->service, sizeof(a->service), "%s", log_service());
    snprintf(a->trace, sizeof(a->trace), "%s", log_trace());
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->thread, NULL, helper_main, a) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return diag_set(DIAG_INTERNAL, "ahead: cannot start the helper thread");
    }
    *out = a;
    return 0;
}

void ahead_run(ahead_t *a, int n)
{
    pthread_mutex_lock(&a->mu);
    atomic_store(&a->ready, 0);
    atomic_store(&a->taken, 0);
    atomic_store(&a->n, n);
    a->run++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

int ahead_take(ahead_t *a, int i)
{
    int n = atomic_load(&a->n);
    if (i < 0 || i >= n) return diag_set(DIAG_INTERNAL, "ahead: item %d of a run of %d", i, n);
    atomic_store(&a->taken, i);
    if (atomic_load(&a->waiting) && atomic_load(&a->ready) - i <= a->window - AHEAD_WAKE)
        wake(a); /* the helper has room again */
    if (atomic_load(&a->ready) > i) return 0;
    pthread_mutex_lock(&a->mu);
    atomic_store(&a->want, i + AHEAD_WAKE < n ? i + AHEAD_WAKE : n);
    while (atomic_load(&a->ready) < atomic_load(&a->want) && !atomic_load(&a->failed))
        pthread_cond_wait(&a->cv, &a->mu);
    atomic_store(&a->want, 0);
    pthread_mutex_unlock(&a->mu);
    if (atomic_load(&a->ready) > i) return 0;
    return diag_set(a->kind, "%s", a->message);
}

void ahead_stop(ahead_t *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
