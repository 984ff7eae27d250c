/* Embedded inbox: one SQLite file (<data_dir>/notifications.db) in WAL mode.
 *
 *   notifications(id INTEGER PRIMARY KEY, user_id, type, ts, payload,
 *                 created_at (ms), read, event_sent)
 *   index notifications_by_user(user_id, id)   -- list, replay, counts, cap
 *   preferences(user_id PRIMARY KEY, doc, updated_at)
 *   meta(key PRIMARY KEY, value)               -- 'max_id' before a purge
 *
 * One index only: every page a commit touches is written to the WAL, and
 * at tens of thousands of notifications a second that write volume is the
 * cost (a sequence table, a time index and an unread index tripled it).
 * Ids come from a counter under the writer lock, starting above both the
 * highest stored id and the high-water mark a purge records before
 * deleting, so an id is never reused even when retention emptied the
 * table.  Age retention walks rowid order (created_at increases with id).
 * Ids increase in commit order because one writer connection (behind `mu`)
 * does every write; readers (list, replay, counts) use a connection of
 * their own, so a replay never waits behind a group commit.  WAL
 * checkpoints run every 200 ms from a job on a third connection; the
 * writer's automatic checkpoint is set high, so it rarely fires (and then
 * finds little to copy).
 *
 * The event outbox: event_sent is 0 for a row whose event is due and 1 once
 * the bus confirmed it; the marks ride in a later group commit's transaction
 * (a page the insert writes anyway: the newest rows), never a transaction
 * of their own on the hot path.  The column defaults to 1, so a database
 * from before the outbox (migrated by ALTER TABLE at open) replays nothing,
 * and the outbox scan walks rowid order from the first id young enough
 * (found by a binary search: created_at increases with id), not an index
 * every insert would pay for. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inbox_store.h"

typedef struct sq_store {
  inbox_store base;
  sqlite3 *db, *rdb, *cdb; /* writer, reader, checkpoints */
  pthread_mutex_t mu, rmu;
  int64_t purge_mark;     /* highest id seen by the previous purge (writer side) */
  int64_t next_id;        /* under mu */
  sqlite3_stmt *ins, *sent, *begin, *commit, *rollback, *mark_one, *mark_all, *cap_user, *age,
      *prefs_put, *age_cut, *hwm;
  sqlite3_stmt *list, *after, *unread, *prefs_get, *users_since, *max_id, *first_from, *unsent;
} sq_store;

