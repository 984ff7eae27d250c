/* Embedded (SQLite) bus: order under retries, at-least-once across restart,
 * kill -9 durability, dead letters, poison drops, group split, retention,
 * start position, cross-process wake-up, retry policy resolution. */
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/bus_internal.h"
#include "bus_kv_test_util.h"
#include "nd_test.h"

/* ---- a recording consumer ---- */

typedef struct delivery {
  int32_t part;
  int64_t off;
  int attempt;
  int val;
  char key[16];
} delivery;

typedef struct tstate {
  delivery d[4096];
  int nd;
  int acks[4096]; /* values in ack order */
  char ack_keys[4096][16];
  int nacked;
  int produced, produce_failed;
  int retry_mod, retry_until; /* retry val % mod == 0 while attempt < until */
  int always_retry;
  int hold_after;             /* >= 0: stop finishing after this many acks */
  notifd_bus_msg *held[64];
  int nheld;
  int exhausted, exhausted_finish_rc;
  int stopped;
  /* dead-letter reader */
  char dlq_hdr[64][7][64];
  int ndlq;
  char dlq_key[64][16];
} tstate;

static int value_of(notifd_bus_msg *m) {
  size_t n;
  const char *v = nd_msg_value(m, &n);
  char buf[32];
  if (!v || n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, v, n);
  buf[n] = '\0';
  return buf[0] == 'v' ? atoi(buf + 1) : -1;
}

static void record(tstate *t, notifd_bus_msg *m) {
  if (t->nd >= 4096) return;
  delivery *d = &t->d[t->nd++];
  d->part = nd_msg_partition(m);
  d->off = nd_msg_offset(m);
  d->attempt = nd_msg_attempt(m);
  d->val = value_of(m);
  size_t kl;
  const char *k = nd_msg_key(m, &kl);
  snprintf(d->key, sizeof d->key, "%.*s", k ? (int)kl : 0, k ? k : "");
}

static void do_ack(tstate *t, notifd_bus_msg *m) {
  int v = value_of(m);
  size_t kl;
  const char *k = nd_msg_key(m, &kl);
  if (t->nacked < 4096) {
    snprintf(t->ack_keys[t->nacked], 16, "%.*s", k ? (int)kl : 0, k ? k : "");
    t->acks[t->nacked++] = v;
  }
  ck_assert_int_eq(nd_bus_ack(m), 0);
}

static void handler(notifd_bus_msg *m, void *ud) {
  tstate *t = ud;
  record(t, m);
  if (t->hold_after >= 0 && t->nacked >= t->hold_after) {
    if (t->nheld < 64) t->held[t->nheld++] = m;
    return;
  }
  size_t vl;
  const char *v = nd_msg_value(m, &vl);
  if (v && vl == 3 && memcmp(v, "bad", 3) == 0) {
    ck_assert_int_eq(nd_bus_drop(m, "invalid_format"), 0);
    return;
  }
  if (t->always_retry) {
    ck_assert_int_eq(nd_bus_retry(m, "boom"), 0);
    return;
  }
  int val = value_of(m);
  if (t->retry_mod && val % t->retry_mod == 0 && nd_msg_attempt(m) < t->retry_until) {
    ck_assert_int_eq(nd_bus_retry(m, "again"), 0);
    return;
  }
  do_ack(t, m);
}

static void on_exhausted(notifd_bus_msg *m, const char *error, void *ud) {
  tstate *t = ud;
  t->exhausted++;
  ck_assert_str_eq(error, "boom");
  t->exhausted_finish_rc = nd_bus_ack(m); /* must be refused */
}

static void dlq_handler(notifd_bus_msg *m, void *ud) {
  tstate *t = ud;
  static const char *const names[] = {"notifd-error",           "notifd-attempts",
                                      "notifd-original-topic",  "notifd-original-partition",
                                      "notifd-original-offset", "h1",
                                      "notifd-group"};
  if (t->ndlq < 64) {
    for (int i = 0; i < 7; i++) {
      size_t n;
      const char *v = nd_msg_header(m, names[i], &n);
      snprintf(t->dlq_hdr[t->ndlq][i], 64, "%.*s", v ? (int)n : 4, v ? v : "NULL");
    }
    size_t kl;
    const char *k = nd_msg_key(m, &kl);
    snprintf(t->dlq_key[t->ndlq], 16, "%.*s", k ? (int)kl : 0, k ? k : "");
    t->ndlq++;
  }
  nd_bus_ack(m);
}

static void on_produced(int32_t status, void *ud) {
  tstate *t = ud;
  if (status == 0) t->produced++;
  else t->produce_failed++;
}

static void on_stopped(void *ud) { ((tstate *)ud)->stopped = 1; }

/* ---- fixture ---- */

typedef struct env {
  char *dir;
  struct event_base *base;
  notifd_host *h;
  nd_bus *b;
} env;

static void env_open(env *e, nd_cfg_node *bus_cfg) {
  if (!e->dir) e->dir = nd_test_tmpdir();
  ck_assert_ptr_nonnull(e->dir);
  if (!e->base) e->base = event_base_new();
  e->h = thost_new(e->base, e->dir);
  e->h->cfg.bus_cfg = bus_cfg;
  ck_assert_int_eq(nd_bus_open(e->h, &e->b, &e->h->errs), 0);
}

static notifd_consumer *consume(env *e, const char *topic, const char *group, void *t,
                                int max_attempts, notifd_bus_handler h) {
  const char *topics[] = {topic, NULL};
  notifd_consumer_opts o;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.topics = topics;
  o.group = group;
  o.handler = h ? h : handler;
  o.ud = t;
  o.max_attempts = max_attempts;
  o.initial_interval_ms = 2;
  o.max_interval_ms = 5;
  o.multiplier = 1.0;
  o.on_exhausted = on_exhausted;
  notifd_consumer *c = NULL;
  ck_assert_int_eq(nd_bus_consume(e->b, NULL, &o, &c), 0);
  return c;
}

static void start(env *e) {
  e->h->phase = ND_PHASE_RUNNING;
  ck_assert_int_eq(nd_bus_start(e->b), 0);
}

