/* Metric registry: counters, gauges and histograms with labels, rendered in
 * Prometheus text format.  Loop thread only. */
#ifndef ND_METRICS_H
#define ND_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct nd_metrics nd_metrics;
typedef struct notifd_metric nd_metric; /* the SDK's opaque handle */

enum { ND_METRIC_COUNTER = 1, ND_METRIC_GAUGE, ND_METRIC_HISTOGRAM };

nd_metrics *nd_metrics_new(void);
void nd_metrics_free(nd_metrics *r);

/* Returns NOTIFD_EEXIST for a name registered with another type or labels;
 * the same name/type/labels returns the existing metric (so two plugins or
 * two hosts' subsystems can share one family). Name and labels must match
 * [a-zA-Z_:][a-zA-Z0-9_:]* (NOTIFD_EINVAL otherwise). */
int nd_metric_register(nd_metrics *r, int type, const char *name,
                       const char *help, const char *const *labels,
                       const double *buckets, size_t nbuckets,
                       nd_metric **out);

void nd_metric_add(nd_metric *m, const char *const *values, double v);
void nd_metric_set(nd_metric *m, const char *const *values, double v);
void nd_metric_observe(nd_metric *m, const char *const *values, double v);
/* Current value of a counter/gauge series (0 if absent); for tests. */
double nd_metric_value(nd_metric *m, const char *const *values);

/* Appends the exposition text to a growing buffer (malloc'd, *out). */
int nd_metrics_render(nd_metrics *r, char **out, size_t *len);

#endif
