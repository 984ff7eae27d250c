/* MongoDB inbox through a libmongoc client pool (worker threads only).
 *
 *   <collection> (default "notifications"):
 *     {_id: ObjectId, user_id, id: int64, notification_type, timestamp:
 *      string (the JSON string as sent, quotes included), payload: string
 *      (the payload's JSON text), created_at: Date, read: bool,
 *      event_sent: bool (the event outbox; absent = sent)}
 *     indexes {user_id: 1, id: -1} unique, {created_at: 1}, {user_id: 1, read: 1}
 *   <collection>_counters: {_id: user_id, seq: int64}   per-user id counter
 *   <collection>_preferences: {_id: user_id, doc: string, updated_at: Date}
 *
 * Ids: one findAndModify {$inc: {seq: k}} per user of a batch reserves k
 * ids, then one insert_many stores the batch.  The plugin runs one batch at
 * a time, so ids reach the collection in increasing order per user within
 * a process (which recovery relies on: a user's sockets are served by one
 * process).
 *
 * Outbox marks: one update_many per call, {event_sent: false, $or:
 * [{user_id, id: {$in: [...]}}, ...]} (one clause per user), before the
 * batch's insert_many.  FerretDB v1 evaluates a filter by reading the
 * collection once per statement (PostgreSQL filters on the fields it can
 * push down, here event_sent; FerretDB decodes the rest and evaluates the
 * $or): one statement rather than one per user.  The plugin sends marks
 * about twice a second (events.c), not with every batch. */
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inbox_store.h"

typedef struct mg_touched {
  char *user;
  int64_t last; /* an id stored for the user (the newest of a batch) */
} mg_touched;

typedef struct mg_store {
  inbox_store base;
  mongoc_client_pool_t *pool;
  char *db, *coll, *counters, *prefs;
  /* Users with inserts since the last purge, with their newest id then
   * (per-user cap). */
  pthread_mutex_t mu;
  mg_touched *touched;
  size_t ntouched, cap_touched;
  int64_t age_purged_ms; /* when the last purge by age ran (purge job only) */
} mg_store;

#define TOUCHED_MAX 100000

static mongoc_collection_t *coll_pop(mg_store *s, const char *name, mongoc_client_t **c) {
  *c = mongoc_client_pool_pop(s->pool);
  return mongoc_client_get_collection(*c, s->db, name);
}

static void coll_push(mg_store *s, mongoc_client_t *c, mongoc_collection_t *coll) {
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(s->pool, c);
}

static char *dup_utf8(const bson_iter_t *it) {
  uint32_t len = 0;
  const char *v = bson_iter_utf8(it, &len);
  char *s = malloc(len + 1);
  if (s) {
    memcpy(s, v, len);
    s[len] = '\0';
  }
  return s;
}

static int doc_to_rec(const bson_t *doc, inbox_rec *r) {
  memset(r, 0, sizeof *r);
  bson_iter_t it;
  if (bson_iter_init(&it, doc)) {
    while (bson_iter_next(&it)) {
      const char *k = bson_iter_key(&it);
      char **slot = NULL;
      if (strcmp(k, "id") == 0 && (BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it)))
        r->id = bson_iter_as_int64(&it);
      else if (strcmp(k, "created_at") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it))
        r->created_ms = bson_iter_date_time(&it);
      else if (strcmp(k, "read") == 0 && BSON_ITER_HOLDS_BOOL(&it))
        r->read = bson_iter_bool(&it);
      else if (strcmp(k, "user_id") == 0) slot = &r->user_id;
      else if (strcmp(k, "notification_type") == 0) slot = &r->type;
      else if (strcmp(k, "timestamp") == 0) slot = &r->ts;
      else if (strcmp(k, "payload") == 0) slot = &r->payload;
      if (slot && BSON_ITER_HOLDS_UTF8(&it) && !*slot) *slot = dup_utf8(&it);
    }
  }
  /* A document written by hand may lack fields: still valid JSON out. */
  if (!r->user_id) r->user_id = strdup("");
  if (!r->type) r->type = strdup("");
  if (!r->ts) r->ts = strdup("\"0001-01-01T00:00:00Z\"");
  if (!r->payload) r->payload = strdup("null");
  if (!r->user_id || !r->type || !r->ts || !r->payload) {
    inbox_rec_free(r);
    return -1;
  }
  return 0;
}

