/* kv / dedupe store: embedded SQLite (claim/mark/exists, TTL, purge, key
 * format; answers from memory before the writer thread commits, clean
 * close commits everything, the recent map drains, a failing write is
 * counted) and a real redis-server (same, plus fail-open and fail-closed
 * when Redis is down, reconnect, command timeout). */
#include "notifd_build_config.h"
#if NOTIFD_WITH_REDIS
#include <hiredis/hiredis.h>
#endif
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus_kv_test_util.h"
#include "kv/kv.h"
#include "kv/kv_internal.h"
#include "nd_test.h"

/* ---- results ---- */

typedef struct res {
  int32_t v[64];
  int n;
} res;

static void on_result(int32_t r, void *ud) {
  res *x = ud;
  if (x->n < 64) x->v[x->n++] = r;
}

static int want;
static int res_cond(void *a) { return ((res *)a)->n >= want; }

/* Runs one operation to completion and returns its result. */
static int32_t op(struct event_base *base, nd_kv *kv, int which, const char *key, int64_t ttl) {
  res r = {0};
  int rc = which == ND_KV_CLAIM ? nd_kv_claim(kv, key, ttl, on_result, &r)
           : which == ND_KV_MARK ? nd_kv_mark(kv, key, ttl, on_result, &r)
                                 : nd_kv_exists(kv, key, on_result, &r);
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(r.n, 0); /* never answered inside the call */
  want = 1;
  ck_assert(run_until(base, res_cond, &r, 5000));
  return r.v[0];
}

#define CLAIM(k, ttl) op(base, kv, ND_KV_CLAIM, k, ttl)
#define MARK(k, ttl) op(base, kv, ND_KV_MARK, k, ttl)
#define EXISTS(k) op(base, kv, ND_KV_EXISTS, k, 0)

/* ---- embedded ---- */

