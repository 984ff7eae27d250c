/* Bus benchmark: end-to-end produce -> handler latency (p50/p99/max) at a
 * fixed rate, and maximum throughput, for the embedded or the Kafka
 * backend.  Producer and consumer share one loop (the single-node case).
 * Bounded: stops after --count records or --timeout seconds.
 *
 *   bus_bench [--backend embedded|kafka] [--brokers H:P] [--dir DIR]
 *             [--rate N (msg/s, 0 = as fast as possible)] [--count N]
 *             [--size BYTES] [--timeout S] [--sync full] [--kafka-defaults]
 *
 * Kafka runs set linger.ms=1 and fetch.wait.max.ms=5 unless
 * --kafka-defaults keeps librdkafka's defaults (what a config that sets no
 * properties gets).
 *
 * Method and recorded numbers: bench/README.md. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_bus.h"
#include "bus/bus.h"
#include "bus/bus_internal.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "util/buf.h"

typedef struct bench {
  struct event_base *base;
  nd_bus *bus;
  const char *topic;
  int64_t count, rate, size;
  int64_t produced, confirmed, failed, handled;
  double *lat;       /* seconds, per handled record */
  double t_first, t_last;
  struct event *tick;
  int64_t window;    /* max unconfirmed records in flight (rate 0) */
  char *payload;
  int stopped;
  int warm;          /* the warm-up record arrived */
} bench;

static void on_confirm(int32_t status, void *ud) {
  bench *b = ud;
  if (status == 0) b->confirmed++;
  else b->failed++;
}

static void produce_one(bench *b) {
  double t = bench_now_s();
  memcpy(b->payload, &t, sizeof t);
  char key[16];
  snprintf(key, sizeof key, "k%" PRId64, b->produced % 64);
  if (nd_bus_produce(b->bus, b->topic, key, strlen(key), b->payload, (size_t)b->size, NULL,
                     on_confirm, b) == 0) {
    if (!b->produced) b->t_first = t;
    b->produced++;
  } else {
    b->failed++;
  }
}

static void handler(notifd_bus_msg *m, void *ud) {
  bench *b = ud;
  size_t n;
  const void *v = nd_msg_value(m, &n);
  if (n == 1) b->warm = 1;
  double t0;
  if (v && n >= sizeof t0 && b->handled < b->count) {
    memcpy(&t0, v, sizeof t0);
    double now = bench_now_s();
    b->lat[b->handled++] = now - t0;
    b->t_last = now;
  }
  nd_bus_ack(m);
}