static void produce_n(env *e, const char *topic, int from, int n, int nkeys, tstate *t) {
  for (int i = from; i < from + n; i++) {
    char key[16], val[16], hv[16];
    snprintf(key, sizeof key, "k%d", nkeys ? i % nkeys : 0);
    snprintf(val, sizeof val, "v%d", i);
    snprintf(hv, sizeof hv, "x%d", i);
    const char *hdrs[] = {"h1", hv, NULL};
    ck_assert_int_eq(
        nd_bus_produce(e->b, topic, key, strlen(key), val, strlen(val), hdrs, on_produced, t), 0);
  }
}

static int stopped_cond(void *a) { return ((tstate *)a)->stopped; }

/* Graceful stop then free (keeps dir and base for a reopen). */
static void env_close(env *e, tstate *t) {
  t->stopped = 0;
  nd_bus_stop(e->b, on_stopped, t);
  ck_assert(run_until(e->base, stopped_cond, t, 5000));
  nd_bus_free(e->b);
  e->b = NULL;
  thost_free(e->h);
  e->h = NULL;
}

static void env_done(env *e) {
  if (e->b) nd_bus_free(e->b);
  if (e->h) thost_free(e->h);
  if (e->base) event_base_free(e->base);
  nd_test_rmrf(e->dir);
  free(e->dir);
  memset(e, 0, sizeof *e);
}

static int target;
static int acked_cond(void *a) { return ((tstate *)a)->nacked >= target; }
static int produced_cond(void *a) { return ((tstate *)a)->produced >= target; }
static int delivered_cond(void *a) { return ((tstate *)a)->nd >= target; }
static int dlq_cond(void *a) { return ((tstate *)a)->ndlq >= target; }

static tstate *tnew(void) {
  tstate *t = calloc(1, sizeof *t);
  ck_assert_ptr_nonnull(t);
  t->hold_after = -1;
  return t;
}

static double metric(env *e, nd_metric *m, const char *group, const char *topic) {
  (void)e;
  const char *l[] = {group, topic};
  return m ? nd_metric_value(m, l) : -1;
}

/* ---- tests ---- */

START_TEST(order_per_partition_under_retries) {
  env e = {0};
  tstate *t = tnew();
  t->retry_mod = 7;
  t->retry_until = 3;
  env_open(&e, NULL);
  consume(&e, "orders", "g1", t, 5, NULL);
  start(&e);
  produce_n(&e, "orders", 0, 300, 10, t);
  target = 300;
  ck_assert(run_until(e.base, acked_cond, t, 10000));
  ck_assert_int_eq(t->produced, 300);
  /* per key: acks in production order */
  for (int k = 0; k < 10; k++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", k);
    int last = -1;
    for (int i = 0; i < t->nacked; i++) {
      if (strcmp(t->ack_keys[i], key) != 0) continue;
      ck_assert_msg(t->acks[i] > last, "key %s: %d after %d", key, t->acks[i], last);
      last = t->acks[i];
    }
  }
  /* per partition: a retried record is redelivered before anything later */
  for (int p = 0; p < 4; p++) {
    int64_t last = -1;
    for (int i = 0; i < t->nd; i++) {
      if (t->d[i].part != p) continue;
      ck_assert_msg(t->d[i].off >= last, "partition %d went back", p);
      if (t->d[i].off == last) ck_assert_int_gt(t->d[i].attempt, 1);
      last = t->d[i].off;
    }
  }
  int retried_vals = 0;
  for (int v = 0; v < 300; v++) retried_vals += v % 7 == 0;
  ck_assert_int_eq(t->nd, 300 + 2 * retried_vals);
  ck_assert(metric(&e, e.b->m.acked, "g1", "orders") == 300);
  ck_assert(metric(&e, e.b->m.consumed, "g1", "orders") == 300);
  ck_assert(metric(&e, e.b->m.retried, "g1", "orders") == 2 * retried_vals);
  env_close(&e, t);
  env_done(&e);
  free(t);
}
END_TEST

START_TEST(at_least_once_across_restart) {
  env e = {0};
  tstate *t = tnew();
  t->hold_after = 20; /* ack 20, then leave the rest unfinished */
  env_open(&e, NULL);
  consume(&e, "work", "g", t, 1, NULL);
  start(&e);
  produce_n(&e, "work", 0, 50, 5, t);
  target = 20;
  ck_assert(run_until(e.base, acked_cond, t, 5000));
  run_for(e.base, 50); /* the acks' cursor writes happen this iteration */
  ck_assert_int_eq(t->nacked, 20);
  ck_assert_int_gt(t->nheld, 0);
  /* abrupt close: nothing in flight is committed */
  nd_bus_free(e.b);
  e.b = NULL;
  thost_free(e.h);
  e.h = NULL;

  tstate *t2 = tnew();
  env_open(&e, NULL);
  consume(&e, "work", "g", t2, 1, NULL);
  start(&e);
  target = 30;
  ck_assert(run_until(e.base, acked_cond, t2, 5000));
  run_for(e.base, 100);
  ck_assert_int_eq(t2->nacked, 30);
  int seen[50] = {0};
  for (int i = 0; i < t->nacked; i++) seen[t->acks[i]]++;
  for (int i = 0; i < t2->nacked; i++) seen[t2->acks[i]]++;
  for (int v = 0; v < 50; v++) ck_assert_msg(seen[v] == 1, "value %d handled %d times", v, seen[v]);
  env_close(&e, t2);
  env_done(&e);
  free(t);
  free(t2);
}
END_TEST

/* ---- kill -9 ---- */

typedef struct kid {
  env *e;
  int fd;
  int next, limit;
  struct event *log_ev;
  int pending_acks[4096];
  int npending;
} kid;

static void kid_write(int fd, char kind, int v) {
  char line[32];
  int n = snprintf(line, sizeof line, "%c %d\n", kind, v);
  if (write(fd, line, (size_t)n) != n) _exit(3);
}

static void kid_produce_next(kid *k);

typedef struct kid_rec {
  kid *k;
  int v;
} kid_rec;

