/*
 * test_metrics: counters, histograms and the Prometheus text (core/metrics.c).
 * The registry is process-global, so every test uses its own metric names
 * and the overflow test runs last.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "t.h"

#define THREADS 4
#define INCS 10000

/* Occurrences of `needle` in `hay`. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Every line is a comment or `series value` with a numeric value. */
static int well_formed(const char *text)
{
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl) return 0; /* the last line ends too */
        if (*p != '#') {
            const char *sp = nl;
            while (sp > p && sp[-1] != ' ')
                sp--;
            if (sp == p || sp == nl) return 0;
            char *end;
            strtod(sp, &end);
            if (end != nl) return 0;
        }
        p = nl + 1;
    }
    return 1;
}

static void *inc_thread(void *arg)
{
    (void)arg;
    /* Each thread looks the series up itself: get-or-create must agree. */
    metrics_counter_t *c = metrics_counter("test_requests_total", "Requests.", "service=\"t\"");
    for (int i = 0; i < INCS; i++)
        metrics_inc(c, 1);
    return c;
}

static void test_threads(void)
{
    pthread_t th[THREADS];
    void *ret[THREADS];
    for (int i = 0; i < THREADS; i++)
        T_EQ_INT(pthread_create(&th[i], NULL, inc_thread, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        T_EQ_INT(pthread_join(th[i], &ret[i]), 0);
    for (int i = 1; i < THREADS; i++)
        T_CHECK(ret[i] == ret[0]);
    char *text = metrics_render();
    T_CHECK(text != NULL);
    if (!text) return;
    T_CHECK(strstr(text, "\ntest_requests_total{service=\"t\"} 40000\n") != NULL);
    T_EQ_INT(count_of(text, "# TYPE test_requests_total counter\n"), 1);
    free(text);
}

static void test_counter_basics(void)
{
    metrics_counter_t *a = metrics_counter("test_plain_total", "No labels.", NULL);
    T_CHECK(a == metrics_counter("test_plain_total", "No labels.", ""));
    metrics_inc(a, 2);
    metrics_inc(a, 1);
    char *text = metrics_render();
    T_CHECK(strstr(text, "# HELP test_plain_total No labels.\n") != NULL);
    T_CHECK(strstr(text, "\ntest_plain_total 3\n") != NULL);
    free(text);
}

static void test_families(void)
{
    metrics_counter_t *ok = metrics_counter("test_http_total", "HTTP answers.", "code=\"200\"");
    metrics_counter_t *other = metrics_counter("test_between_total", "In between.", NULL);
    metrics_counter_t *bad = metrics_counter("test_http_total", "HTTP answers.", "code=\"500\"");
    T_CHECK(ok != bad);
    metrics_inc(ok, 7);
    metrics_inc(bad, 1);
    metrics_inc(other, 1);
    char *text = metrics_render();
    T_EQ_INT(count_of(text, "# HELP test_http_total "), 1);
    T_EQ_INT(count_of(text, "# TYPE test_http_total "), 1);
    /* Both label sets follow their one header, adjacent. */
    T_CHECK(strstr(text, "# TYPE test_http_total counter\ntest_http_total{code=\"200\"} 7\n"
                         "test_http_total{code=\"500\"} 1\n") != NULL);
    T_CHECK(well_formed(text));
    free(text);

    /* Help text is escaped; a name reused with another type is refused. */
    metrics_counter("test_escape_total", "back\\slash\nnewline", NULL);
    metrics_histogram_t *clash = metrics_histogram("test_http_total", "x", NULL);
    T_CHECK(clash != NULL);
    if (clash) metrics_observe_us(clash, 5);
    text = metrics_render();
    T_CHECK(strstr(text, "# HELP test_escape_total back\\\\slash\\nnewline\n") != NULL);
    T_EQ_INT(count_of(text, "test_http_total_bucket"), 0);
    free(text);
}

static void test_histogram(void)
{
    metrics_histogram_t *h = metrics_histogram("test_latency_seconds", "Latency.", "route=\"/x\"");
    metrics_histogram_t *h2 = metrics_histogram("test_latency_seconds", "Latency.", NULL);
    /* 50 and 100 (inclusive bound) in 0.1 ms; 150 in 0.25 ms; 1000 in 1 ms;
     * 10 s exactly in the last bucket; 20 s only in +Inf. */
    uint64_t obs[] = {50, 100, 150, 1000, 10000000, 20000000};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        metrics_observe_us(h, obs[i]);
    metrics_observe_us(h2, 3000);
    char *text = metrics_render();
    T_EQ_INT(count_of(text, "# TYPE test_latency_seconds histogram\n"), 1);
    const char *want[] = {
        "test_latency_seconds_bucket{route=\"/x\",le=\"0.0001\"} 2\n",
        "test_latency_seconds_bucket{route=\"/x\",le=\"0.00025\"} 3\n",
        "test_latency_seconds_bucket{route=\"/x\",le=\"0.0005\"} 3\n",
        "test_latency_seconds_bucket{route=\"/x\",le=\"0.001\"} 4\n",
        "test_latency_seconds_bucket{route=\"/x\",le=\"0.0025\"} 4\n",
        "test_latency_seconds_bucket{route=\"/x\",le=\"5\"} 4\n",
        "test_latency_seconds_bucket{route=\"/x\",le=\"10\"} 5\n",
        "test_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 6\n",
        "test_latency_seconds_sum{route=\"/x\"} 30.001300\n",
        "test_latency_seconds_count{route=\"/x\"} 6\n",
        "test_latency_seconds_bucket{le=\"0.0025\"} 0\n",
        "test_latency_seconds_bucket{le=\"0.005\"} 1\n",
        "test_latency_seconds_bucket{le=\"+Inf\"} 1\n",
        "test_latency_seconds_sum 0.003000\n",
        "test_latency_seconds_count 1\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int found = strstr(text, want[i]) != NULL;
        T_CHECK(found);
        if (!found) fprintf(stderr, "  missing: %s", want[i]);
    }
    /* 17 bucket lines per series, cumulative (never decreasing). */
    T_EQ_INT(count_of(text, "test_latency_seconds_bucket{route=\"/x\","), 17);
    long prev = -1;
    int monotonic = 1;
    for (const char *p = text; (p = strstr(p, "test_latency_seconds_bucket{route")); p++) {
        long v = strtol(strchr(p, ' ') + 1, NULL, 10);
        if (v < prev) monotonic = 0;
        prev = v;
    }
    T_CHECK(monotonic);
    T_CHECK(well_formed(text));
    free(text);
}

static void test_invalid_and_overflow(void)
{
    metrics_counter_t *drop = metrics_counter("ates_metrics_dropped_total", "", NULL);
    T_CHECK(drop != NULL);
    T_CHECK(metrics_counter("9starts_with_digit", "x", NULL) == drop);
    T_CHECK(metrics_counter(NULL, "x", NULL) == drop);
    T_CHECK(metrics_counter("test_bad_labels", "x", "a=\"}\"") == drop);
    T_CHECK(metrics_histogram("has space", "x", NULL) != NULL);

    metrics_counter_t *last = NULL;
    for (int i = 0; i < 600; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        last = metrics_counter("test_fill_total", "Fill.", labels);
        T_CHECK(last != NULL);
    }
    T_CHECK(last == drop);
    metrics_histogram_t *h = metrics_histogram("test_overflow_seconds", "x", NULL);
    T_CHECK(h != NULL);

    char *text = metrics_render();
    const char *p = strstr(text, "\nates_metrics_dropped_total ");
    T_CHECK(p != NULL);
    long before = p ? strtol(p + 28, NULL, 10) : -1;
    free(text);
    metrics_inc(last, 5);
    metrics_observe_us(h, 100);
    text = metrics_render();
    p = strstr(text, "\nates_metrics_dropped_total ");
    T_CHECK(p != NULL);
    T_EQ_INT(p ? strtol(p + 28, NULL, 10) : -1, before + 6);
    T_EQ_INT(count_of(text, "# TYPE ates_metrics_dropped_total counter\n"), 1);
    T_EQ_INT(count_of(text, "test_overflow_seconds"), 0);
    /* Earlier series still render after the registry filled. */
    T_CHECK(strstr(text, "\ntest_requests_total{service=\"t\"} 40000\n") != NULL);
    T_CHECK(well_formed(text));
    free(text);
}

int main(void)
{
    test_threads();
    test_counter_basics();
    test_families();
    test_histogram();
    test_invalid_and_overflow();
    return t_done();
}