static int64_t count_rows(const char *dir, const char *where) {
  char path[600], sql[256];
  snprintf(path, sizeof path, "%s/kv.db", dir);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM kv WHERE %s", where);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

/* The writer thread has committed everything and the loop has seen it. */
static int drained(void *kv) { return nd_kv_sqlite_recent(kv) == 0; }

/* One embedded kv (prefix "chat") in a fresh data directory. */
typedef struct etest {
  char *dir;
  struct event_base *base;
  notifd_host *h;
  nd_kv *kv;
  const char *filter_bits, *purge, *max_pending; /* kv.embedded settings, when set */
} etest;

static nd_kv *etest_open(etest *t) {
  if (!t->dir) {
    t->dir = nd_test_tmpdir();
    t->base = event_base_new();
  }
  t->h = thost_new(t->base, t->dir);
  t->h->cfg.kv_cfg = tcfg_map();
  tcfg_set(t->h->cfg.kv_cfg, "key_prefix", "chat");
  if (t->filter_bits || t->purge || t->max_pending) {
    nd_cfg_node *emb = tcfg_add(t->h->cfg.kv_cfg, "embedded", tcfg_map());
    if (t->filter_bits) tcfg_set(emb, "filter_bits", t->filter_bits);
    if (t->purge) tcfg_set(emb, "purge_interval", t->purge);
    if (t->max_pending) tcfg_set(emb, "max_pending", t->max_pending);
  }
  ck_assert_int_eq(nd_kv_open(t->h, &t->kv, &t->h->errs), 0);
  return t->kv;
}

static void etest_close(etest *t) {
  nd_kv_free(t->kv);
  t->kv = NULL;
  thost_free(t->h);
  t->h = NULL;
}

static void etest_done(etest *t) {
  if (t->kv) etest_close(t);
  event_base_free(t->base);
  nd_test_rmrf(t->dir);
  free(t->dir);
}

/* t, kv and base (for CLAIM, MARK, EXISTS) of a fresh embedded kv. */
#define ETEST_BEGIN(t)          \
  etest t = {0};                \
  nd_kv *kv = etest_open(&t);   \
  struct event_base *base = t.base

static void exec_db(const char *dir, const char *sql) {
  char path[600];
  snprintf(path, sizeof path, "%s/kv.db", dir);
  sqlite3 *db;
  ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

START_TEST(embedded_claim_mark_exists_ttl) {
  char *dir = nd_test_tmpdir();
  struct event_base *base = event_base_new();
  notifd_host *h = thost_new(base, dir);
  h->cfg.kv_cfg = tcfg_map();
  tcfg_set(h->cfg.kv_cfg, "key_prefix", "chat");
  tcfg_set(tcfg_add(h->cfg.kv_cfg, "embedded", tcfg_map()), "purge_interval", "100ms");
  nd_kv *kv;
  ck_assert_int_eq(nd_kv_open(h, &kv, &h->errs), 0);
  ck_assert(nd_kv_ready(kv));
  ck_assert_int_eq(CLAIM("m1", 0), 1);
  ck_assert_int_eq(CLAIM("m1", 0), 0);
  ck_assert_int_eq(EXISTS("m1"), 1);
  ck_assert_int_eq(EXISTS("m2"), 0);
  ck_assert_int_eq(MARK("m2", 60000), 1);
  ck_assert_int_eq(EXISTS("m2"), 1);
  ck_assert_int_eq(MARK("m2", 60000), 1); /* mark overwrites */
  ck_assert(run_until(base, drained, kv, 5000));
  ck_assert_int_eq(count_rows(dir, "k = 'eventstore:chat:m1'"), 1);
  /* expiry: invisible at once, purged later */
  ck_assert_int_eq(CLAIM("short", 50), 1);
  ck_assert_int_eq(CLAIM("short", 50), 0);
  run_for(base, 120);
  ck_assert_int_eq(EXISTS("short"), 0);
  ck_assert_int_eq(CLAIM("short", 30), 1); /* an expired key can be claimed again */
  run_for(base, 250);
  ck_assert_int_eq(count_rows(dir, "k = 'eventstore:chat:short'"), 0);
  ck_assert_int_eq(count_rows(dir, "k = 'eventstore:chat:m1'"), 1); /* no expiry */
  /* a burst: many callbacks in one turn */
  res r = {0};
  for (int i = 0; i < 50; i++) {
    char k[16];
    snprintf(k, sizeof k, "b%d", i % 25);
    ck_assert_int_eq(nd_kv_claim(kv, k, 0, on_result, &r), 0);
  }
  want = 50;
  ck_assert(run_until(base, res_cond, &r, 5000));
  int claimed = 0;
  for (int i = 0; i < 50; i++) claimed += r.v[i];
  ck_assert_int_eq(claimed, 25);
  ck_assert_int_eq(nd_kv_claim(kv, NULL, 0, on_result, &r), NOTIFD_EINVAL);
  ck_assert_int_eq(nd_kv_claim(kv, "x", -1, on_result, &r), NOTIFD_EINVAL);
  /* free with callbacks pending: they are dropped */
  res dropped = {0};
  ck_assert_int_eq(nd_kv_claim(kv, "late", 0, on_result, &dropped), 0);
  nd_kv_free(kv);
  run_for(base, 20);
  ck_assert_int_eq(dropped.n, 0);
  thost_free(h);
  event_base_free(base);
  nd_test_rmrf(dir);
  free(dir);
}
END_TEST

/* Answers come from memory before anything is committed; writes are handed
 * to the writer only at the end of the loop turn, so "not in the file yet"
 * is deterministic here. */
START_TEST(embedded_answers_before_commit) {
  ETEST_BEGIN(t);
  res r = {0};
  ck_assert_int_eq(nd_kv_claim(kv, "c1", 0, on_result, &r), 0);
  ck_assert_int_eq(nd_kv_claim(kv, "c1", 0, on_result, &r), 0);
  ck_assert_int_eq(nd_kv_mark(kv, "m1", 60000, on_result, &r), 0);
  ck_assert_int_eq(nd_kv_exists(kv, "m1", on_result, &r), 0);
  ck_assert_int_eq(nd_kv_exists(kv, "none", on_result, &r), 0);
  ck_assert_int_eq(r.n, 0); /* never inside the call */
  ck_assert_uint_eq(nd_kv_sqlite_recent(kv), 2);
  ck_assert_int_eq(count_rows(t.dir, "1"), 0); /* nothing committed yet */
  want = 5;
  ck_assert(run_until(base, res_cond, &r, 5000));
  ck_assert_int_eq(r.v[0], 1);
  ck_assert_int_eq(r.v[1], 0); /* the second claim loses */
  ck_assert_int_eq(r.v[2], 1);
  ck_assert_int_eq(r.v[3], 1); /* marked, seen at once */
  ck_assert_int_eq(r.v[4], 0);
  /* once committed the answers come from the file */
  ck_assert(run_until(base, drained, kv, 5000));
  ck_assert_int_eq(count_rows(t.dir, "1"), 2);
  ck_assert_int_eq(CLAIM("c1", 0), 0);
  ck_assert_int_eq(EXISTS("m1"), 1);
  /* expiry in the map: a 1 ms claim, not yet handed over, then expired */
  r.n = 0;
  ck_assert_int_eq(nd_kv_claim(kv, "e1", 1, on_result, &r), 0);
  int64_t until = nd_wall_ms() + 5;
  while (nd_wall_ms() < until) {
  }
  ck_assert_int_eq(nd_kv_exists(kv, "e1", on_result, &r), 0);
  ck_assert_int_eq(nd_kv_claim(kv, "e1", 50, on_result, &r), 0);
  want = 3;
  ck_assert(run_until(base, res_cond, &r, 5000));
  ck_assert_int_eq(r.v[0], 1);
  ck_assert_int_eq(r.v[1], 0);
  ck_assert_int_eq(r.v[2], 1);
  /* expiry in the file */
  ck_assert(run_until(base, drained, kv, 5000));
  ck_assert_int_eq(CLAIM("e1", 0), 0);
  run_for(base, 80);
  ck_assert_int_eq(EXISTS("e1"), 0);
  ck_assert_int_eq(CLAIM("e1", 0), 1);
  etest_done(&t);
}
END_TEST

static int64_t ops_back;
static void count_back(int32_t r, void *ud) {
  (void)ud;
  ops_back += r >= 0;
}
static int64_t ops_want;
static int ops_cond(void *a) {
  (void)a;
  return ops_back >= ops_want;
}

/* A callback that starts another op gets its answer on a later turn. */
typedef struct chain {
  nd_kv *kv;
  res inner;
  int inner_seen_in_cb;
  int outer;
} chain;

static void on_chain(int32_t r, void *ud) {
  chain *c = ud;
  c->outer = r;
  ck_assert_int_eq(nd_kv_exists(c->kv, "chained", on_result, &c->inner), 0);
  c->inner_seen_in_cb = c->inner.n;
}

static int chain_done(void *a) { return ((chain *)a)->inner.n == 1; }

START_TEST(embedded_callback_chain_and_clean_close) {
  ETEST_BEGIN(t);
  chain c = {.kv = kv};
  ck_assert_int_eq(nd_kv_mark(kv, "chained", 0, on_chain, &c), 0);
  ck_assert(run_until(base, chain_done, &c, 5000));
  ck_assert_int_eq(c.outer, 1);
  ck_assert_int_eq(c.inner_seen_in_cb, 0);
  ck_assert_int_eq(c.inner.v[0], 1);
  /* a clean close commits everything acknowledged, even writes of a turn
   * that never ended (their callbacks are dropped) */
  ops_back = 0;
  for (int i = 0; i < 300; i++) {
    char k[16];
    snprintf(k, sizeof k, "q%d", i);
    ck_assert_int_eq(nd_kv_mark(kv, k, 0, count_back, NULL), 0);
    if (i == 100) {
      ops_want = 101;
      ck_assert(run_until(base, ops_cond, NULL, 5000));
    }
  }
  etest_close(&t);
  ck_assert_int_eq(count_rows(t.dir, "k LIKE 'eventstore:chat:q%'"), 300);
  kv = etest_open(&t);
  ck_assert_int_eq(EXISTS("q0"), 1);
  ck_assert_int_eq(EXISTS("q299"), 1);
  ck_assert_int_eq(CLAIM("q150", 0), 0);
  etest_done(&t);
}
END_TEST

/* 50 000 ops: the map holds only what is not yet committed. */
START_TEST(embedded_recent_map_drains) {
  ETEST_BEGIN(t);
  ops_back = ops_want = 0;
  for (int i = 0; i < 12500; i++) {
    char k[32];
    snprintf(k, sizeof k, "many-%d", i);
    ck_assert_int_eq(nd_kv_exists(kv, k, count_back, NULL), 0);
    ck_assert_int_eq(nd_kv_mark(kv, k, 3600000, count_back, NULL), 0);
    ck_assert_int_eq(nd_kv_claim(kv, k + 1, 3600000, count_back, NULL), 0);
    ck_assert_int_eq(nd_kv_mark(kv, k + 1, 3600000, count_back, NULL), 0);
    ops_want += 4;
    if (i % 250 == 249) ck_assert(run_until(base, ops_cond, NULL, 10000));
  }
  ck_assert_int_eq(ops_back, 50000);
  ck_assert(run_until(base, drained, kv, 10000));
  ck_assert_uint_eq(nd_kv_sqlite_recent(kv), 0);
  ck_assert_int_eq(count_rows(t.dir, "1"), 25000);
  const char *l[] = {"mark"};
  ck_assert(kv->errors && nd_metric_value(kv->errors, l) == 0);
  etest_done(&t);
}
END_TEST

/* A write that cannot be committed: counted, logged, forgotten; the answer
 * given stands and the other writes of the batch are kept. */
START_TEST(embedded_failed_write_is_counted) {
  ETEST_BEGIN(t);
  exec_db(t.dir,
          "CREATE TRIGGER refuse BEFORE INSERT ON kv WHEN NEW.k LIKE '%:bad%' "
          "BEGIN SELECT RAISE(ABORT, 'refused by test'); END;");
  res r = {0};
  ck_assert_int_eq(nd_kv_mark(kv, "bad1", 0, on_result, &r), 0);
  ck_assert_int_eq(nd_kv_claim(kv, "bad2", 0, on_result, &r), 0);
  ck_assert_int_eq(nd_kv_mark(kv, "good", 0, on_result, &r), 0);
  ck_assert_int_eq(nd_kv_exists(kv, "bad1", on_result, &r), 0);
  want = 4;
  ck_assert(run_until(base, res_cond, &r, 5000));
  for (int i = 0; i < 4; i++) ck_assert_int_eq(r.v[i], 1);
  ck_assert(run_until(base, drained, kv, 5000));
  const char *lm[] = {"mark"}, *lc[] = {"claim"};
  ck_assert(nd_metric_value(kv->errors, lm) == 1);
  ck_assert(nd_metric_value(kv->errors, lc) == 1);
  ck_assert_int_eq(EXISTS("bad1"), 0); /* the write was lost */
  ck_assert_int_eq(EXISTS("good"), 1);
  ck_assert_int_eq(count_rows(t.dir, "1"), 1);
  exec_db(t.dir, "DROP TRIGGER refuse;");
  ck_assert_int_eq(CLAIM("bad2", 0), 1);
  ck_assert(run_until(base, drained, kv, 5000));
  ck_assert_int_eq(count_rows(t.dir, "1"), 2);
  etest_done(&t);
}
END_TEST

/* The writer stuck behind another connection's write lock: past
 * max_pending uncommitted writes, ops are answered by the fail-open policy
 * and not kept (memory stays bounded); once the lock goes, the kept writes
 * commit and new ones are kept again. */
START_TEST(embedded_writer_behind_is_bounded) {
  etest t = {.max_pending = "50"};
  nd_kv *kv = etest_open(&t);
  struct event_base *base = t.base;
  char path[600];
  snprintf(path, sizeof path, "%s/kv.db", t.dir);
  sqlite3 *blocker;
  ck_assert_int_eq(sqlite3_open(path, &blocker), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  ops_back = ops_want = 0;
  for (int i = 0; i < 200; i++) {
    char k[32];
    snprintf(k, sizeof k, "stuck-%d", i);
    ck_assert_int_eq(nd_kv_mark(kv, k, 3600000, count_back, NULL), 0);
    ops_want++;
  }
  ck_assert(run_until(base, ops_cond, NULL, 5000));
  run_for(base, 50); /* handoffs happen; the writer waits for the lock */
  const char *lm[] = {"mark"};
  ck_assert(nd_metric_value(kv->errors, lm) == 150);
  ck_assert(nd_metric_value(kv->failopen, lm) == 150);
  ck_assert_uint_le(nd_kv_sqlite_recent(kv), 50);
  ck_assert_int_eq(CLAIM("stuck-0", 0), 0);   /* kept: still held */
  ck_assert_int_eq(EXISTS("stuck-199"), 0);   /* not kept */
  ck_assert_int_eq(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(blocker);
  ck_assert(run_until(base, drained, kv, 10000));
  ck_assert_int_eq(count_rows(t.dir, "1"), 50);
  ck_assert_int_eq(MARK("after", 0), 1);
  ck_assert(run_until(base, drained, kv, 5000));
  ck_assert_int_eq(count_rows(t.dir, "k LIKE '%:after'"), 1);
  ck_assert(nd_metric_value(kv->errors, lm) == 150);
  etest_done(&t);
}
END_TEST

/* ---- the negative-lookup filter ---- */

static nd_kv_sqlite_stat kstat(nd_kv *kv) {
  nd_kv_sqlite_stat st;
  nd_kv_sqlite_stats(kv, &st);
  return st;
}

static int filter_ready(void *kv) { return kstat(kv).filter_ready; }

static void add_stats(nd_kv_sqlite_stat *total, nd_kv *kv) {
  nd_kv_sqlite_stat s = kstat(kv);
  total->reads += s.reads;
  total->skips += s.skips;
  total->empty_reads += s.empty_reads;
  total->scans += s.scans;
}

/* n ops `which` on keys "<prefix><i>", every answer `want`. */
static void many(struct event_base *base, nd_kv *kv, int which, const char *prefix, int n,
                 int32_t expect) {
  for (int i = 0; i < n; i++) {
    char k[32];
    snprintf(k, sizeof k, "%s%d", prefix, i);
    ck_assert_int_eq(op(base, kv, which, k, 0), expect);
  }
}

/* Misses the filter answers cost no read of kv.db: fails if the filter is
 * not consulted.  (A false positive on a near-empty 4 MiB filter is a
 * ~1e-20 event, hence the small allowance.) */
START_TEST(embedded_filter_avoids_reads) {
  ETEST_BEGIN(t);
  ck_assert(run_until(base, filter_ready, kv, 5000));
  nd_kv_sqlite_stat s0 = kstat(kv);
  many(base, kv, ND_KV_EXISTS, "new", 1000, 0);
  many(base, kv, ND_KV_CLAIM, "c", 1000, 1);
  many(base, kv, ND_KV_CLAIM, "c", 1000, 0); /* from the map or kv.db */
  nd_kv_sqlite_stat s1 = kstat(kv);
  ck_assert_uint_le(s1.reads - s0.reads, 1000 + 2);
  ck_assert_uint_ge(s1.skips - s0.skips, 2000 - 2);
  ck_assert(run_until(base, drained, kv, 5000));
  many(base, kv, ND_KV_EXISTS, "c", 1000, 1); /* committed: filter hit, then a read */
  /* reopened: the filter is built from kv.db */
  etest_close(&t);
  kv = etest_open(&t);
  ck_assert(run_until(base, filter_ready, kv, 5000));
  ck_assert_uint_eq(kstat(kv).scans, 1);
  s0 = kstat(kv);
  many(base, kv, ND_KV_EXISTS, "c", 1000, 1);
  many(base, kv, ND_KV_EXISTS, "new", 1000, 0);
  many(base, kv, ND_KV_CLAIM, "c", 1000, 0);
  s1 = kstat(kv);
  ck_assert_uint_ge(s1.reads - s0.reads, 2000);
  ck_assert_uint_le(s1.reads - s0.reads, 2000 + 2);
  ck_assert_uint_ge(s1.skips - s0.skips, 1000 - 2);
  etest_close(&t);
  /* filter_bits 0: every miss reads kv.db */
  t.filter_bits = "0";
  kv = etest_open(&t);
  run_for(base, 50);
  ck_assert(!kstat(kv).filter_ready);
  many(base, kv, ND_KV_EXISTS, "new", 100, 0);
  ck_assert_uint_eq(kstat(kv).reads, 100);
  ck_assert_uint_eq(kstat(kv).skips, 0);
  etest_close(&t);
  /* a bad size is a config error */
  t.h = thost_new(t.base, t.dir);
  t.h->cfg.kv_cfg = tcfg_map();
  tcfg_set(tcfg_add(t.h->cfg.kv_cfg, "embedded", tcfg_map()), "filter_bits", "-1");
  ck_assert_int_lt(nd_kv_open(t.h, &t.kv, &t.h->errs), 0);
  ck_assert_uint_ge(t.h->errs.n, 1);
  thost_free(t.h);
  t.h = NULL;
  t.kv = NULL;
  etest_done(&t);
}
END_TEST

/* Reference model of one key: written or not; expiry known to within the
 * window of wall-clock ms in which the kv read its clock. */
typedef struct mkey {
  int written, never;
  int64_t exp_lo, exp_hi;
} mkey;

/* 1 live, 0 not, -1 cannot tell (the expiry falls inside [a, b]). */
static int model_live(const mkey *m, int64_t a, int64_t b) {
  if (!m->written) return 0;
  if (m->never || m->exp_lo > b) return 1;
  if (m->exp_hi <= a) return 0;
  return -1;
}

static uint64_t rnd_state;
static uint64_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state;
}

#define CHURN_KEYS 10000
#define CHURN_OPS 100000

typedef struct churn_cfg {
  const char *filter_bits;
  int scan_every_batch, want_false_positives;
} churn_cfg;

static const churn_cfg churn_cfgs[] = {
    {NULL, 0, 0},   /* default size: hardly a false positive */
    {"8192", 1, 1}, /* tiny, rebuilt after every batch: many */
    {"8192", 0, 1}, /* tiny, rebuilt after purges */
};

/* 100 000 random claim/mark/exists with TTLs on 2000 keys, every answer
 * checked against the model, across a close and reopen (the filter is
 * rebuilt from the file) and the purge.  A false negative of the filter
 * would show as a claim won twice or an exists saying 0 for a live key. */
START_TEST(embedded_filter_churn_matches_model) {
  const churn_cfg *c = &churn_cfgs[_i];
  etest t = {.filter_bits = c->filter_bits, .purge = "100ms"};
  nd_kv *kv = etest_open(&t);
  struct event_base *base = t.base;
  if (c->scan_every_batch) nd_kv_sqlite_scan_every_batch(kv);
  static mkey model[CHURN_KEYS];
  memset(model, 0, sizeof model);
  rnd_state = 0x9e3779b97f4a7c15ULL + (uint64_t)_i;
  nd_kv_sqlite_stat total = {0};
  int64_t deadline = nd_now_ms() + 40000;
  int done = 0, reopened = 0, checked_ambiguous = 0;
  while (done < CHURN_OPS) {
    ck_assert_msg(nd_now_ms() < deadline, "churn: out of time after %d ops", done);
    if (!reopened && done >= CHURN_OPS / 2) {
      add_stats(&total, kv);
      etest_close(&t);
      kv = etest_open(&t);
      if (c->scan_every_batch) nd_kv_sqlite_scan_every_batch(kv);
      reopened = 1;
    }
    int n = 1 + (int)(rnd() % 64);
    int kind[64], id[64];
    int64_t ttl[64], t0[64], t1[64];
    res r = {0};
    for (int i = 0; i < n; i++) {
      uint64_t x = rnd();
      kind[i] = x % 10 < 4 ? ND_KV_CLAIM : x % 10 < 7 ? ND_KV_MARK : ND_KV_EXISTS;
      id[i] = (int)((x >> 8) % CHURN_KEYS);
      ttl[i] = (x >> 24) % 10 == 0 ? 0 : 1 + (int64_t)((x >> 32) % 300);
      char k[32];
      snprintf(k, sizeof k, "r%d", id[i]);
      t0[i] = nd_wall_ms();
      int rc = kind[i] == ND_KV_CLAIM ? nd_kv_claim(kv, k, ttl[i], on_result, &r)
               : kind[i] == ND_KV_MARK ? nd_kv_mark(kv, k, ttl[i], on_result, &r)
                                       : nd_kv_exists(kv, k, on_result, &r);
      t1[i] = nd_wall_ms();
      ck_assert_int_eq(rc, 0);
    }
    want = n;
    ck_assert(run_until(base, res_cond, &r, 5000));
    for (int i = 0; i < n; i++) {
      mkey *m = &model[id[i]];
      int live = model_live(m, t0[i], t1[i]), got = r.v[i];
      checked_ambiguous += live < 0;
      int wrote = 0;
      if (kind[i] == ND_KV_EXISTS) {
        if (live >= 0) ck_assert_msg(got == live, "op %d exists r%d: got %d, model %d", done + i, id[i], got, live);
        else ck_assert(got == 0 || got == 1);
      } else if (kind[i] == ND_KV_CLAIM) {
        if (live >= 0) ck_assert_msg(got == !live, "op %d claim r%d: got %d, model live %d", done + i, id[i], got, live);
        else ck_assert(got == 0 || got == 1);
        wrote = got == 1;
      } else {
        ck_assert_int_eq(got, 1);
        wrote = 1;
      }
      if (wrote) *m = (mkey){1, ttl[i] == 0, t0[i] + ttl[i], t1[i] + ttl[i]};
    }
    done += n;
    if (rnd() % 16 == 0) run_for(base, 5); /* let time pass: expiry, purge */
  }
  add_stats(&total, kv);
  printf("churn cfg %d: reads %llu, filter skips %llu, empty reads %llu, scans %llu, "
         "ambiguous %d\n", _i, (unsigned long long)total.reads, (unsigned long long)total.skips,
         (unsigned long long)total.empty_reads, (unsigned long long)total.scans, checked_ambiguous);
  ck_assert_uint_gt(total.skips, 1000);    /* the filter answered misses */
  ck_assert_uint_ge(total.scans, 2);       /* at least once per open */
  if (c->want_false_positives) {
    ck_assert_uint_gt(total.empty_reads, 100); /* and got some of them wrong: "maybe" */
    ck_assert_uint_gt(total.scans, 3);         /* rebuilt while running */
  }
  etest_done(&t);
}
END_TEST

/* ---- redis ---- */
#if NOTIFD_WITH_REDIS

typedef struct redis_srv {
  char dir[512];
  int port;
  pid_t pid;
} redis_srv;

/* conf: NULL = no persistence, else a redis.conf (config/distributed/...). */
static int redis_start_conf(redis_srv *s, int port, const char *conf) {
  if (!s->dir[0]) {
    char *d = nd_test_tmpdir();
    snprintf(s->dir, sizeof s->dir, "%s", d);
    free(d);
  }
  char cmd[1600], line[128] = "", portstr[16] = "''";
  if (port) snprintf(portstr, sizeof portstr, "%d", port);
  snprintf(cmd, sizeof cmd, "%s/tests/services/redis.sh start '%s' %s %s%s%s", ND_SOURCE_ROOT,
           s->dir, portstr, conf ? "'" ND_SOURCE_ROOT "/" : "", conf ? conf : "", conf ? "'" : "");
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  if (!fgets(line, sizeof line, p)) line[0] = '\0';
  int st = pclose(p);
  if (st != 0 || !strchr(line, ':')) return -1;
  s->port = atoi(strchr(line, ':') + 1);
  char pidpath[600];
  snprintf(pidpath, sizeof pidpath, "%s/redis.pid", s->dir);
  char *pid = nd_test_read_file(pidpath);
  s->pid = pid ? atoi(pid) : 0;
  free(pid);
  return 0;
}

static int redis_start(redis_srv *s, int port) { return redis_start_conf(s, port, NULL); }

static void redis_stop(redis_srv *s) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s/tests/services/redis.sh stop '%s'", ND_SOURCE_ROOT, s->dir);
  if (system(cmd) != 0) fprintf(stderr, "redis.sh stop failed\n");
}

static void redis_done(redis_srv *s) {
  redis_stop(s);
  nd_test_rmrf(s->dir);
}

static int have_redis(void) {
  if (system("command -v redis-server >/dev/null 2>&1") != 0) {
    printf("SKIPPED: redis-server not installed\n");
    return 0;
  }
  return 1;
}

static notifd_host *redis_host(struct event_base *base, int port, const char *policy) {
  notifd_host *h = thost_new(base, NULL);
  h->cfg.redis = tcfg_map();
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  tcfg_set(h->cfg.redis, "address", addr);
  tcfg_set(h->cfg.redis, "key_prefix", "chat-persistence-change");
  tcfg_set(h->cfg.redis, "command_timeout", "200ms");
  tcfg_set(h->cfg.redis, "connect_timeout", "500ms");
  if (policy) tcfg_set(h->cfg.redis, "policy", policy);
  return h;
}

static int ready_cond(void *a) { return nd_kv_ready(a); }

START_TEST(redis_claim_mark_exists_ttl) {
  if (!have_redis()) return;
  redis_srv s = {0};
  ck_assert_int_eq(redis_start(&s, 0), 0);
  struct event_base *base = event_base_new();
  notifd_host *h = redis_host(base, s.port, NULL);
  nd_kv *kv;
  ck_assert_int_eq(nd_kv_open(h, &kv, &h->errs), 0);
  ck_assert(run_until(base, ready_cond, kv, 5000));
  ck_assert_int_eq(CLAIM("{\"id\":\"1\"}", 60000), 1);
  ck_assert_int_eq(CLAIM("{\"id\":\"1\"}", 60000), 0);
  ck_assert_int_eq(EXISTS("{\"id\":\"1\"}"), 1);
  ck_assert_int_eq(EXISTS("nope"), 0);
  ck_assert_int_eq(MARK("m", 0), 1);
  /* the contract's key format, value "1", TTL set */
  redisContext *rc = redisConnect("127.0.0.1", s.port);
  ck_assert(rc && !rc->err);
  redisReply *r = redisCommand(rc, "GET %s", "eventstore:chat-persistence-change:{\"id\":\"1\"}");
  ck_assert(r && r->type == REDIS_REPLY_STRING);
  ck_assert_str_eq(r->str, "1");
  freeReplyObject(r);
  r = redisCommand(rc, "PTTL %s", "eventstore:chat-persistence-change:{\"id\":\"1\"}");
  ck_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer > 50000 && r->integer <= 60000);
  freeReplyObject(r);
  r = redisCommand(rc, "PTTL %s", "eventstore:chat-persistence-change:m");
  ck_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == -1); /* ttl 0: no expiry */
  freeReplyObject(r);
  redisFree(rc);
  /* expiry */
  ck_assert_int_eq(CLAIM("short", 100), 1);
  ck_assert_int_eq(CLAIM("short", 100), 0);
  run_for(base, 250);
  ck_assert_int_eq(CLAIM("short", 100), 1);
  nd_kv_free(kv);
  thost_free(h);
  event_base_free(base);
  redis_done(&s);
}
END_TEST

