/* Recipient directory: the `user_email` table / collection
 * {user_id, email, name}.  Embedded SQLite file by default, MongoDB when the
 * host has backends.mongodb.  Every call blocks and is thread-safe: they run
 * on host worker threads. */
#ifndef EMAIL_STORE_H
#define EMAIL_STORE_H

#include <stddef.h>

typedef struct email_user {
  char *email;
  char *name;
} email_user;

typedef struct email_store email_store;

typedef struct email_store_ops {
  const char *name;
  /* 1 found (*out filled, caller frees), 0 not found, -1 error (err). */
  int (*lookup)(email_store *s, const char *user_id, email_user *out, char *err, size_t errlen);
  /* 0 or -1 (err). */
  int (*upsert)(email_store *s, const char *user_id, const char *email, const char *name,
                char *err, size_t errlen);
  /* One-time blocking setup (indexes); may be NULL.  0 or -1 (err). */
  int (*prepare)(email_store *s, char *err, size_t errlen);
  void (*close)(email_store *s);
} email_store_ops;

struct email_store {
  const email_store_ops *ops;
};

/* SQLite opening touches the file (quick); MongoDB opening does no I/O
 * (the pool connects on first use). */
int email_store_open_sqlite(const char *path, email_store **out, char *err, size_t errlen);
int email_store_open_mongo(const char *uri, const char *database, const char *collection,
                           email_store **out, char *err, size_t errlen);

void email_user_free(email_user *u);

#endif
