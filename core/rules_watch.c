/*
 * rules_watch: the watcher thread of a rules_t. inotify on the directory
 * (any event: editors write in place, rename over, or swap a symlinked
 * directory like a Kubernetes ConfigMap), rules_reload ~100 ms after the
 * last event (debounce), and a rescan at least every second regardless, so a
 * change is in force within about a second even when inotify is unavailable
 * or misses it. It sleeps in poll(); an eventfd wakes it to stop.
 *
 * rules_watch_start/stop are called by the owner thread (not concurrently).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "clock.h"
#include "diag.h"
#include "log.h"
#include "rules_internal.h"

#define WATCH_DEBOUNCE_MS 100
#define WATCH_RESCAN_MS 1000

struct rules_watch {
    rules_t *r;
    pthread_t thread;
    int stop_fd; /* eventfd: written once to stop */
    int ino_fd;  /* inotify, -1 when unavailable (rescans only) */
};

static void watch_reload(rules_t *r)
{
    if (rules_reload(r) < 0) log_diag(LOG_WARN, "rules: reload");
}

static void *watch_main(void *arg)
{
    rules_watch_t *w = arg;
    log_set_service("rules");
    bool pending = false;            /* events seen, reload not yet done */
    int64_t last_event = 0, next_rescan = clock_monotonic_ms() + WATCH_RESCAN_MS;
    for (;;) {
        int64_t now = clock_monotonic_ms();
        int64_t until = next_rescan;
        if (pending && last_event + WATCH_DEBOUNCE_MS < until) until = last_event + WATCH_DEBOUNCE_MS;
        int timeout = until > now ? (int)(until - now) : 0;
        struct pollfd fds[2] = {{.fd = w->stop_fd, .events = POLLIN}, {.fd = w->ino_fd, .events = POLLIN}};
        int n = poll(fds, w->ino_fd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("rules: watcher poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && fds[0].revents) break;
        if (n > 0 && fds[1].revents) {
            char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            while (read(w->ino_fd, buf, sizeof buf) > 0) {
            }
            pending = true;
            last_event = clock_monotonic_ms();
        }
        now = clock_monotonic_ms();
        if ((pending && now >= last_event + WATCH_DEBOUNCE_MS) || now >= next_rescan) {
            watch_reload(w->r);
            pending = false;
            next_rescan = clock_monotonic_ms() + WATCH_RESCAN_MS;
        }
    }
    return NULL;
}

int rules_watch_start(rules_t *r)
{
    rules_watch_t **slot = rules__watch_slot(r);
    if (*slot) return 0;
    rules_watch_t *w = calloc(1, sizeof *w);
    if (!w) return diag_set(DIAG_INTERNAL, "rules: out of memory");
    w->r = r;
    w->ino_fd = -1;
    w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->stop_fd < 0) {
        free(w);
        return diag_set(DIAG_INTERNAL, "rules: eventfd: %s", strerror(errno));
    }
    w->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;
    if (w->ino_fd < 0 || inotify_add_watch(w->ino_fd, rules__dir(r), mask) < 0) {
        log_warn("rules: inotify on %s: %s; rescanning every %d ms only", rules__dir(r),
                 strerror(errno), WATCH_RESCAN_MS);
        if (w->ino_fd >= 0) close(w->ino_fd);
        w->ino_fd = -1;
    }
    int rc = pthread_create(&w->thread, NULL, watch_main, w);
    if (rc != 0) {
        if (w->ino_fd >= 0) close(w->ino_fd);
        close(w->stop_fd);
        free(w);
        return diag_set(DIAG_INTERNAL, "rules: watcher thread: %s", strerror(rc));
    }
    *slot = w;
    return 0;
}

void rules_watch_stop(rules_t *r)
{
    rules_watch_t **slot = rules__watch_slot(r), *w = *slot;
    if (!w) return;
    uint64_t one = 1;
    if (write(w->stop_fd, &one, sizeof one) != sizeof one)
        log_error("rules: cannot wake the watcher: %s", strerror(errno));
    pthread_join(w->thread, NULL);
    if (w->ino_fd >= 0) close(w->ino_fd);
    close(w->stop_fd);
    free(w);
    *slot = NULL;
}