static void kid_on_produced(int32_t status, void *ud) {
  kid_rec *r = ud;
  kid *k = r->k;
  if (status == 0) kid_write(k->fd, 'P', r->v); /* confirmed durable */
  free(r);
  kid_produce_next(k);
}

static void kid_produce_next(kid *k) {
  if (k->next >= k->limit) return;
  kid_rec *r = malloc(sizeof *r);
  if (!r) _exit(4);
  r->k = k;
  r->v = k->next++;
  char key[16], val[16];
  snprintf(key, sizeof key, "k%d", r->v % 7);
  snprintf(val, sizeof val, "v%d", r->v);
  if (nd_bus_produce(k->e->b, "dur", key, strlen(key), val, strlen(val), NULL, kid_on_produced,
                     r) < 0)
    _exit(5);
}

/* Runs after the flush that made the acks durable: active events run in
 * FIFO order and the flush event was activated by the first ack. */
static void kid_log_acks(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  kid *k = arg;
  for (int i = 0; i < k->npending; i++) kid_write(k->fd, 'A', k->pending_acks[i]);
  k->npending = 0;
}

typedef struct kid_ack {
  kid *k;
  notifd_bus_msg *m;
  struct event *ev;
} kid_ack;

/* Acks a little later so a backlog builds up: at the kill some records are
 * confirmed but not yet consumed. */
static void kid_ack_later(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  kid_ack *a = arg;
  kid *k = a->k;
  int v = value_of(a->m);
  kid_write(k->fd, 'T', v); /* about to ack (durable only after the flush) */
  nd_bus_ack(a->m);
  if (k->npending < 4096) k->pending_acks[k->npending++] = v;
  event_active(k->log_ev, EV_TIMEOUT, 0);
  event_free(a->ev);
  free(a);
}

static void kid_handler(notifd_bus_msg *m, void *ud) {
  kid *k = ud;
  kid_ack *a = malloc(sizeof *a);
  if (!a) _exit(6);
  a->k = k;
  a->m = m;
  a->ev = evtimer_new(k->e->base, kid_ack_later, a);
  struct timeval tv = {0, 500};
  evtimer_add(a->ev, &tv);
}

static int count_lines(const char *path, char kind) {
  char *s = nd_test_read_file(path);
  int n = 0;
  for (char *p = s; p && *p;) {
    n += *p == kind;
    char *nl = strchr(p, '\n');
    if (!nl) break;
    p = nl + 1;
  }
  free(s);
  return n;
}

#define KMAX 2000000
static unsigned char k_produced[KMAX], k_acked[KMAX], k_tried[KMAX], k_audit[KMAX], k_redelivered[KMAX];
static int k_naudit, k_nredelivered;

static void audit_handler(notifd_bus_msg *m, void *ud) {
  (void)ud;
  int v = value_of(m);
  if (v >= 0 && v < KMAX && !k_audit[v]) k_audit[v] = 1, k_naudit++;
  nd_bus_ack(m);
}

static void resumed_handler(notifd_bus_msg *m, void *ud) {
  (void)ud;
  int v = value_of(m);
  if (v >= 0 && v < KMAX) k_redelivered[v]++, k_nredelivered++;
  nd_bus_ack(m);
}

START_TEST(kill9_loses_nothing_confirmed) {
  env e = {0};
  e.dir = nd_test_tmpdir();
  char logpath[600];
  snprintf(logpath, sizeof logpath, "%s/child.log", e.dir);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0) _exit(2);
    /* Cursor moves in the flush right after the acks, so the log's 'A'
     * lines are durable ones (by default they are written once per 20 ms
     * window, and a kill repeats up to that window: at-least-once). */
    nd_cfg_node *bus = tcfg_map();
    tcfg_set(tcfg_add(bus, "embedded", tcfg_map()), "cursor_commit_delay", "0");
    env_open(&e, bus);
    static kid k;
    k.e = &e;
    k.fd = fd;
    k.limit = KMAX - 1;
    k.log_ev = event_new(e.base, -1, 0, kid_log_acks, &k);
    consume(&e, "dur", "g", &k, 1, kid_handler);
    start(&e);
    for (int i = 0; i < 4; i++) kid_produce_next(&k); /* 4 produce chains */
    run_for(e.base, 20000);
    _exit(0);
  }
  /* let the child get well into producing and acking, then kill it */
  int64_t end = nd_now_ms() + 15000;
  while (nd_now_ms() < end &&
         (count_lines(logpath, 'P') < 3000 || count_lines(logpath, 'A') < 500))
    usleep(2000);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  ck_assert(WIFSIGNALED(st));

  char *log = nd_test_read_file(logpath);
  ck_assert_ptr_nonnull(log);
  int np = 0, na = 0;
  for (char *p = log; *p;) {
    char kind;
    int v;
    if (sscanf(p, "%c %d", &kind, &v) == 2 && v >= 0 && v < KMAX) {
      if (kind == 'P') k_produced[v] = 1, np++;
      if (kind == 'A') k_acked[v] = 1, na++;
      if (kind == 'T') k_tried[v] = 1;
    }
    char *nl = strchr(p, '\n');
    if (!nl) break;
    p = nl + 1;
  }
  free(log);
  ck_assert_int_ge(np, 3000);
  ck_assert_int_ge(na, 500);

  /* reopen: an audit group reads everything, the child's group resumes */
  e.base = event_base_new();
  env_open(&e, NULL);
  consume(&e, "dur", "audit", NULL, 1, audit_handler);
  consume(&e, "dur", "g", NULL, 1, resumed_handler);
  start(&e);
  int last = -1;
  for (int i = 0; i < 100; i++) {
    run_for(e.base, 200);
    int total = k_naudit + k_nredelivered;
    if (total == last) break;
    last = total;
  }
  int missing = 0, again = 0, lost = 0;
  for (int v = 0; v < KMAX; v++) {
    if (k_produced[v] && !k_audit[v]) missing++;
    if (k_acked[v] && k_redelivered[v]) again++;
    /* acked-but-not-logged (killed between COMMIT and the log) may go
     * either way; never acked at all must come back */
    if (k_produced[v] && !k_tried[v] && !k_redelivered[v]) lost++;
  }
  int tried_only = 0, redeliv = 0;
  for (int v = 0; v < KMAX; v++) {
    tried_only += k_tried[v] && !k_acked[v];
    redeliv += k_produced[v] && k_redelivered[v] > 0;
  }
  printf("kill9: %d confirmed, %d acked durable, %d acked unlogged, %d redelivered\n", np, na,
         tried_only, redeliv);
  ck_assert_msg(missing == 0, "%d confirmed records missing after kill -9", missing);
  ck_assert_msg(again == 0, "%d acked records redelivered", again);
  ck_assert_msg(lost == 0, "%d unacked records not redelivered", lost);
  tstate *t = tnew();
  env_close(&e, t);
  env_done(&e);
  free(t);
}
END_TEST