static void touch(mg_store *s, const char *user, int64_t last) {
  pthread_mutex_lock(&s->mu);
  if (s->ntouched < TOUCHED_MAX) {
    if (s->ntouched == s->cap_touched) {
      size_t cap = s->cap_touched ? s->cap_touched * 2 : 256;
      mg_touched *t = realloc(s->touched, cap * sizeof *t);
      if (t) {
        s->touched = t;
        s->cap_touched = cap;
      }
    }
    if (s->ntouched < s->cap_touched) {
      char *u = strdup(user);
      if (u) s->touched[s->ntouched++] = (mg_touched){u, last};
    }
  }
  pthread_mutex_unlock(&s->mu);
}

/* Reserves `k` ids for `user`: the last one. */
static int reserve(mg_store *s, mongoc_collection_t *counters, const char *user, int64_t k,
                   int64_t *last, char *err, size_t errlen) {
  bson_t *q = BCON_NEW("_id", BCON_UTF8(user));
  bson_t *u = BCON_NEW("$inc", "{", "seq", BCON_INT64(k), "}");
  bson_t reply;
  bson_error_t be;
  bool ok = mongoc_collection_find_and_modify(counters, q, NULL, u, NULL, false, true, true,
                                              &reply, &be);
  int rc = -1;
  if (ok) {
    bson_iter_t it;
    if (bson_iter_init(&it, &reply) && bson_iter_find_descendant(&it, "value.seq", &it) &&
        (BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it) ||
         BSON_ITER_HOLDS_DOUBLE(&it))) {
      *last = bson_iter_as_int64(&it);
      rc = 0;
    } else {
      snprintf(err, errlen, "mongodb counter: no value in the reply");
    }
  } else {
    snprintf(err, errlen, "mongodb counter: %s", be.message);
  }
  bson_destroy(&reply);
  bson_destroy(q);
  bson_destroy(u);
  (void)s;
  return rc;
}

static int mark_sent(mg_store *s, mongoc_collection_t *coll, const inbox_sent *sent, size_t n,
                     char *err, size_t errlen);

static int mg_insert_batch(inbox_store *bs, inbox_rec *const *r, size_t n,
                           const inbox_sent *sent, size_t nsent, char *err, size_t errlen) {
  mg_store *s = (mg_store *)bs;
  if (n == 0 && nsent == 0) return 0;
  mongoc_client_t *c;
  mongoc_collection_t *counters = coll_pop(s, s->counters, &c);
  mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, s->coll);
  int result = 0;
  /* Group by user (in order of first appearance): one counter call each. */
  char *done = calloc(n ? n : 1, 1);
  if (!done) {
    snprintf(err, errlen, "out of memory");
    result = -1;
  }
  for (size_t i = 0; result == 0 && i < n; i++) {
    if (done[i]) continue;
    int64_t k = 0;
    for (size_t j = i; j < n; j++)
      if (!done[j] && strcmp(r[j]->user_id, r[i]->user_id) == 0) k++;
    int64_t last = 0;
    if (reserve(s, counters, r[i]->user_id, k, &last, err, errlen) < 0) {
      result = -1;
      break;
    }
    int64_t next = last - k + 1;
    for (size_t j = i; j < n; j++)
      if (!done[j] && strcmp(r[j]->user_id, r[i]->user_id) == 0) {
        r[j]->id = next++;
        done[j] = 1;
      }
  }
  free(done);
  bson_t **docs = result == 0 ? calloc(n ? n : 1, sizeof *docs) : NULL;
  if (result == 0 && !docs) {
    snprintf(err, errlen, "out of memory");
    result = -1;
  }
  for (size_t i = 0; docs && i < n; i++) {
    docs[i] = bson_new();
    BSON_APPEND_UTF8(docs[i], "user_id", r[i]->user_id);
    BSON_APPEND_INT64(docs[i], "id", r[i]->id);
    BSON_APPEND_UTF8(docs[i], "notification_type", r[i]->type);
    BSON_APPEND_UTF8(docs[i], "timestamp", r[i]->ts);
    BSON_APPEND_UTF8(docs[i], "payload", r[i]->payload);
    BSON_APPEND_DATE_TIME(docs[i], "created_at", r[i]->created_ms);
    BSON_APPEND_BOOL(docs[i], "read", false);
    BSON_APPEND_BOOL(docs[i], "event_sent", r[i]->event_sent != 0);
  }
  /* The marks first: a failure then fails the batch before anything was
   * inserted (a retry must not store the notifications twice), and marks
   * that stuck before a failed insert are repeated harmlessly. */
  if (result == 0 && nsent) result = mark_sent(s, coll, sent, nsent, err, errlen);
  if (result == 0 && docs && n) {
    bson_error_t be;
    if (!mongoc_collection_insert_many(coll, (const bson_t **)docs, n, NULL, NULL, &be)) {
      snprintf(err, errlen, "mongodb insert: %s", be.message);
      result = -1;
    }
  }
  for (size_t i = 0; docs && i < n; i++) bson_destroy(docs[i]);
  free(docs);
  mongoc_collection_destroy(coll);
  coll_push(s, c, counters);
  if (result == 0) /* the end of each run of one user's records: its newest id there */
    for (size_t i = 0; i < n; i++)
      if (i + 1 == n || strcmp(r[i]->user_id, r[i + 1]->user_id) != 0)
        touch(s, r[i]->user_id, r[i]->id);
  return result;
}

