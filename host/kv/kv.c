/* kv / dedupe front: key prefix ("eventstore:<prefix>:<key>", as the Go
 * event store wrote them), backend choice, and the failure policy. */
#include "kv/kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"
#include "notifd_build_config.h"
#include "log/log.h"
#include "util/buf.h"

static const char *const op_names[] = {"claim", "mark", "exists"};

static int cfg_str(nd_cfg_node *map, const char *key, const char *def, const char **out,
                   nd_errors *e) {
  *out = def;
  nd_cfg_node *n = map ? nd_cfg_get(map, key) : NULL;
  if (!n || n->is_null) return 0;
  return nd_cfg_as_string(n, e, out);
}

static int open_redis(nd_kv *kv, nd_cfg_node *section, nd_errors *errs) {
#if NOTIFD_WITH_REDIS
  (void)section;
  return nd_kv_redis_open(kv, errs);
#else
  (void)kv;
  return nd_errors_backend_missing(errs, section, "redis", "Redis");
#endif
}

int nd_kv_open(notifd_host *h, nd_kv **out, nd_errors *errs) {
  if (!h || !out) return NOTIFD_EINVAL;
  *out = NULL;
  nd_kv *kv = calloc(1, sizeof *kv);
  if (!kv) return NOTIFD_ENOMEM;
  kv->host = h;
  kv->base = h->base;
  /* backends.redis.key_prefix (the Go EVENT_STORE_KEY_PREFIX) wins over
   * kv.key_prefix; both default to "notifd". */
  const char *prefix = "notifd", *rp = NULL, *policy = "fail-open";
  int bad = cfg_str(h->cfg.kv_cfg, "key_prefix", prefix, &prefix, errs) < 0;
  bad |= cfg_str(h->cfg.redis, "key_prefix", NULL, &rp, errs) < 0;
  bad |= cfg_str(h->cfg.redis, "policy", policy, &policy, errs) < 0;
  if (rp) prefix = rp;
  if (!bad && strcmp(policy, "fail-open") != 0 && strcmp(policy, "fail-closed") != 0) {
    nd_cfg_node *n = nd_cfg_get(h->cfg.redis, "policy");
    nd_errors_add(errs, n ? n->file : NULL, n ? n->line : 0, n ? n->col : 0,
                  "backends.redis.policy: expected fail-open or fail-closed, got '%s'", policy);
    bad = 1;
  }
  if (bad) {
    free(kv);
    return NOTIFD_EINVAL;
  }
  kv->fail_closed = strcmp(policy, "fail-closed") == 0;
  nd_buf p;
  nd_buf_init(&p);
  nd_buf_printf(&p, "eventstore:%s:", prefix);
  kv->prefix = nd_buf_steal(&p, &kv->prefix_len);
  if (!kv->prefix) {
    free(kv);
    return NOTIFD_ENOMEM;
  }
  if (h->metrics) {
    static const char *const l[] = {"op", NULL};
    nd_metric_register(h->metrics, ND_METRIC_COUNTER, "notifd_kv_failopen_total",
                       "kv operations answered by the fail-open policy (backend down).", l, NULL,
                       0, &kv->failopen);
    nd_metric_register(h->metrics, ND_METRIC_COUNTER, "notifd_kv_errors_total",
                       "kv operations the backend could not answer.", l, NULL, 0, &kv->errors);
  }
  int rc = h->cfg.redis ? open_redis(kv, h->cfg.redis, errs) : nd_kv_sqlite_open(kv, errs);
  if (rc < 0) {
    free(kv->prefix);
    free(kv);
    return rc;
  }
  ND_INFO("kv", "kv backend %s %s (prefix %s, %s)", kv->ops->name,
          h->check_only ? "settings checked (--check opens nothing)" : "opened", kv->prefix,
          kv->fail_closed ? "fail-closed" : "fail-open");
  *out = kv;
  return 0;
}

void nd_kv_free(nd_kv *kv) {
  if (!kv) return;
  kv->ops->free(kv);
  free(kv->prefix);
  free(kv);
}

int nd_kv_ready(nd_kv *kv) { return kv && kv->ops->ready(kv); }

void nd_kv_failed(nd_kv *kv, int op, notifd_kv_cb cb, void *ud, const char *why) {
  const char *l[] = {op_names[op]};
  if (kv->errors) nd_metric_add(kv->errors, l, 1);
  int64_t now = nd_now_ms();
  int log_it = now - kv->last_failure_log_ms >= 1000;
  if (log_it) kv->last_failure_log_ms = now;
  int32_t result;
  if (kv->fail_closed) {
    result = NOTIFD_EBACKEND;
    if (log_it) ND_WARN("kv", "%s failed (%s): reporting an error (fail-closed)", op_names[op], why);
  } else {
    result = op == ND_KV_EXISTS ? 0 : 1;
    if (kv->failopen) nd_metric_add(kv->failopen, l, 1);
    if (log_it)
      ND_WARN("kv", "%s failed (%s): treating the key as new (fail-open)", op_names[op], why);
  }
  if (cb) cb(result, ud);
}

static int run(nd_kv *kv, int op, const char *key, int64_t ttl_ms, notifd_kv_cb cb, void *ud) {
  if (!kv || !key || ttl_ms < 0) return NOTIFD_EINVAL;
  size_t kl = strlen(key);
  char stackbuf[256];
  size_t total = kv->prefix_len + kl;
  char *full = total < sizeof stackbuf ? stackbuf : malloc(total + 1);
  if (!full) return NOTIFD_ENOMEM;
  memcpy(full, kv->prefix, kv->prefix_len);
  memcpy(full + kv->prefix_len, key, kl + 1);
  int rc = kv->ops->op(kv, op, full, total, ttl_ms, cb, ud);
  if (full != stackbuf) free(full);
  return rc;
}

int nd_kv_claim(nd_kv *kv, const char *key, int64_t ttl_ms, notifd_kv_cb cb, void *ud) {
  return run(kv, ND_KV_CLAIM, key, ttl_ms, cb, ud);
}

int nd_kv_mark(nd_kv *kv, const char *key, int64_t ttl_ms, notifd_kv_cb cb, void *ud) {
  return run(kv, ND_KV_MARK, key, ttl_ms, cb, ud);
}

int nd_kv_exists(nd_kv *kv, const char *key, notifd_kv_cb cb, void *ud) {
  return run(kv, ND_KV_EXISTS, key, 0, cb, ud);
}