static double failopen(nd_kv *kv, const char *opname) {
  const char *l[] = {opname};
  return kv->failopen ? nd_metric_value(kv->failopen, l) : -1;
}

START_TEST(redis_down_fail_open) {
  int port = nd_test_free_port(); /* nothing listens there */
  struct event_base *base = event_base_new();
  notifd_host *h = redis_host(base, port, NULL);
  nd_kv *kv;
  ck_assert_int_eq(nd_kv_open(h, &kv, &h->errs), 0);
  run_for(base, 50);
  ck_assert(!nd_kv_ready(kv));
  ck_assert_int_eq(CLAIM("k", 1000), 1);   /* process it */
  ck_assert_int_eq(EXISTS("k"), 0);        /* not a duplicate */
  ck_assert_int_eq(MARK("k", 1000), 1);
  ck_assert(failopen(kv, "claim") == 1);
  ck_assert(failopen(kv, "exists") == 1);
  nd_kv_free(kv);
  thost_free(h);
  event_base_free(base);
}
END_TEST

START_TEST(redis_down_fail_closed) {
  int port = nd_test_free_port();
  struct event_base *base = event_base_new();
  notifd_host *h = redis_host(base, port, "fail-closed");
  nd_kv *kv;
  ck_assert_int_eq(nd_kv_open(h, &kv, &h->errs), 0);
  ck_assert_int_eq(CLAIM("k", 1000), NOTIFD_EBACKEND); /* the caller retries later */
  ck_assert_int_eq(EXISTS("k"), NOTIFD_EBACKEND);
  ck_assert(failopen(kv, "claim") == 0);
  nd_kv_free(kv);
  thost_free(h);
  /* a bad policy is a config error */
  h = redis_host(base, port, "maybe");
  ck_assert_int_lt(nd_kv_open(h, &kv, &h->errs), 0);
  ck_assert_uint_ge(h->errs.n, 1);
  thost_free(h);
  event_base_free(base);
}
END_TEST

