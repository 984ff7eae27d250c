/* Kafka outage probe: one process produces numbered records at a fixed
 * rate to a fresh topic and consumes them back in a consumer group (auto
 * commit, the host's Kafka backend exactly as a plugin's consumer uses it),
 * while bench/kafka_outage.py kills and restarts the broker.  Prints a
 * timeline and, at the end, what was acknowledged, handled, lost and
 * handled twice.  Bounded: produces for --duration seconds, then waits up to
 * --drain seconds for every acknowledged record.
 *
 *   kafka_outage --brokers H:P [--rate N] [--duration S] [--drain S]
 *                [--prop K=V] [--consumer-prop K=V] [--producer-prop K=V]
 *                [--verbose]
 *
 * Output (stdout), wall-clock milliseconds:
 *   T <ms> <produced> <acknowledged> <failed> <handled_unique> <duplicates>
 *                                                   every 250 ms
 *   GAP <last_ms> <resumed_ms>                      a pause of >= 1 s between
 *                                                   two handled records
 *   RESULT produced=.. acknowledged=.. failed=.. handled=.. lost=.. duplicates=..
 * --verbose logs at debug level (with --prop debug=cgrp,broker,... this is
 * librdkafka's own account of the group and connections) on stderr. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench_bus.h"
#include "bus/bus.h"
#include "bus/bus_internal.h"
#include "log/log.h"

typedef struct probe {
  struct event_base *base;
  nd_bus *bus;
  const char *topic;
  int64_t rate, max;
  int64_t produced, acked, failed, handled, dups;
  uint8_t *ack;       /* per sequence number: acknowledged */
  uint16_t *seen;     /* per sequence number: times handled */
  double t0;
  int64_t last_handle_ms;
  int producing, warm, stopped;
} probe;

typedef struct pctx {
  probe *p;
  int64_t seq;
} pctx;

static int64_t wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void add_prop(nd_cfg_node *k, const char *section, char *kv) {
  char *eq = strchr(kv, '=');
  if (!eq) {
    fprintf(stderr, "kafka_outage: property %s: want K=V\n", kv);
    exit(2);
  }
  *eq = '\0';
  nd_cfg_node *m = NULL;
  for (size_t i = 0; i < k->n; i++)
    if (k->items[i]->key && strcmp(k->items[i]->key, section) == 0) m = k->items[i];
  if (!m) m = bench_cfg_add(k, bench_cfg_node(ND_CFG_MAP, section, NULL));
  bench_cfg_add(m, bench_cfg_node(ND_CFG_SCALAR, kv, eq + 1));
}

static void on_ack(int32_t status, void *ud) {
  pctx *c = ud;
  if (status == 0) {
    c->p->ack[c->seq] = 1;
    c->p->acked++;
  } else {
    c->p->failed++;
  }
  free(c);
}

static void produce_one(probe *p) {
  char v[64];
  int n = snprintf(v, sizeof v, "%" PRId64 " %" PRId64, p->produced, wall_ms());
  char key[16];
  snprintf(key, sizeof key, "k%" PRId64, p->produced % 64);
  pctx *c = malloc(sizeof *c);
  if (!c) abort();
  c->p = p;
  c->seq = p->produced;
  if (nd_bus_produce(p->bus, p->topic, key, strlen(key), v, (size_t)n, NULL, on_ack, c) == 0) {
    p->produced++;
  } else {
    free(c);
    p->failed++;
    p->produced++;
  }
}

static void handler(notifd_bus_msg *m, void *ud) {
  probe *p = ud;
  size_t n;
  const char *v = nd_msg_value(m, &n);
  if (v && n == 1) p->warm = 1;
  if (v && n > 1) {
    char buf[64];
    memcpy(buf, v, n < sizeof buf - 1 ? n : sizeof buf - 1);
    buf[n < sizeof buf - 1 ? n : sizeof buf - 1] = '\0';
    int64_t seq = strtoll(buf, NULL, 10);
    if (seq >= 0 && seq < p->max) {
      if (p->seen[seq]++) p->dups++;
      else p->handled++;
    }
    int64_t now = wall_ms();
    if (p->last_handle_ms && now - p->last_handle_ms >= 1000)
      printf("GAP %" PRId64 " %" PRId64 "\n", p->last_handle_ms, now);
    p->last_handle_ms = now;
  }
  nd_bus_ack(m);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  probe *p = arg;
  if (!p->producing) return;
  int64_t due = (int64_t)((bench_now_s() - p->t0) * (double)p->rate) + 1;
  while (p->produced < due && p->produced < p->max) produce_one(p);
}

static void on_report(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  probe *p = arg;
  printf("T %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n", wall_ms(),
         p->produced, p->acked, p->failed, p->handled, p->dups);
  fflush(stdout);
}

static void on_stopped(void *ud) { ((probe *)ud)->stopped = 1; }

