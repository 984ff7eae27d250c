/* Embedded store: one SQLite file in WAL mode.
 *
 *   messages(seq INTEGER PRIMARY KEY, message_id TEXT UNIQUE, id_oid,
 *            content, created_at (ms), stream_id, sender_id, receiver_id)
 *   index messages_by_stream(stream_id, created_at, seq)   -- history
 *   outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT, key BLOB, value BLOB)
 *   conversations(user_id, stream_id, peer_id, last_ms, last_seq, unread,
 *                 read_ms, read_seq)  PRIMARY KEY(user_id, stream_id)
 *   index conversations_by_time(user_id, last_ms, stream_id)   -- the list
 *
 * Every message insert also upserts two conversation rows (the sender's and
 * the receiver's: last message, the receiver's unread count; folded per
 * row over a group commit's batch) in the same transaction, so the list and the counts never need a history scan and
 * are exactly as durable as the messages.  A read mark is a position
 * (created_at, seq) in the stream's order; unread = the peer's messages
 * after it, recounted over that tail when the mark moves.
 *
 * The outbox row (the rendered change record) is written in the same
 * transaction as the message, so a message is never stored without its
 * change or the other way round; the relay deletes rows only after the bus
 * acknowledged them.  One connection guarded by a mutex: calls come from
 * several worker threads and SQLite writes serialise anyway. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_buf.h"
#include "chat_extjson.h"
#include "chat_time.h"
#include "cp_store.h"

typedef struct sq_store {
  cp_store base;
  sqlite3 *db;
  sqlite3 *ckpt_db; /* background checkpoints (sq_checkpoint) */
  int ckpt_last_log; /* WAL frames at the previous one */
  pthread_mutex_t mu;
  int capture;
  int sync_full;
  sqlite3_stmt *ins, *get, *hist, *ob_ins, *ob_fetch, *ob_del, *begin, *commit, *rollback;
  sqlite3_stmt *sync_normal, *sync_restore;
  sqlite3_stmt *conv_up, *conv_list, *pos, *read_up, *read_get, *unread_count, *unread_set;
} sq_store;

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS messages("
    " seq INTEGER PRIMARY KEY,"
    " message_id TEXT NOT NULL UNIQUE,"
    " id_oid INTEGER NOT NULL DEFAULT 0,"
    " content TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " stream_id TEXT NOT NULL,"
    " sender_id TEXT NOT NULL,"
    " receiver_id TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS messages_by_stream ON messages(stream_id, created_at, seq);"
    "CREATE TABLE IF NOT EXISTS outbox("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key BLOB NOT NULL,"
    " value BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS conversations("
    " user_id TEXT NOT NULL,"
    " stream_id TEXT NOT NULL,"
    " peer_id TEXT NOT NULL,"
    " last_ms INTEGER NOT NULL,"
    " last_seq INTEGER NOT NULL,"
    " unread INTEGER NOT NULL DEFAULT 0,"
    " read_ms INTEGER NOT NULL DEFAULT -1,"
    " read_seq INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(user_id, stream_id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS conversations_by_time"
    " ON conversations(user_id, last_ms, stream_id);";

/* A file written before conversations existed (user_version 0 with
 * messages): one pass builds every participant's row from the messages,
 * nothing read yet (every peer message unread), the last message by the
 * history order.  Runs once, at open. */
static const char BACKFILL[] =
    "INSERT OR IGNORE INTO conversations(user_id, stream_id, peer_id, last_ms, last_seq, unread)"
    " SELECT u, stream_id, p, 0, 0, SUM(inc) FROM ("
    "  SELECT sender_id AS u, receiver_id AS p, stream_id, 0 AS inc FROM messages"
    "  UNION ALL SELECT receiver_id, sender_id, stream_id, 1 FROM messages"
    "  WHERE receiver_id <> sender_id)"
    " GROUP BY u, stream_id;"
    "UPDATE conversations SET"
    " last_seq = (SELECT seq FROM messages m WHERE m.stream_id = conversations.stream_id"
    "             ORDER BY created_at DESC, seq DESC LIMIT 1),"
    " last_ms = (SELECT created_at FROM messages m WHERE m.stream_id = conversations.stream_id"
    "            ORDER BY created_at DESC, seq DESC LIMIT 1);";

/* WAL checkpoints: a job copies frames back every 200 ms on a connection of
 * its own (sq_checkpoint); the writer keeps a large automatic checkpoint,
 * which then finds almost everything copied and only syncs, so the log can
 * restart from its beginning and the WAL file stays bounded (a passive
 * checkpoint alone never catches up with a steady stream of commits). */
#define CP_AUTO_CHECKPOINT_FRAMES 16384 /* 64 MiB: each firing stalls commits on an fsync */

#define COLS "seq, message_id, id_oid, content, created_at, stream_id, sender_id, receiver_id"

static void set_err(char *err, size_t errlen, const char *what, sqlite3 *db) {
  snprintf(err, errlen, "sqlite %s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

static char *col_dup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return chat_strndup(t ? (const char *)t : "", t ? (size_t)sqlite3_column_bytes(st, i) : 0);
}

/* Reads one row of COLS into m; -1 on OOM. */
static int row_to_msg(sqlite3_stmt *st, chat_message *m, int64_t *seq) {
  chat_message_init(m);
  if (seq) *seq = sqlite3_column_int64(st, 0);
  m->message_id = col_dup(st, 1);
  m->id_is_oid = sqlite3_column_int(st, 2);
  m->content = col_dup(st, 3);
  m->content_len = m->content ? (size_t)sqlite3_column_bytes(st, 3) : 0; /* NULs included */
  m->created_at_ms = sqlite3_column_int64(st, 4);
  m->stream_id = col_dup(st, 5);
  m->sender_id = col_dup(st, 6);
  m->receiver_id = col_dup(st, 7);
  if (!m->message_id || !m->content || !m->stream_id || !m->sender_id || !m->receiver_id) {
    chat_message_free(m);
    return -1;
  }
  return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s) {
  return sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_STATIC);
}

static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

/* Caller holds mu.  1 found, 0 absent, -1 error. */
static int get_locked(sq_store *s, const char *id, chat_message *out, char *err, size_t errlen) {
  bind_text(s->get, 1, id);
  int rc = sqlite3_step(s->get);
  int result;
  if (rc == SQLITE_ROW) {
    result = row_to_msg(s->get, out, NULL) == 0 ? 1 : -1;
    if (result < 0) snprintf(err, errlen, "out of memory");
  } else if (rc == SQLITE_DONE) {
    result = 0;
  } else {
    set_err(err, errlen, "get", s->db);
    result = -1;
  }
  sqlite3_reset(s->get);
  sqlite3_clear_bindings(s->get);
  return result;
}

/* The conversation rows a batch changes.  Each inserted message touches
 * the sender's row (last message) and the receiver's (last message, one
 * more unread); the batch folds them per (user, stream) first, so under
 * load a busy conversation costs one upsert per group commit instead of
 * one per message (a message to oneself touches one row, counts nothing). */
typedef struct conv_delta {
  const char *user, *stream, *peer; /* borrowed from the batch's messages */
  int64_t ms, seq;                  /* newest message (history order) */
  int64_t min_ms, min_seq;          /* oldest counted message */
  int64_t count;                    /* messages received */
} conv_delta;

static int pos_cmp(int64_t ams, int64_t aseq, int64_t bms, int64_t bseq) {
  if (ams != bms) return ams < bms ? -1 : 1;
  return aseq < bseq ? -1 : aseq > bseq;
}

static int delta_cmp(const void *a, const void *b) {
  const conv_delta *x = a, *y = b;
  int c = strcmp(x->user, y->user);
  return c ? c : strcmp(x->stream, y->stream);
}

/* Caller holds mu inside the batch's transaction.  0 or -1. */
static int conv_apply_locked(sq_store *s, chat_message *const *m, const int *rc,
                             const int64_t *seqs, size_t n) {
  conv_delta *d = malloc((2 * n + 1) * sizeof *d);
  if (!d) return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (rc[i] != 0) continue; /* not inserted: nothing to count */
    int self = strcmp(m[i]->sender_id, m[i]->receiver_id) == 0;
    for (int side = 0; side < (self ? 1 : 2); side++) {
      conv_delta *e = &d[k++];
      e->user = side ? m[i]->receiver_id : m[i]->sender_id;
      e->peer = side ? m[i]->sender_id : m[i]->receiver_id;
      e->stream = m[i]->stream_id;
      e->ms = e->min_ms = m[i]->created_at_ms;
      e->seq = e->min_seq = seqs[i];
      e->count = side;
    }
  }
  qsort(d, k, sizeof *d, delta_cmp);
  int result = 0;
  for (size_t i = 0; result == 0 && i < k;) {
    conv_delta g = d[i];
    size_t j = i + 1;
    for (; j < k && delta_cmp(&d[j], &g) == 0; j++) {
      if (pos_cmp(d[j].ms, d[j].seq, g.ms, g.seq) > 0) {
        g.ms = d[j].ms;
        g.seq = d[j].seq;
      }
      if (d[j].count && (!g.count || pos_cmp(d[j].min_ms, d[j].min_seq, g.min_ms, g.min_seq) < 0)) {
        g.min_ms = d[j].min_ms;
        g.min_seq = d[j].min_seq;
      }
      g.count += d[j].count;
    }
    i = j;
    bind_text(s->conv_up, 1, g.user);
    bind_text(s->conv_up, 2, g.stream);
    bind_text(s->conv_up, 3, g.peer);
    sqlite3_bind_int64(s->conv_up, 4, g.ms);
    sqlite3_bind_int64(s->conv_up, 5, g.seq);
    sqlite3_bind_int64(s->conv_up, 6, g.count);
    sqlite3_bind_int64(s->conv_up, 7, g.min_ms);
    sqlite3_bind_int64(s->conv_up, 8, g.min_seq);
    result = step_done(s->conv_up);
    sqlite3_clear_bindings(s->conv_up);
  }
  free(d);
  return result;
}

