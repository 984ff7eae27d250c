/* Bus core: backend choice, consumer registration, delivery with one record
 * in flight per partition, ack / retry / drop, dead letters, graceful stop,
 * metrics.  The backends only fetch, commit and produce.
 *
 * Configuration read here and by the backends (all optional):
 *   bus.dead_letter_suffix     ".dlq"  (dead-letter topic = <topic><suffix>)
 *   bus.max_buffered           1000    fetched records per partition before
 *                                      the partition is paused (Kafka)
 *   bus.partitions             4       embedded: partitions of a new topic
 *   bus.embedded.path          <data_dir>/bus.db
 *   bus.embedded.synchronous   normal | full
 *   bus.embedded.poll_interval 100ms   notice other processes' writes
 *   bus.embedded.fetch_batch   256     records read per partition at once
 *   bus.embedded.batch_max     4096    records written per transaction
 *   bus.embedded.checkpoint_interval 200ms
 *   bus.embedded.cursor_commit_delay 5ms  a lone cursor move waits for company
 *   bus.retention.max_age      168h    embedded retention (0 = off)
 *   bus.retention.max_records  0       per partition (0 = off)
 *   bus.retention.max_bytes    1GiB    embedded: bus.db's used pages (0 = off)
 *   bus.retention.interval     1m
 *   bus.retry.*                        read by the config module (nd_retry_cfg)
 *   backends.kafka.brokers     "h:p,h:p" or a list (required for Kafka)
 *   backends.kafka.client_id   "notifd"
 *   backends.kafka.properties           any librdkafka property, both roles
 *   backends.kafka.producer_properties  producer only
 *   backends.kafka.consumer_properties  consumers only
 * Retry policy precedence per consumer: notifd_consumer_opts fields >
 * environment (CHAT_PERSISTENCE_CHANGE_KAFKA_CONSUMER_INFO_MESSAGE_RETRY_*,
 * then MESSAGE_RETRY_*: MAX_RETRIES, INITIAL_INTERVAL, MAX_INTERVAL,
 * MULTIPLIER) > bus.retry > built-in (3 retries, 1s, 30s, x2, jitter 0.2);
 * see bus_retry.c. */
#include "bus/bus.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus_internal.h"
#include "notifd_build_config.h"
#include "config/cfg_internal.h"
#include "log/log.h"
#include "util/buf.h"

#define PUMP_BUDGET 256          /* deliveries per pump run before yielding */
#define DEFAULT_QUEUE_HIGH 1000  /* fetched records per partition before pausing */

/* ---- small helpers ---- */

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval tv_ms(int64_t ms) {
  if (ms < 0) ms = 0;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  return tv;
}

static void metric_inc(nd_metric *m, const char *const *labels) {
  if (m) nd_metric_add(m, labels, 1);
}

int nd_bus_cfg_int(nd_cfg_node *map, const char *key, int64_t def, int64_t *out, nd_errors *e) {
  *out = def;
  nd_cfg_node *n = map ? nd_cfg_get(map, key) : NULL;
  if (!n || n->is_null) return 0;
  return nd_cfg_as_int(n, e, out);
}

int nd_bus_cfg_dur(nd_cfg_node *map, const char *key, int64_t def, int64_t *out, nd_errors *e) {
  *out = def;
  nd_cfg_node *n = map ? nd_cfg_get(map, key) : NULL;
  if (!n || n->is_null) return 0;
  return nd_cfg_as_duration_ms(n, e, out);
}

int nd_bus_cfg_bytes(nd_cfg_node *map, const char *key, int64_t def, int64_t *out, nd_errors *e) {
  *out = def;
  nd_cfg_node *n = map ? nd_cfg_get(map, key) : NULL;
  if (!n || n->is_null) return 0;
  uint64_t v;
  if (nd_cfg_as_size(n, e, &v) < 0) return -1;
  *out = v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
  return 0;
}

int nd_bus_cfg_str(nd_cfg_node *map, const char *key, const char *def, const char **out,
                   nd_errors *e) {
  *out = def;
  nd_cfg_node *n = map ? nd_cfg_get(map, key) : NULL;
  if (!n || n->is_null) return 0;
  return nd_cfg_as_string(n, e, out);
}

/* ---- records ---- */

