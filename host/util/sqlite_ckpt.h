/* A background WAL checkpointer for an SQLite file written from the loop.
 *
 * A checkpoint fsyncs the WAL and the database file, which would stall the
 * loop thread for milliseconds if SQLite ran it inside a COMMIT (automatic
 * checkpoints).  The writer turns those off (PRAGMA wal_autocheckpoint=0)
 * and this thread, on a connection of its own, runs a PASSIVE checkpoint
 * (it never blocks the writer) every `interval_ms`. */
#ifndef ND_SQLITE_CKPT_H
#define ND_SQLITE_CKPT_H

#include <stdint.h>

typedef struct nd_sqlite_ckpt nd_sqlite_ckpt;

/* NULL if the thread cannot start (the caller keeps automatic checkpoints). */
nd_sqlite_ckpt *nd_sqlite_ckpt_start(const char *path, int64_t interval_ms);
/* Stops and joins the thread; NULL is a no-op. */
void nd_sqlite_ckpt_stop(nd_sqlite_ckpt *c);

#endif