/* Every millisecond: produce what the rate allows (or fill the window). */
static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  bench *b = arg;
  if (b->rate > 0) {
    double elapsed = b->produced ? bench_now_s() - b->t_first : 0;
    int64_t due = (int64_t)(elapsed * (double)b->rate) + 1;
    while (b->produced < due && b->produced < b->count) produce_one(b);
  } else {
    while (b->produced < b->count && b->produced - b->confirmed < b->window) produce_one(b);
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void on_stopped(void *ud) { ((bench *)ud)->stopped = 1; }

int main(int argc, char **argv) {
  const char *backend = "embedded", *brokers = "127.0.0.1:9092", *dir = NULL, *sync = NULL;
  bench b;
  memset(&b, 0, sizeof b);
  b.count = 100000;
  b.rate = 10000;
  b.size = 64;
  b.window = 20000;
  int64_t timeout_s = 60;
  int kafka_defaults = 0;
  static const struct option opts[] = {
      {"backend", required_argument, NULL, 'B'}, {"brokers", required_argument, NULL, 'b'},
      {"dir", required_argument, NULL, 'd'},     {"rate", required_argument, NULL, 'r'},
      {"count", required_argument, NULL, 'n'},   {"size", required_argument, NULL, 's'},
      {"timeout", required_argument, NULL, 't'}, {"sync", required_argument, NULL, 'S'},
      {"kafka-defaults", no_argument, NULL, 'K'}, {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'B': backend = optarg; break;
    case 'b': brokers = optarg; break;
    case 'd': dir = optarg; break;
    case 'r': b.rate = atoll(optarg); break;
    case 'n': b.count = atoll(optarg); break;
    case 's': b.size = atoll(optarg); break;
    case 't': timeout_s = atoll(optarg); break;
    case 'S': sync = optarg; break;
    case 'K': kafka_defaults = 1; break;
    default:
      fprintf(stderr, "usage: see the comment at the top of bench/bus_bench.c\n");
      return 2;
    }
  }
  if (b.count < 1 || b.count > 10000000 || b.size < 8 || b.size > 1000000 || timeout_s < 1) {
    fprintf(stderr, "bus_bench: --count 1..1e7, --size 8..1e6, --timeout >= 1\n");
    return 2;
  }
  char tmpl[] = "/tmp/bus-bench-XXXXXX";
  int own_dir = !dir;
  if (own_dir && !(dir = mkdtemp(tmpl))) return 1;
  b.lat = calloc((size_t)b.count, sizeof *b.lat);
  b.payload = calloc(1, (size_t)b.size);
  b.base = event_base_new();
  notifd_host *h = calloc(1, sizeof *h);
  if (!b.lat || !b.payload || !b.base || !h) return 1;
  nd_log_configure(NOTIFD_LOG_WARN, 0);
  h->base = b.base;
  h->cfg.data_dir = strdup(dir);
  nd_errors_init(&h->errs);
  h->phase = ND_PHASE_INIT;
  if (strcmp(backend, "kafka") == 0) {
    nd_cfg_node *k = bench_cfg_node(ND_CFG_MAP, NULL, NULL);
    bench_cfg_add(k, bench_cfg_node(ND_CFG_SCALAR, "brokers", brokers));
    if (!kafka_defaults) {
      nd_cfg_node *cp = bench_cfg_add(k, bench_cfg_node(ND_CFG_MAP, "consumer_properties", NULL));
      bench_cfg_add(cp, bench_cfg_node(ND_CFG_SCALAR, "fetch.wait.max.ms", "5"));
      nd_cfg_node *pp = bench_cfg_add(k, bench_cfg_node(ND_CFG_MAP, "producer_properties", NULL));
      bench_cfg_add(pp, bench_cfg_node(ND_CFG_SCALAR, "linger.ms", "1"));
    }
    h->cfg.kafka = k;
  } else if (sync) {
    nd_cfg_node *bc = bench_cfg_node(ND_CFG_MAP, NULL, NULL);
    nd_cfg_node *em = bench_cfg_add(bc, bench_cfg_node(ND_CFG_MAP, "embedded", NULL));
    bench_cfg_add(em, bench_cfg_node(ND_CFG_SCALAR, "synchronous", sync));
    h->cfg.bus_cfg = bc;
  }
  if (nd_bus_open(h, &b.bus, &h->errs) < 0) {
    fprintf(stderr, "bus_bench: cannot open the %s bus\n", backend);
    return 1;
  }
  char topic[64];
  /* Warm-up: one record creates the topic (Kafka auto-create) and comes
   * back once the group has its partitions; timing starts after that. */
  if (bench_bus_fresh_topic(h, b.bus, "bench", handler, &b, topic, &b.warm) < 0) return 1;
  b.topic = topic;
  b.tick = event_new(b.base, -1, EV_PERSIST, on_tick, &b);
  struct timeval ms = {0, 1000};
  event_add(b.tick, &ms);
  double end = bench_now_s() + (double)timeout_s;
  while (b.handled < b.count && bench_now_s() < end) event_base_loop(b.base, EVLOOP_ONCE);
  event_del(b.tick);
  nd_bus_stop(b.bus, on_stopped, &b);
  double stop_end = bench_now_s() + 10;
  while (!b.stopped && bench_now_s() < stop_end) event_base_loop(b.base, EVLOOP_ONCE);

  int64_t n = b.handled;
  qsort(b.lat, (size_t)n, sizeof *b.lat, cmp_d);
  double span = b.t_last - b.t_first;
  printf("backend=%s rate=%" PRId64 "/s count=%" PRId64 " size=%" PRId64 " handled=%" PRId64
         " failed=%" PRId64 "\n",
         backend, b.rate, b.count, b.size, n, b.failed);
  if (n > 0)
    printf("latency_ms p50=%.3f p99=%.3f p999=%.3f max=%.3f throughput=%.0f msg/s\n",
           b.lat[n / 2] * 1e3, b.lat[(int64_t)((double)n * 0.99)] * 1e3,
           b.lat[(int64_t)((double)n * 0.999)] * 1e3, b.lat[n - 1] * 1e3,
           span > 0 ? (double)n / span : 0);
  event_free(b.tick);
  nd_bus_free(b.bus);
  free(h->cfg.data_dir);
  nd_errors_free(&h->errs);
  free(h);
  event_base_free(b.base);
  free(b.lat);
  free(b.payload);
  if (own_dir) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  }
  return n == b.count ? 0 : 1;
}
