/*
 * ahead: a helper thread that prepares the items of a long write ahead of
 * the thread that writes them (rule calls, event JSON: work that needs no
 * transaction), so that the writing thread, which holds the write lock,
 * only writes.
 *
 * The taker starts a run of n items (ahead_run); the helper prepares
 * item 0, 1, ... in order, at most `window` items ahead of the taker; the
 * taker asks for item i (ahead_take) once it is done with the items
 * before it. Several runs may follow one another on one helper (a
 * shuffle's chunks), each after the previous one was taken to its end or
 * abandoned. Each side waits for the other only in steps of AHEAD_WAKE
 * items, not one: a wake-up per item would cost more system calls than the
 * work handed over.
 *
 * prepare(ud, i) runs on the helper, in item order; setup(ud) before its
 * first item and teardown(ud) at its end, both on the helper too (a Lua
 * state of its own, say). A prepare or setup that fails stops the helper:
 * the taker's next ahead_take that needs what was not prepared returns -1
 * with that failure's diag.
 */
#ifndef ATES_AHEAD_H
#define ATES_AHEAD_H

#define AHEAD_WAKE 64

typedef struct ahead ahead_t;
typedef int (*ahead_prepare_fn)(void *ud, int i);
typedef int (*ahead_setup_fn)(void *ud);
typedef void (*ahead_teardown_fn)(void *ud);

/* Start the helper (window >= 2 * AHEAD_WAKE); -1 with a diag. The log
 * service and trace of the caller are set on the helper. */
int ahead_start(ahead_t **out, int window, ahead_prepare_fn prepare, ahead_setup_fn setup,
                ahead_teardown_fn teardown, void *ud);
/* A new run of n items, numbered from 0. */
void ahead_run(ahead_t *a, int n);
/* The taker is done with the items before i; 0 once item i is prepared,
 * -1 with the helper's diag when it failed first. */
int ahead_take(ahead_t *a, int i);
/* Stop the helper wherever it is, join it and free (NULL-safe). */
void ahead_stop(ahead_t *a);

#endif