static int64_t sq_next_id_locked(sq_store *s);

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS notifications("
    " id INTEGER PRIMARY KEY,"
    " user_id TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " ts TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " read INTEGER NOT NULL DEFAULT 0,"
    " event_sent INTEGER NOT NULL DEFAULT 1);"
    "CREATE INDEX IF NOT EXISTS notifications_by_user ON notifications(user_id, id);"
    "CREATE TABLE IF NOT EXISTS preferences("
    " user_id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

#define COLS "id, user_id, type, ts, payload, created_at, read"
#define AGE_CHUNK 5000
#define AUTO_CHECKPOINT_FRAMES 16384 /* 64 MiB: the writer's own, rarely reached */

static void set_err(char *err, size_t errlen, const char *what, sqlite3 *db) {
  snprintf(err, errlen, "sqlite %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

static char *col_dup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;
  char *s = malloc(n + 1);
  if (s) {
    if (n) memcpy(s, t, n);
    s[n] = '\0';
  }
  return s;
}

static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

/* Ends the writer's transaction: COMMIT when everything in it worked,
 * else ROLLBACK.  Returns the outcome. */
static int end_tx(sq_store *s, int result, char *err, size_t errlen) {
  if (result == 0 && step_done(s->commit) < 0) {
    set_err(err, errlen, "commit", s->db);
    result = -1;
  }
  if (result < 0) step_done(s->rollback);
  return result;
}

static int sq_insert_batch(inbox_store *bs, inbox_rec *const *r, size_t n,
                           const inbox_sent *sent, size_t nsent, char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  int result = 0;
  pthread_mutex_lock(&s->mu);
  if (step_done(s->begin) < 0) {
    set_err(err, errlen, "begin", s->db);
    result = -1;
  }
  for (size_t i = 0; result == 0 && i < n; i++) {
    sqlite3_bind_text(s->ins, 1, r[i]->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->ins, 2, r[i]->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->ins, 3, r[i]->ts, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->ins, 4, r[i]->payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->ins, 5, r[i]->created_ms);
    sqlite3_bind_int64(s->ins, 6, s->next_id + (int64_t)i);
    sqlite3_bind_int(s->ins, 7, r[i]->event_sent ? 1 : 0);
    if (step_done(s->ins) < 0) {
      set_err(err, errlen, "insert", s->db);
      result = -1;
    } else {
      r[i]->id = s->next_id + (int64_t)i;
    }
    sqlite3_clear_bindings(s->ins);
  }
  for (size_t i = 0; result == 0 && i < nsent; i++) { /* ids are unique across users */
    sqlite3_bind_int64(s->sent, 1, sent[i].id);
    if (step_done(s->sent) < 0) {
      set_err(err, errlen, "mark event sent", s->db);
      result = -1;
    }
  }
  result = end_tx(s, result, err, errlen);
  if (result == 0) s->next_id += (int64_t)n;
  pthread_mutex_unlock(&s->mu);
  return result;
}

/* Runs a prepared reader query (bindings done by the caller, rmu held)
 * into an array of at most `max` records. */
static int read_rows(sq_store *s, sqlite3_stmt *st, size_t max, inbox_rec **out, size_t *n,
                     char *err, size_t errlen) {
  *out = calloc(max ? max : 1, sizeof **out);
  *n = 0;
  if (!*out) {
    snprintf(err, errlen, "out of memory");
    sqlite3_reset(st);
    return -1;
  }
  int rc, result = 0;
  while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    inbox_rec *r = &(*out)[(*n)++];
    r->id = sqlite3_column_int64(st, 0);
    r->user_id = col_dup(st, 1);
    r->type = col_dup(st, 2);
    r->ts = col_dup(st, 3);
    r->payload = col_dup(st, 4);
    r->created_ms = sqlite3_column_int64(st, 5);
    r->read = sqlite3_column_int(st, 6);
    if (!r->user_id || !r->type || !r->ts || !r->payload) {
      snprintf(err, errlen, "out of memory");
      result = -1;
      break;
    }
  }
  if (result == 0 && *n < max && rc != SQLITE_DONE) {
    set_err(err, errlen, "read", s->rdb);
    result = -1;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (result < 0) {
    inbox_recs_free(*out, *n);
    *out = NULL;
    *n = 0;
  }
  return result;
}

static int sq_list(inbox_store *bs, const char *user, int64_t before, size_t limit,
                   inbox_rec **out, size_t *n, char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  pthread_mutex_lock(&s->rmu);
  sqlite3_bind_text(s->list, 1, user, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->list, 2, before > 0 ? before : INT64_MAX);
  sqlite3_bind_int64(s->list, 3, (sqlite3_int64)limit);
  int rc = read_rows(s, s->list, limit, out, n, err, errlen);
  pthread_mutex_unlock(&s->rmu);
  return rc;
}

static int sq_after(inbox_store *bs, const char *user, int64_t after, size_t max,
                    inbox_rec **out, size_t *n, char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  pthread_mutex_lock(&s->rmu);
  sqlite3_bind_text(s->after, 1, user, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->after, 2, after);
  sqlite3_bind_int64(s->after, 3, (sqlite3_int64)max);
  int rc = read_rows(s, s->after, max, out, n, err, errlen);
  pthread_mutex_unlock(&s->rmu);
  if (rc == 0) /* newest first from the query: turn into oldest first */
    for (size_t i = 0, j = *n ? *n - 1 : 0; i < j; i++, j--) {
      inbox_rec t = (*out)[i];
      (*out)[i] = (*out)[j];
      (*out)[j] = t;
    }
  return rc;
}

/* The first id created at or after since_ms: a binary search over rowids
 * (created_at increases with id), a handful of point reads.  rmu held. */
static int64_t first_id_since(sq_store *s, int64_t since_ms, int64_t hi) {
  int64_t lo = 0;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2, id = -1, created = 0;
    sqlite3_bind_int64(s->first_from, 1, mid);
    if (sqlite3_step(s->first_from) == SQLITE_ROW) {
      id = sqlite3_column_int64(s->first_from, 0);
      created = sqlite3_column_int64(s->first_from, 1);
    }
    sqlite3_reset(s->first_from);
    if (id < 0 || created >= since_ms) hi = mid; /* no row from mid on is too old */
    else lo = id + 1;
  }
  return lo;
}

static int sq_unsent(inbox_store *bs, int64_t since_ms, size_t max, inbox_rec **out, size_t *n,
                     char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  int64_t hi = sq_next_id_locked(s);
  pthread_mutex_lock(&s->rmu);
  sqlite3_bind_int64(s->unsent, 1, first_id_since(s, since_ms, hi));
  sqlite3_bind_int64(s->unsent, 2, (sqlite3_int64)max);
  int rc = read_rows(s, s->unsent, max, out, n, err, errlen);
  pthread_mutex_unlock(&s->rmu);
  return rc;
}

static int sq_unread(inbox_store *bs, const char *user, int64_t *out, char *err,
                     size_t errlen) {
  sq_store *s = (sq_store *)bs;
  pthread_mutex_lock(&s->rmu);
  sqlite3_bind_text(s->unread, 1, user, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s->unread);
  int result = 0;
  if (rc == SQLITE_ROW) *out = sqlite3_column_int64(s->unread, 0);
  else {
    set_err(err, errlen, "unread", s->rdb);
    result = -1;
  }
  sqlite3_reset(s->unread);
  sqlite3_clear_bindings(s->unread);
  pthread_mutex_unlock(&s->rmu);
  return result;
}

static int sq_mark_read(inbox_store *bs, const char *user, const int64_t *ids, size_t n,
                        int all, char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  int result = 0;
  pthread_mutex_lock(&s->mu);
  if (all) {
    sqlite3_bind_text(s->mark_all, 1, user, -1, SQLITE_STATIC);
    if (step_done(s->mark_all) < 0) {
      set_err(err, errlen, "mark read", s->db);
      result = -1;
    }
    sqlite3_clear_bindings(s->mark_all);
  } else {
    if (step_done(s->begin) < 0) {
      set_err(err, errlen, "begin", s->db);
      result = -1;
    }
    for (size_t i = 0; result == 0 && i < n; i++) {
      sqlite3_bind_int64(s->mark_one, 1, ids[i]);
      sqlite3_bind_text(s->mark_one, 2, user, -1, SQLITE_STATIC);
      if (step_done(s->mark_one) < 0) {
        set_err(err, errlen, "mark read", s->db);
        result = -1;
      }
    }
    sqlite3_clear_bindings(s->mark_one);
    result = end_tx(s, result, err, errlen);
  }
  pthread_mutex_unlock(&s->mu);
  return result;
}

/* The users with records newer than the previous purge, read on the
 * reader connection (a range scan of the new rows only). */
static int users_since(sq_store *s, int64_t mark, char ***users, size_t *n, int64_t *maxid,
                       char *err, size_t errlen) {
  size_t cap = 64;
  *users = malloc(cap * sizeof **users);
  *n = 0;
  if (!*users) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int result = 0, rc;
  pthread_mutex_lock(&s->rmu);
  if (sqlite3_step(s->max_id) == SQLITE_ROW) *maxid = sqlite3_column_int64(s->max_id, 0);
  sqlite3_reset(s->max_id);
  sqlite3_bind_int64(s->users_since, 1, mark);
  sqlite3_bind_int64(s->users_since, 2, *maxid);
  while ((rc = sqlite3_step(s->users_since)) == SQLITE_ROW) {
    if (*n == cap) {
      char **more = realloc(*users, cap * 2 * sizeof **users);
      if (!more) {
        result = -1;
        break;
      }
      *users = more;
      cap *= 2;
    }
    if (!((*users)[*n] = col_dup(s->users_since, 0))) {
      result = -1;
      break;
    }
    (*n)++;
  }
  if (result < 0) snprintf(err, errlen, "out of memory");
  else if (rc != SQLITE_DONE) {
    set_err(err, errlen, "purge scan", s->rdb);
    result = -1;
  }
  sqlite3_reset(s->users_since);
  pthread_mutex_unlock(&s->rmu);
  return result;
}

static int sq_purge(inbox_store *bs, int64_t older_than_ms, int64_t max_per_user,
                    int64_t *deleted, char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  *deleted = 0;
  /* Age: the first id young enough (a walk in rowid order over what
   * expired only), then everything below it in chunks, so a backlog never
   * holds the writer for long.  The high-water mark goes first, in case
   * this empties the table. */
  int64_t cut = 0;
  pthread_mutex_lock(&s->mu);
  sqlite3_bind_int64(s->hwm, 1, s->next_id - 1);
  int rc = step_done(s->hwm);
  sqlite3_bind_int64(s->age_cut, 1, older_than_ms);
  if (rc == 0 && sqlite3_step(s->age_cut) == SQLITE_ROW) cut = sqlite3_column_int64(s->age_cut, 0);
  else rc = -1;
  sqlite3_reset(s->age_cut);
  pthread_mutex_unlock(&s->mu);
  if (rc < 0) {
    set_err(err, errlen, "purge by age", s->db);
    return -1;
  }
  for (;;) {
    pthread_mutex_lock(&s->mu);
    sqlite3_bind_int64(s->age, 1, cut);
    rc = step_done(s->age);
    int changed = sqlite3_changes(s->db);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
      set_err(err, errlen, "purge by age", s->db);
      return -1;
    }
    *deleted += changed;
    if (changed < AGE_CHUNK) break;
  }
  if (max_per_user <= 0) return 0;
  char **users = NULL;
  size_t n = 0;
  int64_t maxid = s->purge_mark;
  if (users_since(s, s->purge_mark, &users, &n, &maxid, err, errlen) < 0) {
    for (size_t i = 0; i < n; i++) free(users[i]);
    free(users);
    return -1;
  }
  int result = 0;
  /* Per-user cap: one short transaction per 256 users. */
  for (size_t i = 0; result == 0 && i < n; i += 256) {
    pthread_mutex_lock(&s->mu);
    if (step_done(s->begin) < 0) result = -1;
    for (size_t k = i; result == 0 && k < n && k < i + 256; k++) {
      sqlite3_bind_text(s->cap_user, 1, users[k], -1, SQLITE_STATIC);
      sqlite3_bind_int64(s->cap_user, 2, max_per_user);
      if (step_done(s->cap_user) < 0) result = -1;
      else *deleted += sqlite3_changes(s->db);
      sqlite3_clear_bindings(s->cap_user);
    }
    if (result < 0) set_err(err, errlen, "purge by count", s->db);
    result = end_tx(s, result, err, errlen);
    pthread_mutex_unlock(&s->mu);
  }
  for (size_t i = 0; i < n; i++) free(users[i]);
  free(users);
  if (result == 0) s->purge_mark = maxid;
  return result;
}

