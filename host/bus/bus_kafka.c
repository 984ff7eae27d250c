/* Kafka bus backend (librdkafka 2.0).
 *
 * Loop integration: every rd_kafka_t queue we serve has io events enabled
 * on a non-blocking pipe watched by libevent.  librdkafka writes to the
 * pipe only when a queue goes from empty to non-empty, so each wake-up
 * drains the queue completely (in slices, re-activating the event, so one
 * busy consumer cannot starve the loop).
 *
 * Offsets: enable.auto.offset.store=false; the core tells us when a record
 * and everything before it on its partition is finished and we store
 * offset+1 with rd_kafka_offsets_store; librdkafka's auto commit sends what
 * is stored, and closing the consumer at stop commits the rest.  Records of
 * a partition whose local queue reaches bus.max_buffered are held back by
 * pausing the partition; it resumes at half.
 *
 * One producer (idempotent) serves plugins' produces and dead letters; each
 * consumer (group) has its own rd_kafka_t.  Readiness = a metadata request
 * to the brokers succeeded recently (probed every 5 s on a small thread,
 * since rd_kafka_metadata blocks; every second while it fails).
 *
 * Recovery after a broker outage (bench/kafka_outage.py): librdkafka's
 * defaults took up to a minute.  Its reconnect backoff grows to 10 s, and
 * a consumer whose coordinator stays away longer than session.timeout.ms
 * (45 s) drops its member id and rejoins as a new member; the restarted
 * broker, which loaded the old member from __consumer_offsets, then holds
 * the group in rebalance until that old member's session expires (another
 * session timeout).  So the backend sets (backends.kafka, each overridable
 * by a librdkafka property): session_timeout 10 s, heartbeat_interval 1 s,
 * reconnect_backoff_max 1 s.  Lost partitions (session expired) are dropped
 * like revoked ones, without storing anything: their records come again to
 * whoever owns them next; commits refused for a stale generation are
 * logged, never retried with it (the records are redelivered, not lost). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus_internal.h"
#include "log/log.h"
#include "util/buf.h"
#include "util/mono_wait.h"

#define DRAIN_SLICE 1000
#define PROBE_INTERVAL_S 5
#define PROBE_RETRY_MS 1000 /* while not ready: /readyz turns 200 soon after */
#define TICK_MS 500

typedef struct kprop {
  char *key, *value;
  nd_cfg_node *node; /* for error positions */
} kprop;

typedef struct kprops {
  kprop *v;
  size_t n;
} kprops;

typedef struct kwake {
  int fds[2];
  struct event *ev;
} kwake;

/* Where a partition's finished records end (the offset last stored), kept
 * across a lost assignment so that getting the partition back resumes
 * there instead of at the last auto commit. */
typedef struct kdone {
  char *topic;
  int32_t partition;
  int64_t next;
  int resume; /* the assignment was lost: apply `next` when it comes back */
} kdone;

typedef struct kcons {
  nd_bus *bus;
  notifd_consumer *c;
  kdone *done;
  size_t ndone;
  rd_kafka_t *rk;
  rd_kafka_queue_t *q, *closeq;
  kwake w;
  struct event *more_ev; /* drain continues on the next loop turn */
  int closing, closed;
} kcons;

typedef struct kprod_op {
  struct kprod_op *prev, *next;
  notifd_produce_cb cb;
  void *ud;
} kprod_op;

typedef struct kbus {
  nd_bus *bus;
  kprops common, producer_props, consumer_props;
  int64_t session_timeout_ms, heartbeat_ms, reconnect_max_ms;
  char *brokers, *client_id;
  rd_kafka_t *producer;
  rd_kafka_queue_t *pq;
  kwake pw;
  struct event *tick, *more_ev;
  kprod_op *ops;
  size_t outstanding;
  /* readiness probe */
  pthread_t probe;
  int probe_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int probe_stop;
  int ready;  /* atomic */
} kbus;

static kbus *K(nd_bus *b) { return b->impl; }

/* ---- properties from YAML ---- */

static void props_free(kprops *p) {
  for (size_t i = 0; i < p->n; i++) {
    free(p->v[i].key);
    free(p->v[i].value);
  }
  free(p->v);
  p->v = NULL;
  p->n = 0;
}

static int props_add(kprops *p, const char *k, const char *v, nd_cfg_node *node) {
  kprop *nv = realloc(p->v, (p->n + 1) * sizeof *nv);
  if (!nv) return -1;
  p->v = nv;
  nv[p->n].key = strdup(k);
  nv[p->n].value = strdup(v);
  nv[p->n].node = node;
  if (!nv[p->n].key || !nv[p->n].value) {
    free(nv[p->n].key);
    free(nv[p->n].value);
    return -1;
  }
  p->n++;
  return 0;
}