nd_bus_record *nd_bus_record_new(const char *topic, const void *key, size_t key_len,
                                 const void *value, size_t value_len, const nd_bus_hdr *hdrs,
                                 size_t nhdrs) {
  size_t tlen = strlen(topic);
  size_t size = sizeof(nd_bus_record) + nhdrs * sizeof(nd_bus_hdr) + tlen + 1 + key_len + value_len;
  for (size_t i = 0; i < nhdrs; i++) size += strlen(hdrs[i].name) + 1 + hdrs[i].len;
  nd_bus_record *r = malloc(size);
  if (!r) return NULL;
  memset(r, 0, sizeof *r);
  r->hdrs = nhdrs ? (nd_bus_hdr *)(r + 1) : NULL;
  r->nhdrs = nhdrs;
  char *p = (char *)(r + 1) + nhdrs * sizeof(nd_bus_hdr);
  r->topic = p;
  memcpy(p, topic, tlen + 1);
  p += tlen + 1;
  if (key) {
    r->key = p;
    r->key_len = key_len;
    if (key_len) memcpy(p, key, key_len);
    p += key_len;
  }
  if (value) {
    r->value = p;
    r->value_len = value_len;
    if (value_len) memcpy(p, value, value_len);
    p += value_len;
  }
  for (size_t i = 0; i < nhdrs; i++) {
    size_t nl = strlen(hdrs[i].name);
    memcpy(p, hdrs[i].name, nl + 1);
    r->hdrs[i].name = p;
    p += nl + 1;
    r->hdrs[i].value = NULL;
    r->hdrs[i].len = 0;
    if (hdrs[i].value) {
      r->hdrs[i].value = p;
      r->hdrs[i].len = hdrs[i].len;
      if (hdrs[i].len) memcpy(p, hdrs[i].value, hdrs[i].len);
      p += hdrs[i].len;
    }
  }
  return r;
}

notifd_bus_msg *nd_bus_msg_alloc(size_t extra, void **extra_out) {
  notifd_bus_msg *m = calloc(1, sizeof *m + extra);
  if (m && extra_out) *extra_out = m + 1;
  return m;
}

static void msg_free(notifd_bus_msg *m) {
  nd_bus *b = m->consumer->bus;
  if (m->raw && b->ops->msg_release) b->ops->msg_release(m);
  free(m->error);
  free(m);
}

/* ---- open / registration ---- */

static void on_stop_check(evutil_socket_t fd, short what, void *arg);

static void register_metrics(nd_bus *b) {
  nd_metrics *r = b->host->metrics;
  if (!r) return;
  static const char *const gt[] = {"group", "topic", NULL};
  static const char *const gtr[] = {"group", "topic", "reason", NULL};
  static const char *const gtp[] = {"group", "topic", "partition", NULL};
  nd_metric_register(r, ND_METRIC_COUNTER, "notifd_bus_consumed_total",
                     "Records delivered to a handler for the first time.", gt, NULL, 0,
                     &b->m.consumed);
  nd_metric_register(r, ND_METRIC_COUNTER, "notifd_bus_acked_total", "Records acknowledged.", gt,
                     NULL, 0, &b->m.acked);
  nd_metric_register(r, ND_METRIC_COUNTER, "notifd_bus_retried_total",
                     "Failed attempts scheduled for another delivery.", gt, NULL, 0,
                     &b->m.retried);
  nd_metric_register(r, ND_METRIC_COUNTER, "notifd_bus_dropped_total",
                     "Records given up by the handler (poison input).", gtr, NULL, 0,
                     &b->m.dropped);
  nd_metric_register(r, ND_METRIC_COUNTER, "notifd_bus_dead_lettered_total",
                     "Records copied to a dead-letter topic.", gt, NULL, 0, &b->m.dead_lettered);
  nd_metric_register(r, ND_METRIC_COUNTER, "notifd_bus_dead_letter_failed_total",
                     "Dead-letter copies that could not be produced (record committed anyway).",
                     gt, NULL, 0, &b->m.dead_letter_failed);
  nd_metric_register(r, ND_METRIC_GAUGE, "notifd_bus_lag",
                     "Records behind the end of the partition.", gtp, NULL, 0, &b->m.lag);
  nd_metric_register(r, ND_METRIC_HISTOGRAM, "notifd_bus_handler_seconds",
                     "Time from delivery to ack/retry/drop.", gt, NULL, 0,
                     &b->m.handler_seconds);
}

