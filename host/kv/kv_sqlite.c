/* Embedded kv backend: kv.db (SQLite, WAL) in the data directory.
 *
 * The loop thread answers every operation from memory plus, at most, one
 * read of kv.db; the writes happen on a writer thread:
 *
 * - "recent" map (loop thread only): every key this process wrote whose
 *   write is not yet known to be committed, with its expiry.  It is the
 *   newest state of such a key, so it is consulted first; a miss falls back
 *   to a SELECT on the loop's own connection (autocommit read, never a write
 *   transaction on the loop; PRAGMA query_only).
 *   claim: live (in the map, else in kv.db) -> 0; else record + queue the
 *   write -> 1.  mark: record + queue -> 1.  exists: map, else SELECT.
 * - Each write gets a sequence number; the map keeps its entries in that
 *   order.  Writes are handed to the writer in one mutex section every
 *   2 ms (or every 1024 writes), not every loop turn: waking the writer
 *   each turn cost the loop a futex call per turn.
 * - The writer thread (kv_sqlite_writer.c; its own connection) takes
 *   everything queued, commits it as one transaction, publishes "tried up
 *   to seq N" and wakes the loop through an eventfd; the loop drops the map
 *   entries with seq <= N (an entry re-written meanwhile has a larger seq
 *   and stays).  So the map
 *   holds only writes not yet committed (plus, briefly, those committed
 *   since the loop last looked): it stays bounded while the writer keeps up.
 *   Shared state (the queue, N, the lost-write counts, stop) is under `mu`;
 *   the map and the loop's connection are touched by the loop thread only,
 *   the writer's connection and statements by the writer only (prepared by
 *   the loop before the thread starts, finalized after it is joined).
 * - The writer also runs the purge of expired keys
 *   (kv.embedded.purge_interval, default 1m); WAL checkpoints run on a
 *   thread of their own (util/sqlite_ckpt.h).
 * - Back-pressure: when kv.embedded.max_pending (default 262144) writes
 *   are not yet committed (the writer is stuck on the disk or on a lock
 *   another process holds), further writes are not kept: the op is
 *   answered by the failure policy (fail-open: the key counts as new) and
 *   counted in notifd_kv_errors_total, so memory stays bounded.
 * - Negative-lookup filter (util/bloom.h, loop thread only): a Bloom filter
 *   holding every key that may be live in kv.db.  A key in neither the map
 *   nor the filter is absent: no SELECT (most dedupe keys are new, so most
 *   lookups end here).  A filter hit reads kv.db as before.  Size
 *   kv.embedded.filter_bits (default 2^25 bits = 4 MiB, rounded up to a
 *   power of two; ~1% false positives at 3.3M keys, 10 bits a key; 0 = no
 *   filter).  Past its capacity it only answers "maybe" more often (2x the
 *   keys: ~14%, 4x: ~64%): more SELECTs, never a wrong answer.
 *   Contents: the writer's scan of the live keys of kv.db (SELECT k ...
 *   WHERE not expired) plus every key record_write wrote since.  The scan
 *   runs on the writer thread, first thing at start (until the loop has a
 *   filter every miss reads kv.db, as without one) and again after a purge
 *   when the filter is at least half full and the rows purged since its
 *   scan amount to a quarter of the keys in it (scanned + new ones the loop
 *   added), or to half the keys the scan found when those alone were more
 *   than its capacity (a live set bigger than the filter: rescanning buys
 *   little); so at most one scan per purge interval.  A scan costs the
 *   writer ~0.2-0.3 us a key (kv_bench's reopen: 50k keys 15 ms, 500k keys
 *   100 ms; so ~1 s for 3M keys), during
 *   which batches wait and the map grows; the loop pays only for adding
 *   its map's keys to the new filter.
 *   Why no live key is missing from a new filter: the writer scans right
 *   after trying batch S and before taking the next one, so the scan is
 *   kv.db holding exactly the writes with seq <= S (committed ones; lost
 *   ones are not live anyway).  It hands {filter, S} over under `mu`; the
 *   loop takes it in exchange() in the same mutex section where it reads
 *   committed_seq, adds every key in its map, and only then prunes.  A
 *   write with seq > S is committed at the earliest by the batch after the
 *   scan, whose committed_seq is published after the handover, so the loop
 *   learns it in that section at the earliest: until then the write's
 *   entry stays in the map (pruned_to <= S; checked) and is added.  Writes
 *   after the take go into the new filter in record_write.  Expired keys
 *   are left out of the scan: nothing makes an
 *   expired key live again but a new write, which is added.
 *   Consequence: a key another process commits to kv.db after this one
 *   scanned it is seen only by chance (a false positive) until the next
 *   scan; kv.db is one process's anyway (below).  The filter is not rebuilt
 *   when keys without expiry pile up (nothing to purge): it stays
 *   saturated and every miss reads kv.db again.
 *
 * Callbacks run on the loop in a zero-delay event, never inside the
 * caller's call, and only with an answer: when the SELECT fails the op goes
 * through nd_kv_failed (the fail-open/fail-closed policy).
 *
 * Durability and guarantees (dedupe is best-effort and fails open):
 * - An answer does not wait for its write.  A write that then fails to
 *   commit is logged and counted (notifd_kv_errors_total) and forgotten: the
 *   key may later be claimed again.  It cannot un-answer the op.
 * - Clean stop (nd_kv_free): everything queued is committed before it
 *   returns.  kill -9 (or a crash) loses the writes not yet committed - the
 *   last batch, a few milliseconds - so a record redelivered after such a
 *   stop gets through dedupe once more; downstream is at-least-once anyway.
 *   A committed batch survives kill -9 (WAL, synchronous=NORMAL: a power
 *   loss may lose the last commits).
 * - kv.db is owned by one process: the claim decision is made in memory,
 *   so two processes claiming the same key on one file may both win.  A
 *   second process only sees this one's writes once they are committed,
 *   and this one does not see the other's until its next filter scan.
 *
 * Expiry is wall-clock milliseconds (0 = never): expired keys are invisible
 * at once (lazy) and deleted by the purge. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kv/kv_sqlite_internal.h"
#include "log/log.h"
#include "util/buf.h"
#include "util/mono_wait.h"

/* ---- the recent map (loop thread) ---- */

