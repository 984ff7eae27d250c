/* Embedded kv backend: kv.db (SQLite, WAL) in the data directory.
 *
 * Each operation runs at once inside a transaction that stays open for the
 * rest of the loop iteration; a zero-delay event commits it and then runs
 * the callbacks, so a burst of dedupe checks costs one commit and callbacks
 * never run inside the caller's call.  Expiry is wall-clock milliseconds
 * (0 = never): expired keys are invisible at once (lazy) and deleted by a
 * periodic purge (kv.embedded.purge_interval, default 1m).  WAL checkpoints
 * mostly run on a thread of their own (util/sqlite_ckpt.h). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"
#include "log/log.h"
#include "util/buf.h"
#include "util/sqlite_ckpt.h"

typedef struct kres {
  struct kres *next;
  int op;
  int32_t result; /* < 0: the backend failed */
  notifd_kv_cb cb;
  void *ud;
} kres;

typedef struct kdb {
  nd_kv *kv;
  sqlite3 *db;
  char *path;
  sqlite3_stmt *claim, *mark, *exists, *purge;
  sqlite3_stmt *begin, *commit, *rollback; /* prepared once: no parse per batch */
  nd_sqlite_ckpt *ckpt;
  int in_txn, in_flush;
  kres *head, *tail;
  struct event *flush_ev, *purge_ev;
  int64_t purge_ms;
} kdb;

static int exec_sql(kdb *d, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(d->db, sql, NULL, NULL, &err) == SQLITE_OK) return 0;
  ND_ERROR("kv", "embedded kv %s: %s: %s", d->path, sql, err ? err : "?");
  sqlite3_free(err);
  return -1;
}

static int run_stmt(kdb *d, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) return 0;
  ND_ERROR("kv", "embedded kv %s: %s: %s", d->path, sqlite3_sql(st), sqlite3_errmsg(d->db));
  return -1;
}

static void flush(kdb *d) {
  int commit_failed = 0;
  if (d->in_txn) {
    d->in_txn = 0;
    if (run_stmt(d, d->commit) < 0) {
      run_stmt(d, d->rollback);
      commit_failed = 1;
    }
  }
  kres *r = d->head;
  d->head = d->tail = NULL;
  while (r) {
    kres *n = r->next;
    if (commit_failed || r->result < 0) nd_kv_failed(d->kv, r->op, r->cb, r->ud, "sqlite error");
    else if (r->cb) r->cb(r->result, r->ud);
    free(r);
    r = n;
  }
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  kdb *d = arg;
  d->in_flush = 1;
  flush(d);
  d->in_flush = 0;
}

static int32_t step_changes(kdb *d, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return -1;
  return sqlite3_changes(d->db) > 0;
}

static int sqlite_op(nd_kv *kv, int op, const char *key, size_t key_len, int64_t ttl_ms,
                     notifd_kv_cb cb, void *ud) {
  kdb *d = kv->impl;
  kres *r = calloc(1, sizeof *r);
  if (!r) return NOTIFD_ENOMEM;
  r->op = op;
  r->cb = cb;
  r->ud = ud;
  if (!d->in_txn && run_stmt(d, d->begin) == 0) d->in_txn = 1;
  int64_t now = nd_wall_ms();
  int64_t expires = ttl_ms > 0 ? now + ttl_ms : 0;
  sqlite3_stmt *st = op == ND_KV_CLAIM ? d->claim : op == ND_KV_MARK ? d->mark : d->exists;
  sqlite3_bind_text(st, 1, key, (int)key_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, op == ND_KV_EXISTS ? now : expires);
  if (op == ND_KV_CLAIM) sqlite3_bind_int64(st, 3, now);
  if (!d->in_txn) {
    r->result = -1;
    sqlite3_reset(st);
  } else if (op == ND_KV_EXISTS) {
    int rc = sqlite3_step(st);
    r->result = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(st);
  } else {
    r->result = step_changes(d, st);
    if (op == ND_KV_MARK && r->result == 0) r->result = 1;
  }
  sqlite3_clear_bindings(st);
  if (d->tail) d->tail->next = r;
  else d->head = r;
  d->tail = r;
  if (d->in_flush) { /* a callback chaining ops: next loop turn */
    struct timeval zero = {0, 0};
    event_add(d->flush_ev, &zero);
  } else {
    event_active(d->flush_ev, EV_TIMEOUT, 0);
  }
  return 0;
}