START_TEST(dead_letter_after_exhaustion) {
  env e = {0};
  tstate *t = tnew(), *d = tnew();
  t->always_retry = 1;
  env_open(&e, NULL);
  consume(&e, "jobs", "g", t, 3, NULL);
  consume(&e, "jobs.dlq", "dlq-reader", d, 1, dlq_handler);
  start(&e);
  produce_n(&e, "jobs", 0, 5, 5, t);
  target = 5;
  ck_assert(run_until(e.base, dlq_cond, d, 5000));
  ck_assert_int_eq(t->exhausted, 5);
  ck_assert_int_eq(t->exhausted_finish_rc, NOTIFD_ESTATE);
  ck_assert_int_eq(t->nd, 15); /* 3 attempts each */
  for (int i = 0; i < d->ndlq; i++) {
    ck_assert_str_eq(d->dlq_hdr[i][0], "boom");
    ck_assert_str_eq(d->dlq_hdr[i][1], "3");
    ck_assert_str_eq(d->dlq_hdr[i][2], "jobs");
    ck_assert_int_ge(atoi(d->dlq_hdr[i][3]), 0);
    ck_assert_int_ge(atoll(d->dlq_hdr[i][4]), 1);
    ck_assert_str_eq(d->dlq_hdr[i][5] + 0, d->dlq_hdr[i][5]); /* present */
    ck_assert(d->dlq_hdr[i][5][0] == 'x');                  /* original header kept */
    ck_assert(d->dlq_key[i][0] == 'k');                     /* key kept */
    ck_assert_str_eq(d->dlq_hdr[i][6], "g");                /* the failing group */
  }
  ck_assert(metric(&e, e.b->m.dead_lettered, "g", "jobs") == 5);
  env_close(&e, t);
  /* committed: nothing comes back */
  tstate *t2 = tnew();
  env_open(&e, NULL);
  consume(&e, "jobs", "g", t2, 3, NULL);
  start(&e);
  run_for(e.base, 300);
  ck_assert_int_eq(t2->nd, 0);
  env_close(&e, t2);
  env_done(&e);
  free(t);
  free(d);
  free(t2);
}
END_TEST

static void produce_value(env *e, const char *topic, const char *key, const char *val,
                          tstate *t) {
  ck_assert_int_eq(
      nd_bus_produce(e->b, topic, key, strlen(key), val, strlen(val), NULL, on_produced, t), 0);
}

START_TEST(poison_is_dropped_and_never_blocks) {
  env e = {0};
  tstate *t = tnew(), *d = tnew();
  env_open(&e, NULL);
  consume(&e, "in", "g", t, 5, NULL);
  consume(&e, "in.dlq", "r", d, 1, dlq_handler);
  start(&e);
  produce_value(&e, "in", "same", "v0", t);
  produce_value(&e, "in", "same", "bad", t);
  produce_value(&e, "in", "same", "v1", t);
  produce_value(&e, "in", "same", "v2", t);
  target = 3;
  ck_assert(run_until(e.base, acked_cond, t, 5000));
  target = 1;
  ck_assert(run_until(e.base, dlq_cond, d, 5000));
  ck_assert_int_eq(t->nd, 4); /* the poison record was delivered once */
  ck_assert_int_eq(t->acks[0], 0);
  ck_assert_int_eq(t->acks[1], 1);
  ck_assert_int_eq(t->acks[2], 2);
  ck_assert_str_eq(d->dlq_hdr[0][0], "invalid_format");
  ck_assert_str_eq(d->dlq_hdr[0][1], "1");
  const char *l[] = {"g", "in", "invalid_format"};
  ck_assert(nd_metric_value(e.b->m.dropped, l) == 1);
  env_close(&e, t);
  env_done(&e);
  free(t);
  free(d);
}
END_TEST

/* Two groups give up the same poison record: one dead letter each, each
 * naming its group. */
START_TEST(dead_letter_per_failing_group) {
  env e = {0};
  tstate *g1 = tnew(), *g2 = tnew(), *d = tnew();
  env_open(&e, NULL);
  consume(&e, "shared", "handler", g1, 1, NULL);
  consume(&e, "shared", "email", g2, 1, NULL);
  consume(&e, "shared.dlq", "r", d, 1, dlq_handler);
  start(&e);
  produce_value(&e, "shared", "kp", "bad", g1);
  produce_value(&e, "shared", "kp", "v1", g1);
  target = 2;
  ck_assert(run_until(e.base, dlq_cond, d, 5000));
  target = 1;
  ck_assert(run_until(e.base, acked_cond, g2, 5000));
  run_for(e.base, 200);
  ck_assert_int_eq(d->ndlq, 2);
  int saw_h = 0, saw_e = 0;
  for (int i = 0; i < d->ndlq; i++) {
    ck_assert_str_eq(d->dlq_hdr[i][0], "invalid_format");
    ck_assert_str_eq(d->dlq_hdr[i][1], "1");
    ck_assert_str_eq(d->dlq_hdr[i][2], "shared");
    saw_h += strcmp(d->dlq_hdr[i][6], "handler") == 0;
    saw_e += strcmp(d->dlq_hdr[i][6], "email") == 0;
    ck_assert_str_eq(d->dlq_hdr[i][4], d->dlq_hdr[0][4]); /* the same record */
  }
  ck_assert_int_eq(saw_h, 1);
  ck_assert_int_eq(saw_e, 1);
  ck_assert(metric(&e, e.b->m.dead_lettered, "handler", "shared") == 1);
  ck_assert(metric(&e, e.b->m.dead_lettered, "email", "shared") == 1);
  env_close(&e, g1);
  env_done(&e);
  free(g1);
  free(g2);
  free(d);
}
END_TEST

