/* SQLite table of built-in accounts.  One connection in serialized mode:
 * account operations are rare (logins, registrations, tools) next to the
 * Argon2 work around them, so one lock is plenty. */
#include "auth/user_store.h"

#include <fcntl.h>
#include <notifd/plugin.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

struct nd_user_store {
  sqlite3 *db;
};

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS users("
    " user_id TEXT PRIMARY KEY,"
    " password_hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"       /* Unix seconds */
    " password_set_at INTEGER NOT NULL"   /* Unix seconds */
    ") WITHOUT ROWID;";

int nd_user_id_valid(const char *id) {
  if (!id) return 0;
  size_t n = strlen(id);
  if (n == 0 || n > ND_USER_ID_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          strchr("._@+-", c)))
      return 0;
  }
  return 1;
}

int nd_user_store_open(const char *path, nd_user_store **out, char *err, size_t errlen) {
  *out = NULL;
  nd_user_store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  /* Password hashes: readable by notifd's user only (SQLite gives its
   * -wal and -shm files the database file's mode). */
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
  int rc = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           NULL);
  char *msg = NULL;
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(s->db, 5000); /* `notifd user` and the daemon share it */
    rc = sqlite3_exec(s->db, SCHEMA, NULL, NULL, &msg);
  }
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "users database %s: %s", path,
             msg ? msg : s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    sqlite3_free(msg);
    nd_user_store_close(s);
    return -1;
  }
  *out = s;
  return 0;
}

void nd_user_store_close(nd_user_store *s) {
  if (!s) return;
  sqlite3_close(s->db);
  free(s);
}

static sqlite3_stmt *prepare(nd_user_store *s, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
    ND_ERROR("auth", "users database: %s: %s", sql, sqlite3_errmsg(s->db));
    return NULL;
  }
  return st;
}

/* Steps a statement that returns no row; the SQLite result code. */
static int run(nd_user_store *s, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT)
    ND_ERROR("auth", "users database: %s", sqlite3_errmsg(s->db));
  sqlite3_finalize(st);
  return rc;
}

int nd_user_store_add(nd_user_store *s, const char *user, const char *hash) {
  sqlite3_stmt *st = prepare(
      s, "INSERT INTO users(user_id, password_hash, created_at, password_set_at) "
         "VALUES(?1, ?2, ?3, ?3)");
  if (!st) return NOTIFD_EBACKEND;
  sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
  int rc = run(s, st);
  return rc == SQLITE_DONE ? 0 : rc == SQLITE_CONSTRAINT ? NOTIFD_EEXIST : NOTIFD_EBACKEND;
}

int nd_user_store_get(nd_user_store *s, const char *user, char *hash, size_t hashlen,
                      int64_t *password_set_at) {
  sqlite3_stmt *st =
      prepare(s, "SELECT password_hash, password_set_at FROM users WHERE user_id = ?1");
  if (!st) return NOTIFD_EBACKEND;
  sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st), out;
  if (rc == SQLITE_ROW) {
    const char *h = (const char *)sqlite3_column_text(st, 0);
    size_t n = h ? strlen(h) : 0;
    if (!h || n >= hashlen) {
      out = NOTIFD_EBACKEND;
    } else {
      memcpy(hash, h, n + 1);
      if (password_set_at) *password_set_at = sqlite3_column_int64(st, 1);
      out = 0;
    }
  } else if (rc == SQLITE_DONE) {
    out = NOTIFD_ENOENT;
  } else {
    ND_ERROR("auth", "users database: %s", sqlite3_errmsg(s->db));
    out = NOTIFD_EBACKEND;
  }
  sqlite3_finalize(st);
  return out;
}

/* Runs a one-user UPDATE or DELETE: 0, NOTIFD_ENOENT or NOTIFD_EBACKEND. */
static int change_one(nd_user_store *s, sqlite3_stmt *st) {
  if (run(s, st) != SQLITE_DONE) return NOTIFD_EBACKEND;
  return sqlite3_changes(s->db) == 1 ? 0 : NOTIFD_ENOENT;
}

int nd_user_store_set_hash(nd_user_store *s, const char *user, const char *hash) {
  sqlite3_stmt *st =
      prepare(s, "UPDATE users SET password_hash = ?2, password_set_at = ?3 WHERE user_id = ?1");
  if (!st) return NOTIFD_EBACKEND;
  sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
  return change_one(s, st);
}

int nd_user_store_delete(nd_user_store *s, const char *user) {
  sqlite3_stmt *st = prepare(s, "DELETE FROM users WHERE user_id = ?1");
  if (!st) return NOTIFD_EBACKEND;
  sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
  return change_one(s, st);
}

int nd_user_store_list(nd_user_store *s, void (*cb)(const char *, int64_t, void *), void *ud) {
  sqlite3_stmt *st = prepare(s, "SELECT user_id, created_at FROM users ORDER BY user_id");
  if (!st) return NOTIFD_EBACKEND;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    cb((const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), ud);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : NOTIFD_EBACKEND;
}