/* Inside an open transaction (caller holds mu): the message row and, with
 * capture, its outbox row (*seq = the message row).  0 = inserted, 1 = the id existed (m replaced by
 * the stored message; nothing written), -1 = error (err filled; the caller
 * rolls back). */
static int insert_locked(sq_store *s, chat_message *m, int64_t *seq, pc_buf *key, pc_buf *value,
                         char *err, size_t errlen) {
  m->created_at_ms = chat_time_now_ms();
  bind_text(s->ins, 1, m->message_id);
  sqlite3_bind_int(s->ins, 2, m->id_is_oid);
  sqlite3_bind_text(s->ins, 3, m->content, (int)m->content_len, SQLITE_STATIC);
  sqlite3_bind_int64(s->ins, 4, m->created_at_ms);
  bind_text(s->ins, 5, m->stream_id);
  bind_text(s->ins, 6, m->sender_id);
  bind_text(s->ins, 7, m->receiver_id);
  int ok = step_done(s->ins) == 0;
  sqlite3_clear_bindings(s->ins);
  if (!ok) {
    set_err(err, errlen, "insert", s->db);
    return -1;
  }
  if (sqlite3_changes(s->db) == 0) { /* ON CONFLICT DO NOTHING: the id exists */
    chat_message stored;
    int g = get_locked(s, m->message_id, &stored, err, errlen);
    if (g == 1) {
      chat_message_free(m);
      *m = stored;
      return 1;
    }
    if (g == 0) snprintf(err, errlen, "message %s vanished during insert", m->message_id);
    return -1;
  }
  *seq = sqlite3_last_insert_rowid(s->db);
  if (!s->capture) return 0;
  key->len = value->len = 0;
  if (chat_doc_key(m, key) < 0 || chat_change_value(m, m->created_at_ms, value) < 0 ||
      key->oom || value->oom) {
    snprintf(err, errlen, "out of memory rendering the change record");
    return -1;
  }
  sqlite3_bind_blob(s->ob_ins, 1, key->data, (int)key->len, SQLITE_STATIC);
  sqlite3_bind_blob(s->ob_ins, 2, value->data, (int)value->len, SQLITE_STATIC);
  ok = step_done(s->ob_ins) == 0;
  sqlite3_clear_bindings(s->ob_ins);
  if (!ok) {
    set_err(err, errlen, "outbox insert", s->db);
    return -1;
  }
  return 0;
}

