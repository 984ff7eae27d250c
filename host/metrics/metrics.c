/* Metric families with labelled series in open-addressing hash tables,
 * rendered in the Prometheus text exposition format (version 0.0.4). */
#include "metrics/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <notifd/plugin.h>
#include "util/buf.h"

#define ND_METRIC_MAX_LABELS 8

static const double default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,   0.1,   0.25,   0.5,   1,    2.5, 5, 10};

typedef struct series {
  char *key;        /* label values joined by '\x1f' ("" when no labels) */
  char **values;    /* split copy for rendering */
  double value;     /* counter / gauge */
  uint64_t *counts; /* histogram: per bucket (non-cumulative) + +Inf */
  double sum;
  uint64_t count;
} series;

struct notifd_metric {
  int type;
  char *name, *help;
  char **labels;
  size_t nlabels;
  double *buckets;
  size_t nbuckets;
  series **slots; /* hash table */
  size_t cap, n;
  struct notifd_metric *next;
};

struct nd_metrics {
  nd_metric *head, *tail;
};

static int valid_name(const char *s) {
  if (!s || !*s) return 0;
  for (const char *p = s; *p; p++) {
    int c = (unsigned char)*p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
             (p != s && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

nd_metrics *nd_metrics_new(void) { return calloc(1, sizeof(nd_metrics)); }

static void series_free(series *s, size_t nlabels) {
  if (!s) return;
  free(s->key);
  if (s->values)
    for (size_t i = 0; i < nlabels; i++) free(s->values[i]);
  free(s->values);
  free(s->counts);
  free(s);
}

static void metric_free(nd_metric *m) {
  for (size_t i = 0; i < m->cap; i++) series_free(m->slots[i], m->nlabels);
  free(m->slots);
  for (size_t i = 0; i < m->nlabels; i++) free(m->labels[i]);
  free(m->labels);
  free(m->buckets);
  free(m->name);
  free(m->help);
  free(m);
}

void nd_metrics_free(nd_metrics *r) {
  if (!r) return;
  nd_metric *m = r->head;
  while (m) {
    nd_metric *next = m->next;
    metric_free(m);
    m = next;
  }
  free(r);
}

static size_t count_labels(const char *const *labels) {
  size_t n = 0;
  while (labels && labels[n]) n++;
  return n;
}

static int same_shape(const nd_metric *m, int type, const char *const *labels) {
  if (m->type != type || m->nlabels != count_labels(labels)) return 0;
  for (size_t i = 0; i < m->nlabels; i++)
    if (strcmp(m->labels[i], labels[i]) != 0) return 0;
  return 1;
}

int nd_metric_register(nd_metrics *r, int type, const char *name, const char *help,
                       const char *const *labels, const double *buckets, size_t nbuckets,
                       nd_metric **out) {
  if (!r || !out || !valid_name(name) || type < ND_METRIC_COUNTER || type > ND_METRIC_HISTOGRAM)
    return NOTIFD_EINVAL;
  size_t nl = count_labels(labels);
  if (nl > ND_METRIC_MAX_LABELS) return NOTIFD_EINVAL;
  for (size_t i = 0; i < nl; i++)
    if (!valid_name(labels[i]) || strcmp(labels[i], "le") == 0) return NOTIFD_EINVAL;
  for (nd_metric *m = r->head; m; m = m->next) {
    if (strcmp(m->name, name) == 0) {
      if (!same_shape(m, type, labels)) return NOTIFD_EEXIST;
      *out = m;
      return 0;
    }
  }
  if (type == ND_METRIC_HISTOGRAM) {
    if (!buckets) {
      buckets = default_buckets;
      nbuckets = sizeof default_buckets / sizeof default_buckets[0];
    }
    if (nbuckets == 0) return NOTIFD_EINVAL;
    for (size_t i = 1; i < nbuckets; i++)
      if (!(buckets[i] > buckets[i - 1])) return NOTIFD_EINVAL;
  }
  nd_metric *m = calloc(1, sizeof *m);
  if (!m) return NOTIFD_ENOMEM;
  m->type = type;
  m->name = strdup(name);
  m->help = strdup(help ? help : "");
  m->labels = nl ? calloc(nl, sizeof(char *)) : NULL;
  if (!m->name || !m->help || (nl && !m->labels)) goto oom;
  m->nlabels = nl;
  for (size_t i = 0; i < nl; i++)
    if (!(m->labels[i] = strdup(labels[i]))) goto oom;
  if (type == ND_METRIC_HISTOGRAM) {
    m->buckets = malloc(nbuckets * sizeof(double));
    if (!m->buckets) goto oom;
    memcpy(m->buckets, buckets, nbuckets * sizeof(double));
    m->nbuckets = nbuckets;
  }
  if (r->tail) r->tail->next = m; else r->head = m;
  r->tail = m;
  *out = m;
  return 0;
oom:
  metric_free(m);
  return NOTIFD_ENOMEM;
}

/* FNV-1a over the joined label values. */
static size_t hash_values(const char *const *values, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    const char *v = values && values[i] ? values[i] : "";
    for (; *v; v++) h = (h ^ (unsigned char)*v) * 1099511628211ULL;
    h = (h ^ 0x1f) * 1099511628211ULL;
  }
  return (size_t)h;
}

static int key_matches(const series *s, const char *const *values, size_t n) {
  const char *k = s->key;
  for (size_t i = 0; i < n; i++) {
    const char *v = values && values[i] ? values[i] : "";
    size_t l = strlen(v);
    if (strncmp(k, v, l) != 0) return 0;
    k += l;
    if (i + 1 < n) {
      if (*k != '\x1f') return 0;
      k++;
    }
  }
  return *k == '\0';
}

static int grow(nd_metric *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  series **slots = calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < m->cap; i++) {
    series *s = m->slots[i];
    if (!s) continue;
    size_t j = hash_values((const char *const *)s->values, m->nlabels) & (cap - 1);
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = s;
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

static series *lookup(nd_metric *m, const char *const *values, int create) {
  if (m->cap) {
    size_t j = hash_values(values, m->nlabels) & (m->cap - 1);
    while (m->slots[j]) {
      if (key_matches(m->slots[j], values, m->nlabels)) return m->slots[j];
      j = (j + 1) & (m->cap - 1);
    }
  }
  if (!create) return NULL;
  if ((m->n + 1) * 4 > m->cap * 3 && grow(m) < 0) return NULL;
  series *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  nd_buf key;
  nd_buf_init(&key);
  if (m->nlabels) s->values = calloc(m->nlabels, sizeof(char *));
  for (size_t i = 0; i < m->nlabels; i++) {
    const char *v = values && values[i] ? values[i] : "";
    if (i) nd_buf_append(&key, "\x1f", 1);
    nd_buf_puts(&key, v);
    if (s->values) s->values[i] = strdup(v);
  }
  s->key = nd_buf_steal(&key, NULL);
  if (m->type == ND_METRIC_HISTOGRAM) s->counts = calloc(m->nbuckets + 1, sizeof(uint64_t));
  int bad = !s->key || (m->nlabels && !s->values) ||
            (m->type == ND_METRIC_HISTOGRAM && !s->counts);
  for (size_t i = 0; !bad && i < m->nlabels; i++)
    if (!s->values[i]) bad = 1;
  if (bad) {
    series_free(s, m->nlabels);
    return NULL;
  }
  size_t j = hash_values(values, m->nlabels) & (m->cap - 1);
  while (m->slots[j]) j = (j + 1) & (m->cap - 1);
  m->slots[j] = s;
  m->n++;
  return s;
}

void nd_metric_add(nd_metric *m, const char *const *values, double v) {
  if (!m || m->type == ND_METRIC_HISTOGRAM) return;
  if (m->type == ND_METRIC_COUNTER && !(v >= 0)) return; /* counters only go up */
  series *s = lookup(m, values, 1);
  if (s) s->value += v;
}

void nd_metric_set(nd_metric *m, const char *const *values, double v) {
  if (!m || m->type != ND_METRIC_GAUGE) return;
  series *s = lookup(m, values, 1);
  if (s) s->value = v;
}

void nd_metric_observe(nd_metric *m, const char *const *values, double v) {
  if (!m || m->type != ND_METRIC_HISTOGRAM || isnan(v)) return;
  series *s = lookup(m, values, 1);
  if (!s) return;
  size_t i = 0;
  while (i < m->nbuckets && v > m->buckets[i]) i++;
  s->counts[i]++;
  s->sum += v;
  s->count++;
}

double nd_metric_value(nd_metric *m, const char *const *values) {
  if (!m) return 0;
  series *s = lookup(m, values, 0);
  if (!s) return 0;
  return m->type == ND_METRIC_HISTOGRAM ? (double)s->count : s->value;
}

static void put_label_value(nd_buf *b, const char *v) {
  for (; *v; v++) {
    if (*v == '\\') nd_buf_puts(b, "\\\\");
    else if (*v == '"') nd_buf_puts(b, "\\\"");
    else if (*v == '\n') nd_buf_puts(b, "\\n");
    else nd_buf_append(b, v, 1);
  }
}

static void put_help(nd_buf *b, const char *v) {
  for (; *v; v++) {
    if (*v == '\\') nd_buf_puts(b, "\\\\");
    else if (*v == '\n') nd_buf_puts(b, "\\n");
    else nd_buf_append(b, v, 1);
  }
}

/* Shortest %g form that reads back as the same double (3.55, not
 * 3.5499999999999998). */
static void put_shortest(nd_buf *b, double v) {
  char tmp[32];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (prec == 17 || strtod(tmp, NULL) == v) break;
  }
  nd_buf_puts(b, tmp);
}

static void put_number(nd_buf *b, double v) {
  if (isinf(v)) nd_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  else if (isnan(v)) nd_buf_puts(b, "NaN");
  else if (v == (double)(int64_t)v && fabs(v) < 9e15) nd_buf_printf(b, "%lld", (long long)v);
  else put_shortest(b, v);
}

/* name{l1="v1",...[,le="x"]} */
static void put_series_name(nd_buf *b, const nd_metric *m, const char *suffix, const series *s,
                            const char *le) {
  nd_buf_puts(b, m->name);
  nd_buf_puts(b, suffix);
  if (m->nlabels == 0 && !le) return;
  nd_buf_puts(b, "{");
  for (size_t i = 0; i < m->nlabels; i++) {
    if (i) nd_buf_puts(b, ",");
    nd_buf_printf(b, "%s=\"", m->labels[i]);
    put_label_value(b, s->values[i]);
    nd_buf_puts(b, "\"");
  }
  if (le) nd_buf_printf(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
  nd_buf_puts(b, "}");
}

static int cmp_series(const void *a, const void *b) {
  const series *x = *(const series *const *)a, *y = *(const series *const *)b;
  return strcmp(x->key, y->key);
}

int nd_metrics_render(nd_metrics *r, char **out, size_t *len) {
  nd_buf b;
  nd_buf_init(&b);
  static const char *const type_names[] = {"", "counter", "gauge", "histogram"};
  for (nd_metric *m = r ? r->head : NULL; m; m = m->next) {
    nd_buf_printf(&b, "# HELP %s ", m->name);
    put_help(&b, m->help);
    nd_buf_printf(&b, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
    /* Stable output: series sorted by label values. */
    series **list = m->n ? malloc(m->n * sizeof *list) : NULL;
    size_t n = 0;
    if (m->n && !list) {
      nd_buf_free(&b);
      return NOTIFD_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++)
      if (m->slots[i]) list[n++] = m->slots[i];
    if (n > 1) qsort(list, n, sizeof *list, cmp_series);
    for (size_t i = 0; i < n; i++) {
      series *s = list[i];
      if (m->type != ND_METRIC_HISTOGRAM) {
        put_series_name(&b, m, "", s, NULL);
        nd_buf_puts(&b, " ");
        put_number(&b, s->value);
        nd_buf_puts(&b, "\n");
        continue;
      }
      uint64_t cum = 0;
      for (size_t k = 0; k <= m->nbuckets; k++) {
        cum += s->counts[k];
        char le[64];
        if (k == m->nbuckets) snprintf(le, sizeof le, "+Inf");
        else snprintf(le, sizeof le, "%g", m->buckets[k]);
        put_series_name(&b, m, "_bucket", s, le);
        nd_buf_printf(&b, " %llu\n", (unsigned long long)cum);
      }
      put_series_name(&b, m, "_sum", s, NULL);
      nd_buf_puts(&b, " ");
      put_number(&b, s->sum);
      nd_buf_puts(&b, "\n");
      put_series_name(&b, m, "_count", s, NULL);
      nd_buf_printf(&b, " %llu\n", (unsigned long long)s->count);
    }
    free(list);
  }
  if (b.oom) {
    nd_buf_free(&b);
    return NOTIFD_ENOMEM;
  }
  *out = nd_buf_steal(&b, len);
  return *out ? 0 : NOTIFD_ENOMEM;
}
