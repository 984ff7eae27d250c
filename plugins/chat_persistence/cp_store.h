/* The message store behind chat_persistence: embedded SQLite (default) or
 * MongoDB.  Every function here blocks and runs on a host worker thread;
 * implementations serialise or pool internally, so calls may overlap. */
#ifndef CP_STORE_H
#define CP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "chat_model.h"

typedef struct cp_store cp_store;

/* A position in a stream's newest-first order (created_at, then a
 * tie-breaker).  Clients see it as an opaque token (cp_cursor.c) or give
 * a bare RFC 3339 time. */
enum { CP_CUR_NONE = 0, CP_CUR_TIME, CP_CUR_SEQ, CP_CUR_STR_ID, CP_CUR_OID };
typedef struct cp_cursor {
  int kind;      /* CP_CUR_* */
  int64_t ms;    /* created_at */
  int64_t seq;   /* CP_CUR_SEQ: SQLite row sequence */
  char *id;      /* CP_CUR_STR_ID / CP_CUR_OID: the _id (owned) */
} cp_cursor;

typedef struct cp_page {
  chat_message *msgs; /* newest first */
  size_t n;
  cp_cursor next;     /* where the next older page starts; kind NONE = no more */
} cp_page;

/* One change record waiting for the relay: rendered key and value plus
 * what the store needs to confirm it. */
typedef struct cp_change {
  int64_t seq;         /* SQLite outbox row */
  char *doc_id;        /* MongoDB _id (owned) */
  int doc_id_is_oid;
  char *key, *value;   /* owned */
  size_t key_len, value_len;
  int32_t status;      /* filled by the relay: 0 = acknowledged by the bus */
} cp_change;

/* One conversation of a user (conversation state is kept per user and
 * stream, maintained by the inserts: no history scan per request). */
typedef struct cp_conv {
  char *stream_id, *peer_id; /* owned */
  chat_message last;         /* the newest message of the stream */
  int64_t last_ms;           /* its created_at: the list's order */
  int64_t unread;            /* peer messages after the user's read mark */
  char *peer_read_id;        /* owned; the message at the peer's read mark, NULL = none */
} cp_conv;

typedef struct cp_conv_page {
  cp_conv *items; /* most recent first */
  size_t n;
  cp_cursor next; /* CP_CUR_STR_ID (last_ms, stream_id); NONE = no more */
} cp_conv_page;

