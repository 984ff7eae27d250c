/* Private to the embedded kv backend (kv_sqlite.c: the loop side;
 * kv_sqlite_writer.c: the writer thread).  The design and the guarantees
 * are described at the top of kv_sqlite.c. */
#ifndef ND_KV_SQLITE_INTERNAL_H
#define ND_KV_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "kv/kv_internal.h"
#include "util/bloom.h"
#include "util/sqlite_ckpt.h"

/* An answered op waiting for its callback. */
typedef struct kres {
  int op;
  int32_t result; /* < 0: the backend failed */
  notifd_kv_cb cb;
  void *ud;
} kres;

/* A key written by this process, maybe not committed yet (loop only). */
typedef struct rkey {
  struct rkey *hnext;       /* hash chain */
  struct rkey *prev, *next; /* by seq, oldest first */
  uint64_t seq, hash;
  int64_t expires;
  size_t len;
  char key[];
} rkey;

/* A write for the writer thread (owned by whoever holds the list). */
typedef struct kwrite {
  struct kwrite *next;
  int op; /* ND_KV_CLAIM or ND_KV_MARK, for the error count */
  int64_t expires;
  size_t len;
  char key[];
} kwrite;

typedef struct kdb {
  nd_kv *kv;
  char *path;
  int64_t purge_ms;
  uint64_t filter_bits; /* 0: no filter */
  nd_sqlite_ckpt *ckpt;

  /* loop thread */
  sqlite3 *db; /* reads only */
  sqlite3_stmt *live, *rbegin, *rend;
  int in_read; /* a read transaction is open (for the rest of the turn) */
  nd_bloom *filter;   /* NULL: not built yet (every miss reads kv.db) */
  uint64_t load;      /* keys in it (about: a key it already "had" is not counted) */
  uint64_t pruned_to; /* the map was pruned up to this seq: the writer's
                         committed_seq as last seen */
  uint64_t reads, skips, empty_reads; /* db_live calls; misses the filter
                                          answered; reads that found nothing */
  rkey **buckets;
  size_t nbuckets, nrecent;
  rkey *oldest, *newest;
  uint64_t seq;               /* last seq given */
  int64_t max_pending;        /* writes not yet committed before new ones fail */
  kwrite *pend_head, *pend_tail; /* writes not yet handed over */
  size_t npend;
  int handoff_due;         /* the handoff timer fired */
  struct event *handoff_ev;
  kres *res, *spare;          /* callbacks to run; spare array for swapping */
  size_t nres, cap_res, cap_spare;
  int in_flush;
  struct event *flush_ev, *done_ev;
  int efd; /* eventfd: the writer finished a batch */

  /* writer thread */
  sqlite3 *wdb;
  sqlite3_stmt *put, *purge, *begin, *commit, *rollback, *scan;
  pthread_t thread;
  int started;
  int64_t last_log_ms;
  int built;             /* a scan succeeded */
  uint64_t built_cap;    /* its filter's capacity */
  uint64_t built_keys;   /* the keys it found */
  uint64_t purged_since; /* rows purged since that scan */

  /* shared, under mu */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  kwrite *q_head, *q_tail;
  uint64_t queued_seq;    /* seq of the newest write handed over */
  uint64_t committed_seq; /* every write up to this seq has been tried */
  int64_t lost[2];        /* failed writes by op, not yet counted */
  int stop, notified;
  nd_bloom *new_filter;   /* built by the writer, not yet taken by the loop */
  uint64_t new_filter_seq, new_filter_keys; /* it holds kv.db as of this seq */
  uint64_t shared_load;   /* the loop's `load`, as of its last exchange */
  int want_scan, scan_every_batch;
  uint64_t scans;
} kdb;

/* sqlite3_step + reset of a statement that returns no row: 0, or -1
 * (logged with the file's path). */
int nd_kvs_run_stmt(sqlite3 *db, const char *path, sqlite3_stmt *st);
/* The hash of a key, for the recent map and the filter. */
uint64_t nd_kvs_hash_key(const char *k, size_t n);
void nd_kvs_free_writes(kwrite *w);
/* The writer thread's body (arg: the kdb). */
void *nd_kvs_writer_main(void *arg);

#endif
