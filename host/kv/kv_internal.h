/* Internals shared by the kv front (kv.c: key prefix, failure policy,
 * metrics) and its backends (kv_redis.c, kv_sqlite.c).  Loop thread only. */
#ifndef ND_KV_INTERNAL_H
#define ND_KV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "kv/kv.h"
#include "metrics/metrics.h"

enum nd_kv_op { ND_KV_CLAIM = 0, ND_KV_MARK, ND_KV_EXISTS };

typedef struct nd_kv_ops {
  const char *name;
  /* `key` is the full key (prefix included).  0 = the callback runs later
   * on the loop (through nd_kv_answer / nd_kv_failed); < 0 = refused, no
   * callback. */
  int (*op)(nd_kv *kv, int op, const char *key, size_t key_len, int64_t ttl_ms, notifd_kv_cb cb,
            void *ud);
  int (*ready)(nd_kv *kv);
  void (*free)(nd_kv *kv); /* pending callbacks are dropped */
} nd_kv_ops;

struct nd_kv {
  notifd_host *host;
  struct event_base *base;
  const nd_kv_ops *ops;
  void *impl;
  char *prefix;          /* "eventstore:<key_prefix>:" */
  size_t prefix_len;
  int fail_closed;       /* policy when the backend fails */
  int64_t last_failure_log_ms;
  nd_metric *failopen, *errors;
};

/* The backend could not answer: applies the policy (fail-open: claim and
 * mark say 1, exists says 0; fail-closed: NOTIFD_EBACKEND), counts, logs
 * (at most once a second) and calls cb. */
void nd_kv_failed(nd_kv *kv, int op, notifd_kv_cb cb, void *ud, const char *why);

int nd_kv_redis_open(nd_kv *kv, nd_errors *errs);
int nd_kv_sqlite_open(nd_kv *kv, nd_errors *errs);
/* Embedded backend: keys written whose commit the loop has not yet seen
 * (the size of the "recent" map); for tests. */
size_t nd_kv_sqlite_recent(nd_kv *kv);
/* Embedded backend, for tests: reads of kv.db by the loop, misses the
 * filter answered without one, reads that found no live key (false
 * positives, or expired keys), filters built, and whether the loop has one. */
typedef struct nd_kv_sqlite_stat {
  uint64_t reads, skips, empty_reads, scans;
  int filter_ready;
} nd_kv_sqlite_stat;
void nd_kv_sqlite_stats(nd_kv *kv, nd_kv_sqlite_stat *st);
/* Embedded backend, for tests: rebuild the filter after every batch. */
void nd_kv_sqlite_scan_every_batch(nd_kv *kv);

#endif