static int open_kafka(nd_bus *b, nd_cfg_node *section, nd_errors *errs) {
#if NOTIFD_WITH_KAFKA
  (void)section;
  return nd_bus_kafka_open(b, errs);
#else
  (void)b;
  return nd_errors_backend_missing(errs, section, "kafka", "Kafka");
#endif
}

int nd_bus_open(notifd_host *h, nd_bus **out, nd_errors *errs) {
  if (!h || !out) return NOTIFD_EINVAL;
  *out = NULL;
  nd_bus *b = calloc(1, sizeof *b);
  if (!b) return NOTIFD_ENOMEM;
  b->host = h;
  b->base = h->base;
  nd_cfg_node *bc = h->cfg.bus_cfg;
  const char *suffix;
  int64_t high;
  int bad = 0;
  bad |= nd_bus_cfg_str(bc, "dead_letter_suffix", ".dlq", &suffix, errs) < 0;
  bad |= nd_bus_cfg_int(bc, "max_buffered", DEFAULT_QUEUE_HIGH, &high, errs) < 0;
  if (!bad && (high < 1 || high > 10000000)) {
    nd_errors_add(errs, NULL, 0, 0, "bus.max_buffered: must be between 1 and 10000000");
    bad = 1;
  }
  b->dlq_suffix = strdup(bad ? ".dlq" : suffix);
  b->queue_high = (size_t)high;
  b->stop_ev = event_new(b->base, -1, 0, on_stop_check, b);
  if (!b->dlq_suffix || !b->stop_ev) {
    free(b->dlq_suffix);
    if (b->stop_ev) event_free(b->stop_ev);
    free(b);
    return NOTIFD_ENOMEM;
  }
  register_metrics(b);
  int rc = bad ? NOTIFD_EINVAL : 0;
  if (rc == 0) rc = h->cfg.kafka ? open_kafka(b, h->cfg.kafka, errs) : nd_bus_embedded_open(b, errs);
  if (rc < 0) {
    event_free(b->stop_ev);
    free(b->dlq_suffix);
    free(b);
    return rc;
  }
  ND_INFO("bus", "bus backend %s %s", b->ops->name,
          h->check_only ? "settings checked (--check opens nothing)" : "opened");
  *out = b;
  return 0;
}

static void consumer_free(notifd_consumer *c) {
  if (!c) return;
  for (size_t i = 0; i < c->ntopics; i++) free(c->topics[i]);
  free(c->topics);
  free(c->group);
  free(c->dead_letter_topic);
  free(c->streams);
  free(c);
}

int nd_bus_consume(nd_bus *b, notifd_plugin *owner, const notifd_consumer_opts *opts,
                   notifd_consumer **out) {
  if (!b || !opts || opts->size < offsetof(notifd_consumer_opts, max_attempts))
    return NOTIFD_EINVAL;
  if (!nd_host_registering(b->host) || b->started) return NOTIFD_ESTATE;
  notifd_consumer_opts o;
  memset(&o, 0, sizeof o);
  memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
  if (!o.topics || !o.topics[0] || !o.group || !*o.group || !o.handler) return NOTIFD_EINVAL;
  size_t nt = 0;
  while (o.topics[nt]) {
    if (!*o.topics[nt]) return NOTIFD_EINVAL;
    nt++;
  }
  notifd_consumer *c = calloc(1, sizeof *c);
  if (!c) return NOTIFD_ENOMEM;
  c->bus = b;
  c->owner = owner;
  c->handler = o.handler;
  c->ud = o.ud;
  c->on_exhausted = o.on_exhausted;
  c->start_from_latest = o.start_from_latest != 0;
  int rc = nd_retry_resolve(&o, &b->host->cfg.retry, &c->retry, &b->host->errs);
  if (rc < 0) {
    free(c);
    return rc;
  }
  c->topics = calloc(nt + 1, sizeof *c->topics);
  c->group = strdup(o.group);
  c->dead_letter_topic = o.dead_letter_topic ? strdup(o.dead_letter_topic) : NULL;
  int oom = !c->topics || !c->group || (o.dead_letter_topic && !c->dead_letter_topic);
  for (size_t i = 0; !oom && i < nt; i++) {
    for (size_t j = 0; j < i; j++)
      if (strcmp(o.topics[i], o.topics[j]) == 0) {
        consumer_free(c);
        return NOTIFD_EINVAL; /* a topic listed twice */
      }
    if (!(c->topics[i] = strdup(o.topics[i]))) oom = 1;
    else c->ntopics++;
  }
  if (!oom && b->host->check_only) { /* validated; --check registers nothing */
    consumer_free(c);
    return 0;
  }
  notifd_consumer **v = oom ? NULL : realloc(b->consumers, (b->nconsumers + 1) * sizeof *v);
  if (!v) {
    consumer_free(c);
    return NOTIFD_ENOMEM;
  }
  v[b->nconsumers++] = c;
  b->consumers = v;
  if (out) *out = c;
  ND_DEBUG("bus", "consumer group=%s topics=%zu max_attempts=%d initial=%" PRId64 "ms", c->group,
           c->ntopics, c->retry.max_attempts, c->retry.initial_ms);
  return 0;
}