/* Group commit: one transaction (one fsync with synchronous=FULL) for a
 * batch of messages the plugin collected while the previous one was
 * committing, plus the deletes of outbox rows the bus acknowledged since.
 * A message whose id exists does not disturb the others; any SQLite error
 * rolls the whole batch back. */
static int sq_insert_batch(cp_store *bs, chat_message *const *m, int *rc, size_t n,
                           cp_change *changes, const int64_t *del, size_t ndel, char *err,
                           size_t errlen) {
  sq_store *s = (sq_store *)bs;
  pc_buf key, value;
  pc_buf_init(&key);
  pc_buf_init(&value);
  int result = 0;
  pthread_mutex_lock(&s->mu);
  /* Deletes alone need no fsync (see sq_changes_done). */
  int relaxed = n == 0 && s->sync_full;
  if (relaxed) step_done(s->sync_normal);
  if (step_done(s->begin) < 0) {
    set_err(err, errlen, "begin", s->db);
    result = -1;
  }
  for (size_t i = 0; result == 0 && i < ndel; i++) {
    sqlite3_bind_int64(s->ob_del, 1, del[i]);
    if (step_done(s->ob_del) < 0) {
      set_err(err, errlen, "outbox delete", s->db);
      result = -1;
    }
  }
  int64_t *seqs = n ? malloc(n * sizeof *seqs) : NULL;
  if (n && !seqs && result == 0) {
    snprintf(err, errlen, "out of memory");
    result = -1;
  }
  for (size_t i = 0; result == 0 && i < n; i++) {
    rc[i] = insert_locked(s, m[i], &seqs[i], &key, &value, err, errlen);
    if (rc[i] < 0) {
      result = -1;
    } else if (rc[i] == 0 && s->capture && changes) {
      cp_change *c = &changes[i];
      c->seq = sqlite3_last_insert_rowid(s->db);
      c->key = chat_strndup(key.data, key.len);
      c->key_len = key.len;
      c->value = chat_strndup(value.data, value.len);
      c->value_len = value.len;
      c->status = -1;
      if (!c->key || !c->value) {
        snprintf(err, errlen, "out of memory");
        result = -1;
      }
    }
  }
  if (result == 0 && n > 0 && conv_apply_locked(s, m, rc, seqs, n) < 0) {
    set_err(err, errlen, "conversation upsert", s->db);
    result = -1;
  }
  free(seqs);
  if (result == 0 && step_done(s->commit) < 0) {
    set_err(err, errlen, "commit", s->db);
    result = -1;
  }
  if (result < 0) {
    step_done(s->rollback);
    for (size_t i = 0; i < n; i++) {
      rc[i] = -1;
      if (changes) {
        free(changes[i].key);
        free(changes[i].value);
        memset(&changes[i], 0, sizeof changes[i]);
      }
    }
  }
  if (relaxed) step_done(s->sync_restore);
  pthread_mutex_unlock(&s->mu);
  pc_buf_free(&key);
  pc_buf_free(&value);
  return result;
}

