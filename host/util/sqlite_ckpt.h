/* A background WAL checkpointer for an SQLite file written from the loop.
 *
 * A checkpoint copies WAL frames into the database file and fsyncs both,
 * which stalls the loop thread for milliseconds when SQLite runs it inside a
 * COMMIT (automatic checkpoints).  This thread, on a connection of its own,
 * runs a PASSIVE checkpoint (it never blocks the writer) every
 * `interval_ms`, so that work happens off the loop.
 *
 * A passive checkpoint alone cannot keep the WAL file small under a steady
 * write load: the log restarts from its beginning only when a write
 * transaction starts with every frame copied back, and new commits keep
 * arriving while the background copy runs.  So the writer keeps a (large)
 * automatic checkpoint, ND_SQLITE_CKPT_AUTO_FRAMES: when it fires, the
 * background thread has already copied almost everything, the writer's
 * checkpoint only syncs, and the next transaction restarts the log. */
#ifndef ND_SQLITE_CKPT_H
#define ND_SQLITE_CKPT_H

#include <stdint.h>

/* PRAGMA wal_autocheckpoint for writers that use this thread (64 MiB of
 * 4 KiB pages).  Each time it fires the writer stalls on an fsync of the
 * unsynced WAL tail; at 16 MiB that happened several times a second at
 * 20 000 msg/s and showed as POST p99 30 ms instead of 20. */
#define ND_SQLITE_CKPT_AUTO_FRAMES 16384

typedef struct nd_sqlite_ckpt nd_sqlite_ckpt;

/* NULL if the thread cannot start (the caller keeps automatic checkpoints). */
nd_sqlite_ckpt *nd_sqlite_ckpt_start(const char *path, int64_t interval_ms);
/* Stops and joins the thread; NULL is a no-op. */
void nd_sqlite_ckpt_stop(nd_sqlite_ckpt *c);

#endif