/* A map of librdkafka properties: every scalar is passed through as text. */
static int props_read(nd_cfg_node *map, const char *name, kprops *out, nd_errors *errs) {
  nd_cfg_node *n = map ? nd_cfg_get(map, name) : NULL;
  if (!n || n->is_null) return 0;
  if (n->kind != ND_CFG_MAP) {
    nd_errors_add(errs, n->file, n->line, n->col, "backends.kafka.%s: expected a map", name);
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    nd_cfg_node *it = n->items[i];
    nd_cfg_get(n, it->key); /* mark used */
    if (it->kind != ND_CFG_SCALAR) {
      nd_errors_add(errs, it->file, it->line, it->col,
                    "backends.kafka.%s.%s: expected a scalar value", name, it->key);
      bad = 1;
      continue;
    }
    if (props_add(out, it->key, it->str ? it->str : "", it) < 0) return -1;
  }
  return bad ? -1 : 0;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, nd_cfg_node *node,
                    nd_errors *errs) {
  char err[256];
  if (rd_kafka_conf_set(conf, k, v, err, sizeof err) == RD_KAFKA_CONF_OK) return 0;
  if (errs)
    nd_errors_add(errs, node ? node->file : NULL, node ? node->line : 0, node ? node->col : 0,
                  "kafka property %s: %s", k, err);
  else
    ND_ERROR("bus", "kafka property %s: %s", k, err);
  return -1;
}

static int conf_apply(rd_kafka_conf_t *conf, const kprops *p, nd_errors *errs) {
  int bad = 0;
  for (size_t i = 0; i < p->n; i++)
    bad |= conf_set(conf, p->v[i].key, p->v[i].value, p->v[i].node, errs) < 0;
  return bad ? -1 : 0;
}

static int props_has(const kprops *p, const char *k) {
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->v[i].key, k) == 0) return 1;
  return 0;
}

/* ---- callbacks common to all clients ---- */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk;
  int lvl = level <= 3 ? 0 : level == 4 ? 1 : level <= 6 ? 2 : 3;
  if (lvl <= nd_log_level()) nd_log(lvl, "kafka", "%s: %s", fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
  (void)opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[256];
    rd_kafka_fatal_error(rk, why, sizeof why);
    ND_ERROR("bus", "kafka fatal error (%s): %s", rd_kafka_name(rk), why);
    return;
  }
  ND_WARN("bus", "kafka %s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name(err), reason);
}

/* A default from backends.kafka unless a librdkafka property sets it. */
static int conf_default(rd_kafka_conf_t *conf, kbus *k, const kprops *role, const char *key,
                        int64_t v) {
  if (props_has(&k->common, key) || (role && props_has(role, key))) return 0;
  char num[32];
  snprintf(num, sizeof num, "%" PRId64, v);
  return conf_set(conf, key, num, NULL, NULL);
}

static rd_kafka_conf_t *conf_new(kbus *k, const kprops *role, nd_errors *errs) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (!conf) return NULL;
  int bad = conf_set(conf, "bootstrap.servers", k->brokers, NULL, errs) < 0;
  bad |= conf_set(conf, "client.id", k->client_id, NULL, errs) < 0;
  /* librdkafka's reconnect backoff doubles to 10 s: a broker back after an
   * outage was noticed up to 10 s late.  reconnect.backoff.ms must not
   * exceed the max. */
  bad |= conf_default(conf, k, role, "reconnect.backoff.max.ms", k->reconnect_max_ms) < 0;
  if (k->reconnect_max_ms < 100)
    bad |= conf_default(conf, k, role, "reconnect.backoff.ms", k->reconnect_max_ms) < 0;
  bad |= conf_apply(conf, &k->common, errs) < 0;
  bad |= conf_apply(conf, role, errs) < 0;
  if (bad) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  rd_kafka_conf_set_log_cb(conf, on_log);
  rd_kafka_conf_set_error_cb(conf, on_error);
  return conf;
}

/* ---- io-event pipes ---- */