/* event_sent: true on every (user, id) of `sent`, in one update_many whose
 * filter has one {user_id: U, id: {$in: [...]}} clause per user (grouped in
 * order of first appearance). */
static int mark_sent(mg_store *s, mongoc_collection_t *coll, const inbox_sent *sent, size_t n,
                     char *err, size_t errlen) {
  (void)s;
  char *done = calloc(n, 1);
  if (!done) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  /* event_sent: false is pushed down to PostgreSQL by FerretDB v1, so it
   * decodes only the unsent documents to evaluate the $or. */
  bson_t filter = BSON_INITIALIZER, or;
  BSON_APPEND_BOOL(&filter, "event_sent", false);
  BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &or);
  size_t clauses = 0;
  for (size_t i = 0; i < n; i++) {
    if (done[i]) continue;
    char ckey[24];
    snprintf(ckey, sizeof ckey, "%zu", clauses++);
    bson_t clause, in, arr;
    BSON_APPEND_DOCUMENT_BEGIN(&or, ckey, &clause);
    BSON_APPEND_UTF8(&clause, "user_id", sent[i].user_id);
    BSON_APPEND_DOCUMENT_BEGIN(&clause, "id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    size_t k = 0;
    for (size_t j = i; j < n; j++) {
      if (done[j] || strcmp(sent[j].user_id, sent[i].user_id) != 0) continue;
      char key[24];
      snprintf(key, sizeof key, "%zu", k++);
      BSON_APPEND_INT64(&arr, key, sent[j].id);
      done[j] = 1;
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(&clause, &in);
    bson_append_document_end(&or, &clause);
  }
  bson_append_array_end(&filter, &or);
  bson_t *set = BCON_NEW("$set", "{", "event_sent", BCON_BOOL(true), "}");
  bson_error_t be;
  int rc = 0;
  if (!mongoc_collection_update_many(coll, &filter, set, NULL, NULL, &be)) {
    snprintf(err, errlen, "mongodb mark event sent: %s", be.message);
    rc = -1;
  }
  bson_destroy(set);
  bson_destroy(&filter);
  free(done);
  return rc;
}

static int find_recs(mg_store *s, bson_t *filter, bson_t *opts, size_t max, inbox_rec **out,
                     size_t *n, char *err, size_t errlen) {
  *n = 0;
  *out = calloc(max ? max : 1, sizeof **out);
  if (!*out) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, s->coll, &c);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
  const bson_t *doc;
  int result = 0;
  while (*n < max && mongoc_cursor_next(cur, &doc)) {
    if (doc_to_rec(doc, &(*out)[*n]) < 0) {
      snprintf(err, errlen, "out of memory");
      result = -1;
      break;
    }
    (*n)++;
  }
  bson_error_t be;
  if (result == 0 && mongoc_cursor_error(cur, &be)) {
    snprintf(err, errlen, "mongodb find: %s", be.message);
    result = -1;
  }
  mongoc_cursor_destroy(cur);
  coll_push(s, c, coll);
  if (result < 0) {
    inbox_recs_free(*out, *n);
    *out = NULL;
    *n = 0;
  }
  return result;
}