START_TEST(group_members_in_process_split_partitions) {
  env e = {0};
  tstate *a = tnew(), *b = tnew();
  env_open(&e, NULL);
  notifd_consumer *ca = consume(&e, "split", "gs", a, 1, NULL);
  notifd_consumer *cb = consume(&e, "split", "gs", b, 1, NULL);
  start(&e);
  ck_assert_int_eq(ca->nstreams, 2);
  ck_assert_int_eq(cb->nstreams, 2);
  produce_n(&e, "split", 0, 100, 20, a);
  target = 100;
  int64_t end = nd_now_ms() + 5000;
  while (a->nacked + b->nacked < 100 && nd_now_ms() < end) run_for(e.base, 10);
  ck_assert_int_eq(a->nacked + b->nacked, 100);
  ck_assert_int_gt(a->nacked, 0);
  ck_assert_int_gt(b->nacked, 0);
  int seen[100] = {0};
  for (int i = 0; i < a->nacked; i++) seen[a->acks[i]]++;
  for (int i = 0; i < b->nacked; i++) seen[b->acks[i]]++;
  for (int v = 0; v < 100; v++) ck_assert_int_eq(seen[v], 1);
  env_close(&e, a);
  env_done(&e);
  free(a);
  free(b);
}
END_TEST

static nd_cfg_node *retention_cfg(const char *max_age, const char *max_records) {
  nd_cfg_node *bus = tcfg_map();
  nd_cfg_node *r = tcfg_add(bus, "retention", tcfg_map());
  if (max_age) tcfg_set(r, "max_age", max_age);
  if (max_records) tcfg_set(r, "max_records", max_records);
  tcfg_set(r, "interval", "20ms");
  return bus;
}

START_TEST(retention_by_count_and_age) {
  env e = {0};
  tstate *t = tnew();
  env_open(&e, retention_cfg(NULL, "5"));
  produce_n(&e, "ret", 0, 20, 1, t); /* one key: one partition */
  target = 20;
  ck_assert(run_until(e.base, produced_cond, t, 5000));
  run_for(e.base, 200);
  env_close(&e, t);

  tstate *r1 = tnew();
  env_open(&e, NULL);
  consume(&e, "ret", "reader", r1, 1, NULL);
  start(&e);
  run_for(e.base, 200);
  ck_assert_int_eq(r1->nacked, 5);
  for (int i = 0; i < 5; i++) ck_assert_int_eq(r1->acks[i], 15 + i);
  env_close(&e, r1);

  /* by age: old records go, fresh ones stay */
  tstate *t2 = tnew();
  env_open(&e, retention_cfg("300ms", NULL));
  produce_n(&e, "aged", 0, 10, 3, t2);
  run_for(e.base, 700);
  produce_n(&e, "aged", 10, 3, 3, t2);
  target = 13;
  ck_assert(run_until(e.base, produced_cond, t2, 5000));
  env_close(&e, t2);
  tstate *r2 = tnew();
  env_open(&e, NULL);
  consume(&e, "aged", "reader", r2, 1, NULL);
  start(&e);
  run_for(e.base, 200);
  ck_assert_int_eq(r2->nacked, 3);
  for (int i = 0; i < 3; i++) ck_assert_int_ge(r2->acks[i], 10);
  env_close(&e, r2);
  env_done(&e);
  free(t);
  free(r1);
  free(t2);
  free(r2);
}
END_TEST

/* Used bytes (pages minus free pages) of bus.db, and its records' span. */
static void bus_db_stats(env *e, int64_t *used, int64_t *count, int64_t *first_val,
                         int64_t *last_val) {
  char path[512];
  snprintf(path, sizeof path, "%s/bus.db", e->dir);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  const char *q[] = {"PRAGMA page_count", "PRAGMA freelist_count", "PRAGMA page_size",
                     "SELECT count(*) FROM records WHERE topic='big'",
                     "SELECT CAST(substr(value, 2, 6) AS INTEGER) FROM records WHERE topic='big' "
                     "ORDER BY seq LIMIT 1",
                     "SELECT CAST(substr(value, 2, 6) AS INTEGER) FROM records WHERE topic='big' "
                     "ORDER BY seq DESC LIMIT 1"};
  int64_t v[6];
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq(sqlite3_prepare_v2(db, q[i], -1, &st, NULL), SQLITE_OK);
    v[i] = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  *used = (v[0] - v[1]) * v[2];
  *count = v[3];
  *first_val = v[4];
  *last_val = v[5];
}

static nd_cfg_node *size_retention_cfg(const char *max_bytes, const char *interval) {
  nd_cfg_node *bus = tcfg_map();
  nd_cfg_node *r = tcfg_add(bus, "retention", tcfg_map());
  tcfg_set(r, "max_bytes", max_bytes);
  tcfg_set(r, "interval", interval);
  return bus;
}

/* Produces values "v<6-digit i>" padded to `size` bytes for i in [from, to)
 * to topic "big" with keys k0..k<nkeys-1>, and waits for them. */
static void produce_big(env *e, tstate *t, int from, int to, size_t size, int nkeys) {
  char val[1024];
  ck_assert_uint_lt(size, sizeof val);
  memset(val, 'x', size);
  val[size] = '\0';
  for (int i = from; i < to; i++) {
    char key[16], head[8];
    snprintf(key, sizeof key, "k%d", i % nkeys);
    snprintf(head, sizeof head, "v%06d", i);
    memcpy(val, head, 7);
    ck_assert_int_eq(
        nd_bus_produce(e->b, "big", key, strlen(key), val, size, NULL, on_produced, t), 0);
  }
  target = to;
  ck_assert(run_until(e->base, produced_cond, t, 20000));
}