static int wake_open(kwake *w, struct event_base *base, event_callback_fn fn, void *arg) {
  w->fds[0] = w->fds[1] = -1;
  if (pipe2(w->fds, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
  w->ev = event_new(base, w->fds[0], EV_READ | EV_PERSIST, fn, arg);
  if (!w->ev || event_add(w->ev, NULL) < 0) return -1;
  return 0;
}

static void wake_close(kwake *w) {
  if (w->ev) event_free(w->ev);
  w->ev = NULL;
  for (int i = 0; i < 2; i++)
    if (w->fds[i] >= 0) close(w->fds[i]);
  w->fds[0] = w->fds[1] = -1;
}

static void wake_clear(kwake *w) {
  char buf[64];
  while (read(w->fds[0], buf, sizeof buf) > 0) {
  }
}

/* ---- producer ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque) {
  (void)rk;
  kbus *k = opaque;
  kprod_op *op = rkm->_private;
  if (!op) return;
  if (op->prev) op->prev->next = op->next;
  else k->ops = op->next;
  if (op->next) op->next->prev = op->prev;
  k->outstanding--;
  if (rkm->err)
    ND_WARN_RL("bus", "kafka delivery to %s failed: %s", rd_kafka_topic_name(rkm->rkt),
            rd_kafka_err2str(rkm->err));
  notifd_produce_cb cb = op->cb;
  void *ud = op->ud;
  free(op);
  if (cb) cb(rkm->err ? NOTIFD_EBACKEND : 0, ud);
}

static void producer_drain(kbus *k) {
  int i = 0;
  while (i < DRAIN_SLICE && rd_kafka_poll(k->producer, 0) > 0) i++;
  if (i == DRAIN_SLICE) { /* more may be queued: next loop turn */
    struct timeval zero = {0, 0};
    event_add(k->more_ev, &zero);
  }
  nd_bus_check_stop(k->bus);
}

static void on_producer_more(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  producer_drain(arg);
}

static void on_producer_wake(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  kbus *k = arg;
  wake_clear(&k->pw);
  producer_drain(k);
}

static int kafka_produce(nd_bus *b, nd_bus_record *r) {
  kbus *k = K(b);
  kprod_op *op = calloc(1, sizeof *op);
  rd_kafka_headers_t *h = r->nhdrs ? rd_kafka_headers_new(r->nhdrs) : NULL;
  if (!op || (r->nhdrs && !h)) {
    free(op);
    if (h) rd_kafka_headers_destroy(h);
    free(r);
    return NOTIFD_ENOMEM;
  }
  for (size_t i = 0; i < r->nhdrs; i++)
    rd_kafka_header_add(h, r->hdrs[i].name, -1, r->hdrs[i].value,
                        r->hdrs[i].value ? (ssize_t)r->hdrs[i].len : 0);
  op->cb = r->cb;
  op->ud = r->ud;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      k->producer, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(r->key, r->key_len), RD_KAFKA_V_VALUE(r->value, r->value_len),
      RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(op), RD_KAFKA_V_END);
  if (err) {
    ND_WARN_RL("bus", "kafka produce to %s refused: %s", r->topic, rd_kafka_err2str(err));
    if (h) rd_kafka_headers_destroy(h);
    free(op);
    free(r);
    return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? NOTIFD_ETOOBIG : NOTIFD_EBACKEND;
  }
  free(r);
  op->next = k->ops;
  if (k->ops) k->ops->prev = op;
  k->ops = op;
  k->outstanding++;
  return 0;
}

static size_t kafka_pending(nd_bus *b) { return K(b)->outstanding; }

/* ---- readiness probe ---- */

