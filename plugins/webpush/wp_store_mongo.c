/* MongoDB subscription store through a libmongoc client pool (worker
 * threads only; each call pops a client).
 *
 *   <collection> (default "push_subscriptions"):
 *     {user_id, endpoint, p256dh, auth, expires_ms: int64, updated_at: Date,
 *      seq: int64}
 *     indexes {user_id: 1, endpoint: 1} unique, {user_id: 1, seq: -1}
 *
 * `seq` orders a user's subscriptions by their last registration: the
 * registration time in microseconds, made strictly increasing within a
 * process.  A put is an upsert then a trim of the user's oldest beyond the
 * limit (two calls; MongoDB has no multi-document transaction here, so two
 * processes registering for one user at once may both keep one more until
 * the next registration trims it). */
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pc_mongo.h"
#include "wp_store.h"

typedef struct mongo_store {
  wp_store base;
  mongoc_client_pool_t *pool;
  char *db, *coll;
  pthread_mutex_t mu;
  int64_t last_seq;
} mongo_store;

static mongoc_collection_t *coll_pop(mongo_store *s, mongoc_client_t **c) {
  *c = mongoc_client_pool_pop(s->pool);
  return mongoc_client_get_collection(*c, s->db, s->coll);
}

static void coll_push(mongo_store *s, mongoc_client_t *c, mongoc_collection_t *coll) {
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(s->pool, c);
}

static int64_t next_seq(mongo_store *s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
  pthread_mutex_lock(&s->mu);
  if (us <= s->last_seq) us = s->last_seq + 1;
  s->last_seq = us;
  pthread_mutex_unlock(&s->mu);
  return us;
}

/* The count field of a write's reply (deletedCount, ...). */
static int64_t reply_count(const bson_t *reply, const char *field) {
  bson_iter_t it;
  return bson_iter_init_find(&it, reply, field) && BSON_ITER_HOLDS_NUMBER(&it)
             ? bson_iter_as_int64(&it)
             : 0;
}

/* Removes the user's subscriptions older than the `keep` newest; how many
 * went, or -1 (err). */
static int trim(mongoc_collection_t *coll, const char *user_id, int64_t keep, char *err,
                size_t errlen) {
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user_id));
  bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "skip", BCON_INT64(keep),
                          "limit", BCON_INT64(1), "projection", "{", "seq", BCON_INT32(1), "}");
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
  const bson_t *doc;
  int64_t cut = -1;
  bson_iter_t it;
  if (mongoc_cursor_next(cur, &doc) && bson_iter_init_find(&it, doc, "seq") &&
      BSON_ITER_HOLDS_NUMBER(&it))
    cut = bson_iter_as_int64(&it);
  int rc = pc_mongo_cursor_check(cur, "find (trim)", err, errlen);
  mongoc_cursor_destroy(cur);
  bson_destroy(opts);
  bson_destroy(filter);
  if (rc < 0 || cut < 0) return rc;
  bson_t *del = BCON_NEW("user_id", BCON_UTF8(user_id), "seq", "{", "$lte", BCON_INT64(cut), "}");
  bson_t reply;
  bson_error_t be;
  if (mongoc_collection_delete_many(coll, del, NULL, &reply, &be)) {
    rc = (int)reply_count(&reply, "deletedCount");
  } else {
    snprintf(err, errlen, "mongodb delete (trim): %s", be.message);
    rc = -1;
  }
  bson_destroy(&reply);
  bson_destroy(del);
  return rc;
}

static int mg_put(wp_store *bs, const char *user_id, const wp_sub *sub, int64_t now_ms,
                  int64_t keep, char *err, size_t errlen) {
  mongo_store *s = (mongo_store *)bs;
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, &c);
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user_id), "endpoint", BCON_UTF8(sub->endpoint));
  bson_t *update = BCON_NEW("$set", "{", "user_id", BCON_UTF8(user_id), "endpoint",
                            BCON_UTF8(sub->endpoint), "p256dh", BCON_UTF8(sub->p256dh), "auth",
                            BCON_UTF8(sub->auth), "expires_ms", BCON_INT64(sub->expires_ms),
                            "updated_at", BCON_DATE_TIME(now_ms), "seq",
                            BCON_INT64(next_seq(s)), "}");
  bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
  bson_error_t be;
  int rc = 0;
  if (!mongoc_collection_update_one(coll, filter, update, opts, NULL, &be)) {
    snprintf(err, errlen, "mongodb upsert: %s", be.message);
    rc = -1;
  }
  if (rc == 0) rc = trim(coll, user_id, keep, err, errlen);
  bson_destroy(opts);
  bson_destroy(update);
  bson_destroy(filter);
  coll_push(s, c, coll);
  return rc;
}

