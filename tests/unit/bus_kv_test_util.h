/* Helpers for the bus and kv suites: config nodes built by hand (no YAML
 * needed), a minimal notifd_host, and running a loop until a condition. */
#ifndef BUS_KV_TEST_UTIL_H
#define BUS_KV_TEST_UTIL_H

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/host.h"
#include "metrics/metrics.h"
#include "util/buf.h"

static inline nd_cfg_node *tcfg_node(nd_cfg_kind kind, const char *str) {
  nd_cfg_node *n = calloc(1, sizeof *n);
  if (!n) abort();
  n->kind = kind;
  n->file = "test.yaml";
  n->line = n->col = 1;
  if (str && !(n->str = strdup(str))) abort();
  return n;
}

static inline nd_cfg_node *tcfg_map(void) { return tcfg_node(ND_CFG_MAP, NULL); }

/* Adds `child` under `key` (map) or appends it (sequence, key NULL). */
static inline nd_cfg_node *tcfg_add(nd_cfg_node *parent, const char *key, nd_cfg_node *child) {
  nd_cfg_node **v = realloc(parent->items, (parent->n + 1) * sizeof *v);
  if (!v) abort();
  parent->items = v;
  if (key && !(child->key = strdup(key))) abort();
  v[parent->n++] = child;
  return child;
}

static inline nd_cfg_node *tcfg_set(nd_cfg_node *map, const char *key, const char *value) {
  return tcfg_add(map, key, tcfg_node(ND_CFG_SCALAR, value));
}

static inline void tcfg_free(nd_cfg_node *n) { nd_cfg_node_free(n); }

/* The parts of a host the bus and kv read; phase INIT so consumers can
 * register (set h->phase = ND_PHASE_RUNNING before nd_bus_start). */
static inline notifd_host *thost_new(struct event_base *base, const char *data_dir) {
  notifd_host *h = calloc(1, sizeof *h);
  if (!h) abort();
  h->base = base;
  h->cfg.data_dir = data_dir ? strdup(data_dir) : NULL;
  nd_errors_init(&h->errs);
  h->metrics = nd_metrics_new();
  h->phase = ND_PHASE_INIT;
  return h;
}

/* Frees the host and the config nodes hung on it. */
static inline void thost_free(notifd_host *h) {
  if (!h) return;
  tcfg_free(h->cfg.bus_cfg);
  tcfg_free(h->cfg.kafka);
  tcfg_free(h->cfg.redis);
  tcfg_free(h->cfg.kv_cfg);
  free(h->cfg.data_dir);
  nd_metrics_free(h->metrics);
  nd_errors_free(&h->errs);
  free(h);
}

static inline void tloop_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  (void)arg;
}

/* Runs `base` until cond(arg) or timeout; returns 1 if cond became true. */
static inline int run_until(struct event_base *base, int (*cond)(void *), void *arg,
                            int timeout_ms) {
  struct event *tick = event_new(base, -1, EV_PERSIST, tloop_tick, NULL);
  struct timeval tv = {0, 2000};
  event_add(tick, &tv);
  int64_t end = nd_now_ms() + timeout_ms;
  int ok = 0;
  while (!(ok = cond(arg)) && nd_now_ms() < end) event_base_loop(base, EVLOOP_ONCE);
  event_free(tick);
  return ok;
}

/* Runs the loop for `ms` milliseconds. */
static inline int tnever(void *arg) {
  (void)arg;
  return 0;
}
static inline void run_for(struct event_base *base, int ms) { run_until(base, tnever, NULL, ms); }

#endif