static void *probe_main(void *arg) {
  kbus *k = arg;
  pthread_mutex_lock(&k->mu);
  while (!k->probe_stop) {
    pthread_mutex_unlock(&k->mu);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(k->producer, 0, NULL, &md, 3000);
    int ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;
    if (md) rd_kafka_metadata_destroy(md);
    __atomic_store_n(&k->ready, ok, __ATOMIC_RELEASE);
    pthread_mutex_lock(&k->mu);
    if (k->probe_stop) break;
    struct timespec ts;
    nd_mono_deadline(&ts, ok ? PROBE_INTERVAL_S * 1000LL : PROBE_RETRY_MS);
    while (!k->probe_stop && pthread_cond_timedwait(&k->cv, &k->mu, &ts) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&k->mu);
  return NULL;
}

static int kafka_ready(nd_bus *b) {
  kbus *k = K(b);
  return __atomic_load_n(&k->ready, __ATOMIC_ACQUIRE);
}

/* ---- consumers ---- */

static void pause_stream(kcons *kc, nd_bus_stream *s, int pause) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  if (!l) return;
  rd_kafka_topic_partition_list_add(l, s->topic, s->partition);
  rd_kafka_resp_err_t err =
      pause ? rd_kafka_pause_partitions(kc->rk, l) : rd_kafka_resume_partitions(kc->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (!err) s->paused = pause;
}

static void kafka_refill(nd_bus_stream *s) {
  kcons *kc = s->consumer->impl;
  if (s->paused && s->queued <= s->consumer->bus->queue_high / 2 && !kc->closing)
    pause_stream(kc, s, 0);
}

static kdone *done_find(kcons *kc, const char *topic, int32_t partition, int add) {
  for (size_t i = 0; i < kc->ndone; i++)
    if (kc->done[i].partition == partition && strcmp(kc->done[i].topic, topic) == 0)
      return &kc->done[i];
  if (!add) return NULL;
  kdone *nv = realloc(kc->done, (kc->ndone + 1) * sizeof *nv);
  if (!nv) return NULL;
  kc->done = nv;
  kdone *d = &nv[kc->ndone];
  d->topic = strdup(topic);
  if (!d->topic) return NULL;
  d->partition = partition;
  d->next = -1;
  d->resume = 0;
  kc->ndone++;
  return d;
}

static void kafka_commit(nd_bus_stream *s, int64_t next) {
  kcons *kc = s->consumer->impl;
  /* s->impl caches the kdone slot (index + 1; the array only grows). */
  kdone *d = s->impl ? &kc->done[(uintptr_t)s->impl - 1] : done_find(kc, s->topic, s->partition, 1);
  if (d) {
    s->impl = (void *)(uintptr_t)(d - kc->done + 1);
    d->next = next;
    d->resume = 0;
  }
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  if (!l) return; /* not stored: redelivered after a restart, never lost */
  rd_kafka_topic_partition_list_add(l, s->topic, s->partition)->offset = next;
  rd_kafka_resp_err_t err = rd_kafka_offsets_store(kc->rk, l);
  if (!err && l->elems[0].err) err = l->elems[0].err;
  rd_kafka_topic_partition_list_destroy(l);
  if (err)
    ND_WARN_RL("bus", "kafka offset store %s/%d@%" PRId64 ": %s", s->topic, (int)s->partition, next,
            rd_kafka_err2str(err));
  int64_t lo, hi;
  if (rd_kafka_get_watermark_offsets(kc->rk, s->topic, s->partition, &lo, &hi) == 0 && hi >= 0)
    nd_bus_set_lag(s, hi - next);
}

static void remove_all_streams(kcons *kc) {
  while (kc->c->nstreams) nd_bus_stream_remove(kc->c->streams[kc->c->nstreams - 1]);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  kcons *kc = opaque;
  int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
  rd_kafka_error_t *e = NULL;
  rd_kafka_resp_err_t aerr = 0;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    int resumed = 0;
    for (int i = 0; i < parts->cnt; i++) {
      const char *t = parts->elems[i].topic;
      int32_t p = parts->elems[i].partition;
      if (!nd_bus_stream_find(kc->c, t, p) && !nd_bus_stream_add(kc->c, t, p))
        ND_ERROR("bus", "kafka: no memory for partition %s/%d", t, (int)p);
      /* Ours before the assignment was lost: everything below d->next was
       * finished here, so resume there (the commit of those offsets was
       * refused with the old membership).  If another member went further
       * meanwhile, this replays records (duplicates), never skips any. */
      kdone *d = done_find(kc, t, p, 0);
      if (d && d->resume && d->next >= 0) {
        parts->elems[i].offset = d->next;
        resumed++;
      }
      if (d) d->resume = 0;
      /* Operator tail without -B: the last records, not only new ones. */
      if (kc->c->tail_last > 0) parts->elems[i].offset = RD_KAFKA_OFFSET_TAIL(kc->c->tail_last);
    }
    if (resumed)
      ND_INFO("bus", "kafka group %s: %d partition(s) resume where this member left off",
              kc->c->group, resumed);
    ND_INFO("bus", "kafka group %s: %d partition(s) assigned", kc->c->group, parts->cnt);
    if (coop) e = rd_kafka_incremental_assign(rk, parts);
    else aerr = rd_kafka_assign(rk, parts);
  } else {
    int lost = rd_kafka_assignment_lost(rk);
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
      ND_ERROR("bus", "kafka group %s rebalance error: %s", kc->c->group, rd_kafka_err2str(err));
    else if (lost)
      ND_WARN("bus",
              "kafka group %s: %d partition(s) lost (no contact with the group coordinator "
              "within the session timeout); rejoining",
              kc->c->group, parts->cnt);
    /* Queued records are dropped uncommitted; a record in flight is
     * orphaned, so finishing it later stores nothing past what is done. */
    for (int i = 0; i < parts->cnt; i++) {
      nd_bus_stream *s = nd_bus_stream_find(kc->c, parts->elems[i].topic, parts->elems[i].partition);
      if (s) nd_bus_stream_remove(s);
      /* Revoked: librdkafka commits what is stored, the next owner starts
       * there.  Lost: that commit is refused; remember where we were. */
      kdone *d = done_find(kc, parts->elems[i].topic, parts->elems[i].partition, 0);
      if (d) d->resume = lost;
    }
    if (!coop) remove_all_streams(kc);
    if (!lost) ND_INFO("bus", "kafka group %s: %d partition(s) revoked", kc->c->group, parts->cnt);
    if (coop) e = rd_kafka_incremental_unassign(rk, parts);
    else aerr = rd_kafka_assign(rk, NULL);
  }
  if (e) {
    ND_ERROR("bus", "kafka assign: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  } else if (aerr) {
    ND_ERROR("bus", "kafka assign: %s", rd_kafka_err2str(aerr));
  }
}

/* Auto commits.  A commit refused because the group moved on (the member
 * was evicted, a rebalance started) is not retried with the old
 * generation: the next owner of the partition starts at the last committed
 * offset and gets those records again (redelivered, never lost; the
 * handlers dedupe). */
static void on_offset_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  (void)rk;
  kcons *kc = opaque;
  /* Nothing to commit, or the coordinator is away (an outage: the error
   * callback already says so; the stored offsets are sent once it is back). */
  if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET || err == RD_KAFKA_RESP_ERR__WAIT_COORD) return;
  int stale = err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
              err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
              err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
              err == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
  ND_WARN_RL("bus", "kafka group %s: commit of %d partition(s) failed: %s%s", kc->c->group,
             offsets ? offsets->cnt : 0, rd_kafka_err2str(err),
             stale ? " (membership changed; those records will be delivered again)" : "");
}