static int not_ready_cond(void *a) { return !nd_kv_ready(a); }

START_TEST(redis_restart_reconnects_and_timeouts) {
  if (!have_redis()) return;
  redis_srv s = {0};
  ck_assert_int_eq(redis_start(&s, 0), 0);
  struct event_base *base = event_base_new();
  notifd_host *h = redis_host(base, s.port, NULL);
  nd_kv *kv;
  ck_assert_int_eq(nd_kv_open(h, &kv, &h->errs), 0);
  ck_assert(run_until(base, ready_cond, kv, 5000));
  ck_assert_int_eq(CLAIM("a", 0), 1);
  /* hung server: the command times out and the policy answers */
  kill(s.pid, SIGSTOP);
  int64_t t0 = nd_now_ms();
  ck_assert_int_eq(CLAIM("b", 0), 1);
  int64_t waited = nd_now_ms() - t0;
  ck_assert_int_ge(waited, 150);
  ck_assert_int_lt(waited, 2000);
  kill(s.pid, SIGCONT);
  /* server goes away and comes back on the same port */
  redis_stop(&s);
  ck_assert(run_until(base, not_ready_cond, kv, 5000));
  ck_assert_int_eq(EXISTS("a"), 0); /* fail-open while down */
  ck_assert_int_eq(redis_start(&s, s.port), 0);
  ck_assert(run_until(base, ready_cond, kv, 10000));
  ck_assert_int_eq(CLAIM("c", 0), 1);
  ck_assert_int_eq(CLAIM("c", 0), 0);
  nd_kv_free(kv);
  thost_free(h);
  event_base_free(base);
  redis_done(&s);
}
END_TEST

