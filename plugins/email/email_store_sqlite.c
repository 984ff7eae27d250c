/* Embedded directory: one SQLite file (WAL) with table user_email.  One
 * connection; a mutex serialises each statement's bind/step/reset. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email_store.h"

typedef struct sqlite_store {
  email_store base;
  pthread_mutex_t mu;
  sqlite3 *db;
  sqlite3_stmt *get, *put;
} sqlite_store;

void email_user_free(email_user *u) {
  free(u->email);
  free(u->name);
  u->email = u->name = NULL;
}

static int sq_lookup(email_store *bs, const char *user_id, email_user *out, char *err,
                     size_t errlen) {
  sqlite_store *s = (sqlite_store *)bs;
  out->email = out->name = NULL;
  pthread_mutex_lock(&s->mu);
  int rc = -1;
  sqlite3_bind_text(s->get, 1, user_id, -1, SQLITE_STATIC);
  int st = sqlite3_step(s->get);
  if (st == SQLITE_ROW) {
    const char *e = (const char *)sqlite3_column_text(s->get, 0);
    const char *n = (const char *)sqlite3_column_text(s->get, 1);
    out->email = strdup(e ? e : "");
    out->name = strdup(n ? n : "");
    if (out->email && out->name) {
      rc = 1;
    } else {
      email_user_free(out);
      snprintf(err, errlen, "out of memory");
    }
  } else if (st == SQLITE_DONE) {
    rc = 0;
  } else {
    snprintf(err, errlen, "sqlite lookup: %s", sqlite3_errmsg(s->db));
  }
  sqlite3_reset(s->get);
  sqlite3_clear_bindings(s->get);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int sq_upsert(email_store *bs, const char *user_id, const char *email, const char *name,
                     char *err, size_t errlen) {
  sqlite_store *s = (sqlite_store *)bs;
  pthread_mutex_lock(&s->mu);
  sqlite3_bind_text(s->put, 1, user_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s->put, 2, email, -1, SQLITE_STATIC);
  sqlite3_bind_text(s->put, 3, name ? name : "", -1, SQLITE_STATIC);
  int st = sqlite3_step(s->put);
  if (st != SQLITE_DONE) snprintf(err, errlen, "sqlite upsert: %s", sqlite3_errmsg(s->db));
  sqlite3_reset(s->put);
  sqlite3_clear_bindings(s->put);
  pthread_mutex_unlock(&s->mu);
  return st == SQLITE_DONE ? 0 : -1;
}

static void sq_close(email_store *bs) {
  sqlite_store *s = (sqlite_store *)bs;
  if (!s) return;
  sqlite3_finalize(s->get);
  sqlite3_finalize(s->put);
  if (s->db) sqlite3_close(s->db);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static const email_store_ops sqlite_ops = {"sqlite", sq_lookup, sq_upsert, NULL, sq_close};

int email_store_open_sqlite(const char *path, email_store **out, char *err, size_t errlen) {
  *out = NULL;
  sqlite_store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->base.ops = &sqlite_ops;
  pthread_mutex_init(&s->mu, NULL);
  static const char schema[] =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE IF NOT EXISTS user_email("
      " user_id TEXT PRIMARY KEY NOT NULL,"
      " email TEXT NOT NULL,"
      " name TEXT NOT NULL DEFAULT '');";
  int rc = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(s->db, 5000);
    rc = sqlite3_exec(s->db, schema, NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(s->db, "SELECT email, name FROM user_email WHERE user_id = ?1", -1,
                            &s->get, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(s->db,
                            "INSERT INTO user_email(user_id, email, name) VALUES(?1, ?2, ?3) "
                            "ON CONFLICT(user_id) DO UPDATE SET email = excluded.email, "
                            "name = excluded.name",
                            -1, &s->put, NULL);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    sq_close(&s->base);
    return -1;
  }
  *out = &s->base;
  return 0;
}