static notifd_bus_msg *wrap_message(rd_kafka_message_t *rkm) {
  rd_kafka_headers_t *hs = NULL;
  size_t nh = 0;
  if (rd_kafka_message_headers(rkm, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR && hs)
    nh = rd_kafka_header_cnt(hs);
  void *extra;
  notifd_bus_msg *m = nd_bus_msg_alloc(nh * sizeof(nd_bus_hdr), &extra);
  if (!m) return NULL;
  nd_bus_hdr *h = extra;
  size_t n = 0;
  for (size_t i = 0; i < nh; i++) {
    const char *name;
    const void *val;
    size_t size;
    if (rd_kafka_header_get_all(hs, i, &name, &val, &size)) break;
    h[n].name = name;
    h[n].value = val;
    h[n].len = val ? size : 0;
    n++;
  }
  m->hdrs = n ? h : NULL;
  m->nhdrs = n;
  m->offset = rkm->offset;
  m->timestamp_ms = rd_kafka_message_timestamp(rkm, NULL);
  m->key = rkm->key;
  m->key_len = rkm->key ? rkm->key_len : 0;
  m->value = rkm->payload;
  m->value_len = rkm->payload ? rkm->len : 0;
  m->raw = rkm;
  return m;
}

static void kafka_check_stopped(kbus *k);

static void consumer_drain(kcons *kc) {
  nd_bus *b = kc->bus;
  if (kc->closeq) {
    while (rd_kafka_queue_poll_callback(kc->closeq, 0) > 0) {
    }
  }
  for (int i = 0; i < DRAIN_SLICE; i++) {
    rd_kafka_message_t *rkm = rd_kafka_consumer_poll(kc->rk, 0);
    if (!rkm) {
      if (kc->closing) kafka_check_stopped(K(b));
      return;
    }
    if (rkm->err) {
      nd_bus_stream *eof = rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && rkm->rkt
                               ? nd_bus_stream_find(kc->c, rd_kafka_topic_name(rkm->rkt),
                                                    rkm->partition)
                               : NULL;
      if (eof) eof->at_end = 1; /* the operator tail asked for EOF events */
      if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        ND_WARN("bus", "kafka group %s: %s", kc->c->group, rd_kafka_message_errstr(rkm));
      rd_kafka_message_destroy(rkm);
      continue;
    }
    nd_bus_stream *s =
        b->stopping ? NULL : nd_bus_stream_find(kc->c, rd_kafka_topic_name(rkm->rkt), rkm->partition);
    notifd_bus_msg *m = s ? wrap_message(rkm) : NULL;
    if (!m) {
      /* Not ours any more (revoked / stopping): never stored, so whoever
       * owns the partition next fetches it again.  OOM: seek back so it is
       * not skipped. */
      if (s) rd_kafka_seek(rkm->rkt, rkm->partition, rkm->offset, 0);
      rd_kafka_message_destroy(rkm);
      continue;
    }
    nd_bus_stream_push(s, m);
    if (s->queued >= b->queue_high && !s->paused) pause_stream(kc, s, 1);
  }
  struct timeval zero = {0, 0}; /* more may be queued: next loop turn */
  event_add(kc->more_ev, &zero);
}

static void on_consumer_wake(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  kcons *kc = arg;
  wake_clear(&kc->w);
  consumer_drain(kc);
}

static void on_consumer_more(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  consumer_drain(arg);
}

/* Records fetched after the last drain reach the close queue, which is
 * served with rd_kafka_queue_poll_callback; without a consume callback
 * librdkafka 2.0 aborts on them (rd_kafka_q_serve: res !=
 * RD_KAFKA_OP_RES_PASS).  They were never handed out or stored, so the
 * next owner of the partition fetches them again: drop them.
 * rd_kafka_consumer_poll returns records as before (it never calls this). */
static void drop_fetched_while_closing(rd_kafka_message_t *rkm, void *opaque) {
  (void)rkm;
  (void)opaque;
}

static int consumer_open(kbus *k, notifd_consumer *c) {
  nd_bus *b = k->bus;
  kcons *kc = calloc(1, sizeof *kc);
  if (!kc) return NOTIFD_ENOMEM;
  kc->bus = b;
  kc->c = c;
  kc->w.fds[0] = kc->w.fds[1] = -1;
  c->impl = kc;
  rd_kafka_conf_t *conf = conf_new(k, &k->consumer_props, NULL);
  if (!conf) return NOTIFD_EBACKEND;
  int bad = 0;
  /* Defaults a user property may override ... */
  if (!props_has(&k->consumer_props, "auto.offset.reset") && !props_has(&k->common, "auto.offset.reset"))
    bad |= conf_set(conf, "auto.offset.reset",
                    c->start_from_latest && !c->tail_last ? "latest" : "earliest", NULL, NULL);
  bad |= conf_default(conf, k, &k->consumer_props, "session.timeout.ms", k->session_timeout_ms) < 0;
  bad |= conf_default(conf, k, &k->consumer_props, "heartbeat.interval.ms", k->heartbeat_ms) < 0;
  /* ... and what the delivery guarantees rely on. */
  bad |= conf_set(conf, "group.id", c->group, NULL, NULL);
  bad |= conf_set(conf, "enable.auto.offset.store", "false", NULL, NULL);
  bad |= conf_set(conf, "enable.auto.commit", c->ephemeral ? "false" : "true", NULL, NULL);
  /* Only the operator tail needs to know where a partition ends. */
  bad |= conf_set(conf, "enable.partition.eof", c->ephemeral ? "true" : "false", NULL, NULL);
  rd_kafka_conf_set_consume_cb(conf, drop_fetched_while_closing);
  if (bad) {
    rd_kafka_conf_destroy(conf);
    return NOTIFD_EBACKEND;
  }
  rd_kafka_conf_set_opaque(conf, kc);
  rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
  rd_kafka_conf_set_offset_commit_cb(conf, on_offset_commit);
  char err[256];
  kc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!kc->rk) {
    rd_kafka_conf_destroy(conf);
    ND_ERROR("bus", "kafka consumer %s: %s", c->group, err);
    return NOTIFD_EBACKEND;
  }
  rd_kafka_poll_set_consumer(kc->rk);
  kc->q = rd_kafka_queue_get_consumer(kc->rk);
  kc->more_ev = evtimer_new(b->base, on_consumer_more, kc);
  if (!kc->q || !kc->more_ev || wake_open(&kc->w, b->base, on_consumer_wake, kc) < 0)
    return NOTIFD_EBACKEND;
  rd_kafka_queue_io_event_enable(kc->q, kc->w.fds[1], "1", 1);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->ntopics);
  if (!l) return NOTIFD_ENOMEM;
  for (size_t i = 0; i < c->ntopics; i++)
    rd_kafka_topic_partition_list_add(l, c->topics[i], RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(kc->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e) {
    ND_ERROR("bus", "kafka subscribe %s: %s", c->group, rd_kafka_err2str(e));
    return NOTIFD_EBACKEND;
  }
  event_active(kc->more_ev, EV_TIMEOUT, 0);
  return 0;
}