/* 1 once Redis (run in s->dir) has written `key` to its append-only file:
 * with appendfsync everysec the write can be postponed while a slow fsync
 * runs (a loaded machine), and only what is written survives kill -9. */
static int aof_has(const redis_srv *s, const char *key) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "grep -rqaF -- 'eventstore:chat-persistence-change:%s' '%s'", key,
           s->dir);
  return system(cmd) == 0;
}

/* The shipped config/distributed/redis.conf (append-only file): keys
 * survive kill -9 of Redis, and what fail-open answered while Redis was
 * down is written once it is back.  Without persistence the keys are gone
 * (what the distributed stack ran before). */
START_TEST(redis_kill9_keeps_keys_with_the_shipped_config) {
  if (!have_redis()) return;
  for (int aof = 1; aof >= 0; aof--) {
    redis_srv s = {0};
    ck_assert_int_eq(redis_start_conf(&s, 0, aof ? "config/distributed/redis.conf" : NULL), 0);
    struct event_base *base = event_base_new();
    notifd_host *h = redis_host(base, s.port, NULL);
    nd_kv *kv;
    ck_assert_int_eq(nd_kv_open(h, &kv, &h->errs), 0);
    ck_assert(run_until(base, ready_cond, kv, 5000));
    ck_assert_int_eq(CLAIM("before", 60000), 1);
    ck_assert_int_eq(MARK("marked", 0), 1);
    for (int i = 0; aof && i < 400 && !aof_has(&s, "marked"); i++) usleep(50 * 1000);
    kill(s.pid, SIGKILL);
    ck_assert(run_until(base, not_ready_cond, kv, 5000));
    ck_assert_int_eq(CLAIM("during", 60000), 1); /* fail-open: delivered */
    ck_assert_int_eq(MARK("during", 60000), 1);
    ck_assert_int_eq(MARK("released", 1), 1);    /* a claim given back */
    ck_assert_int_eq(redis_start_conf(&s, s.port, aof ? "config/distributed/redis.conf" : NULL),
                     0);
    ck_assert(run_until(base, ready_cond, kv, 10000));
    ck_assert_int_eq(EXISTS("before"), aof);
    ck_assert_int_eq(EXISTS("marked"), aof);
    ck_assert_int_eq(EXISTS("during"), 1); /* written on reconnect, either way */
    ck_assert_int_eq(EXISTS("released"), 0);
    redisContext *rc = redisConnect("127.0.0.1", s.port);
    ck_assert(rc && !rc->err);
    redisReply *r = redisCommand(rc, "PTTL %s", "eventstore:chat-persistence-change:during");
    ck_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer > 50000 && r->integer <= 60000);
    freeReplyObject(r);
    redisFree(rc);
    nd_kv_free(kv);
    thost_free(h);
    event_base_free(base);
    redis_done(&s);
  }
}
END_TEST
#endif /* NOTIFD_WITH_REDIS */

