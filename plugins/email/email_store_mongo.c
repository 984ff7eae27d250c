/* MongoDB directory through a libmongoc client pool (thread-safe; each call
 * pops a client).  Lookup is findOne({user_id}), as the Go service did. */
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email_store.h"
#include "pc_mongo.h"

typedef struct mongo_store {
  email_store base;
  mongoc_client_pool_t *pool;
  char *db, *coll;
} mongo_store;

static int mg_lookup(email_store *bs, const char *user_id, email_user *out, char *err,
                     size_t errlen) {
  mongo_store *s = (mongo_store *)bs;
  out->email = out->name = NULL;
  mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
  mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, s->coll);
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user_id));
  bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
  const bson_t *doc;
  int rc = 0;
  if (mongoc_cursor_next(cur, &doc)) {
    bson_iter_t it;
    const char *e = NULL, *n = NULL;
    if (bson_iter_init_find(&it, doc, "email") && BSON_ITER_HOLDS_UTF8(&it))
      e = bson_iter_utf8(&it, NULL);
    if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it))
      n = bson_iter_utf8(&it, NULL);
    out->email = strdup(e ? e : "");
    out->name = strdup(n ? n : "");
    if (out->email && out->name) {
      rc = 1;
    } else {
      email_user_free(out);
      snprintf(err, errlen, "out of memory");
      rc = -1;
    }
  }
  bson_error_t be;
  if (rc == 0 && mongoc_cursor_error(cur, &be)) {
    snprintf(err, errlen, "mongodb findOne: %s", be.message);
    rc = -1;
  }
  mongoc_cursor_destroy(cur);
  bson_destroy(opts);
  bson_destroy(filter);
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(s->pool, c);
  return rc;
}

static int mg_upsert(email_store *bs, const char *user_id, const char *email, const char *name,
                     char *err, size_t errlen) {
  mongo_store *s = (mongo_store *)bs;
  mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
  mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, s->coll);
  bson_t *filter = BCON_NEW("user_id", BCON_UTF8(user_id));
  bson_t *update = BCON_NEW("$set", "{", "user_id", BCON_UTF8(user_id), "email", BCON_UTF8(email),
                            "name", BCON_UTF8(name ? name : ""), "}");
  bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
  bson_error_t be;
  int rc = mongoc_collection_update_one(coll, filter, update, opts, NULL, &be) ? 0 : -1;
  if (rc < 0) snprintf(err, errlen, "mongodb upsert: %s", be.message);
  bson_destroy(opts);
  bson_destroy(update);
  bson_destroy(filter);
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(s->pool, c);
  return rc;
}

static void mg_close(email_store *bs) {
  mongo_store *s = (mongo_store *)bs;
  if (!s) return;
  if (s->pool) mongoc_client_pool_destroy(s->pool);
  free(s->db);
  free(s->coll);
  free(s);
}

/* An index makes the per-mail lookup cheap. */
static int mg_prepare(email_store *bs, char *err, size_t errlen) {
  mongo_store *s = (mongo_store *)bs;
  bson_t *indexes = BCON_NEW("0", "{", "key", "{", "user_id", BCON_INT32(1), "}", "name",
                             BCON_UTF8("user_id_1"), "}");
  int rc = pc_mongo_create_indexes(s->pool, s->db, s->coll, indexes, err, errlen);
  bson_destroy(indexes);
  return rc;
}

static const email_store_ops mongo_ops = {"mongodb", mg_lookup, mg_upsert, mg_prepare, mg_close};

int email_store_open_mongo(const char *uri, const char *database, const char *collection,
                           email_store **out, char *err, size_t errlen) {
  *out = NULL;
  mongo_store *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->base.ops = &mongo_ops;
  if (pc_mongo_pool_new(uri, "notifd-email", &s->pool, err, errlen) < 0) {
    mg_close(&s->base);
    return -1;
  }
  s->db = strdup(database);
  s->coll = strdup(collection);
  if (!s->db || !s->coll) {
    snprintf(err, errlen, "out of memory");
    mg_close(&s->base);
    return -1;
  }
  *out = &s->base;
  return 0;
}