void nd_bus_consumer_set_ephemeral(notifd_consumer *c) {
  if (c) c->ephemeral = 1;
}

int nd_bus_consumer_caught_up(const notifd_consumer *c) {
  if (!c || !c->nstreams) return 0; /* Kafka: not assigned yet */
  for (size_t i = 0; i < c->nstreams; i++) {
    const nd_bus_stream *s = c->streams[i];
    if (!s->at_end || s->head || s->current) return 0;
  }
  return 1;
}

int nd_bus_start(nd_bus *b) {
  if (!b) return NOTIFD_EINVAL;
  if (b->started || b->stopping) return NOTIFD_ESTATE;
  b->started = 1;
  return b->ops->start(b);
}

int nd_bus_ready(nd_bus *b) { return b && b->ops->ready(b); }

/* ---- streams ---- */

static void on_pump(evutil_socket_t fd, short what, void *arg);
static void on_retry_timer(evutil_socket_t fd, short what, void *arg);

nd_bus_stream *nd_bus_stream_add(notifd_consumer *c, const char *topic, int32_t partition) {
  const char *t = NULL;
  for (size_t i = 0; i < c->ntopics; i++)
    if (strcmp(c->topics[i], topic) == 0) t = c->topics[i];
  if (!t) return NULL;
  if (c->nstreams == c->cap_streams) {
    size_t cap = c->cap_streams ? c->cap_streams * 2 : 8;
    nd_bus_stream **v = realloc(c->streams, cap * sizeof *v);
    if (!v) return NULL;
    c->streams = v;
    c->cap_streams = cap;
  }
  nd_bus_stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->consumer = c;
  s->topic = t;
  s->partition = partition;
  s->pump_ev = event_new(c->bus->base, -1, 0, on_pump, s);
  s->retry_ev = evtimer_new(c->bus->base, on_retry_timer, s);
  if (!s->pump_ev || !s->retry_ev) {
    if (s->pump_ev) event_free(s->pump_ev);
    if (s->retry_ev) event_free(s->retry_ev);
    free(s);
    return NULL;
  }
  c->streams[c->nstreams++] = s;
  return s;
}

nd_bus_stream *nd_bus_stream_find(notifd_consumer *c, const char *topic, int32_t partition) {
  for (size_t i = 0; i < c->nstreams; i++) {
    nd_bus_stream *s = c->streams[i];
    if (s->partition == partition && strcmp(s->topic, topic) == 0) return s;
  }
  return NULL;
}

static void drop_queue(nd_bus_stream *s) {
  notifd_bus_msg *m = s->head;
  while (m) {
    notifd_bus_msg *n = m->next;
    msg_free(m);
    m = n;
  }
  s->head = s->tail = NULL;
  s->queued = 0;
}

static void orphan_link(notifd_consumer *c, notifd_bus_msg *m) {
  m->orphan = 1;
  m->stream = NULL;
  m->prev = NULL;
  m->next = c->orphans;
  if (c->orphans) c->orphans->prev = m;
  c->orphans = m;
}

static void orphan_unlink(notifd_consumer *c, notifd_bus_msg *m) {
  if (m->prev) m->prev->next = m->next;
  else c->orphans = m->next;
  if (m->next) m->next->prev = m->prev;
  m->next = m->prev = NULL;
}

