/* libmongoc plumbing shared by the plugins that keep state in MongoDB
 * (backends.mongodb): a client pool for the configured URI, and one-time
 * index creation.  Blocking: call from host worker threads (the pool is
 * thread-safe; each call pops a client). */
#ifndef PC_MONGO_H
#define PC_MONGO_H

#include <mongoc/mongoc.h>
#include <stddef.h>

/* A client pool for `uri` (no I/O: it connects on first use), with error
 * API v2 and `appname`.  0, or -1 (err). */
int pc_mongo_pool_new(const char *uri, const char *appname, mongoc_client_pool_t **out,
                      char *err, size_t errlen);

/* After iterating `cur`: 0, or -1 with "mongodb <what>: <error>" in err. */
int pc_mongo_cursor_check(mongoc_cursor_t *cur, const char *what, char *err, size_t errlen);

/* createIndexes on db.coll for each index spec of the BSON array
 * `indexes` ([{key: {...}, name: "...", unique: true?}, ...]), one command
 * each (FerretDB v1 fails on several existing ones at once).  0, or -1
 * (err). */
int pc_mongo_create_indexes(mongoc_client_pool_t *pool, const char *db, const char *coll,
                            const bson_t *indexes, char *err, size_t errlen);

#endif
