/* Internals shared by the bus core (bus.c: ack/retry/drop, order, dead
 * letters, metrics) and its two backends (bus_embedded.c, bus_kafka.c).
 *
 * Model: a consumer owns one stream per (topic, partition) it is assigned.
 * A stream holds a local queue of fetched records and at most ONE record in
 * flight (in the handler, waiting for its retry timer, or being
 * dead-lettered), which keeps per-partition order trivially.  When that
 * record is finished, the backend is told to commit offset+1.  Loop thread
 * only. */
#ifndef ND_BUS_INTERNAL_H
#define ND_BUS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "bus/bus.h"
#include "metrics/metrics.h"

typedef struct nd_bus_stream nd_bus_stream;

/* A header as seen by consumers: name and value point into memory owned by
 * the message (or the backend's record); `value` NULL = null header. */
typedef struct nd_bus_hdr {
  const char *name;
  const void *value;
  size_t len;
} nd_bus_hdr;

/* A record to produce: one allocation holding copies of everything. */
typedef struct nd_bus_record {
  struct nd_bus_record *next;
  char *topic;
  void *key;            /* NULL = null key */
  size_t key_len;
  void *value;          /* NULL = null value */
  size_t value_len;
  nd_bus_hdr *hdrs;
  size_t nhdrs;
  notifd_produce_cb cb; /* may be NULL */
  void *ud;
} nd_bus_record;

/* Copies everything into one allocation; NULL on OOM. */
nd_bus_record *nd_bus_record_new(const char *topic, const void *key, size_t key_len,
                                 const void *value, size_t value_len, const nd_bus_hdr *hdrs,
                                 size_t nhdrs);

typedef struct nd_retry_policy {
  int32_t max_attempts;
  int64_t initial_ms, max_ms;
  double multiplier, jitter;
} nd_retry_policy;

/* Resolves a consumer's policy: explicit opts > environment
 * (CHAT_PERSISTENCE_CHANGE_KAFKA_CONSUMER_INFO_MESSAGE_RETRY_*, then
 * MESSAGE_RETRY_*) > bus.retry config > built-in.  Malformed environment
 * values are added to `errs` and make it return NOTIFD_EINVAL. */
int nd_retry_resolve(const notifd_consumer_opts *o, const nd_retry_cfg *cfg, nd_retry_policy *out,
                     nd_errors *errs);
/* Wait before attempt `next_attempt` (>= 2): initial * mult^(n-2), capped,
 * minus up to jitter*wait at random. */
int64_t nd_retry_delay_ms(const nd_retry_policy *p, int32_t next_attempt);

enum nd_msg_state {
  ND_MSG_QUEUED = 0,   /* fetched, waiting for its turn */
  ND_MSG_HANDLING,     /* handed to the handler, not finished */
  ND_MSG_WAIT_RETRY,   /* retry timer armed */
  ND_MSG_EXHAUSTED,    /* on_exhausted running / dead letter in flight */
  ND_MSG_DONE          /* finished; freed when the handler returns */
};

struct notifd_bus_msg {
  notifd_bus_msg *next;      /* stream queue / orphan list links */
  notifd_bus_msg *prev;
  nd_bus_stream *stream;     /* NULL once orphaned (partition revoked) */
  notifd_consumer *consumer;
  const char *topic;         /* the consumer's copy of the topic name */
  int32_t partition;
  int64_t offset;
  int64_t timestamp_ms;
  const void *key;
  size_t key_len;
  const void *value;
  size_t value_len;
  nd_bus_hdr *hdrs;
  size_t nhdrs;
  int32_t attempt;           /* deliveries so far */
  int state;                 /* enum nd_msg_state */
  int in_handler;            /* free deferred until the handler returns */
  int orphan;
  char *error;               /* last retry error (for dead-letter headers) */
  double handler_start;       /* monotonic seconds of this delivery */
  void *raw;                 /* backend's record (rd_kafka_message_t) */
};

struct nd_bus_stream {
  notifd_consumer *consumer;
  const char *topic;         /* the consumer's copy */
  int32_t partition;
  notifd_bus_msg *head, *tail; /* fetched, not yet delivered */
  size_t queued;
  notifd_bus_msg *current;   /* the one record in flight, or NULL */
  struct event *pump_ev;     /* delivers queued records (event_active) */
  struct event *retry_ev;    /* the current record's backoff */
  int pumping;
  int paused;                /* backend flow control (Kafka pause) */
  int at_end;                /* the backend read the partition to its end
                                (embedded: a short fetch; Kafka: EOF, for
                                the operator tail only); a push clears it */
  void *impl;                /* backend per-stream state */
};

struct notifd_consumer {
  nd_bus *bus;
  notifd_plugin *owner;      /* NULL for the operator tool */
  char **topics;             /* NULL-terminated copies */
  size_t ntopics;
  char *group;
  notifd_bus_handler handler;
  void *ud;
  notifd_bus_exhausted_cb on_exhausted;
  nd_retry_policy retry;
  char *dead_letter_topic;   /* NULL = "<topic><bus suffix>" */
  int start_from_latest;
  int ephemeral;             /* operator tail: never commits */
  int64_t tail_last;         /* operator tail without -B: a new stream starts
                                this many records before the end (0 = at it) */
  nd_bus_stream **streams;
  size_t nstreams, cap_streams;
  notifd_bus_msg *orphans;   /* finished-later records of revoked streams */
  void *impl;                /* backend per-consumer state */
};

