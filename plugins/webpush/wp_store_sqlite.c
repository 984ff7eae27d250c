/* SQLite subscription store; one connection, statements prepared once. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wp_store.h"

typedef struct sqlite_store {
  wp_store base;
  pthread_mutex_t mu;
  sqlite3 *db;
  sqlite3_stmt *put, *trim, *list, *del;
} sqlite_store;

static void finish(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static void sq_close(wp_store *bs) {
  sqlite_store *s = (sqlite_store *)bs;
  if (!s) return;
  sqlite3_finalize(s->put);
  sqlite3_finalize(s->trim);
  sqlite3_finalize(s->list);
  sqlite3_finalize(s->del);
  if (s->db) sqlite3_close(s->db);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static int sq_put(wp_store *bs, const char *user_id, const wp_sub *sub, int64_t now_ms,
                  int64_t keep, char *err, size_t errlen);
static int sq_list(wp_store *bs, const char *user_id, wp_sub **out, size_t *n, char *err,
                   size_t errlen);
static int sq_del(wp_store *bs, const char *user_id, const char *endpoint, char *err,
                  size_t errlen);

static const wp_store_ops sqlite_ops = {"sqlite", sq_put, sq_list, sq_del, NULL, sq_close};

int wp_store_open_sqlite(const char *path, wp_store **out, char *err, size_t errlen) {
  *out = NULL;
  sqlite_store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->base.ops = &sqlite_ops;
  pthread_mutex_init(&s->mu, NULL);
  /* `seq` orders a user's subscriptions by their last registration. */
  static const char schema[] =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE IF NOT EXISTS push_subscriptions("
      " user_id TEXT NOT NULL,"
      " endpoint TEXT NOT NULL,"
      " p256dh TEXT NOT NULL,"
      " auth TEXT NOT NULL,"
      " expires_ms INTEGER NOT NULL DEFAULT 0,"
      " updated_ms INTEGER NOT NULL,"
      " seq INTEGER NOT NULL,"
      " PRIMARY KEY(user_id, endpoint));"
      "CREATE INDEX IF NOT EXISTS push_subscriptions_user_seq"
      " ON push_subscriptions(user_id, seq);";
  int rc = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(s->db, 5000);
    rc = sqlite3_exec(s->db, schema, NULL, NULL, NULL);
  }
  const struct {
    sqlite3_stmt **st;
    const char *sql;
  } stmts[] = {
      {&s->put,
       "INSERT INTO push_subscriptions(user_id, endpoint, p256dh, auth, expires_ms, updated_ms,"
       " seq) VALUES(?1, ?2, ?3, ?4, ?5, ?6,"
       " (SELECT COALESCE(MAX(seq), 0) + 1 FROM push_subscriptions))"
       " ON CONFLICT(user_id, endpoint) DO UPDATE SET p256dh = excluded.p256dh,"
       " auth = excluded.auth, expires_ms = excluded.expires_ms,"
       " updated_ms = excluded.updated_ms, seq = excluded.seq"},
      {&s->trim,
       "DELETE FROM push_subscriptions WHERE user_id = ?1 AND seq NOT IN"
       " (SELECT seq FROM push_subscriptions WHERE user_id = ?1 ORDER BY seq DESC LIMIT ?2)"},
      {&s->list,
       "SELECT endpoint, p256dh, auth, expires_ms FROM push_subscriptions"
       " WHERE user_id = ?1 ORDER BY seq DESC"},
      {&s->del, "DELETE FROM push_subscriptions WHERE user_id = ?1 AND endpoint = ?2"},
  };
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof stmts / sizeof stmts[0]; i++)
    rc = sqlite3_prepare_v2(s->db, stmts[i].sql, -1, stmts[i].st, NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    sq_close(&s->base);
    return -1;
  }
  *out = &s->base;
  return 0;
}

static int sq_put(wp_store *bs, const char *user_id, const wp_sub *sub, int64_t now_ms,
                  int64_t keep, char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)bs;
  pthread_mutex_lock(&s->mu);
  int rc = -1;
  /* One transaction: the insert and the trim are seen together. */
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "sqlite begin: %s", sqlite3_errmsg(s->db));
    pthread_mutex_unlock(&s->mu);
    return -1;
  }
  sqlite3_bind_text(s->put, 1, user_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s->put, 2, sub->endpoint, -1, SQLITE_STATIC);
  sqlite3_bind_text(s->put, 3, sub->p256dh, -1, SQLITE_STATIC);
  sqlite3_bind_text(s->put, 4, sub->auth, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->put, 5, sub->expires_ms);
  sqlite3_bind_int64(s->put, 6, now_ms);
  int st = sqlite3_step(s->put);
  finish(s->put);
  if (st == SQLITE_DONE) {
    sqlite3_bind_text(s->trim, 1, user_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->trim, 2, keep);
    st = sqlite3_step(s->trim);
    finish(s->trim);
    if (st == SQLITE_DONE) rc = sqlite3_changes(s->db);
  }
  if (rc >= 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) rc = -1;
  if (rc < 0) {
    snprintf(err, errlen, "sqlite put: %s", sqlite3_errmsg(s->db));
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static char *col_dup(sqlite3_stmt *st, int i) {
  const char *v = (const char *)sqlite3_column_text(st, i);
  return strdup(v ? v : "");
}

static int sq_list(wp_store *bs, const char *user_id, wp_sub **out, size_t *n, char *err,
                   size_t errlen) {
  sqlite_store *s = (sqlite_store *)bs;
  *out = NULL;
  *n = 0;
  size_t cap = 0;
  int rc = 0, st;
  pthread_mutex_lock(&s->mu);
  sqlite3_bind_text(s->list, 1, user_id, -1, SQLITE_STATIC);
  while ((st = sqlite3_step(s->list)) == SQLITE_ROW) {
    wp_sub *w = wp_subs_grow(out, n, &cap);
    if (!w) {
      rc = -1;
      snprintf(err, errlen, "out of memory");
      break;
    }
    w->endpoint = col_dup(s->list, 0);
    w->p256dh = col_dup(s->list, 1);
    w->auth = col_dup(s->list, 2);
    w->expires_ms = sqlite3_column_int64(s->list, 3);
    if (!w->endpoint || !w->p256dh || !w->auth) {
      rc = -1;
      snprintf(err, errlen, "out of memory");
      break;
    }
  }
  if (rc == 0 && st != SQLITE_DONE) {
    rc = -1;
    snprintf(err, errlen, "sqlite list: %s", sqlite3_errmsg(s->db));
  }
  finish(s->list);
  pthread_mutex_unlock(&s->mu);
  if (rc < 0) wp_subs_clear(out, n);
  return rc;
}

static int sq_del(wp_store *bs, const char *user_id, const char *endpoint, char *err,
                  size_t errlen) {
  sqlite_store *s = (sqlite_store *)bs;
  pthread_mutex_lock(&s->mu);
  sqlite3_bind_text(s->del, 1, user_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s->del, 2, endpoint, -1, SQLITE_STATIC);
  int st = sqlite3_step(s->del);
  int rc = st == SQLITE_DONE ? (sqlite3_changes(s->db) > 0) : -1;
  if (rc < 0) snprintf(err, errlen, "sqlite delete: %s", sqlite3_errmsg(s->db));
  finish(s->del);
  pthread_mutex_unlock(&s->mu);
  return rc;
}