static void stream_destroy(nd_bus_stream *s) {
  nd_bus *b = s->consumer->bus;
  drop_queue(s);
  if (b->ops->stream_free) b->ops->stream_free(s);
  event_free(s->pump_ev);
  event_free(s->retry_ev);
  free(s);
}

void nd_bus_stream_remove(nd_bus_stream *s) {
  notifd_consumer *c = s->consumer;
  notifd_bus_msg *m = s->current;
  s->current = NULL;
  if (m) {
    event_del(s->retry_ev);
    if (m->state == ND_MSG_HANDLING || m->state == ND_MSG_EXHAUSTED) {
      orphan_link(c, m); /* the handler still holds it */
    } else {
      msg_free(m); /* waiting for its retry: redelivered to the new owner */
    }
  }
  for (size_t i = 0; i < c->nstreams; i++)
    if (c->streams[i] == s) {
      c->streams[i] = c->streams[--c->nstreams];
      break;
    }
  stream_destroy(s);
}

void nd_bus_stream_push(nd_bus_stream *s, notifd_bus_msg *m) {
  m->consumer = s->consumer;
  m->stream = s;
  m->topic = s->topic;
  m->partition = s->partition;
  m->state = ND_MSG_QUEUED;
  m->next = NULL;
  s->at_end = 0;
  if (s->tail) s->tail->next = m;
  else s->head = m;
  s->tail = m;
  s->queued++;
  if (!s->current && !s->pumping) event_active(s->pump_ev, EV_TIMEOUT, 0);
}

void nd_bus_stream_wake(nd_bus_stream *s) {
  if (!s->current && !s->pumping) event_active(s->pump_ev, EV_TIMEOUT, 0);
}

void nd_bus_set_lag(nd_bus_stream *s, int64_t lag) {
  nd_bus *b = s->consumer->bus;
  if (!b->m.lag) return;
  char part[16];
  snprintf(part, sizeof part, "%d", (int)s->partition);
  const char *l[] = {s->consumer->group, s->topic, part};
  nd_metric_set(b->m.lag, l, (double)(lag < 0 ? 0 : lag));
}

/* ---- delivery ---- */

static void deliver(nd_bus_stream *s, notifd_bus_msg *m) {
  notifd_consumer *c = s->consumer;
  m->state = ND_MSG_HANDLING;
  m->attempt++;
  if (m->attempt == 1) {
    const char *l[] = {c->group, s->topic};
    metric_inc(c->bus->m.consumed, l);
  }
  m->handler_start = mono_s();
  m->in_handler = 1;
  c->handler(m, c->ud);
  m->in_handler = 0;
  if (m->state == ND_MSG_DONE) msg_free(m);
}

static void pump(nd_bus_stream *s) {
  nd_bus *b = s->consumer->bus;
  if (s->pumping) return;
  s->pumping = 1;
  int budget = PUMP_BUDGET;
  while (!s->current && !b->stopping && budget > 0) {
    if (!s->head || (s->paused && s->queued <= b->queue_high / 2)) b->ops->refill(s);
    notifd_bus_msg *m = s->head;
    if (!m) break;
    s->head = m->next;
    if (!s->head) s->tail = NULL;
    s->queued--;
    m->next = NULL;
    s->current = m;
    budget--;
    deliver(s, m);
  }
  s->pumping = 0;
  /* Out of budget: continue on the next loop turn (a zero timer, not
   * event_active, which would run again before any I/O or timer). */
  if (budget == 0 && !s->current && !b->stopping) {
    struct timeval zero = {0, 0};
    event_add(s->pump_ev, &zero);
  }
}

static void on_pump(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pump(arg);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_bus_stream *s = arg;
  notifd_bus_msg *m = s->current;
  if (!m || m->state != ND_MSG_WAIT_RETRY || s->consumer->bus->stopping) return;
  s->pumping = 1; /* a synchronous ack schedules the pump instead of nesting */
  deliver(s, m);
  s->pumping = 0;
  if (!s->current) event_active(s->pump_ev, EV_TIMEOUT, 0);
}

/* ---- finishing ---- */

static void observe_handler(notifd_bus_msg *m) {
  nd_bus *b = m->consumer->bus;
  if (!b->m.handler_seconds) return;
  const char *l[] = {m->consumer->group, m->topic};
  nd_metric_observe(b->m.handler_seconds, l, mono_s() - m->handler_start);
}

