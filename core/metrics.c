/*
 * metrics: a bounded registry of counters and latency histograms (see
 * metrics.h), rendered as Prometheus text exposition format 0.0.4.
 *
 * Series live in one static array and never move or die, so the pointers
 * handed out stay valid for the life of the process. Creation (and lookup,
 * which callers are expected to do once and cache) takes a mutex; updates
 * are relaxed C11 atomics. A histogram keeps one non-cumulative count per
 * bucket plus an overflow slot; rendering accumulates them, and `_count` is
 * the total of the same snapshot, so the `+Inf` bucket always equals it.
 */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define METRICS_MAX_SERIES 512
#define METRICS_NAME_LEN 128
#define METRICS_LABELS_LEN 256
#define METRICS_HELP_LEN 256
#define METRICS_NBUCKETS 16
#define DROPPED_NAME "ates_metrics_dropped_total"

struct metrics_counter {
    _Atomic uint64_t value;
};

struct metrics_histogram {
    _Atomic uint64_t buckets[METRICS_NBUCKETS + 1]; /* last: above 10 s */
    _Atomic uint64_t sum_us;
    metrics_counter_t *fold; /* non-NULL for the overflow sink: count here */
};

typedef enum series_kind { SERIES_COUNTER, SERIES_HISTOGRAM } series_kind_t;

typedef struct series {
    series_kind_t kind;
    uint64_t hash; /* of name and labels, to skip most strcmp */
    char name[METRICS_NAME_LEN];
    char labels[METRICS_LABELS_LEN]; /* "" for none */
    char help[METRICS_HELP_LEN];     /* the first registration's text */
    metrics_counter_t counter;
    metrics_histogram_t hist;
} series_t;

/* Upper bounds in microseconds and as rendered (seconds). */
static const uint64_t bucket_us[METRICS_NBUCKETS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[METRICS_NBUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10",
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static series_t registry[METRICS_MAX_SERIES];
static int nseries; /* guarded by reg_lock */
static metrics_counter_t dropped;
static metrics_histogram_t dropped_hist = {.fold = &dropped};
static atomic_bool warned_full;

/* ---- registration ------------------------------------------------------- */

static uint64_t series_hash(const char *name, const char *labels)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xffu) * 1099511628211ULL;
    for (const char *p = labels; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* and short enough. */
static bool name_ok(const char *name)
{
    size_t len = name ? strnlen(name, METRICS_NAME_LEN) : 0;
    if (len == 0 || len >= METRICS_NAME_LEN || (name[0] >= '0' && name[0] <= '9')) return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == ':';
        if (!ok) return false;
    }
    return true;
}

/* Label text goes between braces verbatim: refuse what would break a line. */
static bool labels_ok(const char *labels)
{
    size_t len = strnlen(labels, METRICS_LABELS_LEN);
    return len < METRICS_LABELS_LEN && !strpbrk(labels, "{}\n");
}

static void warn_full(const char *name)
{
    if (!atomic_exchange(&warned_full, true))
        log_warn("metrics registry full (%d series): '%s' and later series are dropped",
                 METRICS_MAX_SERIES, name);
}

/* The series for (name, labels) of `kind`, created if new; NULL when it
 * cannot be (bad name, kind clash, registry full). */
static series_t *series_get(series_kind_t kind, const char *name, const char *help,
                            const char *labels)
{
    series_t *s = NULL;
    if (!labels) labels = "";
    if (!name_ok(name) || !labels_ok(labels)) {
        log_warn("metrics: invalid series name or labels: %.64s{%.64s}", name ? name : "(null)",
                 labels);
        return NULL;
    }
    uint64_t h = series_hash(name, labels);
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < nseries; i++) {
        series_t *e = &registry[i];
        if (strcmp(e->name, name) != 0) continue;
        if (e->kind != kind) {
            log_warn("metrics: '%s' is registered with another type", name);
            goto out;
        }
        if (e->hash == h && strcmp(e->labels, labels) == 0) {
            s = e;
            goto out;
        }
    }
    if (nseries >= METRICS_MAX_SERIES) {
        warn_full(name);
        goto out;
    }
    s = &registry[nseries++];
    s->kind = kind;
    s->hash = h;
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->labels, sizeof(s->labels), "%s", labels);
    snprintf(s->help, sizeof(s->help), "%s", help ? help : "");
out:
    pthread_mutex_unlock(&reg_lock);
    return s;
}

metrics_counter_t *metrics_counter(const char *name, const char *help, const char *labels)
{
    if (name && strcmp(name, DROPPED_NAME) == 0) return &dropped;
    series_t *s = series_get(SERIES_COUNTER, name, help, labels);
    return s ? &s->counter : &dropped;
}

