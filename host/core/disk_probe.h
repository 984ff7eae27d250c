/* Is the data directory writable?  A small thread writes, syncs and
 * removes a 4 KiB file in it every few seconds (a full disk, a read-only
 * remount, a file-size limit or lost permissions all fail it) and /readyz
 * reports the last result.  Its other job: flushing the rate-limited log
 * lines' counts (log/log.h) on the same beat. */
#ifndef ND_DISK_PROBE_H
#define ND_DISK_PROBE_H

#include <stdint.h>

typedef struct nd_disk_probe nd_disk_probe;

#define ND_DISK_PROBE_INTERVAL_MS 2000

/* Starts probing `dir` (copied) now and every interval_ms; NULL if the
 * thread cannot start (the data dir then counts as writable). */
nd_disk_probe *nd_disk_probe_start(const char *dir, int64_t interval_ms);
/* 1 = the last probe succeeded (or none finished yet); 0 = it failed, with
 * its errno in *err. Any thread. */
int nd_disk_probe_ok(nd_disk_probe *p, int *err);
/* Stops and joins the thread, frees. NULL is fine. */
void nd_disk_probe_stop(nd_disk_probe *p);

#endif
