/* MongoDB directory through a libmongoc client pool (thread-safe; each call
 * pops a client).  Lookup is findOne({user_id}), as the Go service did. */
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email_store.h"

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
  mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
  bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(s->coll), "indexes", "[", "{", "key", "{",
                         "user_id", BCON_INT32(1), "}", "name", BCON_UTF8("user_id_1"), "}", "]");
  bson_t reply;
  bson_error_t be;
  int rc = 0;
  if (!mongoc_client_command_simple(c, s->db, cmd, NULL, &reply, &be)) {
    snprintf(err, errlen, "createIndexes on %s.%s: %s", s->db, s->coll, be.message);
    rc = -1;
  }
  bson_destroy(&reply);
  bson_destroy(cmd);
  mongoc_client_pool_push(s->pool, c);
  return rc;
}

static const email_store_ops mongo_ops = {"mongodb", mg_lookup, mg_upsert, mg_prepare, mg_close};

int email_store_open_mongo(const char *uri, const char *database, const char *collection,
                           email_store **out, char *err, size_t errlen) {
  *out = NULL;
  mongoc_init(); /* once per process (pthread_once inside); never cleaned up here */
  bson_error_t be;
  mongoc_uri_t *u = mongoc_uri_new_with_error(uri, &be);
  if (!u) {
    snprintf(err, errlen, "backends.mongodb.uri: %s", be.message);
    return -1;
  }
  mongo_store *s = calloc(1, sizeof *s);
  if (!s) {
    mongoc_uri_destroy(u);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->base.ops = &mongo_ops;
  s->pool = mongoc_client_pool_new(u);
  mongoc_uri_destroy(u);
  s->db = strdup(database);
  s->coll = strdup(collection);
  if (!s->pool || !s->db || !s->coll) {
    snprintf(err, errlen, "cannot create the MongoDB client pool");
    mg_close(&s->base);
    return -1;
  }
  mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(s->pool, "notifd-email");
  *out = &s->base;
  return 0;
}