metrics_histogram_t *metrics_histogram(const char *name, const char *help, const char *labels)
{
    series_t *s = series_get(SERIES_HISTOGRAM, name, help, labels);
    return s ? &s->hist : &dropped_hist;
}

/* ---- updates ------------------------------------------------------------ */

void metrics_inc(metrics_counter_t *c, uint64_t by)
{
    atomic_fetch_add_explicit(&c->value, by, memory_order_relaxed);
}

void metrics_observe_us(metrics_histogram_t *h, uint64_t us)
{
    if (h->fold) {
        metrics_inc(h->fold, 1);
        return;
    }
    int b = 0;
    while (b < METRICS_NBUCKETS && us > bucket_us[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

/* ---- rendering ---------------------------------------------------------- */

typedef struct strbuf {
    char *data;
    size_t len, cap;
    bool failed; /* out of memory: the result is dropped */
} strbuf_t;

__attribute__((format(printf, 2, 3))) static void sb_printf(strbuf_t *sb, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !sb->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->failed = true;
        } else if ((size_t)n < sb->cap - sb->len) {
            sb->len += (size_t)n;
            return;
        } else {
            size_t cap = sb->cap * 2 + (size_t)n;
            char *p = realloc(sb->data, cap);
            if (!p)
                sb->failed = true;
            else {
                sb->data = p;
                sb->cap = cap;
            }
        }
    }
}

/* # HELP text with backslash and newline escaped. */
static void render_family(strbuf_t *sb, const series_t *s)
{
    char help[2 * METRICS_HELP_LEN];
    size_t j = 0;
    for (const char *p = s->help; *p && j + 2 < sizeof(help); p++) {
        if (*p == '\\' || *p == '\n') {
            help[j++] = '\\';
            help[j++] = *p == '\n' ? 'n' : '\\';
        } else {
            help[j++] = *p;
        }
    }
    help[j] = '\0';
    sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", s->name, help, s->name,
              s->kind == SERIES_COUNTER ? "counter" : "histogram");
}

static void render_histogram(strbuf_t *sb, const series_t *s)
{
    const metrics_histogram_t *h = &s->hist;
    const char *sep = s->labels[0] ? "," : "";
    uint64_t cum = 0;
    for (int b = 0; b <= METRICS_NBUCKETS; b++) {
        cum += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        sb_printf(sb, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", s->name, s->labels, sep,
                  b < METRICS_NBUCKETS ? bucket_le[b] : "+Inf", cum);
    }
    uint64_t sum = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
    const char *lo = s->labels[0] ? "{" : "", *hi = s->labels[0] ? "}" : "";
    sb_printf(sb, "%s_sum%s%s%s %" PRIu64 ".%06" PRIu64 "\n", s->name, lo, s->labels, hi,
              sum / 1000000, sum % 1000000);
    sb_printf(sb, "%s_count%s%s%s %" PRIu64 "\n", s->name, lo, s->labels, hi, cum);
}

static void render_series(strbuf_t *sb, const series_t *s)
{
    if (s->kind == SERIES_HISTOGRAM) {
        render_histogram(sb, s);
        return;
    }
    uint64_t v = atomic_load_explicit(&s->counter.value, memory_order_relaxed);
    if (s->labels[0])
        sb_printf(sb, "%s{%s} %" PRIu64 "\n", s->name, s->labels, v);
    else
        sb_printf(sb, "%s %" PRIu64 "\n", s->name, v);
}

char *metrics_render(void)
{
    strbuf_t sb = {.data = malloc(4096), .cap = 4096};
    if (!sb.data) return NULL;
    sb.data[0] = '\0';
    pthread_mutex_lock(&reg_lock);
    /* Families in order of first registration, all their series together. */
    for (int i = 0; i < nseries; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(registry[j].name, registry[i].name) == 0;
        if (seen) continue;
        render_family(&sb, &registry[i]);
        for (int k = i; k < nseries; k++)
            if (strcmp(registry[k].name, registry[i].name) == 0) render_series(&sb, &registry[k]);
    }
    pthread_mutex_unlock(&reg_lock);
    sb_printf(&sb,
              "# HELP " DROPPED_NAME " Metric updates lost: registry full or invalid series.\n"
              "# TYPE " DROPPED_NAME " counter\n" DROPPED_NAME " %" PRIu64 "\n",
              atomic_load_explicit(&dropped.value, memory_order_relaxed));
    if (sb.failed) {
        free(sb.data);
        return NULL;
    }
    return sb.data;
}