/* Retention by size: 4 MB produced into a 256 KiB budget; the oldest go,
 * the newest stay, the used pages end under the budget. */
START_TEST(retention_by_bytes) {
  env e = {0};
  tstate *t = tnew();
  env_open(&e, size_retention_cfg("256KiB", "20ms"));
  for (int round = 0; round < 4; round++) {
    produce_big(&e, t, round * 1000, (round + 1) * 1000, 1000, 7);
    run_for(e.base, 100); /* a few retention passes */
  }
  run_for(e.base, 200);
  env_close(&e, t);
  int64_t used, count, first, last;
  bus_db_stats(&e, &used, &count, &first, &last);
  printf("retention_bytes: used %lld bytes, %lld records kept (%lld..%lld)\n", (long long)used,
         (long long)count, (long long)first, (long long)last);
  ck_assert_int_le(used, 256 * 1024);
  ck_assert_int_gt(count, 50);
  ck_assert_int_lt(count, 1000);
  ck_assert_int_eq(last, 3999);             /* the newest stay */
  ck_assert_int_eq(first, 4000 - count);    /* a contiguous tail: only the oldest went */
  env_done(&e);
  free(t);
}
END_TEST

/* More than one pass's share to delete (20 000 records): the next passes
 * follow within milliseconds, not one `interval` apart. */
START_TEST(retention_by_bytes_catches_up_in_short_passes) {
  env e = {0};
  tstate *t = tnew();
  env_open(&e, size_retention_cfg("64KiB", "3s"));
  produce_big(&e, t, 0, 30000, 100, 1);
  run_for(e.base, 3500); /* one interval, then the short passes (not another 3 s) */
  env_close(&e, t);
  int64_t used, count, first, last;
  bus_db_stats(&e, &used, &count, &first, &last);
  printf("retention_bytes catch-up: used %lld bytes, %lld records kept\n", (long long)used,
         (long long)count);
  ck_assert_int_le(used, 64 * 1024);
  ck_assert_int_lt(count, 10000); /* more than one pass's 20 000 went */
  ck_assert_int_eq(last, 29999);
  env_done(&e);
  free(t);
}
END_TEST

static notifd_consumer *consume_latest(env *e, const char *topic, const char *group, tstate *t) {
  const char *topics[] = {topic, NULL};
  notifd_consumer_opts o;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.topics = topics;
  o.group = group;
  o.handler = handler;
  o.ud = t;
  o.start_from_latest = 1;
  notifd_consumer *c = NULL;
  ck_assert_int_eq(nd_bus_consume(e->b, NULL, &o, &c), 0);
  return c;
}

START_TEST(start_from_latest_is_remembered) {
  env e = {0};
  tstate *p = tnew(), *t = tnew();
  env_open(&e, NULL);
  produce_n(&e, "news", 0, 5, 2, p);
  target = 5;
  ck_assert(run_until(e.base, produced_cond, p, 5000));
  env_close(&e, p);

  env_open(&e, NULL);
  consume_latest(&e, "news", "late", t);
  start(&e);
  run_for(e.base, 100);
  ck_assert_int_eq(t->nd, 0);
  produce_n(&e, "news", 5, 3, 2, t);
  target = 3;
  ck_assert(run_until(e.base, acked_cond, t, 5000));
  env_close(&e, t);

  tstate *p2 = tnew(), *t2 = tnew();
  env_open(&e, NULL);
  produce_n(&e, "news", 8, 2, 2, p2); /* while the group is away */
  target = 2;
  ck_assert(run_until(e.base, produced_cond, p2, 5000));
  env_close(&e, p2);
  env_open(&e, NULL);
  consume_latest(&e, "news", "late", t2);
  start(&e);
  target = 2;
  ck_assert(run_until(e.base, acked_cond, t2, 5000));
  run_for(e.base, 50);
  ck_assert_int_eq(t2->nacked, 2);
  env_close(&e, t2);
  env_done(&e);
  free(p);
  free(t);
  free(p2);
  free(t2);
}
END_TEST

typedef struct durable_check {
  char path[600];
  int rows;
  int called;
} durable_check;

static void on_durable(int32_t status, void *ud) {
  durable_check *c = ud;
  c->called = 1;
  ck_assert_int_eq(status, 0);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM records WHERE CAST(value AS TEXT) = 'payload'",
                                      -1, &st, NULL),
                   SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  c->rows = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static int called_cond(void *a) { return ((durable_check *)a)->called; }

START_TEST(produce_confirms_after_commit) {
  env e = {0};
  durable_check c = {0};
  env_open(&e, NULL);
  snprintf(c.path, sizeof c.path, "%s/bus.db", e.dir);
  ck_assert_int_eq(nd_bus_produce(e.b, "t", NULL, 0, "payload", 7, NULL, on_durable, &c), 0);
  ck_assert_int_eq(c.called, 0); /* never inside the call */
  ck_assert(run_until(e.base, called_cond, &c, 5000));
  ck_assert_int_eq(c.rows, 1); /* visible to another connection */
  ck_assert_int_eq(nd_bus_produce(e.b, "", NULL, 0, "x", 1, NULL, NULL, NULL), NOTIFD_EINVAL);
  const char *bad_hdrs[] = {"name", NULL};
  ck_assert_int_eq(nd_bus_produce(e.b, "t", NULL, 0, "x", 1, bad_hdrs, NULL, NULL), NOTIFD_EINVAL);
  tstate *t = tnew();
  env_close(&e, t);
  env_done(&e);
  free(t);
}
END_TEST

typedef struct acc {
  int done, double_ack;
  int key_null, value_empty, hdr_ok, hdr_missing, ts_ok;
} acc;