/* The record is finished: commit it (unless orphaned/ephemeral), free it
 * (after its handler returns) and let the partition move on. */
static void complete(notifd_bus_msg *m, int commit) {
  notifd_consumer *c = m->consumer;
  nd_bus *b = c->bus;
  nd_bus_stream *s = m->stream;
  m->state = ND_MSG_DONE;
  if (m->orphan) {
    orphan_unlink(c, m);
  } else if (s) {
    s->current = NULL;
    if (commit && !c->ephemeral) b->ops->commit(s, m->offset + 1);
    if (!s->pumping && !b->stopping) event_active(s->pump_ev, EV_TIMEOUT, 0);
  }
  if (!m->in_handler) msg_free(m);
  nd_bus_check_stop(b);
}

static int finishable(notifd_bus_msg *m) {
  if (!m) return NOTIFD_EINVAL;
  return m->state == ND_MSG_HANDLING ? 0 : NOTIFD_ESTATE;
}

int nd_bus_ack(notifd_bus_msg *m) {
  int rc = finishable(m);
  if (rc < 0) return rc;
  observe_handler(m);
  const char *l[] = {m->consumer->group, m->topic};
  metric_inc(m->consumer->bus->m.acked, l);
  complete(m, 1);
  return 0;
}

static void on_dead_letter_done(int32_t status, void *ud) {
  notifd_bus_msg *m = ud;
  notifd_consumer *c = m->consumer;
  const char *l[] = {c->group, m->topic};
  if (status < 0) {
    ND_ERROR_RL("bus",
             "dead letter for %s/%d@%" PRId64 " could not be produced (%d); committing anyway",
             m->topic, (int)m->partition, m->offset, (int)status);
    metric_inc(c->bus->m.dead_letter_failed, l);
  } else {
    metric_inc(c->bus->m.dead_lettered, l);
  }
  complete(m, 1);
}

/* Copies the record to its dead-letter topic with the error in headers,
 * then commits it when the copy is durable. */
static void dead_letter(notifd_bus_msg *m, const char *error) {
  notifd_consumer *c = m->consumer;
  nd_bus *b = c->bus;
  m->state = ND_MSG_EXHAUSTED;
  char attempts[16], part[16], off[24];
  snprintf(attempts, sizeof attempts, "%d", (int)m->attempt);
  snprintf(part, sizeof part, "%d", (int)m->partition);
  snprintf(off, sizeof off, "%" PRId64, m->offset);
  const char *err = error ? error : "";
  /* Every group that gives a record up writes its own dead letter: two
   * groups failing one record are two entries, told apart by notifd-group. */
  nd_bus_hdr extra[] = {
      {"notifd-error", err, strlen(err)},
      {"notifd-attempts", attempts, strlen(attempts)},
      {"notifd-group", c->group, strlen(c->group)},
      {"notifd-original-topic", m->topic, strlen(m->topic)},
      {"notifd-original-partition", part, strlen(part)},
      {"notifd-original-offset", off, strlen(off)},
  };
  size_t nextra = sizeof extra / sizeof extra[0];
  nd_bus_hdr *h = malloc((m->nhdrs + nextra) * sizeof *h);
  nd_buf topic;
  nd_buf_init(&topic);
  if (c->dead_letter_topic) nd_buf_puts(&topic, c->dead_letter_topic);
  else nd_buf_printf(&topic, "%s%s", m->topic, b->dlq_suffix);
  int rc = NOTIFD_ENOMEM;
  if (h && !topic.oom) {
    /* Original headers first (minus earlier notifd-* ones), then ours. */
    size_t n = 0;
    for (size_t i = 0; i < m->nhdrs; i++)
      if (strncmp(m->hdrs[i].name, "notifd-", 7) != 0) h[n++] = m->hdrs[i];
    memcpy(h + n, extra, sizeof extra);
    rc = nd_bus_produce_hdrs(b, topic.data, m->key, m->key_len, m->value, m->value_len, h,
                             n + nextra, on_dead_letter_done, m);
  }
  free(h);
  if (rc < 0) {
    ND_ERROR_RL("bus", "dead letter to %s for %s/%d@%" PRId64 " refused (%d); committing anyway",
             topic.data ? topic.data : "?", m->topic, (int)m->partition, m->offset, rc);
    const char *l[] = {c->group, m->topic};
    metric_inc(b->m.dead_letter_failed, l);
    nd_buf_free(&topic);
    complete(m, 1);
    return;
  }
  ND_WARN_RL("bus", "%s/%d@%" PRId64 " dead-lettered to %s by group %s after %d attempt(s): %s",
          m->topic, (int)m->partition, m->offset, topic.data, c->group, (int)m->attempt, err);
  nd_buf_free(&topic);
}