static rkey *map_find(kdb *d, const char *k, size_t n, uint64_t h) {
  if (!d->nbuckets) return NULL;
  for (rkey *e = d->buckets[h & (d->nbuckets - 1)]; e; e = e->hnext)
    if (e->hash == h && e->len == n && memcmp(e->key, k, n) == 0) return e;
  return NULL;
}

static int map_resize(kdb *d, size_t nb) {
  rkey **b = calloc(nb, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < d->nbuckets; i++) {
    for (rkey *e = d->buckets[i], *nx; e; e = nx) {
      nx = e->hnext;
      e->hnext = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
    }
  }
  free(d->buckets);
  d->buckets = b;
  d->nbuckets = nb;
  return 0;
}

static void order_unlink(kdb *d, rkey *e) {
  if (e->prev) e->prev->next = e->next;
  else d->oldest = e->next;
  if (e->next) e->next->prev = e->prev;
  else d->newest = e->prev;
  e->prev = e->next = NULL;
}

static void order_append(kdb *d, rkey *e) {
  e->prev = d->newest;
  e->next = NULL;
  if (d->newest) d->newest->next = e;
  else d->oldest = e;
  d->newest = e;
}

/* Drops the entries whose last write has been committed (or given up). */
static void map_prune(kdb *d, uint64_t committed) {
  if (committed > d->pruned_to) d->pruned_to = committed;
  while (d->oldest && d->oldest->seq <= committed) {
    rkey *e = d->oldest;
    order_unlink(d, e);
    rkey **pp = &d->buckets[e->hash & (d->nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    free(e);
    d->nrecent--;
  }
  if (d->nrecent == 0 && d->nbuckets > 4096) { /* after a burst: give the table back */
    free(d->buckets);
    d->buckets = NULL;
    d->nbuckets = 0;
  }
}

static void map_free(kdb *d) {
  while (d->oldest) {
    rkey *e = d->oldest;
    d->oldest = e->next;
    free(e);
  }
  d->newest = NULL;
  d->nrecent = 0;
  free(d->buckets);
  d->buckets = NULL;
  d->nbuckets = 0;
}

/* ---- handing writes over, taking results back (loop thread) ---- */

/* Under mu: moves the pending writes to the writer's queue (when `hand`)
 * and takes what the writer has finished.  Returns the seq committed up to. */
static uint64_t exchange_locked(kdb *d, int64_t lost[2], int hand) {
  d->shared_load = d->load;
  if (hand && d->pend_head) {
    if (d->q_tail) d->q_tail->next = d->pend_head;
    else d->q_head = d->pend_head;
    d->q_tail = d->pend_tail;
    d->pend_head = d->pend_tail = NULL;
    d->npend = 0;
    d->handoff_due = 0;
    d->queued_seq = d->seq;
    pthread_cond_signal(&d->cv);
  }
  lost[0] = d->lost[0];
  lost[1] = d->lost[1];
  d->lost[0] = d->lost[1] = 0;
  return d->committed_seq;
}

static void count_lost(kdb *d, const int64_t lost[2]) {
  static const char *const names[] = {"claim", "mark"};
  for (int i = 0; i < 2; i++) {
    if (lost[i] && d->kv->errors) {
      const char *l[] = {names[i]};
      nd_metric_add(d->kv->errors, l, (double)lost[i]);
    }
  }
}

/* Ends the loop's read transaction: the next read sees every commit. */
static void end_read(kdb *d) {
  if (!d->in_read) return;
  d->in_read = 0;
  if (nd_kvs_run_stmt(d->db, d->path, d->rend) < 0 && !sqlite3_get_autocommit(d->db))
    sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Writes are handed to the writer every HANDOFF_MS or HANDOFF_MAX writes,
 * not every loop turn: waking the writer (a futex call) each turn cost the
 * loop more than the writes themselves. */
#define HANDOFF_MS  2
#define HANDOFF_MAX 1024

/* A filter the writer built from kv.db as of seq `seq` (`keys` keys): every
 * write after `seq` is still in the map (the map is pruned only after this),
 * so adding the map's keys completes it.  See the header. */
static void take_filter(kdb *d, nd_bloom *f, uint64_t seq, uint64_t keys) {
  if (d->pruned_to > seq) { /* cannot happen (the writer scans between batches) */
    ND_ERROR("kv", "embedded kv %s: filter of seq %" PRIu64 " is older than the map (%" PRIu64
             "); dropped", d->path, seq, d->pruned_to);
    nd_bloom_free(f);
    return;
  }
  for (rkey *e = d->oldest; e; e = e->next) nd_bloom_add(f, e->hash);
  nd_bloom_free(d->filter);
  d->filter = f;
  d->load = keys + d->nrecent;
}

static void exchange(kdb *d) {
  int64_t lost[2];
  /* A map entry may go only once the reads can see its commit: close the
   * read snapshot before learning what is committed. */
  end_read(d);
  int hand = d->handoff_due || d->npend >= HANDOFF_MAX;
  pthread_mutex_lock(&d->mu);
  uint64_t committed = exchange_locked(d, lost, hand);
  nd_bloom *f = d->new_filter;
  uint64_t fseq = d->new_filter_seq, fkeys = d->new_filter_keys;
  d->new_filter = NULL;
  pthread_mutex_unlock(&d->mu);
  if (d->pend_head && !evtimer_pending(d->handoff_ev, NULL)) {
    struct timeval tv = {0, HANDOFF_MS * 1000};
    evtimer_add(d->handoff_ev, &tv);
  }
  if (f) take_filter(d, f, fseq, fkeys); /* before the prune */
  map_prune(d, committed);
  count_lost(d, lost);
}

#define RESULT_BEHIND (-2) /* max_pending writes wait: answered by the policy */

static void on_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  kdb *d = arg;
  exchange(d);
  /* Callbacks may add ops: those go to the other array, next turn. */
  kres *list = d->res;
  size_t n = d->nres, cap = d->cap_res;
  d->res = d->spare;
  d->cap_res = d->cap_spare;
  d->nres = 0;
  d->spare = NULL;
  d->cap_spare = 0;
  d->in_flush = 1;
  for (size_t i = 0; i < n; i++) {
    kres *r = &list[i];
    if (r->result < 0)
      nd_kv_failed(d->kv, r->op, r->cb, r->ud,
                   r->result == RESULT_BEHIND ? "the kv.db writer is behind (max_pending)"
                                              : "sqlite error");
    else if (r->cb) r->cb(r->result, r->ud);
  }
  d->in_flush = 0;
  d->spare = list;
  d->cap_spare = cap;
}

static void on_handoff(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  kdb *d = arg;
  d->handoff_due = 1;
  exchange(d);
}

static void on_done(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  kdb *d = arg;
  uint64_t v;
  if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
    ND_WARN("kv", "embedded kv: eventfd read: %s", strerror(errno));
  pthread_mutex_lock(&d->mu);
  d->notified = 0;
  pthread_mutex_unlock(&d->mu);
  exchange(d);
}

/* ---- operations (loop thread) ---- */

/* 1 live, 0 absent or expired, -1 error.  The reads of a loop turn share
 * one read transaction (beginning and ending one per read costs more than
 * the lookup); exchange() ends it. */
static int32_t db_live(kdb *d, const char *key, size_t key_len, int64_t now) {
  d->reads++;
  if (!d->in_read && nd_kvs_run_stmt(d->db, d->path, d->rbegin) == 0) d->in_read = 1;
  sqlite3_bind_text(d->live, 1, key, (int)key_len, SQLITE_STATIC);
  sqlite3_bind_int64(d->live, 2, now);
  int rc = sqlite3_step(d->live);
  sqlite3_reset(d->live);
  sqlite3_clear_bindings(d->live);
  d->empty_reads += rc == SQLITE_DONE;
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Room for one more callback. */
static int reserve_result(kdb *d) {
  if (d->nres < d->cap_res) return 0;
  size_t cap = d->cap_res ? d->cap_res * 2 : 64;
  kres *r = realloc(d->res, cap * sizeof *r);
  if (!r) return -1;
  d->res = r;
  d->cap_res = cap;
  return 0;
}

/* Records the write in the map and the pending queue; < 0 on ENOMEM
 * (nothing changed). */
static int record_write(kdb *d, int op, rkey *e, const char *key, size_t key_len, uint64_t h,
                        int64_t expires) {
  kwrite *w = malloc(sizeof *w + key_len);
  if (!w) return NOTIFD_ENOMEM;
  if (!e) {
    if (d->nrecent >= d->nbuckets && map_resize(d, d->nbuckets ? d->nbuckets * 2 : 256) < 0) {
      free(w);
      return NOTIFD_ENOMEM;
    }
    if (!(e = malloc(sizeof *e + key_len))) {
      free(w);
      return NOTIFD_ENOMEM;
    }
    e->hash = h;
    e->len = key_len;
    memcpy(e->key, key, key_len);
    e->hnext = d->buckets[h & (d->nbuckets - 1)];
    d->buckets[h & (d->nbuckets - 1)] = e;
    d->nrecent++;
  } else {
    order_unlink(d, e);
  }
  e->seq = ++d->seq;
  e->expires = expires;
  order_append(d, e);
  if (d->filter && !nd_bloom_maybe(d->filter, h)) { /* same cache line as the add */
    nd_bloom_add(d->filter, h);
    d->load++;
  }
  w->next = NULL;
  w->op = op;
  w->expires = expires;
  w->len = key_len;
  memcpy(w->key, key, key_len);
  if (d->pend_tail) d->pend_tail->next = w;
  else d->pend_head = w;
  d->pend_tail = w;
  d->npend++;
  return 0;
}

static int is_live(int64_t expires, int64_t now) { return expires == 0 || expires > now; }

static int sqlite_op(nd_kv *kv, int op, const char *key, size_t key_len, int64_t ttl_ms,
                     notifd_kv_cb cb, void *ud) {
  kdb *d = kv->impl;
  if (reserve_result(d) < 0) return NOTIFD_ENOMEM;
  int64_t now = nd_wall_ms();
  uint64_t h = nd_kvs_hash_key(key, key_len);
  rkey *e = map_find(d, key, key_len, h);
  int32_t live;
  if (op == ND_KV_MARK) {
    live = 0; /* not needed */
  } else if (e) {
    live = is_live(e->expires, now);
  } else if (d->filter && !nd_bloom_maybe(d->filter, h)) {
    live = 0; /* neither written by this process nor in kv.db */
    d->skips++;
  } else {
    live = db_live(d, key, key_len, now);
  }
  int32_t result;
  if (op == ND_KV_EXISTS) {
    result = live;
  } else if (op == ND_KV_CLAIM && live != 0) {
    result = live > 0 ? 0 : -1; /* held by someone, or the read failed */
  } else if (d->seq - d->pruned_to >= (uint64_t)d->max_pending) {
    /* The writer is stuck (disk, a lock held elsewhere): memory stays
     * bounded and the op is answered by the failure policy (fail-open:
     * the key counts as new, the write is not kept). */
    result = RESULT_BEHIND;
  } else {
    int rc = record_write(d, op, e, key, key_len, h, ttl_ms > 0 ? now + ttl_ms : 0);
    if (rc < 0) return rc;
    result = 1;
  }
  d->res[d->nres++] = (kres){op, result, cb, ud};
  if (d->in_flush) { /* a callback chaining ops: next loop turn */
    struct timeval zero = {0, 0};
    event_add(d->flush_ev, &zero);
  } else {
    event_active(d->flush_ev, EV_TIMEOUT, 0);
  }
  return 0;
}

size_t nd_kv_sqlite_recent(nd_kv *kv) {
  kdb *d = kv && kv->impl ? kv->impl : NULL;
  return d ? d->nrecent : 0;
}

void nd_kv_sqlite_stats(nd_kv *kv, nd_kv_sqlite_stat *st) {
  kdb *d = kv->impl;
  *st = (nd_kv_sqlite_stat){d->reads, d->skips, d->empty_reads, 0, d->filter != NULL};
  pthread_mutex_lock(&d->mu);
  st->scans = d->scans;
  pthread_mutex_unlock(&d->mu);
}

void nd_kv_sqlite_scan_every_batch(nd_kv *kv) {
  kdb *d = kv->impl;
  pthread_mutex_lock(&d->mu);
  d->scan_every_batch = 1;
  pthread_mutex_unlock(&d->mu);
}

static int sqlite_ready(nd_kv *kv) { return ((kdb *)kv->impl)->db != NULL; }

static void sqlite_free(nd_kv *kv) {
  kdb *d = kv->impl;
  if (!d) return;
  if (d->started > 0) { /* commit everything queued, then stop the writer */
    int64_t lost[2];
    pthread_mutex_lock(&d->mu);
    exchange_locked(d, lost, 1);
    d->stop = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    count_lost(d, lost);
    pthread_join(d->thread, NULL);
    pthread_mutex_lock(&d->mu);
    exchange_locked(d, lost, 1);
    pthread_mutex_unlock(&d->mu);
    count_lost(d, lost);
  }
  if (d->started >= 0) {
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
  }
  end_read(d);
  nd_sqlite_ckpt_stop(d->ckpt);
  nd_kvs_free_writes(d->pend_head);
  map_free(d);
  nd_bloom_free(d->filter);
  nd_bloom_free(d->new_filter);
  free(d->res); /* pending callbacks are dropped, not called */
  free(d->spare);
  if (d->flush_ev) event_free(d->flush_ev);
  if (d->done_ev) event_free(d->done_ev);
  if (d->handoff_ev) event_free(d->handoff_ev);
  if (d->efd >= 0) close(d->efd);
  sqlite3_finalize(d->live);
  sqlite3_finalize(d->rbegin);
  sqlite3_finalize(d->rend);
  sqlite3_finalize(d->put);
  sqlite3_finalize(d->purge);
  sqlite3_finalize(d->begin);
  sqlite3_finalize(d->commit);
  sqlite3_finalize(d->rollback);
  sqlite3_finalize(d->scan);
  if (d->db) sqlite3_close(d->db);
  if (d->wdb) sqlite3_close(d->wdb); /* the last connection: checkpoints the WAL */
  free(d->path);
  free(d);
  kv->impl = NULL;
}

static const nd_kv_ops sqlite_ops = {"embedded", sqlite_op, sqlite_ready, sqlite_free};

static const char schema[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS kv_expiry ON kv(expires) WHERE expires != 0;";

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK ? 0
                                                                                         : -1;
}

static int open_db(const char *path, sqlite3 **db, const char *sql) {
  int rc = sqlite3_open_v2(path, db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_busy_timeout(*db, 5000);
  return sqlite3_exec(*db, sql, NULL, NULL, NULL);
}

/* Both connections and every statement; 0 or an SQLite code. */
static int open_conns(kdb *d) {
  int rc = open_db(d->path, &d->wdb, schema);
  if (rc != SQLITE_OK) return rc;
  if (prepare(d->wdb,
              /* the loop decided; the newest write of a key wins */
              "INSERT INTO kv(k, expires) VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET "
              "expires=excluded.expires",
              &d->put) < 0 ||
      prepare(d->wdb, "DELETE FROM kv WHERE expires != 0 AND expires <= ?1", &d->purge) < 0 ||
      prepare(d->wdb, "BEGIN IMMEDIATE", &d->begin) < 0 ||
      prepare(d->wdb, "COMMIT", &d->commit) < 0 || prepare(d->wdb, "ROLLBACK", &d->rollback) < 0 ||
      prepare(d->wdb, "SELECT k FROM kv WHERE expires=0 OR expires>?1", &d->scan) < 0)
    return SQLITE_ERROR;
  if ((rc = open_db(d->path, &d->db, "PRAGMA query_only=1")) != SQLITE_OK) return rc;
  if (prepare(d->db, "SELECT 1 FROM kv WHERE k=?1 AND (expires=0 OR expires>?2)", &d->live) < 0 ||
      prepare(d->db, "BEGIN", &d->rbegin) < 0 || prepare(d->db, "COMMIT", &d->rend) < 0)
    return SQLITE_ERROR;
  return SQLITE_OK;
}

#define DEFAULT_FILTER_BITS (1LL << 25) /* 4 MiB: ~1% false positives at 3.3M keys */
#define DEFAULT_MAX_PENDING 262144      /* ~10 s of writes at 20 000 chat msg/s, ~60 MB */
#define MAX_FILTER_BITS (1LL << 36)

int nd_kv_sqlite_open(nd_kv *kv, nd_errors *errs) {
  kdb *d = calloc(1, sizeof *d);
  if (!d) return NOTIFD_ENOMEM;
  d->kv = kv;
  d->efd = -1;
  d->started = -1; /* mutex not initialised yet */
  kv->impl = d;
  kv->ops = &sqlite_ops;
  nd_cfg_node *emb = kv->host->cfg.kv_cfg ? nd_cfg_get(kv->host->cfg.kv_cfg, "embedded") : NULL;
  nd_cfg_node *n;
  const char *path = NULL;
  d->purge_ms = 60000;
  int bad = 0;
  if (emb && (n = nd_cfg_get(emb, "path")) && !n->is_null)
    bad |= nd_cfg_as_string(n, errs, &path) < 0;
  if (emb && (n = nd_cfg_get(emb, "purge_interval")) && !n->is_null)
    bad |= nd_cfg_as_duration_ms(n, errs, &d->purge_ms) < 0;
  int64_t fbits = DEFAULT_FILTER_BITS;
  if (emb && (n = nd_cfg_get(emb, "filter_bits")) && !n->is_null) {
    if (nd_cfg_as_int(n, errs, &fbits) < 0) {
      bad = 1;
    } else if (fbits < 0 || fbits > MAX_FILTER_BITS) {
      nd_errors_add(errs, n->file, n->line, n->col,
                    "kv.embedded.filter_bits: expected 0 (no filter) to %lld, got %lld",
                    (long long)MAX_FILTER_BITS, (long long)fbits);
      bad = 1;
    }
  }
  d->filter_bits = (uint64_t)fbits;
  d->max_pending = DEFAULT_MAX_PENDING;
  if (emb && (n = nd_cfg_get(emb, "max_pending")) && !n->is_null) {
    if (nd_cfg_as_int(n, errs, &d->max_pending) < 0) {
      bad = 1;
    } else if (d->max_pending < 1) {
      nd_errors_add(errs, n->file, n->line, n->col,
                    "kv.embedded.max_pending: expected at least 1, got %lld",
                    (long long)d->max_pending);
      bad = 1;
    }
  }
  d->want_scan = fbits > 0;
  if (bad) {
    sqlite_free(kv);
    return NOTIFD_EINVAL;
  }
  if (d->purge_ms < 100) d->purge_ms = 100;
  if (path) {
    d->path = strdup(path);
  } else {
    const char *dir = kv->host->cfg.data_dir;
    nd_buf p;
    nd_buf_init(&p);
    nd_buf_printf(&p, "%s/kv.db", dir && *dir ? dir : ".");
    d->path = nd_buf_steal(&p, NULL);
  }
  if (!d->path) {
    sqlite_free(kv);
    return NOTIFD_ENOMEM;
  }
  if (kv->host->check_only) return 0; /* --check: settings validated, kv.db untouched */
  int rc = open_conns(d);
  if (rc != SQLITE_OK) {
    sqlite3 *db = d->db ? d->db : d->wdb;
    nd_errors_add(errs, NULL, 0, 0, "embedded kv %s: %s", d->path,
                  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite_free(kv);
    return NOTIFD_EBACKEND;
  }
  if ((d->ckpt = nd_sqlite_ckpt_start(d->path, 200)) != NULL)
    sqlite3_wal_autocheckpoint(d->wdb, ND_SQLITE_CKPT_AUTO_FRAMES);
  pthread_mutex_init(&d->mu, NULL);
  nd_mono_cond_init(&d->cv);
  d->started = 0;
  d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  d->flush_ev = event_new(kv->base, -1, 0, on_flush, d);
  d->handoff_ev = evtimer_new(kv->base, on_handoff, d);
  d->done_ev = d->efd >= 0 ? event_new(kv->base, d->efd, EV_READ | EV_PERSIST, on_done, d) : NULL;
  if (!d->flush_ev || !d->handoff_ev || !d->done_ev || event_add(d->done_ev, NULL) < 0) {
    sqlite_free(kv);
    return NOTIFD_ENOMEM;
  }
  if (pthread_create(&d->thread, NULL, nd_kvs_writer_main, d) != 0) {
    nd_errors_add(errs, NULL, 0, 0, "embedded kv %s: cannot start the writer thread", d->path);
    sqlite_free(kv);
    return NOTIFD_EBACKEND;
  }
  d->started = 1;
  return 0;
}