static void on_purge(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  kdb *d = arg;
  if (d->in_txn) return; /* next time */
  sqlite3_bind_int64(d->purge, 1, nd_wall_ms());
  if (sqlite3_step(d->purge) != SQLITE_DONE)
    ND_WARN("kv", "embedded kv purge: %s", sqlite3_errmsg(d->db));
  sqlite3_reset(d->purge);
}

static int sqlite_ready(nd_kv *kv) { return ((kdb *)kv->impl)->db != NULL; }

static void sqlite_free(nd_kv *kv) {
  kdb *d = kv->impl;
  if (!d) return;
  if (d->in_txn) run_stmt(d, d->commit);
  nd_sqlite_ckpt_stop(d->ckpt);
  while (d->head) { /* dropped, not called */
    kres *n = d->head->next;
    free(d->head);
    d->head = n;
  }
  if (d->flush_ev) event_free(d->flush_ev);
  if (d->purge_ev) event_free(d->purge_ev);
  sqlite3_finalize(d->claim);
  sqlite3_finalize(d->mark);
  sqlite3_finalize(d->exists);
  sqlite3_finalize(d->purge);
  sqlite3_finalize(d->begin);
  sqlite3_finalize(d->commit);
  sqlite3_finalize(d->rollback);
  if (d->db) sqlite3_close(d->db);
  free(d->path);
  free(d);
  kv->impl = NULL;
}

static const nd_kv_ops sqlite_ops = {"embedded", sqlite_op, sqlite_ready, sqlite_free};

static const char schema[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS kv_expiry ON kv(expires) WHERE expires != 0;";

static int prepare(kdb *d, const char *sql, sqlite3_stmt **st) {
  return sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK
             ? 0
             : -1;
}

int nd_kv_sqlite_open(nd_kv *kv, nd_errors *errs) {
  kdb *d = calloc(1, sizeof *d);
  if (!d) return NOTIFD_ENOMEM;
  d->kv = kv;
  kv->impl = d;
  kv->ops = &sqlite_ops;
  nd_cfg_node *emb = kv->host->cfg.kv_cfg ? nd_cfg_get(kv->host->cfg.kv_cfg, "embedded") : NULL;
  nd_cfg_node *n;
  const char *path = NULL;
  d->purge_ms = 60000;
  int bad = 0;
  if (emb && (n = nd_cfg_get(emb, "path")) && !n->is_null) bad |= nd_cfg_as_string(n, errs, &path) < 0;
  if (emb && (n = nd_cfg_get(emb, "purge_interval")) && !n->is_null)
    bad |= nd_cfg_as_duration_ms(n, errs, &d->purge_ms) < 0;
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
  int rc = sqlite3_open_v2(d->path, &d->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) sqlite3_busy_timeout(d->db, 5000);
  if (rc != SQLITE_OK || exec_sql(d, schema) < 0 ||
      /* Claimed when absent or expired (the upsert's WHERE decides). */
      prepare(d,
              "INSERT INTO kv(k, expires) VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET "
              "expires=excluded.expires WHERE kv.expires != 0 AND kv.expires <= ?3",
              &d->claim) < 0 ||
      prepare(d,
              "INSERT INTO kv(k, expires) VALUES(?1, ?2) ON CONFLICT(k) DO UPDATE SET "
              "expires=excluded.expires",
              &d->mark) < 0 ||
      prepare(d, "SELECT 1 FROM kv WHERE k=?1 AND (expires=0 OR expires>?2)", &d->exists) < 0 ||
      prepare(d, "DELETE FROM kv WHERE expires != 0 AND expires <= ?1", &d->purge) < 0 ||
      prepare(d, "BEGIN IMMEDIATE", &d->begin) < 0 || prepare(d, "COMMIT", &d->commit) < 0 ||
      prepare(d, "ROLLBACK", &d->rollback) < 0) {
    nd_errors_add(errs, NULL, 0, 0, "embedded kv %s: %s", d->path,
                  d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
    sqlite_free(kv);
    return NOTIFD_EBACKEND;
  }
  if ((d->ckpt = nd_sqlite_ckpt_start(d->path, 200)) != NULL)
    sqlite3_wal_autocheckpoint(d->db, ND_SQLITE_CKPT_AUTO_FRAMES);
  d->flush_ev = event_new(kv->base, -1, 0, on_flush, d);
  d->purge_ev = event_new(kv->base, -1, EV_PERSIST, on_purge, d);
  struct timeval tv = {(time_t)(d->purge_ms / 1000), (suseconds_t)((d->purge_ms % 1000) * 1000)};
  if (!d->flush_ev || !d->purge_ev || event_add(d->purge_ev, &tv) < 0) {
    sqlite_free(kv);
    return NOTIFD_ENOMEM;
  }
  return 0;
}