/* Not committed: the record comes back on the next start or to the new
 * owner of its partition. */
static void abandon(notifd_bus_msg *m) { complete(m, 0); }

int nd_bus_retry(notifd_bus_msg *m, const char *error) {
  int rc = finishable(m);
  if (rc < 0) return rc;
  observe_handler(m);
  notifd_consumer *c = m->consumer;
  nd_bus *b = c->bus;
  if (error) {
    char *e = strdup(error);
    if (e) {
      free(m->error);
      m->error = e;
    }
  }
  if (m->orphan) {
    abandon(m);
    return 0;
  }
  if (m->attempt >= c->retry.max_attempts) {
    m->state = ND_MSG_EXHAUSTED;
    if (c->on_exhausted) c->on_exhausted(m, m->error ? m->error : "", c->ud);
    dead_letter(m, m->error);
    return 0;
  }
  const char *l[] = {c->group, m->topic};
  metric_inc(b->m.retried, l);
  if (b->stopping) {
    abandon(m);
    return 0;
  }
  m->state = ND_MSG_WAIT_RETRY;
  struct timeval tv = tv_ms(nd_retry_delay_ms(&c->retry, m->attempt + 1));
  if (evtimer_add(m->stream->retry_ev, &tv) < 0) event_active(m->stream->retry_ev, EV_TIMEOUT, 0);
  return 0;
}

int nd_bus_drop(notifd_bus_msg *m, const char *reason) {
  int rc = finishable(m);
  if (rc < 0) return rc;
  observe_handler(m);
  notifd_consumer *c = m->consumer;
  const char *r = reason && *reason ? reason : "dropped";
  const char *l[] = {c->group, m->topic, r};
  metric_inc(c->bus->m.dropped, l);
  if (m->orphan) {
    abandon(m);
    return 0;
  }
  dead_letter(m, r);
  return 0;
}

/* ---- accessors ---- */

const char *nd_msg_topic(notifd_bus_msg *m) { return m ? m->topic : NULL; }
int32_t nd_msg_partition(notifd_bus_msg *m) { return m ? m->partition : -1; }
int64_t nd_msg_offset(notifd_bus_msg *m) { return m ? m->offset : -1; }
int64_t nd_msg_timestamp_ms(notifd_bus_msg *m) { return m ? m->timestamp_ms : 0; }
int32_t nd_msg_attempt(notifd_bus_msg *m) { return m ? m->attempt : 0; }

const void *nd_msg_key(notifd_bus_msg *m, size_t *len) {
  if (len) *len = m && m->key ? m->key_len : 0;
  return m ? m->key : NULL;
}

const void *nd_msg_value(notifd_bus_msg *m, size_t *len) {
  if (len) *len = m && m->value ? m->value_len : 0;
  return m ? m->value : NULL;
}

/* Kafka allows repeated header names: the last one wins. */
const void *nd_msg_header(notifd_bus_msg *m, const char *name, size_t *len) {
  if (len) *len = 0;
  if (!m || !name) return NULL;
  for (size_t i = m->nhdrs; i-- > 0;) {
    if (strcmp(m->hdrs[i].name, name) == 0) {
      if (len) *len = m->hdrs[i].len;
      /* A present, empty header is "" rather than NULL. */
      return m->hdrs[i].value ? m->hdrs[i].value : (m->hdrs[i].len ? NULL : "");
    }
  }
  return NULL;
}

/* ---- produce ---- */

