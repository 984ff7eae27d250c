/* The embedded kv's writer thread: commits the handed-over writes in
 * batches, purges expired keys and scans kv.db for the negative-lookup
 * filter (design and guarantees: kv_sqlite.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv/kv_sqlite_internal.h"
#include "log/log.h"
#include "util/buf.h"
#include "util/mono_wait.h"
#include "util/sqlite_stmt.h"

int nd_kvs_run_stmt(sqlite3 *db, const char *path, sqlite3_stmt *st) {
  return nd_sqlite_run(db, st, "kv", "embedded kv", path);
}

/* FNV-1a. */
uint64_t nd_kvs_hash_key(const char *k, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
  return h;
}

void nd_kvs_free_writes(kwrite *w) {
  while (w) {
    kwrite *n = w->next;
    free(w);
    w = n;
  }
}

/* ---- the writer thread ---- */

/* One transaction for the batch; counts what could not be committed and
 * logs it (at most once a second). */
static void write_batch(kdb *d, kwrite *batch, int64_t lost[2]) {
  int64_t ok[2] = {0, 0};
  char why[256] = "";
  kwrite *w = batch;
  int in_txn = nd_kvs_run_stmt(d->wdb, d->path, d->begin) == 0;
  for (; w && in_txn; w = w->next) {
    sqlite3_bind_text(d->put, 1, w->key, (int)w->len, SQLITE_STATIC);
    sqlite3_bind_int64(d->put, 2, w->expires);
    int rc = sqlite3_step(d->put);
    sqlite3_reset(d->put);
    sqlite3_clear_bindings(d->put);
    if (rc == SQLITE_DONE) {
      ok[w->op]++;
      continue;
    }
    lost[w->op]++;
    if (!why[0]) snprintf(why, sizeof why, "%s", sqlite3_errmsg(d->wdb));
    in_txn = !sqlite3_get_autocommit(d->wdb); /* some errors roll the transaction back */
  }
  if (!in_txn || nd_kvs_run_stmt(d->wdb, d->path, d->commit) < 0) {
    if (in_txn) nd_kvs_run_stmt(d->wdb, d->path, d->rollback);
    if (!why[0]) snprintf(why, sizeof why, "the transaction failed");
    lost[0] += ok[0]; /* nothing of the batch is in */
    lost[1] += ok[1];
    for (; w; w = w->next) lost[w->op]++;
  }
  int64_t n = lost[0] + lost[1], now = nd_now_ms();
  if (n == 0 || now - d->last_log_ms < 1000) return;
  d->last_log_ms = now;
  ND_ERROR("kv",
           "embedded kv %s: %" PRId64
           " write(s) lost (%s); dedupe may let those keys through again",
           d->path, n, why);
}

/* Under mu: the loop wakes up (on_done) and runs exchange(). */
static void notify_loop(kdb *d) {
  if (d->notified) return;
  d->notified = 1;
  uint64_t one = 1;
  if (write(d->efd, &one, sizeof one) < 0 && errno != EAGAIN)
    ND_WARN("kv", "embedded kv: eventfd write: %s", strerror(errno));
}

/* A new filter holding every key live in kv.db now; NULL on failure. */
static nd_bloom *scan_filter(kdb *d, uint64_t *nkeys) {
  nd_bloom *f = nd_bloom_new(d->filter_bits);
  if (!f) {
    ND_WARN("kv", "embedded kv %s: no memory for the filter; every miss reads kv.db", d->path);
    return NULL;
  }
  uint64_t n = 0;
  int rc;
  sqlite3_bind_int64(d->scan, 1, nd_wall_ms());
  while ((rc = sqlite3_step(d->scan)) == SQLITE_ROW) {
    const char *k = (const char *)sqlite3_column_text(d->scan, 0);
    nd_bloom_add(f, nd_kvs_hash_key(k, (size_t)sqlite3_column_bytes(d->scan, 0)));
    n++;
  }
  sqlite3_reset(d->scan);
  if (rc != SQLITE_DONE) {
    ND_WARN("kv", "embedded kv %s: filter scan: %s; every miss reads kv.db", d->path,
            sqlite3_errmsg(d->wdb));
    nd_bloom_free(f);
    return NULL;
  }
  *nkeys = n;
  return f;
}

/* Under mu, between batches: everything up to committed_seq has been
 * tried and nothing after it is in kv.db, so the scan is kv.db as of that
 * seq.  Hands the filter over and wakes the loop. */
static void rebuild_filter(kdb *d) {
  uint64_t seq = d->committed_seq, n = 0;
  d->want_scan = 0;
  pthread_mutex_unlock(&d->mu);
  nd_bloom *f = scan_filter(d, &n), *old = NULL;
  pthread_mutex_lock(&d->mu);
  if (!f) return; /* retried after the next purge (built == 0) or with the next want_scan */
  d->built = 1;
  d->built_cap = nd_bloom_capacity(f);
  d->built_keys = n;
  d->purged_since = 0;
  old = d->new_filter; /* not taken yet: this one is newer */
  d->new_filter = f;
  d->new_filter_seq = seq;
  d->new_filter_keys = n;
  d->scans++;
  notify_loop(d);
  pthread_mutex_unlock(&d->mu);
  nd_bloom_free(old);
  pthread_mutex_lock(&d->mu);
}

void *nd_kvs_writer_main(void *arg) {
  kdb *d = arg;
  struct timespec next_purge;
  nd_mono_deadline(&next_purge, d->purge_ms);
  pthread_mutex_lock(&d->mu);
  for (;;) {
    if (!d->stop && nd_mono_passed(&next_purge)) { /* even when batches never stop coming */
      pthread_mutex_unlock(&d->mu);
      sqlite3_bind_int64(d->purge, 1, nd_wall_ms());
      if (sqlite3_step(d->purge) != SQLITE_DONE)
        ND_WARN("kv", "embedded kv purge: %s", sqlite3_errmsg(d->wdb));
      else
        d->purged_since += (uint64_t)sqlite3_changes(d->wdb);
      sqlite3_reset(d->purge);
      nd_mono_deadline(&next_purge, d->purge_ms);
      pthread_mutex_lock(&d->mu);
      /* Rebuild once a quarter of what the filter holds has been purged,
       * if it is at least half full (below that its false positives are
       * rare anyway).  When the last scan alone overfilled it, only once
       * half of those keys are gone: a scan of a live set larger than the
       * filter buys little and costs the writer the whole file. */
      uint64_t load = d->shared_load, need = load / 4;
      if (d->built_keys > d->built_cap && d->built_keys / 2 > need) need = d->built_keys / 2;
      if (d->filter_bits &&
          (!d->built || (load > d->built_cap / 2 && d->purged_since >= need)))
        d->want_scan = 1;
    }
    if (d->want_scan && !d->stop) {
      rebuild_filter(d);
      continue;
    }
    if (d->q_head) { /* everything queued now is one batch */
      kwrite *batch = d->q_head;
      uint64_t seq = d->queued_seq;
      d->q_head = d->q_tail = NULL;
      pthread_mutex_unlock(&d->mu);
      int64_t lost[2] = {0, 0};
      write_batch(d, batch, lost);
      nd_kvs_free_writes(batch);
      pthread_mutex_lock(&d->mu);
      d->committed_seq = seq;
      d->lost[0] += lost[0];
      d->lost[1] += lost[1];
      if (d->scan_every_batch) d->want_scan = 1;
      notify_loop(d); /* the loop drops the committed keys from its map */
    } else if (d->stop) {
      break; /* only once the queue is empty */
    } else {
      pthread_cond_timedwait(&d->cv, &d->mu, &next_purge);
    }
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

