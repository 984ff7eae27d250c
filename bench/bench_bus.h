/* Shared by the bus benchmarks (bus_bench.c, kafka_outage.c): a config
 * built in code, and one consumer group on a fresh topic that is ready
 * (partitions assigned) when bench_bus_fresh_topic returns. */
#ifndef NOTIFD_BENCH_BUS_H
#define NOTIFD_BENCH_BUS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/bus_internal.h"

static inline double bench_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline nd_cfg_node *bench_cfg_node(nd_cfg_kind k, const char *key, const char *str) {
  nd_cfg_node *n = calloc(1, sizeof *n);
  if (!n) abort();
  n->kind = k;
  n->file = "bench";
  n->key = key ? strdup(key) : NULL;
  n->str = str ? strdup(str) : NULL;
  return n;
}

static inline nd_cfg_node *bench_cfg_add(nd_cfg_node *map, nd_cfg_node *child) {
  map->items = realloc(map->items, (map->n + 1) * sizeof *map->items);
  if (!map->items) abort();
  map->items[map->n++] = child;
  return child;
}

/* Consumes a new topic "<prefix>-<pid>-<time>" (name into topic, 64 bytes)
 * with group "<topic>-g", starts the bus, produces the 1-byte warm-up
 * record "w" (it creates the topic) and runs the loop until *warm is set
 * (the handler sets it on a 1-byte value) or 60 s pass.  0 or -1 with the
 * reason on stderr. */
static inline int bench_bus_fresh_topic(notifd_host *h, nd_bus *bus, const char *prefix,
                                        notifd_bus_handler handler, void *ud, char *topic,
                                        const int *warm) {
  char group[80]; /* topics and group are copied by nd_bus_consume */
  snprintf(topic, 64, "%s-%ld-%lld", prefix, (long)getpid(), (long long)time(NULL));
  snprintf(group, sizeof group, "%s-g", topic);
  const char *topics[] = {topic, NULL};
  notifd_consumer_opts o = {.size = sizeof o, .topics = topics, .group = group,
                            .handler = handler, .ud = ud, .max_attempts = 1};
  notifd_consumer *c;
  if (nd_bus_consume(bus, NULL, &o, &c) < 0 || (h->phase = ND_PHASE_RUNNING, 0) ||
      nd_bus_start(bus) < 0) {
    fprintf(stderr, "%s: cannot consume\n", prefix);
    return -1;
  }
  if (nd_bus_produce(bus, topic, NULL, 0, "w", 1, NULL, NULL, NULL) < 0) return -1;
  double end = bench_now_s() + 60;
  while (!*warm && bench_now_s() < end) {
    event_base_loop(h->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    usleep(500);
  }
  if (!*warm) {
    fprintf(stderr, "%s: the warm-up record did not come back within 60 s\n", prefix);
    return -1;
  }
  return 0;
}

#endif