int nd_bus_produce_hdrs(nd_bus *b, const char *topic, const void *key, size_t key_len,
                        const void *value, size_t value_len, const nd_bus_hdr *hdrs,
                        size_t nhdrs, notifd_produce_cb cb, void *ud) {
  if (!b || !topic || !*topic || (!key && key_len) || (!value && value_len)) return NOTIFD_EINVAL;
  for (size_t i = 0; i < nhdrs; i++)
    if (!hdrs[i].name || (!hdrs[i].value && hdrs[i].len)) return NOTIFD_EINVAL;
  nd_bus_record *r = nd_bus_record_new(topic, key, key_len, value, value_len, hdrs, nhdrs);
  if (!r) return NOTIFD_ENOMEM;
  r->cb = cb;
  r->ud = ud;
  return b->ops->produce(b, r);
}

int nd_bus_produce(nd_bus *b, const char *topic, const void *key, size_t key_len,
                   const void *value, size_t value_len, const char *const *headers,
                   notifd_produce_cb cb, void *ud) {
  size_t n = 0;
  if (headers)
    while (headers[n * 2]) {
      if (!headers[n * 2 + 1]) return NOTIFD_EINVAL; /* a name without a value */
      n++;
    }
  nd_bus_hdr stackh[8] = {{0}};
  nd_bus_hdr *h = n <= 8 ? stackh : malloc(n * sizeof *h);
  if (!h) return NOTIFD_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    h[i].name = headers[i * 2];
    h[i].value = headers[i * 2 + 1];
    h[i].len = strlen(headers[i * 2 + 1]);
  }
  int rc = nd_bus_produce_hdrs(b, topic, key, key_len, value, value_len, h, n, cb, ud);
  if (h != stackh) free(h);
  return rc;
}

/* ---- stop / free ---- */

static size_t in_flight(nd_bus *b) {
  size_t n = 0;
  for (size_t i = 0; i < b->nconsumers; i++) {
    notifd_consumer *c = b->consumers[i];
    for (size_t j = 0; j < c->nstreams; j++) n += c->streams[j]->current != NULL;
    for (notifd_bus_msg *m = c->orphans; m; m = m->next) n++;
  }
  return n;
}

void nd_bus_check_stop(nd_bus *b) {
  if (!b->stopping || b->backend_stopping) return;
  /* Checked from an event so a finishing handler's stack unwinds first. */
  event_active(b->stop_ev, EV_TIMEOUT, 0);
}

static void on_stop_check(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_bus *b = arg;
  if (!b->stopping || b->backend_stopping) return;
  if (in_flight(b) || b->ops->pending(b)) return;
  b->backend_stopping = 1;
  b->ops->finish_stop(b);
}

void nd_bus_backend_stopped(nd_bus *b) {
  void (*done)(void *) = b->stop_done;
  b->stop_done = NULL;
  ND_INFO("bus", "bus stopped");
  if (done) done(b->stop_ud);
}

void nd_bus_stop(nd_bus *b, void (*done)(void *ud), void *ud) {
  if (!b) return;
  if (b->stopping) return;
  b->stopping = 1;
  b->stop_done = done;
  b->stop_ud = ud;
  for (size_t i = 0; i < b->nconsumers; i++) {
    notifd_consumer *c = b->consumers[i];
    for (size_t j = 0; j < c->nstreams; j++) {
      nd_bus_stream *s = c->streams[j];
      drop_queue(s);
      event_del(s->pump_ev);
      if (s->current && s->current->state == ND_MSG_WAIT_RETRY) {
        event_del(s->retry_ev);
        notifd_bus_msg *m = s->current;
        s->current = NULL;
        msg_free(m);
      }
    }
  }
  if (b->started) b->ops->stop_fetching(b);
  nd_bus_check_stop(b);
}

void nd_bus_free(nd_bus *b) {
  if (!b) return;
  /* Records first: Kafka messages must be gone before their client. */
  for (size_t i = 0; i < b->nconsumers; i++) {
    notifd_consumer *c = b->consumers[i];
    for (size_t j = 0; j < c->nstreams; j++) {
      nd_bus_stream *s = c->streams[j];
      if (s->current) msg_free(s->current);
      s->current = NULL;
      stream_destroy(s);
    }
    c->nstreams = 0;
    while (c->orphans) {
      notifd_bus_msg *m = c->orphans;
      orphan_unlink(c, m);
      msg_free(m);
    }
  }
  b->ops->free(b);
  for (size_t i = 0; i < b->nconsumers; i++) consumer_free(b->consumers[i]);
  free(b->consumers);
  event_free(b->stop_ev);
  free(b->dlq_suffix);
  free(b);
}
