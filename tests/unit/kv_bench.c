/* Loop-thread cost of the embedded kv (not a test: no assertions on time).
 *
 *   build-x/tests/unit/kv_bench [records] [burst]
 *
 * Each record does what the dedupe users do: the chat change handler's
 * exists + mark and the email role's claim + mark (4 ops, distinct keys,
 * TTL 1h).  Ops are issued in bursts of `burst` records per loop turn, the
 * loop runs until every callback has come back, and so on (bounded: at most
 * `records` records, 60 s).  Prints the loop thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID) per op, which includes the callbacks, commits
 * and anything else the kv does on the loop; work on other threads is
 * printed separately (process CPU minus loop CPU).
 * KV_BENCH_NO_MEMSTATUS=1 turns SQLite's memory statistics off first (they
 * take a process-wide mutex on every SQLite allocation).
 * Then reopens kv.db (2 keys a record) and prints how long the writer's
 * scan that fills the negative-lookup filter took (open to filter ready). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "bus_kv_test_util.h"
#include "kv/kv.h"
#include "kv/kv_internal.h"
#include "nd_test.h"

static long done_ops;
static void on_result(int32_t r, void *ud) {
  (void)r;
  (void)ud;
  done_ops++;
}

static long want_ops;
static int all_back(void *a) {
  (void)a;
  return done_ops >= want_ops;
}

static int filter_ready(void *kv) {
  nd_kv_sqlite_stat st;
  nd_kv_sqlite_stats(kv, &st);
  return st.filter_ready;
}

static double cpu_s(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long records = argc > 1 ? atol(argv[1]) : 25000;
  long burst = argc > 2 ? atol(argv[2]) : 64;
  if (records < 1 || records > 10000000 || burst < 1) return 2;
  const char *nm = getenv("KV_BENCH_NO_MEMSTATUS");
  if (nm && *nm == '1') sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  char *dir = nd_test_tmpdir();
  struct event_base *base = event_base_new();
  notifd_host *h = thost_new(base, dir);
  nd_kv *kv;
  if (nd_kv_open(h, &kv, &h->errs) < 0) return 1;
  char key[64];
  double l0 = cpu_s(CLOCK_THREAD_CPUTIME_ID), p0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
  int64_t t0 = nd_now_ms(), end = t0 + 60000;
  long i = 0;
  while (i < records && nd_now_ms() < end) {
    for (long j = 0; j < burst && i < records; j++, i++) {
      snprintf(key, sizeof key, "chat-%ld", i);
      nd_kv_exists(kv, key, on_result, NULL);
      nd_kv_mark(kv, key, 3600000, on_result, NULL);
      snprintf(key, sizeof key, "email-%ld", i);
      nd_kv_claim(kv, key, 3600000, on_result, NULL);
      nd_kv_mark(kv, key, 3600000, on_result, NULL);
      want_ops += 4;
    }
    if (!run_until(base, all_back, NULL, 10000)) break;
  }
  double l1 = cpu_s(CLOCK_THREAD_CPUTIME_ID), p1 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
  int64_t t1 = nd_now_ms();
  printf("ops %ld burst %ld: loop thread %.0f ns/op, other threads %.0f ns/op, wall %.0f ns/op\n",
         done_ops, burst * 4, (l1 - l0) * 1e9 / (double)done_ops,
         ((p1 - p0) - (l1 - l0)) * 1e9 / (double)done_ops,
         (double)(t1 - t0) * 1e6 / (double)done_ops);
  char wal[600];
  snprintf(wal, sizeof wal, "%s/kv.db-wal", dir);
  struct stat st;
  printf("kv.db-wal at the end: %lld KiB\n", stat(wal, &st) == 0 ? (long long)st.st_size / 1024 : -1LL);
  nd_kv_free(kv);
  thost_free(h);
  h = thost_new(base, dir);
  double w0 = cpu_s(CLOCK_MONOTONIC);
  if (nd_kv_open(h, &kv, &h->errs) < 0) return 1;
  int ready = run_until(base, filter_ready, kv, 60000);
  double w1 = cpu_s(CLOCK_MONOTONIC);
  printf("reopen: filter %s after %.1f ms (%ld keys in kv.db: %.0f ns/key)\n",
         ready ? "ready" : "NOT ready", (w1 - w0) * 1e3, 2 * (done_ops / 4),
         (w1 - w0) * 1e9 / (double)(2 * (done_ops / 4) + 1));
  nd_kv_free(kv);
  thost_free(h);
  event_base_free(base);
  nd_test_rmrf(dir);
  free(dir);
  return done_ops == records * 4 ? 0 : 1;
}
