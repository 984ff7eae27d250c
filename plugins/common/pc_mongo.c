/* libmongoc plumbing shared by the MongoDB stores (see pc_mongo.h). */
#include "pc_mongo.h"

#include <stdio.h>

int pc_mongo_pool_new(const char *uri, const char *appname, mongoc_client_pool_t **out,
                      char *err, size_t errlen) {
  *out = NULL;
  mongoc_init(); /* once per process (pthread_once inside); never cleaned up here */
  bson_error_t be;
  mongoc_uri_t *u = mongoc_uri_new_with_error(uri, &be);
  if (!u) {
    snprintf(err, errlen, "backends.mongodb.uri: %s", be.message);
    return -1;
  }
  mongoc_client_pool_t *pool = mongoc_client_pool_new(u);
  mongoc_uri_destroy(u);
  if (!pool) {
    snprintf(err, errlen, "cannot create the MongoDB client pool");
    return -1;
  }
  mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(pool, appname);
  *out = pool;
  return 0;
}

int pc_mongo_cursor_check(mongoc_cursor_t *cur, const char *what, char *err, size_t errlen) {
  bson_error_t be;
  if (!mongoc_cursor_error(cur, &be)) return 0;
  snprintf(err, errlen, "mongodb %s: %s", what, be.message);
  return -1;
}

/* One createIndexes per index: FerretDB v1 (1.24) panics and drops the
 * connection on a createIndexes listing two or more indexes that all exist
 * already (a second process starting, a restart). */
int pc_mongo_create_indexes(mongoc_client_pool_t *pool, const char *db, const char *coll,
                            const bson_t *indexes, char *err, size_t errlen) {
  mongoc_client_t *c = mongoc_client_pool_pop(pool);
  bson_iter_t it;
  int rc = 0;
  if (!bson_iter_init(&it, indexes)) {
    snprintf(err, errlen, "createIndexes on %s.%s: bad index list", db, coll);
    rc = -1;
  }
  while (rc == 0 && bson_iter_next(&it)) {
    const uint8_t *data = NULL;
    uint32_t len = 0;
    bson_t spec, one = BSON_INITIALIZER, cmd = BSON_INITIALIZER, reply;
    if (!BSON_ITER_HOLDS_DOCUMENT(&it)) continue;
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&spec, data, len)) continue;
    BSON_APPEND_DOCUMENT(&one, "0", &spec);
    BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
    BSON_APPEND_ARRAY(&cmd, "indexes", &one);
    bson_error_t be;
    if (!mongoc_client_command_simple(c, db, &cmd, NULL, &reply, &be)) {
      snprintf(err, errlen, "createIndexes on %s.%s: %s", db, coll, be.message);
      rc = -1;
    }
    bson_destroy(&reply);
    bson_destroy(&cmd);
    bson_destroy(&one);
  }
  mongoc_client_pool_push(pool, c);
  return rc;
}