static int sq_insert(cp_store *bs, chat_message *m, char *err, size_t errlen) {
  int rc;
  return sq_insert_batch(bs, &m, &rc, 1, NULL, NULL, 0, err, errlen) < 0 ? -1 : rc;
}

static int sq_get(cp_store *bs, const char *id, chat_message *out, char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  pthread_mutex_lock(&s->mu);
  int rc = get_locked(s, id, out, err, errlen);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* Bounds as (created_at, seq) pairs.  A cursor excludes its own message;
 * a bare time includes its whole millisecond (a client catching up after a
 * reconnect must not miss a message stored in the same millisecond as the
 * newest it has; it dedupes by message_id). */
static void bound(const cp_cursor *c, int upper, int64_t *ms, int64_t *seq) {
  if (!c || c->kind == CP_CUR_NONE) {
    *ms = upper ? INT64_MAX : INT64_MIN;
    *seq = upper ? INT64_MAX : INT64_MIN;
    return;
  }
  *ms = c->ms;
  *seq = c->kind == CP_CUR_SEQ ? c->seq : (upper ? INT64_MAX : INT64_MIN);
}

static int sq_history(cp_store *bs, const char *stream_id, const cp_cursor *before,
                      const cp_cursor *after, size_t limit, cp_page *out, char *err,
                      size_t errlen) {
  sq_store *s = (sq_store *)bs;
  memset(out, 0, sizeof *out);
  out->msgs = calloc(limit + 1, sizeof *out->msgs);
  int64_t *seqs = calloc(limit + 1, sizeof *seqs);
  if (!out->msgs || !seqs) {
    free(seqs);
    free(out->msgs);
    out->msgs = NULL;
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int64_t bms, bseq, ams, aseq;
  bound(before, 1, &bms, &bseq);
  bound(after, 0, &ams, &aseq);
  int result = 0;
  pthread_mutex_lock(&s->mu);
  bind_text(s->hist, 1, stream_id);
  sqlite3_bind_int64(s->hist, 2, bms);
  sqlite3_bind_int64(s->hist, 3, bseq);
  sqlite3_bind_int64(s->hist, 4, ams);
  sqlite3_bind_int64(s->hist, 5, aseq);
  sqlite3_bind_int64(s->hist, 6, (sqlite3_int64)limit + 1);
  int rc;
  while ((rc = sqlite3_step(s->hist)) == SQLITE_ROW) {
    if (row_to_msg(s->hist, &out->msgs[out->n], &seqs[out->n]) < 0) {
      snprintf(err, errlen, "out of memory");
      result = -1;
      break;
    }
    out->n++;
  }
  if (result == 0 && rc != SQLITE_DONE) {
    set_err(err, errlen, "history", s->db);
    result = -1;
  }
  sqlite3_reset(s->hist);
  sqlite3_clear_bindings(s->hist);
  pthread_mutex_unlock(&s->mu);
  if (result == 0 && out->n > limit) { /* one more exists: the page ends before it */
    chat_message_free(&out->msgs[limit]);
    out->n = limit;
    out->next.kind = CP_CUR_SEQ;
    out->next.ms = out->msgs[limit - 1].created_at_ms;
    out->next.seq = seqs[limit - 1];
  }
  free(seqs);
  if (result < 0) cp_page_free(out);
  return result;
}

static int sq_conversations(cp_store *bs, const char *user, const cp_cursor *before,
                            size_t limit, cp_conv_page *out, char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  memset(out, 0, sizeof *out);
  out->items = calloc(limit + 1, sizeof *out->items);
  if (!out->items) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  /* (last_ms, stream_id) < bound; a bare time includes its millisecond. */
  int64_t bms = INT64_MAX;
  const char *bid = "";
  if (before && before->kind == CP_CUR_TIME) {
    bms = before->ms < INT64_MAX ? before->ms + 1 : INT64_MAX;
  } else if (before && before->kind == CP_CUR_STR_ID) {
    bms = before->ms;
    bid = before->id ? before->id : "";
  }
  int result = 0, rc;
  pthread_mutex_lock(&s->mu);
  bind_text(s->conv_list, 1, user);
  sqlite3_bind_int64(s->conv_list, 2, bms);
  bind_text(s->conv_list, 3, bid);
  sqlite3_bind_int64(s->conv_list, 4, (sqlite3_int64)limit + 1);
  while ((rc = sqlite3_step(s->conv_list)) == SQLITE_ROW) {
    cp_conv *c = &out->items[out->n];
    /* columns: COLS of the last message (0-7), then stream, peer, unread,
     * last_ms, the message at the peer's read mark (NULL: none) */
    if (row_to_msg(s->conv_list, &c->last, NULL) < 0) {
      result = -1;
      break;
    }
    out->n++;
    c->stream_id = col_dup(s->conv_list, 8);
    c->peer_id = col_dup(s->conv_list, 9);
    c->unread = sqlite3_column_int64(s->conv_list, 10);
    c->last_ms = sqlite3_column_int64(s->conv_list, 11);
    if (sqlite3_column_type(s->conv_list, 12) != SQLITE_NULL) {
      c->peer_read_id = col_dup(s->conv_list, 12);
      if (!c->peer_read_id) {
        result = -1;
        break;
      }
    }
    if (!c->stream_id || !c->peer_id) {
      result = -1;
      break;
    }
  }
  if (result < 0) snprintf(err, errlen, "out of memory");
  else if (rc != SQLITE_DONE) {
    set_err(err, errlen, "conversations", s->db);
    result = -1;
  }
  sqlite3_reset(s->conv_list);
  sqlite3_clear_bindings(s->conv_list);
  pthread_mutex_unlock(&s->mu);
  if (result == 0 && cp_conv_page_trim(out, limit) < 0) {
    snprintf(err, errlen, "out of memory");
    result = -1;
  }
  if (result < 0) cp_conv_page_free(out);
  return result;
}

/* Caller holds mu, inside a transaction. */
static int mark_read_locked(sq_store *s, const char *user, const chat_message *m,
                            int64_t *unread, char *err, size_t errlen) {
  const char *peer = strcmp(user, m->sender_id) == 0 ? m->receiver_id : m->sender_id;
  bind_text(s->pos, 1, m->message_id);
  int rc = sqlite3_step(s->pos);
  int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(s->pos, 0) : 0;
  int64_t ms = rc == SQLITE_ROW ? sqlite3_column_int64(s->pos, 1) : 0;
  sqlite3_reset(s->pos);
  sqlite3_clear_bindings(s->pos);
  if (rc != SQLITE_ROW) {
    if (rc == SQLITE_DONE) snprintf(err, errlen, "message %s vanished", m->message_id);
    else set_err(err, errlen, "read position", s->db);
    return -1;
  }
  /* Only forward: an older message never moves the mark back. */
  bind_text(s->read_up, 1, user);
  bind_text(s->read_up, 2, m->stream_id);
  bind_text(s->read_up, 3, peer);
  sqlite3_bind_int64(s->read_up, 4, ms);
  sqlite3_bind_int64(s->read_up, 5, seq);
  rc = step_done(s->read_up);
  sqlite3_clear_bindings(s->read_up);
  if (rc < 0) {
    set_err(err, errlen, "read mark", s->db);
    return -1;
  }
  bind_text(s->read_get, 1, user);
  bind_text(s->read_get, 2, m->stream_id);
  rc = sqlite3_step(s->read_get);
  int64_t rms = sqlite3_column_int64(s->read_get, 0), rseq = sqlite3_column_int64(s->read_get, 1);
  sqlite3_reset(s->read_get);
  sqlite3_clear_bindings(s->read_get);
  if (rc != SQLITE_ROW) {
    set_err(err, errlen, "read mark lookup", s->db);
    return -1;
  }
  *unread = 0;
  if (strcmp(peer, user) != 0) { /* the tail after the mark: what is still unread */
    bind_text(s->unread_count, 1, m->stream_id);
    sqlite3_bind_int64(s->unread_count, 2, rms);
    sqlite3_bind_int64(s->unread_count, 3, rseq);
    bind_text(s->unread_count, 4, peer);
    rc = sqlite3_step(s->unread_count);
    if (rc == SQLITE_ROW) *unread = sqlite3_column_int64(s->unread_count, 0);
    sqlite3_reset(s->unread_count);
    sqlite3_clear_bindings(s->unread_count);
    if (rc != SQLITE_ROW) {
      set_err(err, errlen, "unread count", s->db);
      return -1;
    }
  }
  sqlite3_bind_int64(s->unread_set, 1, *unread);
  bind_text(s->unread_set, 2, user);
  bind_text(s->unread_set, 3, m->stream_id);
  rc = step_done(s->unread_set);
  sqlite3_clear_bindings(s->unread_set);
  if (rc < 0) {
    set_err(err, errlen, "unread update", s->db);
    return -1;
  }
  return 0;
}

static int sq_mark_read(cp_store *bs, const char *user, const chat_message *m, int64_t *unread,
                        char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  pthread_mutex_lock(&s->mu);
  int result = 0;
  if (step_done(s->begin) < 0) {
    set_err(err, errlen, "begin", s->db);
    result = -1;
  }
  if (result == 0) result = mark_read_locked(s, user, m, unread, err, errlen);
  if (result == 0 && step_done(s->commit) < 0) {
    set_err(err, errlen, "commit", s->db);
    result = -1;
  }
  if (result < 0) step_done(s->rollback);
  pthread_mutex_unlock(&s->mu);
  return result;
}

static int sq_changes_fetch(cp_store *bs, size_t max, cp_change **outp, size_t *n, char *err,
                            size_t errlen) {
  sq_store *s = (sq_store *)bs;
  *outp = NULL;
  *n = 0;
  cp_change *out = calloc(max ? max : 1, sizeof *out);
  if (!out) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  int result = 0, rc;
  pthread_mutex_lock(&s->mu);
  sqlite3_bind_int64(s->ob_fetch, 1, (sqlite3_int64)max);
  while ((rc = sqlite3_step(s->ob_fetch)) == SQLITE_ROW) {
    cp_change *c = &out[*n];
    c->seq = sqlite3_column_int64(s->ob_fetch, 0);
    c->key_len = (size_t)sqlite3_column_bytes(s->ob_fetch, 1);
    c->key = chat_strndup(sqlite3_column_blob(s->ob_fetch, 1), c->key_len);
    c->value_len = (size_t)sqlite3_column_bytes(s->ob_fetch, 2);
    c->value = chat_strndup(sqlite3_column_blob(s->ob_fetch, 2), c->value_len);
    c->status = -1;
    (*n)++;
    if (!c->key || !c->value) {
      snprintf(err, errlen, "out of memory");
      result = -1;
      break;
    }
  }
  if (result == 0 && rc != SQLITE_DONE) {
    set_err(err, errlen, "outbox fetch", s->db);
    result = -1;
  }
  sqlite3_reset(s->ob_fetch);
  pthread_mutex_unlock(&s->mu);
  if (result < 0) {
    cp_changes_free(out, *n);
    *n = 0;
    return -1;
  }
  *outp = out;
  return 0;
}

/* Deleting published outbox rows needs no fsync: losing the delete in a
 * power cut only publishes those records again (at-least-once, the handler
 * dedupes), and the next message commit's fsync covers it anyway.  So the
 * confirmation commits with synchronous=NORMAL and never makes an insert
 * wait for a sync. */
static int sq_changes_done(cp_store *bs, const cp_change *c, size_t n, char *err, size_t errlen) {
  sq_store *s = (sq_store *)bs;
  int result = 0;
  pthread_mutex_lock(&s->mu);
  if (s->sync_full) step_done(s->sync_normal);
  if (step_done(s->begin) < 0) {
    set_err(err, errlen, "begin", s->db);
    result = -1;
  }
  for (size_t i = 0; result == 0 && i < n; i++) {
    if (c[i].status != 0) continue;
    sqlite3_bind_int64(s->ob_del, 1, c[i].seq);
    if (step_done(s->ob_del) < 0) {
      set_err(err, errlen, "outbox delete", s->db);
      result = -1;
    }
  }
  if (result == 0 && step_done(s->commit) < 0) {
    set_err(err, errlen, "commit", s->db);
    result = -1;
  }
  if (result < 0) step_done(s->rollback);
  if (s->sync_full) step_done(s->sync_restore);
  pthread_mutex_unlock(&s->mu);
  return result;
}

static int sq_checkpoint(cp_store *bs) {
  sq_store *s = (sq_store *)bs;
  int log = 0, done = 0;
  if (s->ckpt_db) sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  /* Frames keep arriving: hurry. */
  int again = log >= CP_AUTO_CHECKPOINT_FRAMES / 2 && log != s->ckpt_last_log;
  s->ckpt_last_log = log;
  return again;
}

static void sq_close(cp_store *bs) {
  sq_store *s = (sq_store *)bs;
  if (!s) return;
  sqlite3_stmt *sts[] = {s->ins,    s->get,    s->hist,     s->ob_ins,      s->ob_fetch,
                         s->ob_del, s->begin,  s->commit,   s->rollback,    s->sync_normal,
                         s->sync_restore, s->conv_up, s->conv_list, s->pos, s->read_up,
                         s->read_get, s->unread_count, s->unread_set};
  for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++) sqlite3_finalize(sts[i]);
  if (s->ckpt_db) sqlite3_close(s->ckpt_db);
  if (s->db) sqlite3_close(s->db);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static const cp_store_ops sqlite_ops = {
    .name = "sqlite",
    .insert = sq_insert,
    .insert_batch = sq_insert_batch,
    .get = sq_get,
    .history = sq_history,
    .conversations = sq_conversations,
    .mark_read = sq_mark_read,
    .changes_fetch = sq_changes_fetch,
    .changes_done = sq_changes_done,
    .checkpoint = sq_checkpoint,
    .close = sq_close,
};

/* Conversations for a file that predates them (see BACKFILL), once. */
static int backfill(sq_store *s, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int version = -1;
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (version < 0) {
    set_err(err, errlen, "user_version", s->db);
    return -1;
  }
  if (version >= 1) return 0;
  char *msg = NULL;
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec(s->db, BACKFILL, NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec(s->db, "PRAGMA user_version=1; COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "sqlite conversations backfill: %s", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  return 0;
}

static int prep(sq_store *s, const char *sql, sqlite3_stmt **st) {
  return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK
             ? 0
             : -1;
}

int cp_store_sqlite_open(const cp_sqlite_opts *o, cp_store **out, char *err, size_t errlen) {
  *out = NULL;
  sq_store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->base.ops = &sqlite_ops;
  s->capture = o->capture;
  s->sync_full = o->synchronous_full;
  pthread_mutex_init(&s->mu, NULL);
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(o->path, &s->db, flags, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "sqlite open %s: %s", o->path,
             s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sq_close(&s->base);
    return -1;
  }
  sqlite3_busy_timeout(s->db, 5000);
  char pragmas[160];
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF;"
           " PRAGMA wal_autocheckpoint=%d;",
           o->synchronous_full ? "FULL" : "NORMAL", CP_AUTO_CHECKPOINT_FRAMES);
  char *msg = NULL;
  if (sqlite3_exec(s->db, pragmas, NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec(s->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "sqlite schema in %s: %s", o->path, msg ? msg : "?");
    sqlite3_free(msg);
    sq_close(&s->base);
    return -1;
  }
  if (backfill(s, err, errlen) < 0) {
    sq_close(&s->base);
    return -1;
  }
  if (prep(s,
           "INSERT INTO messages(message_id, id_oid, content, created_at, stream_id, sender_id,"
           " receiver_id) VALUES(?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(message_id) DO NOTHING",
           &s->ins) < 0 ||
      prep(s, "SELECT " COLS " FROM messages WHERE message_id=?1", &s->get) < 0 ||
      prep(s,
           "SELECT " COLS " FROM messages WHERE stream_id=?1"
           " AND (created_at, seq) < (?2, ?3) AND (created_at, seq) > (?4, ?5)"
           " ORDER BY created_at DESC, seq DESC LIMIT ?6",
           &s->hist) < 0 ||
      prep(s, "INSERT INTO outbox(key, value) VALUES(?1, ?2)", &s->ob_ins) < 0 ||
      prep(s, "SELECT seq, key, value FROM outbox ORDER BY seq LIMIT ?1", &s->ob_fetch) < 0 ||
      prep(s, "DELETE FROM outbox WHERE seq=?1", &s->ob_del) < 0 ||
      prep(s, "BEGIN IMMEDIATE", &s->begin) < 0 || prep(s, "COMMIT", &s->commit) < 0 ||
      prep(s, "ROLLBACK", &s->rollback) < 0 ||
      prep(s, "PRAGMA synchronous=NORMAL", &s->sync_normal) < 0 ||
      prep(s, o->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
           &s->sync_restore) < 0 ||
      prep(s,
           "INSERT INTO conversations(user_id, stream_id, peer_id, last_ms, last_seq, unread)"
           " VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT(user_id, stream_id) DO UPDATE SET"
           " last_seq = CASE WHEN (excluded.last_ms, excluded.last_seq) > (last_ms, last_seq)"
           "  THEN excluded.last_seq ELSE last_seq END,"
           " last_ms = MAX(last_ms, excluded.last_ms),"
           " unread = unread + CASE WHEN (?7, ?8) > (read_ms, read_seq)"
           "  THEN excluded.unread ELSE 0 END",
           &s->conv_up) < 0 ||
      prep(s,
           "SELECT m.seq, m.message_id, m.id_oid, m.content, m.created_at, m.stream_id,"
           " m.sender_id, m.receiver_id, c.stream_id, c.peer_id, c.unread, c.last_ms,"
           " r.message_id"
           " FROM conversations c JOIN messages m ON m.seq = c.last_seq"
           " LEFT JOIN conversations p ON p.user_id = c.peer_id AND p.stream_id = c.stream_id"
           "  AND p.read_ms >= 0"
           " LEFT JOIN messages r ON r.seq = p.read_seq"
           " WHERE c.user_id=?1 AND (c.last_ms, c.stream_id) < (?2, ?3)"
           " ORDER BY c.last_ms DESC, c.stream_id DESC LIMIT ?4",
           &s->conv_list) < 0 ||
      prep(s, "SELECT seq, created_at FROM messages WHERE message_id=?1", &s->pos) < 0 ||
      prep(s,
           "INSERT INTO conversations(user_id, stream_id, peer_id, last_ms, last_seq, read_ms,"
           " read_seq) VALUES(?1,?2,?3,?4,?5,?4,?5) ON CONFLICT(user_id, stream_id) DO UPDATE SET"
           " read_ms=excluded.read_ms, read_seq=excluded.read_seq"
           " WHERE (excluded.read_ms, excluded.read_seq) > (read_ms, read_seq)",
           &s->read_up) < 0 ||
      prep(s, "SELECT read_ms, read_seq FROM conversations WHERE user_id=?1 AND stream_id=?2",
           &s->read_get) < 0 ||
      prep(s,
           "SELECT COUNT(*) FROM messages WHERE stream_id=?1 AND (created_at, seq) > (?2, ?3)"
           " AND sender_id=?4",
           &s->unread_count) < 0 ||
      prep(s, "UPDATE conversations SET unread=?1 WHERE user_id=?2 AND stream_id=?3",
           &s->unread_set) < 0) {
    set_err(err, errlen, "prepare", s->db);
    sq_close(&s->base);
    return -1;
  }
  /* Checkpoints run from a job on their own connection (sq_checkpoint);
   * without it, fall back to SQLite's usual automatic ones. */
  if (sqlite3_open_v2(o->path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
      SQLITE_OK) {
    sqlite3_close(s->ckpt_db);
    s->ckpt_db = NULL;
    sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint=1000", NULL, NULL, NULL);
  } else {
    sqlite3_busy_timeout(s->ckpt_db, 1000);
    /* The connection opens the WAL on its first read; until then a
     * checkpoint on it silently does nothing. */
    sqlite3_exec(s->ckpt_db, "SELECT 1 FROM sqlite_master LIMIT 1", NULL, NULL, NULL);
    char sync[64];
    snprintf(sync, sizeof sync, "PRAGMA synchronous=%s", o->synchronous_full ? "FULL" : "NORMAL");
    sqlite3_exec(s->ckpt_db, sync, NULL, NULL, NULL);
  }
  *out = &s->base;
  return 0;
}
