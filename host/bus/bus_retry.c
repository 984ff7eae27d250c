/* Retry policy of a consumer: where each knob comes from, and the backoff. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus_internal.h"

/* Built-in defaults: the contract's .env.example (3 retries, 1s, 30s, x2). */
#define RETRY_DEF_ATTEMPTS 4
#define RETRY_DEF_INITIAL_MS 1000
#define RETRY_DEF_MAX_MS 30000
#define RETRY_DEF_MULT 2.0
#define RETRY_DEF_JITTER 0.2

/* The Go service read CHAT_PERSISTENCE_CHANGE_KAFKA_CONSUMER_INFO_MESSAGE_RETRY_X
 * (envconfig prefix), its docs named MESSAGE_RETRY_X; both are honoured, the
 * prefixed one first. */
static const char *const env_prefixes[] = {
    "CHAT_PERSISTENCE_CHANGE_KAFKA_CONSUMER_INFO_MESSAGE_RETRY_", "MESSAGE_RETRY_", NULL};

static const char *env_lookup(const char *field, char *name, size_t namelen) {
  for (size_t i = 0; env_prefixes[i]; i++) {
    snprintf(name, namelen, "%s%s", env_prefixes[i], field);
    const char *v = getenv(name);
    if (v && *v) return v;
  }
  return NULL;
}

static int env_int(const char *field, int64_t *out, int *found, nd_errors *errs) {
  char name[128];
  const char *v = env_lookup(field, name, sizeof name);
  if (!v) return 0;
  char *end;
  long long n = strtoll(v, &end, 0);
  if (*end || n < 0 || n > 1000000) {
    nd_errors_add(errs, NULL, 0, 0, "environment %s: expected a non-negative integer, got '%s'",
                  name, v);
    return -1;
  }
  *out = n;
  *found = 1;
  return 0;
}

static int env_duration(const char *field, int64_t *out, int *found, nd_errors *errs) {
  char name[128];
  const char *v = env_lookup(field, name, sizeof name);
  if (!v) return 0;
  if (nd_parse_duration_ms(v, out) < 0 || *out < 0) {
    nd_errors_add(errs, NULL, 0, 0, "environment %s: expected a duration like 1s, got '%s'", name,
                  v);
    return -1;
  }
  *found = 1;
  return 0;
}

static int env_double(const char *field, double *out, int *found, nd_errors *errs) {
  char name[128];
  const char *v = env_lookup(field, name, sizeof name);
  if (!v) return 0;
  char *end;
  double d = strtod(v, &end);
  if (*end || !isfinite(d) || d < 0) {
    nd_errors_add(errs, NULL, 0, 0, "environment %s: expected a number, got '%s'", name, v);
    return -1;
  }
  *out = d;
  *found = 1;
  return 0;
}

int nd_retry_resolve(const notifd_consumer_opts *o, const nd_retry_cfg *cfg, nd_retry_policy *out,
                     nd_errors *errs) {
  /* Lowest precedence first, each layer overriding what it sets. */
  nd_retry_policy p = {RETRY_DEF_ATTEMPTS, RETRY_DEF_INITIAL_MS, RETRY_DEF_MAX_MS, RETRY_DEF_MULT,
                       RETRY_DEF_JITTER};
  if (cfg && cfg->max_attempts > 0) {
    /* The config module filled bus.retry (from YAML or its defaults). */
    p.max_attempts = cfg->max_attempts;
    if (cfg->initial_interval_ms > 0) p.initial_ms = cfg->initial_interval_ms;
    if (cfg->max_interval_ms > 0) p.max_ms = cfg->max_interval_ms;
    if (cfg->multiplier > 0) p.multiplier = cfg->multiplier;
    p.jitter = cfg->jitter;
  }

  int64_t n;
  double d;
  int found = 0, bad = 0;
  if (env_int("MAX_RETRIES", &n, &found, errs) < 0) bad = 1;
  else if (found) p.max_attempts = (int32_t)n + 1; /* retries after the first attempt */
  found = 0;
  if (env_duration("INITIAL_INTERVAL", &n, &found, errs) < 0) bad = 1;
  else if (found) p.initial_ms = n;
  found = 0;
  if (env_duration("MAX_INTERVAL", &n, &found, errs) < 0) bad = 1;
  else if (found) p.max_ms = n;
  found = 0;
  if (env_double("MULTIPLIER", &d, &found, errs) < 0) bad = 1;
  else if (found) p.multiplier = d;
  if (bad) return NOTIFD_EINVAL;

  if (o) {
    if (o->max_attempts > 0) p.max_attempts = o->max_attempts;
    if (o->initial_interval_ms > 0) p.initial_ms = o->initial_interval_ms;
    if (o->max_interval_ms > 0) p.max_ms = o->max_interval_ms;
    if (o->multiplier > 0) p.multiplier = o->multiplier;
    if (o->jitter > 0) p.jitter = o->jitter;
    else if (o->jitter < 0) p.jitter = 0; /* explicit "no jitter" */
  }
  /* Normalise: a zero-valued Go RetryConfig meant a single attempt. */
  if (p.max_attempts < 1) p.max_attempts = 1;
  if (p.multiplier < 1.0 || !isfinite(p.multiplier)) p.multiplier = 1.0;
  if (p.jitter < 0 || !isfinite(p.jitter)) p.jitter = 0;
  if (p.jitter > 1) p.jitter = 1;
  if (p.initial_ms < 0) p.initial_ms = 0;
  if (p.max_ms < p.initial_ms) p.max_ms = p.initial_ms;
  *out = p;
  return 0;
}

/* Per-thread xorshift: two hosts on two threads never share it. */
static double rand01(void) {
  static __thread uint64_t s;
  if (!s) s = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&s;
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return (double)(s >> 11) / (double)(1ULL << 53);
}

int64_t nd_retry_delay_ms(const nd_retry_policy *p, int32_t next_attempt) {
  double wait = (double)p->initial_ms;
  for (int32_t i = 2; i < next_attempt && wait < (double)p->max_ms; i++) wait *= p->multiplier;
  if (wait > (double)p->max_ms) wait = (double)p->max_ms;
  wait -= wait * p->jitter * rand01();
  return wait < 0 ? 0 : (int64_t)wait;
}