static void accessor_handler(notifd_bus_msg *m, void *ud) {
  acc *a = ud;
  size_t n = 99;
  a->key_null = nd_msg_key(m, &n) == NULL && n == 0;
  const void *v = nd_msg_value(m, &n);
  a->value_empty = v != NULL && n == 0;
  const char *h = nd_msg_header(m, "trace", &n);
  a->hdr_ok = h && n == 3 && memcmp(h, "abc", 3) == 0;
  a->hdr_missing = nd_msg_header(m, "nope", &n) == NULL && n == 0;
  int64_t ts = nd_msg_timestamp_ms(m);
  a->ts_ok = ts > nd_wall_ms() - 10000 && ts <= nd_wall_ms();
  ck_assert_str_eq(nd_msg_topic(m), "acc");
  ck_assert_int_eq(nd_msg_attempt(m), 1);
  ck_assert_int_eq(nd_bus_ack(m), 0);
  a->double_ack = nd_bus_ack(m); /* still valid inside the handler, but finished */
  a->done = 1;
}

static int acc_cond(void *a) { return ((acc *)a)->done; }

START_TEST(accessors_null_key_empty_value_headers) {
  env e = {0};
  acc a = {0};
  env_open(&e, NULL);
  consume(&e, "acc", "g", &a, 1, accessor_handler);
  start(&e);
  const char *hdrs[] = {"trace", "abc", NULL};
  ck_assert_int_eq(nd_bus_produce(e.b, "acc", NULL, 0, "", 0, hdrs, NULL, NULL), 0);
  ck_assert(run_until(e.base, acc_cond, &a, 5000));
  ck_assert(a.key_null && a.value_empty && a.hdr_ok && a.hdr_missing && a.ts_ok);
  ck_assert_int_eq(a.double_ack, NOTIFD_ESTATE);
  tstate *t = tnew();
  env_close(&e, t);
  env_done(&e);
  free(t);
}
END_TEST

static void ack_held(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  tstate *t = arg;
  for (int i = 0; i < t->nheld; i++) do_ack(t, t->held[i]);
  t->nheld = 0;
}

START_TEST(stop_waits_for_handlers_in_flight) {
  env e = {0};
  tstate *t = tnew();
  t->hold_after = 0; /* hold everything */
  env_open(&e, NULL);
  consume(&e, "slow", "g", t, 1, NULL);
  start(&e);
  produce_n(&e, "slow", 0, 1, 1, t);
  target = 1;
  ck_assert(run_until(e.base, delivered_cond, t, 5000));
  t->stopped = 0;
  nd_bus_stop(e.b, on_stopped, t);
  struct event *later = evtimer_new(e.base, ack_held, t);
  struct timeval tv = {0, 400 * 1000};
  evtimer_add(later, &tv);
  run_for(e.base, 50);
  ck_assert_int_eq(t->stopped, 0); /* still waiting for the handler */
  ck_assert(run_until(e.base, stopped_cond, t, 5000));
  ck_assert_int_eq(t->nacked, 1);
  event_free(later);
  nd_bus_free(e.b);
  e.b = NULL;
  thost_free(e.h);
  e.h = NULL;
  /* the record acked during the stop was committed */
  tstate *t2 = tnew();
  env_open(&e, NULL);
  consume(&e, "slow", "g", t2, 1, NULL);
  start(&e);
  run_for(e.base, 200);
  ck_assert_int_eq(t2->nd, 0);
  env_close(&e, t2);
  env_done(&e);
  free(t);
  free(t2);
}
END_TEST

/* Two connections to one file (`b` opened on `a`'s directory): closes both
 * and frees their states. */
static void shared_file_done(env *a, tstate *ta, env *b, tstate *tb) {
  env_close(b, tb);
  env_close(a, ta);
  nd_test_rmrf(b->dir);
  free(b->dir);
  event_base_free(b->base);
  env_done(a);
  free(ta);
  free(tb);
}

/* Small batches reach caught-up streams from memory; a record another
 * connection committed between two of ours must still be delivered, in
 * offset order, without waiting for the poll (set to a minute here). */
START_TEST(interleaved_writer_not_skipped) {
  env a = {0}, b = {0};
  tstate *t = tnew(), *p = tnew(), *q = tnew();
  nd_cfg_node *bus = tcfg_map();
  tcfg_set(tcfg_add(bus, "embedded", tcfg_map()), "poll_interval", "60s");
  env_open(&a, bus);
  b.dir = strdup(a.dir);
  env_open(&b, NULL);
  consume(&a, "mix", "g", t, 1, NULL);
  start(&a);
  produce_n(&a, "mix", 0, 1, 1, q); /* one key: one partition */
  target = 1;
  ck_assert(run_until(a.base, acked_cond, t, 5000));
  produce_n(&b, "mix", 1, 1, 1, p);
  ck_assert(run_until(b.base, produced_cond, p, 5000));
  produce_n(&a, "mix", 2, 1, 1, q);
  target = 3;
  ck_assert_msg(run_until(a.base, acked_cond, t, 5000), "only %d of 3 records delivered",
                t->nacked);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(t->acks[i], i);
  ck_assert(t->d[0].off < t->d[1].off && t->d[1].off < t->d[2].off);
  shared_file_done(&a, t, &b, p);
  free(q);
}
END_TEST

START_TEST(other_process_commits_are_noticed) {
  env a = {0}, b = {0};
  tstate *t = tnew(), *p = tnew();
  env_open(&a, NULL);
  b.dir = strdup(a.dir);
  env_open(&b, NULL); /* another connection to the same file */
  consume(&a, "shared", "g", t, 1, NULL);
  start(&a);
  run_for(a.base, 20);
  produce_n(&b, "shared", 0, 3, 3, p);
  target = 3;
  ck_assert(run_until(b.base, produced_cond, p, 5000));
  int64_t t0 = nd_now_ms();
  ck_assert(run_until(a.base, acked_cond, t, 5000));
  ck_assert_int_lt(nd_now_ms() - t0, 1000); /* the data_version poll, not retention */
  shared_file_done(&a, t, &b, p);
}
END_TEST

START_TEST(registration_only_during_init) {
  env e = {0};
  tstate *t = tnew();
  env_open(&e, NULL);
  e.h->phase = ND_PHASE_RUNNING;
  const char *topics[] = {"x", NULL};
  notifd_consumer_opts o = {.size = sizeof o, .topics = topics, .group = "g", .handler = handler};
  notifd_consumer *c;
  ck_assert_int_eq(nd_bus_consume(e.b, NULL, &o, &c), NOTIFD_ESTATE);
  e.h->phase = ND_PHASE_INIT;
  o.group = NULL;
  ck_assert_int_eq(nd_bus_consume(e.b, NULL, &o, &c), NOTIFD_EINVAL);
  env_close(&e, t);
  env_done(&e);
  free(t);
}
END_TEST