static int sq_prefs_get(inbox_store *bs, const char *user, char **json, char *err,
                        size_t errlen) {
  sq_store *s = (sq_store *)bs;
  *json = NULL;
  pthread_mutex_lock(&s->rmu);
  sqlite3_bind_text(s->prefs_get, 1, user, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s->prefs_get), result = 0;
  if (rc == SQLITE_ROW) {
    *json = col_dup(s->prefs_get, 0);
    result = *json ? 1 : -1;
    if (!*json) snprintf(err, errlen, "out of memory");
  } else if (rc != SQLITE_DONE) {
    set_err(err, errlen, "preferences read", s->rdb);
    result = -1;
  }
  sqlite3_reset(s->prefs_get);
  sqlite3_clear_bindings(s->prefs_get);
  pthread_mutex_unlock(&s->rmu);
  return result;
}

static int sq_prefs_put(inbox_store *bs, const char *user, const char *json, char *err,
                        size_t errlen) {
  sq_store *s = (sq_store *)bs;
  pthread_mutex_lock(&s->mu);
  sqlite3_bind_text(s->prefs_put, 1, user, -1, SQLITE_STATIC);
  sqlite3_bind_text(s->prefs_put, 2, json, -1, SQLITE_STATIC);
  int rc = step_done(s->prefs_put);
  if (rc < 0) set_err(err, errlen, "preferences write", s->db);
  sqlite3_clear_bindings(s->prefs_put);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static void sq_checkpoint(inbox_store *bs) {
  sq_store *s = (sq_store *)bs;
  if (s->cdb) sqlite3_wal_checkpoint_v2(s->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

static int64_t sq_next_id(inbox_store *bs) { return sq_next_id_locked((sq_store *)bs); }

static int64_t sq_next_id_locked(sq_store *s) {
  pthread_mutex_lock(&s->mu);
  int64_t id = s->next_id;
  pthread_mutex_unlock(&s->mu);
  return id;
}

static void sq_close(inbox_store *bs) {
  sq_store *s = (sq_store *)bs;
  if (!s) return;
  sqlite3_stmt *sts[] = {s->age_cut,   s->hwm,        s->ins,      s->sent,     s->begin,
                         s->commit,    s->rollback,   s->mark_one, s->mark_all, s->cap_user,
                         s->age,       s->prefs_put,  s->list,     s->after,    s->unread,
                         s->prefs_get, s->users_since, s->max_id,  s->first_from, s->unsent};
  for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++) sqlite3_finalize(sts[i]);
  if (s->rdb) sqlite3_close(s->rdb);
  if (s->cdb) sqlite3_close(s->cdb);
  if (s->db) sqlite3_close(s->db);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->rmu);
  free(s);
}

static const inbox_store_ops sqlite_ops = {
    .name = "sqlite",
    .insert_batch = sq_insert_batch,
    .unsent = sq_unsent,
    .list = sq_list,
    .after = sq_after,
    .unread = sq_unread,
    .mark_read = sq_mark_read,
    .purge = sq_purge,
    .prefs_get = sq_prefs_get,
    .prefs_put = sq_prefs_put,
    .next_id = sq_next_id,
    .checkpoint = sq_checkpoint,
    .close = sq_close,
};

/* A notifications.db from before the event outbox: add event_sent (1 for
 * the rows already there: their notifications predate the stream). */
static int migrate(sqlite3 *db, char **msg) {
  sqlite3_stmt *st = NULL;
  int has = 0;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('notifications')"
                             " WHERE name='event_sent'", -1, &st, NULL) != SQLITE_OK) {
    *msg = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    return -1;
  }
  has = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  if (has) return 0;
  return sqlite3_exec(db, "ALTER TABLE notifications ADD COLUMN event_sent INTEGER NOT NULL"
                          " DEFAULT 1", NULL, NULL, msg) == SQLITE_OK ? 0 : -1;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK ? 0
                                                                                           : -1;
}

