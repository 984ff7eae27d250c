#include "util/sqlite_ckpt.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "util/mono_wait.h"

struct nd_sqlite_ckpt {
  char *path;
  int64_t interval_ms;
  int stop;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static void *ckpt_main(void *arg) {
  nd_sqlite_ckpt *c = arg;
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
      SQLITE_OK) {
    sqlite3_close(db);
    db = NULL; /* keep waiting for stop; the WAL grows until restart */
  } else {
    sqlite3_busy_timeout(db, 1000);
    /* A connection opens the WAL only when it first reads the database;
     * until then sqlite3_wal_checkpoint_v2() silently does nothing. */
    sqlite3_exec(db, "SELECT 1 FROM sqlite_master LIMIT 1", NULL, NULL, NULL);
  }
  int64_t wait_ms = c->interval_ms;
  int last_log = 0;
  pthread_mutex_lock(&c->mu);
  while (!c->stop) {
    struct timespec ts;
    nd_mono_deadline(&ts, wait_ms);
    while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &ts) != ETIMEDOUT) {
    }
    if (c->stop) break;
    pthread_mutex_unlock(&c->mu);
    int log = 0, done = 0;
    if (db) sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    /* Close to the writer's automatic checkpoint and frames keep coming:
     * keep what it will have to copy itself (on the loop) small. */
    int hurry = log >= ND_SQLITE_CKPT_AUTO_FRAMES / 2 && log != last_log;
    last_log = log;
    wait_ms = hurry && c->interval_ms > 10 ? 10 : c->interval_ms;
    pthread_mutex_lock(&c->mu);
  }
  pthread_mutex_unlock(&c->mu);
  sqlite3_close(db);
  return NULL;
}

nd_sqlite_ckpt *nd_sqlite_ckpt_start(const char *path, int64_t interval_ms) {
  nd_sqlite_ckpt *c = calloc(1, sizeof *c);
  if (!c || !(c->path = strdup(path))) {
    free(c);
    return NULL;
  }
  c->interval_ms = interval_ms < 10 ? 10 : interval_ms;
  pthread_mutex_init(&c->mu, NULL);
  nd_mono_cond_init(&c->cv);
  if (pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->path);
    free(c);
    return NULL;
  }
  return c;
}

void nd_sqlite_ckpt_stop(nd_sqlite_ckpt *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->stop = 1;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->thread, NULL);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c->path);
  free(c);
}