Suite *nd_test_suite(void) {
  Suite *s = suite_create("kv");
  TCase *tc = tcase_create("embedded");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, embedded_claim_mark_exists_ttl);
  tcase_add_test(tc, embedded_answers_before_commit);
  tcase_add_test(tc, embedded_callback_chain_and_clean_close);
  tcase_add_test(tc, embedded_recent_map_drains);
  tcase_add_test(tc, embedded_failed_write_is_counted);
  tcase_add_test(tc, embedded_writer_behind_is_bounded);
  tcase_add_test(tc, embedded_filter_avoids_reads);
  tcase_add_loop_test(tc, embedded_filter_churn_matches_model, 0,
                      (int)(sizeof churn_cfgs / sizeof churn_cfgs[0]));
  suite_add_tcase(s, tc);
#if NOTIFD_WITH_REDIS
  tc = tcase_create("redis");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, redis_claim_mark_exists_ttl);
  tcase_add_test(tc, redis_down_fail_open);
  tcase_add_test(tc, redis_down_fail_closed);
  tcase_add_test(tc, redis_restart_reconnects_and_timeouts);
  tcase_add_test(tc, redis_kill9_keeps_keys_with_the_shipped_config);
  suite_add_tcase(s, tc);
#else
  printf("SKIPPED: kv redis tests: built without Redis (-Dredis=disabled or hiredis missing)\n");
#endif
  return s;
}
