/* The built-in accounts' user table: one SQLite file (default
 * <data_dir>/users.db) shared by the daemon and `notifd user`.  Every
 * function is thread-safe (one serialized connection) and may block:
 * call from worker threads or command-line tools, not from the loop. */
#ifndef ND_USER_STORE_H
#define ND_USER_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct nd_user_store nd_user_store;

#define ND_USER_ID_MAX 64   /* bytes */

/* 1 when `id` is a valid user id: 1 to ND_USER_ID_MAX bytes of
 * [A-Za-z0-9._@+-]. */
int nd_user_id_valid(const char *id);

/* Opens (creating if needed) the store at `path`.  0, or -1 with a
 * message in err. */
int nd_user_store_open(const char *path, nd_user_store **out, char *err, size_t errlen);
void nd_user_store_close(nd_user_store *s);

/* 0 added; NOTIFD_EEXIST when taken; NOTIFD_EBACKEND. */
int nd_user_store_add(nd_user_store *s, const char *user, const char *hash);
/* The user's hash (copied into hash, hashlen bytes) and the time the
 * password was last set (Unix seconds).  0, NOTIFD_ENOENT, NOTIFD_EBACKEND
 * (also when the stored hash does not fit). */
int nd_user_store_get(nd_user_store *s, const char *user, char *hash, size_t hashlen,
                      int64_t *password_set_at);
/* Replaces the hash (and stamps password_set_at now).  0, NOTIFD_ENOENT,
 * NOTIFD_EBACKEND. */
int nd_user_store_set_hash(nd_user_store *s, const char *user, const char *hash);
/* 0, NOTIFD_ENOENT, NOTIFD_EBACKEND. */
int nd_user_store_delete(nd_user_store *s, const char *user);
/* Calls cb for each user in id order; 0 or NOTIFD_EBACKEND. */
int nd_user_store_list(nd_user_store *s, void (*cb)(const char *user, int64_t created_at,
                                                    void *ud),
                       void *ud);

#endif