static void consumer_free(kcons *kc) {
  if (!kc) return;
  for (size_t i = 0; i < kc->ndone; i++) free(kc->done[i].topic);
  free(kc->done);
  wake_close(&kc->w);
  if (kc->more_ev) event_free(kc->more_ev);
  if (kc->closeq) rd_kafka_queue_destroy(kc->closeq);
  if (kc->q) rd_kafka_queue_destroy(kc->q);
  /* Abrupt: leave the group by session timeout, commit nothing new. */
  if (kc->rk) rd_kafka_destroy_flags(kc->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  kc->c->impl = NULL;
  free(kc);
}

static int kafka_start(nd_bus *b) {
  kbus *k = K(b);
  for (size_t i = 0; i < b->nconsumers; i++) {
    int rc = consumer_open(k, b->consumers[i]);
    if (rc < 0) return rc;
  }
  return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  kbus *k = arg;
  /* Safety net beside the io events; cheap when nothing is queued. */
  producer_drain(k);
  for (size_t i = 0; i < k->bus->nconsumers; i++) {
    kcons *kc = k->bus->consumers[i]->impl;
    if (kc && kc->rk) consumer_drain(kc);
  }
  if (k->bus->backend_stopping) kafka_check_stopped(k);
}

static void kafka_stop_fetching(nd_bus *b) {
  for (size_t i = 0; i < b->nconsumers; i++) {
    kcons *kc = b->consumers[i]->impl;
    if (!kc || !kc->rk) continue;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(kc->rk, &l) == 0 && l) {
      rd_kafka_pause_partitions(kc->rk, l);
      rd_kafka_topic_partition_list_destroy(l);
    }
  }
}

