/* The notification inbox store: embedded SQLite (single node) or MongoDB.
 * Every function blocks and runs on a host worker thread; implementations
 * lock or pool internally, so calls may overlap.  Errors: < 0 with `err`
 * filled. */
#ifndef INBOX_STORE_H
#define INBOX_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct inbox_store inbox_store;

/* One stored notification.  The envelope's parts are kept as the JSON text
 * that went out on the websocket, so a replayed or listed notification is
 * byte for byte the one pushed live (Go's float and time formatting). */
typedef struct inbox_rec {
  int64_t id;         /* increasing per user; assigned by insert_batch */
  char *user_id;
  char *type;         /* notification_type, e.g. "purchase_notification" */
  char *ts;           /* the envelope's timestamp: a JSON string, quotes included */
  char *payload;      /* the payload's JSON text */
  int64_t created_ms; /* wall clock, for retention */
  int read;
  int event_sent;     /* outbox flag: 1 = its event was produced (or none is due) */
} inbox_rec;

/* A record whose event the bus confirmed: marked sent by a later batch. */
typedef struct inbox_sent {
  char *user_id;
  int64_t id;
} inbox_sent;

typedef struct inbox_store_ops {
  const char *name;
  /* Stores the `n` records in one transaction (group commit) and sets
   * their ids, increasing in the order given, and in the same transaction
   * sets event_sent on the `nsent` records `sent` (the outbox; n may be 0).
   * All or nothing. */
  int (*insert_batch)(inbox_store *s, inbox_rec *const *r, size_t n, const inbox_sent *sent,
                      size_t nsent, char *err, size_t errlen);
  /* The outbox: the oldest `max` records with event_sent = 0 created at
   * or after `since_ms`, oldest first. */
  int (*unsent)(inbox_store *s, int64_t since_ms, size_t max, inbox_rec **out, size_t *n,
                char *err, size_t errlen);
  /* The user's records with id < before (0 = no bound), newest first, at
   * most `limit`. */
  int (*list)(inbox_store *s, const char *user, int64_t before, size_t limit, inbox_rec **out,
              size_t *n, char *err, size_t errlen);
  /* The newest `max` records with id > after, returned oldest first. */
  int (*after)(inbox_store *s, const char *user, int64_t after, size_t max, inbox_rec **out,
               size_t *n, char *err, size_t errlen);
  int (*unread)(inbox_store *s, const char *user, int64_t *out, char *err, size_t errlen);
  /* Marks the user's records `ids` (or all of them) read; ids of other
   * users or unknown ids change nothing. */
  int (*mark_read)(inbox_store *s, const char *user, const int64_t *ids, size_t n, int all,
                   char *err, size_t errlen);
  /* Retention: deletes records created before `older_than_ms` and, for
   * every user with new records since the previous purge, all but the
   * newest `max_per_user`.  *deleted counts what went. */
  int (*purge)(inbox_store *s, int64_t older_than_ms, int64_t max_per_user, int64_t *deleted,
               char *err, size_t errlen);
  /* Preferences document (JSON text): 1 found (*json malloc'd), 0 absent. */
  int (*prefs_get)(inbox_store *s, const char *user, char **json, char *err, size_t errlen);
  int (*prefs_put)(inbox_store *s, const char *user, const char *json, char *err,
                   size_t errlen);
  /* The id the next insert_batch starts at, when ids form one sequence
   * for all users with no gaps between commits (SQLite), so the plugin can
   * run several batches at once and still publish in id order; NULL when
   * they do not (MongoDB: one batch at a time).  Called on the loop at
   * start, before any batch. */
  int64_t (*next_id)(inbox_store *s);
  /* Copies committed WAL content into the database file on a connection of
   * its own, so commits rarely stall on an automatic checkpoint's copies
   * and fsyncs (NULL: nothing to do).  One call at a time. */
  void (*checkpoint)(inbox_store *s);
  /* MongoDB: ping and create indexes (retried until it works); NULL for
   * SQLite. */
  int (*setup)(inbox_store *s, char *err, size_t errlen);
  void (*close)(inbox_store *s);
} inbox_store_ops;

struct inbox_store {
  const inbox_store_ops *ops;
};

/* Opening happens on the loop at init (a local file, or no network I/O). */
int inbox_store_sqlite_open(const char *path, int synchronous_full, inbox_store **out, char *err,
                            size_t errlen);
int inbox_store_mongo_open(const char *uri, const char *database, const char *collection,
                           inbox_store **out, char *err, size_t errlen);

void inbox_rec_free(inbox_rec *r);            /* the fields, not r */
void inbox_recs_free(inbox_rec *r, size_t n); /* the fields and the array */
int64_t notif_now_ms(void);                   /* wall clock (notifications_ws.c) */

#endif