static char *field_dup(const bson_t *doc, const char *key) {
  bson_iter_t it;
  uint32_t len = 0;
  const char *v = "";
  if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)) v = bson_iter_utf8(&it, &len);
  char *out = malloc(len + 1);
  if (out) {
    memcpy(out, v, len);
    out[len] = '\0';
  }
  return out;
}

static int mg_list(wp_store *bs, const char *user_id, wp_sub **out, size_t *n, char *err,
                   size_t errlen) {
  mongo_store *s = (mongo_store *)bs;
  *out = NULL;
  *n = 0;
  size_t cap = 0;
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, &c);
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user_id));
  bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}");
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
  const bson_t *doc;
  int rc = 0;
  while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
    wp_sub *w = wp_subs_grow(out, n, &cap);
    if (w) {
      bson_iter_t it;
      w->endpoint = field_dup(doc, "endpoint");
      w->p256dh = field_dup(doc, "p256dh");
      w->auth = field_dup(doc, "auth");
      if (bson_iter_init_find(&it, doc, "expires_ms") && BSON_ITER_HOLDS_NUMBER(&it))
        w->expires_ms = bson_iter_as_int64(&it);
    }
    if (!w || !w->endpoint || !w->p256dh || !w->auth) {
      snprintf(err, errlen, "out of memory");
      rc = -1;
    }
  }
  if (rc == 0) rc = pc_mongo_cursor_check(cur, "find", err, errlen);
  mongoc_cursor_destroy(cur);
  bson_destroy(opts);
  bson_destroy(filter);
  coll_push(s, c, coll);
  if (rc < 0) wp_subs_clear(out, n);
  return rc;
}

static int mg_del(wp_store *bs, const char *user_id, const char *endpoint, char *err,
                  size_t errlen) {
  mongo_store *s = (mongo_store *)bs;
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, &c);
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user_id), "endpoint", BCON_UTF8(endpoint));
  bson_t reply;
  bson_error_t be;
  int rc;
  if (mongoc_collection_delete_one(coll, filter, NULL, &reply, &be)) {
    rc = reply_count(&reply, "deletedCount") > 0;
  } else {
    snprintf(err, errlen, "mongodb delete: %s", be.message);
    rc = -1;
  }
  bson_destroy(&reply);
  bson_destroy(filter);
  coll_push(s, c, coll);
  return rc;
}

static int mg_prepare(wp_store *bs, char *err, size_t errlen) {
  mongo_store *s = (mongo_store *)bs;
  bson_t *indexes = BCON_NEW("0", "{", "key", "{", "user_id", BCON_INT32(1), "endpoint",
                             BCON_INT32(1), "}", "name", BCON_UTF8("user_id_1_endpoint_1"),
                             "unique", BCON_BOOL(true), "}",
                             "1", "{", "key", "{", "user_id", BCON_INT32(1), "seq",
                             BCON_INT32(-1), "}", "name", BCON_UTF8("user_id_1_seq_-1"), "}");
  int rc = pc_mongo_create_indexes(s->pool, s->db, s->coll, indexes, err, errlen);
  bson_destroy(indexes);
  return rc;
}

static void mg_close(wp_store *bs) {
  mongo_store *s = (mongo_store *)bs;
  if (!s) return;
  if (s->pool) mongoc_client_pool_destroy(s->pool);
  pthread_mutex_destroy(&s->mu);
  free(s->db);
  free(s->coll);
  free(s);
}

static const wp_store_ops mongo_ops = {"mongodb", mg_put, mg_list, mg_del, mg_prepare, mg_close};

int wp_store_open_mongo(const char *uri, const char *database, const char *collection,
                        wp_store **out, char *err, size_t errlen) {
  *out = NULL;
  mongo_store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->base.ops = &mongo_ops;
  pthread_mutex_init(&s->mu, NULL);
  s->db = strdup(database);
  s->coll = strdup(collection);
  if (!s->db || !s->coll) {
    snprintf(err, errlen, "out of memory");
    mg_close(&s->base);
    return -1;
  }
  if (pc_mongo_pool_new(uri, "notifd-webpush", &s->pool, err, errlen) < 0) {
    mg_close(&s->base);
    return -1;
  }
  *out = &s->base;
  return 0;
}