static int open_conn(const char *path, sqlite3 **db, char *err, size_t errlen) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "sqlite open %s: %s", path, *db ? sqlite3_errmsg(*db) : "out of memory");
    return -1;
  }
  sqlite3_busy_timeout(*db, 5000);
  return 0;
}

int inbox_store_sqlite_open(const char *path, int synchronous_full, inbox_store **out, char *err,
                            size_t errlen) {
  *out = NULL;
  sq_store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->base.ops = &sqlite_ops;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->rmu, NULL);
  if (open_conn(path, &s->db, err, errlen) < 0) {
    sq_close(&s->base);
    return -1;
  }
  char pragmas[160];
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA wal_autocheckpoint=%d;",
           synchronous_full ? "FULL" : "NORMAL", AUTO_CHECKPOINT_FRAMES);
  char *msg = NULL;
  if (sqlite3_exec(s->db, pragmas, NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec(s->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK ||
      migrate(s->db, &msg) < 0) {
    snprintf(err, errlen, "sqlite schema in %s: %s", path, msg ? msg : "?");
    sqlite3_free(msg);
    sq_close(&s->base);
    return -1;
  }
  if (open_conn(path, &s->rdb, err, errlen) < 0 || open_conn(path, &s->cdb, err, errlen) < 0) {
    sq_close(&s->base);
    return -1;
  }
  /* A connection opens the WAL on its first read; until then a checkpoint
   * on it silently does nothing. */
  sqlite3_exec(s->cdb, "SELECT 1 FROM sqlite_master LIMIT 1", NULL, NULL, NULL);
  sqlite3_exec(s->cdb, synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
               NULL, NULL, NULL);
  if (prep(s->db,
           "INSERT INTO notifications(user_id, type, ts, payload, created_at, id, event_sent)"
           " VALUES(?1,?2,?3,?4,?5,?6,?7)",
           &s->ins) < 0 ||
      prep(s->db, "UPDATE notifications SET event_sent=1 WHERE id=?1", &s->sent) < 0 ||
      prep(s->db, "BEGIN IMMEDIATE", &s->begin) < 0 || prep(s->db, "COMMIT", &s->commit) < 0 ||
      prep(s->db, "ROLLBACK", &s->rollback) < 0 ||
      prep(s->db, "UPDATE notifications SET read=1 WHERE id=?1 AND user_id=?2 AND read=0",
           &s->mark_one) < 0 ||
      prep(s->db, "UPDATE notifications SET read=1 WHERE user_id=?1 AND read=0", &s->mark_all) <
          0 ||
      prep(s->db,
           "DELETE FROM notifications WHERE user_id=?1 AND id <= (SELECT id FROM notifications"
           " WHERE user_id=?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
           &s->cap_user) < 0 ||
      prep(s->db,
           "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications"
           " WHERE id < ?1 ORDER BY id LIMIT 5000)",
           &s->age) < 0 ||
      prep(s->db,
           "SELECT coalesce((SELECT id FROM notifications WHERE created_at >= ?1 ORDER BY id"
           " LIMIT 1), (SELECT coalesce(max(id), 0) + 1 FROM notifications))",
           &s->age_cut) < 0 ||
      prep(s->db,
           "INSERT INTO meta(key, value) VALUES('max_id', ?1)"
           " ON CONFLICT(key) DO UPDATE SET value=max(value, excluded.value)",
           &s->hwm) < 0 ||
      prep(s->db,
           "INSERT INTO preferences(user_id, doc, updated_at) VALUES(?1, ?2,"
           " CAST(strftime('%s','now') AS INTEGER) * 1000)"
           " ON CONFLICT(user_id) DO UPDATE SET doc=excluded.doc, updated_at=excluded.updated_at",
           &s->prefs_put) < 0) {
    set_err(err, errlen, "prepare", s->db);
    sq_close(&s->base);
    return -1;
  }
  if (prep(s->rdb,
           "SELECT " COLS " FROM notifications WHERE user_id=?1 AND id < ?2"
           " ORDER BY id DESC LIMIT ?3",
           &s->list) < 0 ||
      prep(s->rdb,
           "SELECT " COLS " FROM notifications WHERE user_id=?1 AND id > ?2"
           " ORDER BY id DESC LIMIT ?3",
           &s->after) < 0 ||
      prep(s->rdb, "SELECT count(*) FROM notifications WHERE user_id=?1 AND read=0",
           &s->unread) < 0 ||
      prep(s->rdb, "SELECT doc FROM preferences WHERE user_id=?1", &s->prefs_get) < 0 ||
      prep(s->rdb,
           "SELECT DISTINCT user_id FROM notifications WHERE id > ?1 AND id <= ?2",
           &s->users_since) < 0 ||
      prep(s->rdb, "SELECT coalesce(max(id), 0) FROM notifications", &s->max_id) < 0 ||
      prep(s->rdb, "SELECT id, created_at FROM notifications WHERE id >= ?1 ORDER BY id LIMIT 1",
           &s->first_from) < 0 ||
      prep(s->rdb,
           "SELECT " COLS " FROM notifications WHERE id >= ?1 AND event_sent=0"
           " ORDER BY id LIMIT ?2",
           &s->unsent) < 0) {
    set_err(err, errlen, "prepare", s->rdb);
    sq_close(&s->base);
    return -1;
  }
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT max(coalesce((SELECT max(id) FROM notifications), 0),"
                         " coalesce((SELECT value FROM meta WHERE key='max_id'), 0))",
                         -1, &st, NULL) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW) {
    set_err(err, errlen, "read the highest id", s->db);
    sqlite3_finalize(st);
    sq_close(&s->base);
    return -1;
  }
  s->next_id = sqlite3_column_int64(st, 0) + 1;
  sqlite3_finalize(st);
  *out = &s->base;
  return 0;
}