typedef struct nd_bus_ops {
  const char *name;
  int (*start)(nd_bus *b);
  /* Stop fetching (the core stops delivering). */
  void (*stop_fetching)(nd_bus *b);
  /* Everything in flight is finished: commit and close; call
   * nd_bus_backend_stopped(b) when done (may be synchronous). */
  void (*finish_stop)(nd_bus *b);
  /* Produce requests not yet reported. */
  size_t (*pending)(nd_bus *b);
  void (*free)(nd_bus *b);
  int (*ready)(nd_bus *b);
  /* Takes the record (also on failure). 0 = queued: rec->cb will run
   * later on the loop; < 0 = refused, the callback is never called. */
  int (*produce)(nd_bus *b, nd_bus_record *rec);
  /* `s`'s records up to next_offset-1 are finished. */
  void (*commit)(nd_bus_stream *s, int64_t next_offset);
  /* The stream's queue ran low: fetch more (embedded) or resume (Kafka).
   * Called from the pump; may append synchronously. */
  void (*refill)(nd_bus_stream *s);
  void (*stream_free)(nd_bus_stream *s);
  void (*msg_release)(notifd_bus_msg *m);
} nd_bus_ops;

typedef struct nd_bus_metrics {
  nd_metric *consumed, *acked, *retried, *dropped, *dead_lettered, *dead_letter_failed, *lag,
      *handler_seconds;
} nd_bus_metrics;

struct nd_bus {
  notifd_host *host;
  struct event_base *base;
  const nd_bus_ops *ops;
  void *impl;
  notifd_consumer **consumers;
  size_t nconsumers;
  char *dlq_suffix;
  size_t queue_high;         /* local queue size that pauses a partition */
  int started, stopping, backend_stopping;
  void (*stop_done)(void *);
  void *stop_ud;
  struct event *stop_ev;     /* re-checks stop progress outside callbacks */
  nd_bus_metrics m;
};

extern const nd_bus_ops nd_bus_embedded_ops;
extern const nd_bus_ops nd_bus_kafka_ops;

/* Backend open functions: fill b->impl (and read their config). */
int nd_bus_embedded_open(nd_bus *b, nd_errors *errs);
int nd_bus_kafka_open(nd_bus *b, nd_errors *errs);

/* ---- core services for the backends ---- */
/* A new stream for (topic, partition) of consumer `c` (topic must be one
 * of c->topics; the stored pointer is c's copy).  NULL on OOM. */
nd_bus_stream *nd_bus_stream_add(notifd_consumer *c, const char *topic, int32_t partition);
/* Partition revoked: queued records are dropped uncommitted, the record in
 * flight is orphaned (finishing it later commits nothing). */
void nd_bus_stream_remove(nd_bus_stream *s);
nd_bus_stream *nd_bus_stream_find(notifd_consumer *c, const char *topic, int32_t partition);
/* Appends a fetched record (`m` from nd_bus_msg_alloc) and schedules
 * delivery. */
void nd_bus_stream_push(nd_bus_stream *s, notifd_bus_msg *m);
/* Schedules the pump (e.g. after new records were announced). */
void nd_bus_stream_wake(nd_bus_stream *s);
/* calloc of sizeof(notifd_bus_msg) + extra bytes (returned in *extra). */
notifd_bus_msg *nd_bus_msg_alloc(size_t extra, void **extra_out);
/* Backend finished its stop sequence. */
void nd_bus_backend_stopped(nd_bus *b);
/* The stop sequence may be able to progress (a produce completed...). */
void nd_bus_check_stop(nd_bus *b);
void nd_bus_set_lag(nd_bus_stream *s, int64_t lag);
/* Operator tail: the consumer never commits. */
void nd_bus_consumer_set_ephemeral(notifd_consumer *c);
/* 1 when every partition of c was read to its end and everything fetched
 * was finished (the operator tail's "print what exists and exit"). */
int nd_bus_consumer_caught_up(const notifd_consumer *c);
/* Produce with headers that may hold binary values (dead letters). */
int nd_bus_produce_hdrs(nd_bus *b, const char *topic, const void *key, size_t key_len,
                        const void *value, size_t value_len, const nd_bus_hdr *hdrs,
                        size_t nhdrs, notifd_produce_cb cb, void *ud);

/* Small config helpers shared by the backends (mark keys used). */
int nd_bus_cfg_int(nd_cfg_node *map, const char *key, int64_t def, int64_t *out, nd_errors *e);
int nd_bus_cfg_dur(nd_cfg_node *map, const char *key, int64_t def, int64_t *out, nd_errors *e);
int nd_bus_cfg_str(nd_cfg_node *map, const char *key, const char *def, const char **out,
                   nd_errors *e);
/* A byte count (nd_cfg_as_size: 1048576, 512KiB, 1GiB, ...). */
int nd_bus_cfg_bytes(nd_cfg_node *map, const char *key, int64_t def, int64_t *out, nd_errors *e);

#endif