static int mg_list(inbox_store *bs, const char *user, int64_t before, size_t limit,
                   inbox_rec **out, size_t *n, char *err, size_t errlen) {
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user), "id", "{", "$lt",
                            BCON_INT64(before > 0 ? before : INT64_MAX), "}");
  bson_t *opts = BCON_NEW("sort", "{", "id", BCON_INT32(-1), "}", "limit",
                          BCON_INT64((int64_t)limit));
  int rc = find_recs((mg_store *)bs, filter, opts, limit, out, n, err, errlen);
  bson_destroy(filter);
  bson_destroy(opts);
  return rc;
}

static int mg_after(inbox_store *bs, const char *user, int64_t after, size_t max,
                    inbox_rec **out, size_t *n, char *err, size_t errlen) {
  bson_t *filter =
      BCON_NEW("user_id", BCON_UTF8(user), "id", "{", "$gt", BCON_INT64(after), "}");
  bson_t *opts =
      BCON_NEW("sort", "{", "id", BCON_INT32(-1), "}", "limit", BCON_INT64((int64_t)max));
  int rc = find_recs((mg_store *)bs, filter, opts, max, out, n, err, errlen);
  bson_destroy(filter);
  bson_destroy(opts);
  if (rc == 0)
    for (size_t i = 0, j = *n ? *n - 1 : 0; i < j; i++, j--) {
      inbox_rec t = (*out)[i];
      (*out)[i] = (*out)[j];
      (*out)[j] = t;
    }
  return rc;
}

static int mg_unsent(inbox_store *bs, int64_t since_ms, size_t max, inbox_rec **out,
                     size_t *n, char *err, size_t errlen) {
  bson_t *filter = BCON_NEW("event_sent", BCON_BOOL(false), "created_at", "{", "$gte",
                            BCON_DATE_TIME(since_ms), "}");
  bson_t *opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(1), "id", BCON_INT32(1), "}",
                          "limit", BCON_INT64((int64_t)max));
  int rc = find_recs((mg_store *)bs, filter, opts, max, out, n, err, errlen);
  bson_destroy(filter);
  bson_destroy(opts);
  return rc;
}

static int mg_unread(inbox_store *bs, const char *user, int64_t *out, char *err,
                     size_t errlen) {
  mg_store *s = (mg_store *)bs;
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user), "read", BCON_BOOL(false));
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, s->coll, &c);
  bson_error_t be;
  int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &be);
  coll_push(s, c, coll);
  bson_destroy(filter);
  if (n < 0) {
    snprintf(err, errlen, "mongodb count: %s", be.message);
    return -1;
  }
  *out = n;
  return 0;
}

static int mg_mark_read(inbox_store *bs, const char *user, const int64_t *ids, size_t n,
                        int all, char *err, size_t errlen) {
  mg_store *s = (mg_store *)bs;
  if (!all && n == 0) return 0;
  bson_t filter = BSON_INITIALIZER;
  BSON_APPEND_UTF8(&filter, "user_id", user);
  BSON_APPEND_BOOL(&filter, "read", false);
  if (!all) {
    bson_t in, arr;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    for (size_t i = 0; i < n; i++) {
      char key[24];
      snprintf(key, sizeof key, "%zu", i);
      BSON_APPEND_INT64(&arr, key, ids[i]);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(&filter, &in);
  }
  bson_t *update = BCON_NEW("$set", "{", "read", BCON_BOOL(true), "}");
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, s->coll, &c);
  bson_error_t be;
  int rc = 0;
  if (!mongoc_collection_update_many(coll, &filter, update, NULL, NULL, &be)) {
    snprintf(err, errlen, "mongodb mark read: %s", be.message);
    rc = -1;
  }
  coll_push(s, c, coll);
  bson_destroy(update);
  bson_destroy(&filter);
  return rc;
}

static int cmp_touched(const void *a, const void *b) {
  return strcmp(((const mg_touched *)a)->user, ((const mg_touched *)b)->user);
}

