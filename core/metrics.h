/*
 * metrics: counters and latency histograms, rendered as Prometheus text for
 * GET /metrics. Series are registered once (name + label text) and updated
 * lock-free with atomics from any thread.
 */
#ifndef ATES_METRICS_H
#define ATES_METRICS_H

#include <stdint.h>

typedef struct metrics_counter metrics_counter_t;
typedef struct metrics_histogram metrics_histogram_t;

/* Get or create the series `name{labels}` ("" or NULL labels for none;
 * labels are Prometheus label text like `service="auth",code="200"`).
 * Never NULL: the registry is bounded and an overflow folds into a shared
 * `ates_metrics_dropped_total` series. */
metrics_counter_t *metrics_counter(const char *name, const char *help, const char *labels);
metrics_histogram_t *metrics_histogram(const char *name, const char *help, const char *labels);

void metrics_inc(metrics_counter_t *c, uint64_t by);
/* Observe a duration in microseconds (buckets 0.1 ms .. 10 s). */
void metrics_observe_us(metrics_histogram_t *h, uint64_t us);

/* The whole registry as Prometheus text exposition (malloc'd). */
char *metrics_render(void);

#endif