typedef struct cp_store_ops {
  const char *name;
  /* Stores `m` (message_id set; id_is_oid for server ids) with created_at =
   * now, and the change record in the same transaction when capture is on.
   * Returns 0 = inserted (m->created_at_ms set), 1 = the id existed (m is
   * replaced by the stored message), < 0 = error (err filled). */
  int (*insert)(cp_store *s, chat_message *m, char *err, size_t errlen);
  /* Group commit (NULL when the backend has none): the `n` messages in one
   * transaction, rc[i] as `insert` returns it for m[i]; with capture,
   * changes[i] (if `changes` is not NULL) receives the change record of each
   * inserted message (seq, key, value; key NULL for the others), so the
   * relay can publish it without reading it back.  The same transaction
   * first deletes the `ndel` published outbox rows `del` (n may be 0: a
   * delete-only transaction, committed without fsync).  Returns 0, or < 0
   * when the transaction failed (nothing stored or deleted; err filled,
   * every rc[i] < 0, no changes). */
  int (*insert_batch)(cp_store *s, chat_message *const *m, int *rc, size_t n, cp_change *changes,
                      const int64_t *del, size_t ndel, char *err, size_t errlen);
  /* Conversation state for messages insert_batch inserted (rc 0), when the
   * store keeps it apart from the insert (NULL: insert_batch does it in its
   * transaction).  The caller runs it after answering the POSTs, one call
   * at a time, with every message inserted since the last call.  0, or < 0
   * (err filled; the next read of a conversation recounts). */
  int (*conv_apply)(cp_store *s, chat_message *const *m, size_t n, char *err, size_t errlen);
  /* 1 = found (out filled), 0 = absent, < 0 = error. */
  int (*get)(cp_store *s, const char *id, chat_message *out, char *err, size_t errlen);
  /* Messages of a stream strictly between `after` and `before` (either may
   * be NONE), newest first, at most `limit`. < 0 = error. */
  int (*history)(cp_store *s, const char *stream_id, const cp_cursor *before,
                 const cp_cursor *after, size_t limit, cp_page *out, char *err, size_t errlen);
  /* Conversations of `user` strictly older than `before` (NONE, TIME:
   * last message at or before that millisecond, STR_ID: (ms, stream_id)
   * from a previous page), most recent first (last message time, ties by
   * stream id descending), at most `limit`.  < 0 = error. */
  int (*conversations)(cp_store *s, const char *user, const cp_cursor *before, size_t limit,
                       cp_conv_page *out, char *err, size_t errlen);
  /* Moves `user`'s read mark in the stream of `m` (a stored message,
   * user a participant, as read back by `get`) up to `m` unless it is
   * already there or later, and sets *unread to the peer messages after
   * the mark.  0, or < 0 = error. */
  int (*mark_read)(cp_store *s, const char *user, const chat_message *m, int64_t *unread,
                   char *err, size_t errlen);
  /* Up to `max` unpublished changes, oldest first.  NULL when the backend
   * has no capture of its own (Debezium mode). */
  int (*changes_fetch)(cp_store *s, size_t max, cp_change **out, size_t *n, char *err,
                       size_t errlen);
  /* Marks the changes with status 0 as published (deletes outbox rows). */
  int (*changes_done)(cp_store *s, const cp_change *c, size_t n, char *err, size_t errlen);
  /* Moves committed WAL content into the database file on a connection of
   * its own, so writers rarely stall on a checkpoint's copies and fsyncs
   * (NULL: the backend needs none).  Called by one job at a time.  Returns
   * 1 when the writer's own automatic checkpoint is near (call again
   * soon), else 0. */
  int (*checkpoint)(cp_store *s);
  void (*close)(cp_store *s);
} cp_store_ops;

struct cp_store {
  const cp_store_ops *ops;
};

/* Opening happens on the loop at init (local file / no network I/O). */
typedef struct cp_sqlite_opts {
  const char *path;
  int synchronous_full;  /* PRAGMA synchronous=FULL (else NORMAL) */
  int capture;           /* write outbox rows */
} cp_sqlite_opts;
int cp_store_sqlite_open(const cp_sqlite_opts *o, cp_store **out, char *err, size_t errlen);

typedef struct cp_mongo_opts {
  const char *uri, *database, *collection;
  const char *conversations;  /* collection of the per-user conversation state */
  const char *outbox;    /* collection of unpublished change records */
  int capture;           /* built-in relay: write change records to `outbox` */
} cp_mongo_opts;
int cp_store_mongo_open(const cp_mongo_opts *o, cp_store **out, char *err, size_t errlen);
/* Blocking (worker): ping, create indexes.  0 or < 0 with err. */
int cp_store_mongo_setup(cp_store *s, char *err, size_t errlen);

void cp_page_free(cp_page *p);
void cp_conv_page_free(cp_conv_page *p);
/* A store reads limit + 1 conversations to learn whether more exist: drops
 * the extra one and sets the page's next cursor to the last kept.  0, or
 * -1 on OOM (the caller frees the page). */
int cp_conv_page_trim(cp_conv_page *p, size_t limit);
void cp_cursor_free(cp_cursor *c);
void cp_changes_free(cp_change *c, size_t n);

/* Cursor tokens: base64url of "<kind>:<ms>:<tiebreak>".  Parsing also
 * accepts a bare RFC 3339 time (CP_CUR_TIME).  0, or -1 if malformed. */
int cp_cursor_parse(const char *text, cp_cursor *out);
char *cp_cursor_format(const cp_cursor *c); /* malloc'd, NULL on OOM */

#endif