START_TEST(retry_policy_precedence_and_backoff) {
  nd_errors errs;
  nd_errors_init(&errs);
  nd_retry_policy p;
  unsetenv("MESSAGE_RETRY_MAX_RETRIES");
  unsetenv("CHAT_PERSISTENCE_CHANGE_KAFKA_CONSUMER_INFO_MESSAGE_RETRY_MAX_RETRIES");
  unsetenv("MESSAGE_RETRY_INITIAL_INTERVAL");
  unsetenv("CHAT_PERSISTENCE_CHANGE_KAFKA_CONSUMER_INFO_MESSAGE_RETRY_INITIAL_INTERVAL");
  /* built-in */
  ck_assert_int_eq(nd_retry_resolve(NULL, NULL, &p, &errs), 0);
  ck_assert_int_eq(p.max_attempts, 4);
  ck_assert_int_eq(p.initial_ms, 1000);
  /* config */
  nd_retry_cfg cfg = {6, 50, 500, 3.0, 0};
  ck_assert_int_eq(nd_retry_resolve(NULL, &cfg, &p, &errs), 0);
  ck_assert_int_eq(p.max_attempts, 6);
  ck_assert_int_eq(p.initial_ms, 50);
  ck_assert(p.jitter == 0);
  /* environment beats config; the prefixed name beats the bare one */
  setenv("MESSAGE_RETRY_MAX_RETRIES", "2", 1);
  setenv("MESSAGE_RETRY_INITIAL_INTERVAL", "1s", 1);
  setenv("CHAT_PERSISTENCE_CHANGE_KAFKA_CONSUMER_INFO_MESSAGE_RETRY_INITIAL_INTERVAL", "250ms", 1);
  ck_assert_int_eq(nd_retry_resolve(NULL, &cfg, &p, &errs), 0);
  ck_assert_int_eq(p.max_attempts, 3); /* 2 retries */
  ck_assert_int_eq(p.initial_ms, 250);
  /* explicit options beat everything */
  notifd_consumer_opts o = {.size = sizeof o, .max_attempts = 7, .initial_interval_ms = 5};
  ck_assert_int_eq(nd_retry_resolve(&o, &cfg, &p, &errs), 0);
  ck_assert_int_eq(p.max_attempts, 7);
  ck_assert_int_eq(p.initial_ms, 5);
  /* zero retries = a single attempt */
  setenv("MESSAGE_RETRY_MAX_RETRIES", "0", 1);
  ck_assert_int_eq(nd_retry_resolve(NULL, &cfg, &p, &errs), 0);
  ck_assert_int_eq(p.max_attempts, 1);
  /* malformed environment is a startup error */
  setenv("MESSAGE_RETRY_MAX_RETRIES", "lots", 1);
  ck_assert_int_eq(nd_retry_resolve(NULL, &cfg, &p, &errs), NOTIFD_EINVAL);
  ck_assert_uint_ge(errs.n, 1);
  unsetenv("MESSAGE_RETRY_MAX_RETRIES");
  unsetenv("MESSAGE_RETRY_INITIAL_INTERVAL");
  unsetenv("CHAT_PERSISTENCE_CHANGE_KAFKA_CONSUMER_INFO_MESSAGE_RETRY_INITIAL_INTERVAL");
  /* backoff: initial * multiplier^(n-2), capped, jitter only shortens */
  nd_retry_policy b = {10, 100, 1000, 2.0, 0};
  ck_assert_int_eq(nd_retry_delay_ms(&b, 2), 100);
  ck_assert_int_eq(nd_retry_delay_ms(&b, 3), 200);
  ck_assert_int_eq(nd_retry_delay_ms(&b, 5), 800);
  ck_assert_int_eq(nd_retry_delay_ms(&b, 9), 1000);
  b.jitter = 0.5;
  for (int i = 0; i < 100; i++) {
    int64_t d = nd_retry_delay_ms(&b, 3);
    ck_assert(d >= 100 && d <= 200);
  }
  nd_errors_free(&errs);
}
END_TEST

static void suite_add(Suite *s, const char *name, const TTest *tt, int timeout) {
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, timeout);
  tcase_add_test(tc, tt);
  suite_add_tcase(s, tc);
}

Suite *nd_test_suite(void) {
  Suite *s = suite_create("bus_embedded");
  suite_add(s, "order", order_per_partition_under_retries, 60);
  suite_add(s, "restart", at_least_once_across_restart, 60);
  suite_add(s, "kill9", kill9_loses_nothing_confirmed, 90);
  suite_add(s, "dead_letter", dead_letter_after_exhaustion, 60);
  suite_add(s, "poison", poison_is_dropped_and_never_blocks, 60);
  suite_add(s, "dead_letter_per_group", dead_letter_per_failing_group, 60);
  suite_add(s, "group_split", group_members_in_process_split_partitions, 60);
  suite_add(s, "retention", retention_by_count_and_age, 60);
  suite_add(s, "retention_bytes", retention_by_bytes, 60);
  suite_add(s, "retention_bytes_passes", retention_by_bytes_catches_up_in_short_passes, 60);
  suite_add(s, "latest", start_from_latest_is_remembered, 60);
  suite_add(s, "durable_confirm", produce_confirms_after_commit, 60);
  suite_add(s, "accessors", accessors_null_key_empty_value_headers, 60);
  suite_add(s, "stop_inflight", stop_waits_for_handlers_in_flight, 60);
  suite_add(s, "cross_process", other_process_commits_are_noticed, 60);
  suite_add(s, "interleaved_writer", interleaved_writer_not_skipped, 60);
  suite_add(s, "registration", registration_only_during_init, 60);
  suite_add(s, "retry_policy", retry_policy_precedence_and_backoff, 60);
  return s;
}