static int mg_purge(inbox_store *bs, int64_t older_than_ms, int64_t max_per_user,
                    int64_t *deleted, char *err, size_t errlen) {
  mg_store *s = (mg_store *)bs;
  *deleted = 0;
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, s->coll, &c);
  bson_t reply;
  bson_error_t be;
  int rc = 0;
  /* FerretDB v1 cannot push a $lt down to PostgreSQL, so this delete reads
   * every document of the collection: it runs at most every max_age / 100
   * (a notification outlives max_age by at most 1%; with 30 days, every
   * 7.2 h) instead of every interval. */
  int64_t now = notif_now_ms();
  if (!s->age_purged_ms || now - s->age_purged_ms >= (now - older_than_ms) / 100) {
    bson_t *filter = BCON_NEW("created_at", "{", "$lt", BCON_DATE_TIME(older_than_ms), "}");
    if (mongoc_collection_delete_many(coll, filter, NULL, &reply, &be)) {
      bson_iter_t it;
      if (bson_iter_init_find(&it, &reply, "deletedCount")) *deleted += bson_iter_as_int64(&it);
      s->age_purged_ms = now;
    } else {
      snprintf(err, errlen, "mongodb purge by age: %s", be.message);
      rc = -1;
    }
    bson_destroy(&reply);
    bson_destroy(filter);
  }

  pthread_mutex_lock(&s->mu);
  mg_touched *users = s->touched;
  size_t n = s->ntouched;
  s->touched = NULL;
  s->ntouched = s->cap_touched = 0;
  pthread_mutex_unlock(&s->mu);
  if (n) qsort(users, n, sizeof *users, cmp_touched);
  /* A user's ids come from one counter, one apart, so the newest
   * max_per_user records are those above (newest id - max_per_user): no
   * read needed, and a user whose newest id is within the cap has nothing
   * to delete (FerretDB v1 reads all of a user's records for either).  A
   * failed batch leaves unused ids, so such a user may keep a few fewer. */
  for (size_t i = 0; rc == 0 && max_per_user > 0 && i < n; i++) {
    int64_t last = users[i].last;
    while (i + 1 < n && strcmp(users[i + 1].user, users[i].user) == 0) {
      i++;
      if (users[i].last > last) last = users[i].last;
    }
    if (last <= max_per_user) continue;
    bson_t *d = BCON_NEW("user_id", BCON_UTF8(users[i].user), "id", "{", "$lte",
                         BCON_INT64(last - max_per_user), "}");
    if (mongoc_collection_delete_many(coll, d, NULL, &reply, &be)) {
      bson_iter_t it;
      if (bson_iter_init_find(&it, &reply, "deletedCount")) *deleted += bson_iter_as_int64(&it);
    } else {
      snprintf(err, errlen, "mongodb purge by count: %s", be.message);
      rc = -1;
    }
    bson_destroy(&reply);
    bson_destroy(d);
  }
  for (size_t i = 0; i < n; i++) free(users[i].user);
  free(users);
  coll_push(s, c, coll);
  return rc;
}

static int mg_prefs_get(inbox_store *bs, const char *user, char **json, char *err,
                        size_t errlen) {
  mg_store *s = (mg_store *)bs;
  *json = NULL;
  bson_t *q = BCON_NEW("_id", BCON_UTF8(user));
  bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, s->prefs, &c);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, q, opts, NULL);
  const bson_t *doc;
  int rc = 0;
  if (mongoc_cursor_next(cur, &doc)) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "doc") && BSON_ITER_HOLDS_UTF8(&it)) {
      *json = dup_utf8(&it);
      rc = *json ? 1 : -1;
      if (!*json) snprintf(err, errlen, "out of memory");
    }
  }
  bson_error_t be;
  if (rc == 0 && mongoc_cursor_error(cur, &be)) {
    snprintf(err, errlen, "mongodb preferences read: %s", be.message);
    rc = -1;
  }
  mongoc_cursor_destroy(cur);
  coll_push(s, c, coll);
  bson_destroy(opts);
  bson_destroy(q);
  return rc;
}

static int mg_prefs_put(inbox_store *bs, const char *user, const char *json, char *err,
                        size_t errlen) {
  mg_store *s = (mg_store *)bs;
  bson_t *q = BCON_NEW("_id", BCON_UTF8(user));
  bson_t *doc = BCON_NEW("_id", BCON_UTF8(user), "doc", BCON_UTF8(json), "updated_at",
                         BCON_DATE_TIME((int64_t)time(NULL) * 1000));
  bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, s->prefs, &c);
  bson_error_t be;
  int rc = 0;
  if (!mongoc_collection_replace_one(coll, q, doc, opts, NULL, &be)) {
    snprintf(err, errlen, "mongodb preferences write: %s", be.message);
    rc = -1;
  }
  coll_push(s, c, coll);
  bson_destroy(opts);
  bson_destroy(doc);
  bson_destroy(q);
  return rc;
}