int main(int argc, char **argv) {
  const char *brokers = NULL;
  int64_t duration = 60, drain = 60;
  int verbose = 0;
  probe p;
  memset(&p, 0, sizeof p);
  p.rate = 1000;
  nd_cfg_node *k = bench_cfg_node(ND_CFG_MAP, NULL, NULL);
  static const struct option opts[] = {
      {"brokers", required_argument, NULL, 'b'},      {"rate", required_argument, NULL, 'r'},
      {"duration", required_argument, NULL, 'd'},     {"drain", required_argument, NULL, 'D'},
      {"prop", required_argument, NULL, 'p'},         {"consumer-prop", required_argument, NULL, 'c'},
      {"producer-prop", required_argument, NULL, 'P'}, {"verbose", no_argument, NULL, 'v'},
      {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'b': brokers = optarg; break;
    case 'r': p.rate = atoll(optarg); break;
    case 'd': duration = atoll(optarg); break;
    case 'D': drain = atoll(optarg); break;
    case 'p': add_prop(k, "properties", optarg); break;
    case 'c': add_prop(k, "consumer_properties", optarg); break;
    case 'P': add_prop(k, "producer_properties", optarg); break;
    case 'v': verbose = 1; break;
    default: fprintf(stderr, "usage: see bench/kafka_outage.c\n"); return 2;
    }
  }
  if (!brokers || p.rate < 1 || p.rate > 100000 || duration < 1 || duration > 3600 || drain < 1) {
    fprintf(stderr, "kafka_outage: --brokers required; --rate 1..100000, --duration 1..3600\n");
    return 2;
  }
  bench_cfg_add(k, bench_cfg_node(ND_CFG_SCALAR, "brokers", brokers));
  p.max = p.rate * duration + 1;
  p.ack = calloc((size_t)p.max, 1);
  p.seen = calloc((size_t)p.max, sizeof *p.seen);
  p.base = event_base_new();
  notifd_host *h = calloc(1, sizeof *h);
  char tmpl[] = "/tmp/kafka-outage-XXXXXX";
  char *dir = mkdtemp(tmpl);
  if (!p.ack || !p.seen || !p.base || !h || !dir) return 1;
  nd_log_configure(verbose ? NOTIFD_LOG_DEBUG : NOTIFD_LOG_INFO, 0);
  h->base = p.base;
  h->cfg.data_dir = strdup(dir);
  h->cfg.kafka = k;
  nd_errors_init(&h->errs);
  h->phase = ND_PHASE_INIT;
  if (nd_bus_open(h, &p.bus, &h->errs) < 0) {
    for (size_t i = 0; i < h->errs.n; i++) fprintf(stderr, "%s\n", h->errs.msgs[i]);
    fprintf(stderr, "kafka_outage: cannot open the bus\n");
    return 1;
  }
  char topic[64];
  /* Warm-up: creates the topic and comes back once the group has its
   * partitions. */
  if (bench_bus_fresh_topic(h, p.bus, "outage", handler, &p, topic, &p.warm) < 0) return 1;
  p.topic = topic;
  printf("START %" PRId64 " topic=%s rate=%" PRId64 "\n", wall_ms(), topic, p.rate);
  fflush(stdout);
  struct event *tick = event_new(p.base, -1, EV_PERSIST, on_tick, &p);
  struct event *report = event_new(p.base, -1, EV_PERSIST, on_report, &p);
  struct timeval ms = {0, 1000}, q = {0, 250 * 1000};
  event_add(tick, &ms);
  event_add(report, &q);
  p.producing = 1;
  p.t0 = bench_now_s();
  double end = p.t0 + (double)duration;
  while (bench_now_s() < end) event_base_loop(p.base, EVLOOP_ONCE);
  p.producing = 0;
  printf("STOP %" PRId64 "\n", wall_ms());
  double drain_end = bench_now_s() + (double)drain;
  while (bench_now_s() < drain_end &&
         (p.acked + p.failed < p.produced || p.handled < p.acked))
    event_base_loop(p.base, EVLOOP_ONCE);
  on_report(-1, 0, &p);
  event_free(tick);
  event_free(report);
  nd_bus_stop(p.bus, on_stopped, &p);
  double stop_end = bench_now_s() + 15;
  while (!p.stopped && bench_now_s() < stop_end) event_base_loop(p.base, EVLOOP_ONCE);
  int64_t lost = 0, unacked_seen = 0;
  for (int64_t i = 0; i < p.produced; i++) {
    if (p.ack[i] && !p.seen[i]) lost++;
    if (!p.ack[i] && p.seen[i]) unacked_seen++;
  }
  printf("RESULT produced=%" PRId64 " acknowledged=%" PRId64 " failed=%" PRId64
         " handled=%" PRId64 " lost=%" PRId64 " duplicates=%" PRId64
         " handled_unacknowledged=%" PRId64 " clean_stop=%d\n",
         p.produced, p.acked, p.failed, p.handled, lost, p.dups, unacked_seen, p.stopped);
  fflush(stdout);
  nd_bus_free(p.bus);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return lost ? 1 : 0;
}