static void kafka_check_stopped(kbus *k) {
  nd_bus *b = k->bus;
  if (!b->backend_stopping || !b->stop_done) return;
  for (size_t i = 0; i < b->nconsumers; i++) {
    kcons *kc = b->consumers[i]->impl;
    if (kc && kc->rk && !kc->closed) {
      if (!rd_kafka_consumer_closed(kc->rk)) return;
      kc->closed = 1;
    }
  }
  if (rd_kafka_outq_len(k->producer) > 0) return;
  nd_bus_backend_stopped(b);
}

/* Everything in flight is finished and stored: close each consumer (which
 * commits the stored offsets and leaves the group) without blocking. */
static void kafka_finish_stop(nd_bus *b) {
  kbus *k = K(b);
  for (size_t i = 0; i < b->nconsumers; i++) {
    kcons *kc = b->consumers[i]->impl;
    if (!kc || !kc->rk) continue;
    kc->closing = 1;
    kc->closeq = rd_kafka_queue_new(kc->rk);
    if (!kc->closeq) {
      rd_kafka_consumer_close(kc->rk); /* fall back to the blocking close */
      kc->closed = 1;
      continue;
    }
    rd_kafka_queue_io_event_enable(kc->closeq, kc->w.fds[1], "1", 1);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(kc->rk, kc->closeq);
    if (e) {
      ND_WARN("bus", "kafka close %s: %s", kc->c->group, rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      kc->closed = 1;
    }
  }
  struct timeval tv = {0, 50 * 1000};
  event_add(k->tick, &tv);
  kafka_check_stopped(k);
}

static void kafka_stream_free(nd_bus_stream *s) { (void)s; }

static void kafka_msg_release(notifd_bus_msg *m) {
  rd_kafka_message_destroy(m->raw);
  m->raw = NULL;
}

static void kafka_free(nd_bus *b) {
  kbus *k = K(b);
  if (!k) return;
  if (k->probe_started) {
    pthread_mutex_lock(&k->mu);
    k->probe_stop = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->probe, NULL);
  }
  for (size_t i = 0; i < b->nconsumers; i++) consumer_free(b->consumers[i]->impl);
  if (k->tick) event_free(k->tick);
  if (k->more_ev) event_free(k->more_ev);
  wake_close(&k->pw);
  if (k->pq) rd_kafka_queue_destroy(k->pq);
  if (k->producer) {
    rd_kafka_purge(k->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(k->producer);
  }
  while (k->ops) { /* never reported: callbacks dropped (abrupt) */
    kprod_op *n = k->ops->next;
    free(k->ops);
    k->ops = n;
  }
  pthread_mutex_destroy(&k->mu);
  pthread_cond_destroy(&k->cv);
  props_free(&k->common);
  props_free(&k->producer_props);
  props_free(&k->consumer_props);
  free(k->brokers);
  free(k->client_id);
  free(k);
  b->impl = NULL;
}

const nd_bus_ops nd_bus_kafka_ops = {
    .name = "kafka",
    .start = kafka_start,
    .stop_fetching = kafka_stop_fetching,
    .finish_stop = kafka_finish_stop,
    .pending = kafka_pending,
    .free = kafka_free,
    .ready = kafka_ready,
    .produce = kafka_produce,
    .commit = kafka_commit,
    .refill = kafka_refill,
    .stream_free = kafka_stream_free,
    .msg_release = kafka_msg_release,
};

/* brokers: "h1:9092,h2:9092" or a list. */
static int read_brokers(nd_cfg_node *kc, nd_buf *out, nd_errors *errs) {
  nd_cfg_node *n = nd_cfg_get(kc, "brokers");
  if (!n || n->is_null) {
    nd_errors_add(errs, kc->file, kc->line, kc->col, "backends.kafka.brokers: required");
    return -1;
  }
  if (n->kind == ND_CFG_SCALAR) return nd_buf_puts(out, n->str ? n->str : "");
  if (n->kind != ND_CFG_SEQ) {
    nd_errors_add(errs, n->file, n->line, n->col,
                  "backends.kafka.brokers: expected a string or a list");
    return -1;
  }
  for (size_t i = 0; i < n->n; i++) {
    const char *s;
    if (nd_cfg_as_string(n->items[i], errs, &s) < 0) return -1;
    n->items[i]->used = 1;
    if (i) nd_buf_puts(out, ",");
    nd_buf_puts(out, s);
  }
  return out->oom ? -1 : 0;
}

int nd_bus_kafka_open(nd_bus *b, nd_errors *errs) {
  kbus *k = calloc(1, sizeof *k);
  if (!k) return NOTIFD_ENOMEM;
  k->bus = b;
  k->pw.fds[0] = k->pw.fds[1] = -1;
  pthread_mutex_init(&k->mu, NULL);
  nd_mono_cond_init(&k->cv);
  b->impl = k;
  b->ops = &nd_bus_kafka_ops;

  nd_cfg_node *kc = b->host->cfg.kafka;
  nd_buf brokers;
  nd_buf_init(&brokers);
  const char *client_id;
  int bad = read_brokers(kc, &brokers, errs) < 0;
  bad |= nd_bus_cfg_str(kc, "client_id", "notifd", &client_id, errs) < 0;
  /* Recovery settings (see the top of this file; docs/operations.md). */
  bad |= nd_bus_cfg_dur(kc, "session_timeout", 10000, &k->session_timeout_ms, errs) < 0;
  bad |= nd_bus_cfg_dur(kc, "heartbeat_interval", 1000, &k->heartbeat_ms, errs) < 0;
  bad |= nd_bus_cfg_dur(kc, "reconnect_backoff_max", 1000, &k->reconnect_max_ms, errs) < 0;
  if (!bad && (k->heartbeat_ms < 1 || k->heartbeat_ms >= k->session_timeout_ms)) {
    nd_errors_add(errs, kc->file, kc->line, kc->col,
                  "backends.kafka.heartbeat_interval must be > 0 and below session_timeout");
    bad = 1;
  }
  if (!bad && k->reconnect_max_ms < 1) {
    nd_errors_add(errs, kc->file, kc->line, kc->col,
                  "backends.kafka.reconnect_backoff_max must be > 0");
    bad = 1;
  }
  bad |= props_read(kc, "properties", &k->common, errs) < 0;
  bad |= props_read(kc, "producer_properties", &k->producer_props, errs) < 0;
  bad |= props_read(kc, "consumer_properties", &k->consumer_props, errs) < 0;
  k->brokers = nd_buf_steal(&brokers, NULL);
  k->client_id = strdup(bad ? "notifd" : client_id);
  if (bad || !k->brokers || !k->client_id) {
    kafka_free(b);
    return bad ? NOTIFD_EINVAL : NOTIFD_ENOMEM;
  }

  rd_kafka_conf_t *user = conf_new(k, &k->producer_props, errs);
  if (!user) {
    kafka_free(b);
    return NOTIFD_EINVAL;
  }
  /* Validate the consumer properties now too (with YAML positions). */
  rd_kafka_conf_t *cc = conf_new(k, &k->consumer_props, errs);
  if (!cc) {
    rd_kafka_conf_destroy(user);
    kafka_free(b);
    return NOTIFD_EINVAL;
  }
  rd_kafka_conf_destroy(cc);
  /* Producer defaults unless a property says otherwise: idempotent, and
   * Java's key partitioner so keyed records land where Java producers put
   * them. */
  if (!props_has(&k->common, "enable.idempotence") && !props_has(&k->producer_props, "enable.idempotence"))
    conf_set(user, "enable.idempotence", "true", NULL, NULL);
  if (!props_has(&k->common, "partitioner") && !props_has(&k->producer_props, "partitioner"))
    conf_set(user, "partitioner", "murmur2_random", NULL, NULL);
  rd_kafka_conf_set_opaque(user, k);
  rd_kafka_conf_set_dr_msg_cb(user, on_delivery);
  char err[256];
  k->producer = rd_kafka_new(RD_KAFKA_PRODUCER, user, err, sizeof err);
  if (!k->producer) {
    rd_kafka_conf_destroy(user);
    nd_errors_add(errs, kc->file, kc->line, kc->col, "kafka producer: %s", err);
    kafka_free(b);
    return NOTIFD_EBACKEND;
  }
  k->pq = rd_kafka_queue_get_main(k->producer);
  k->tick = event_new(b->base, -1, EV_PERSIST, on_tick, k);
  k->more_ev = evtimer_new(b->base, on_producer_more, k);
  if (!k->pq || !k->tick || !k->more_ev || wake_open(&k->pw, b->base, on_producer_wake, k) < 0) {
    kafka_free(b);
    return NOTIFD_ENOMEM;
  }
  rd_kafka_queue_io_event_enable(k->pq, k->pw.fds[1], "1", 1);
  struct timeval tv = {0, TICK_MS * 1000};
  event_add(k->tick, &tv);
  if (pthread_create(&k->probe, NULL, probe_main, k) == 0) k->probe_started = 1;
  return 0;
}