static int mg_setup(inbox_store *bs, char *err, size_t errlen) {
  mg_store *s = (mg_store *)bs;
  mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
  bson_error_t be;
  bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
  bool ok = mongoc_client_command_simple(c, "admin", ping, NULL, NULL, &be);
  bson_destroy(ping);
  if (!ok) {
    snprintf(err, errlen, "mongodb ping: %s", be.message);
    mongoc_client_pool_push(s->pool, c);
    return -1;
  }
  /* Indexes in place already (a restart): createIndexes is not sent again,
   * FerretDB v1 fails it on a collection that has them (a server panic,
   * "slice bounds out of range"), which kept the setup retrying forever. */
  static const char *const names[] = {"user_id_1_id_-1", "created_at_1", "user_id_1_read_1"};
  int have = 0;
  mongoc_collection_t *ic = mongoc_client_get_collection(c, s->db, s->coll);
  mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(ic, NULL);
  const bson_t *idx;
  while (mongoc_cursor_next(cur, &idx)) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, idx, "name") || !BSON_ITER_HOLDS_UTF8(&it)) continue;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
      if (strcmp(bson_iter_utf8(&it, NULL), names[i]) == 0) have++;
  }
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(ic);
  if (have == (int)(sizeof names / sizeof *names)) {
    mongoc_client_pool_push(s->pool, c);
    return 0;
  }
  bson_t *cmd = BCON_NEW(
      "createIndexes", BCON_UTF8(s->coll), "indexes", "[",
      "{", "key", "{", "user_id", BCON_INT32(1), "id", BCON_INT32(-1), "}", "name",
      BCON_UTF8("user_id_1_id_-1"), "unique", BCON_BOOL(true), "}",
      "{", "key", "{", "created_at", BCON_INT32(1), "}", "name", BCON_UTF8("created_at_1"), "}",
      "{", "key", "{", "user_id", BCON_INT32(1), "read", BCON_INT32(1), "}", "name",
      BCON_UTF8("user_id_1_read_1"), "}", "]");
  ok = mongoc_client_command_simple(c, s->db, cmd, NULL, NULL, &be);
  bson_destroy(cmd);
  mongoc_client_pool_push(s->pool, c);
  if (!ok) {
    snprintf(err, errlen, "mongodb createIndexes on %s.%s: %s", s->db, s->coll, be.message);
    return -1;
  }
  return 0;
}

static void mg_close(inbox_store *bs) {
  mg_store *s = (mg_store *)bs;
  if (!s) return;
  if (s->pool) mongoc_client_pool_destroy(s->pool);
  for (size_t i = 0; i < s->ntouched; i++) free(s->touched[i].user);
  free(s->touched);
  pthread_mutex_destroy(&s->mu);
  free(s->db);
  free(s->coll);
  free(s->counters);
  free(s->prefs);
  free(s);
}

static const inbox_store_ops mongo_ops = {
    .name = "mongodb",
    .insert_batch = mg_insert_batch,
    .unsent = mg_unsent,
    .list = mg_list,
    .after = mg_after,
    .unread = mg_unread,
    .mark_read = mg_mark_read,
    .purge = mg_purge,
    .prefs_get = mg_prefs_get,
    .prefs_put = mg_prefs_put,
    .setup = mg_setup,
    .close = mg_close,
};

static char *concat(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 1);
  if (s) {
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
  }
  return s;
}

int inbox_store_mongo_open(const char *uri_text, const char *database, const char *collection,
                           inbox_store **out, char *err, size_t errlen) {
  *out = NULL;
  mongoc_init(); /* once per process (pthread_once inside) */
  bson_error_t be;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_text, &be);
  if (!uri) {
    snprintf(err, errlen, "backends.mongodb.uri: %s", be.message);
    return -1;
  }
  if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
  mg_store *s = calloc(1, sizeof *s);
  if (!s) {
    mongoc_uri_destroy(uri);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_mutex_init(&s->mu, NULL);
  s->base.ops = &mongo_ops;
  s->pool = mongoc_client_pool_new(uri);
  mongoc_uri_destroy(uri);
  s->db = strdup(database);
  s->coll = strdup(collection);
  s->counters = concat(collection, "_counters");
  s->prefs = concat(collection, "_preferences");
  if (!s->pool || !s->db || !s->coll || !s->counters || !s->prefs) {
    mg_close(&s->base);
    snprintf(err, errlen, "cannot create the MongoDB client pool");
    return -1;
  }
  mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(s->pool, "notifd-notifications_ws");
  *out = &s->base;
  return 0;
}
