/* chat_change_handler internals. */
#ifndef CH_INTERNAL_H
#define CH_INTERNAL_H

#include <notifd/plugin.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_debezium.h"
#include "pc_time.h"

enum { CH_TARGET_CHAT_WS = 0, CH_TARGET_NOTIFICATIONS, CH_TARGETS };
#define CH_ALL_TARGETS ((1u << CH_TARGETS) - 1)

typedef struct ch_plugin ch_plugin;
typedef struct ch_event ch_event;
typedef struct ch_memo ch_memo;

typedef struct ch_metrics {
  notifd_metric *success;   /* {event_type} */
  notifd_metric *failed;    /* {event_type}, once per failed attempt */
  notifd_metric *dropped;   /* {dropped_reason} */
  notifd_metric *ignored;   /* {reason}: tombstone, heartbeat, transaction */
  notifd_metric *exhausted; /* records given up after the last retry */
  notifd_metric *forward;   /* {target, outcome} seconds */
} ch_metrics;

typedef struct ch_call {
  ch_event *ev;
  int target;            /* CH_TARGET_* */
  int64_t t0_ns;
} ch_call;

/* One consumed record between the bus handler and its ack/retry/drop. */
struct ch_event {
  ch_event *prev, *next;
  ch_plugin *pl;
  notifd_bus_msg *m;
  char *key;             /* the record key verbatim (NUL-terminated copy) */
  chat_change change;
  char *body;            /* ChatMessage as Go JSON, the forwarded body */
  size_t body_len;
  unsigned done;         /* targets delivered (this or an earlier attempt) */
  unsigned too_large;    /* targets that answered 413 to this record */
  int pending;           /* forwards in flight, +1 while starting them */
  char err[600];         /* aggregated errors of this attempt */
  ch_call call[CH_TARGETS];
};

/* A fire-and-forget close call after exhaustion. */
typedef struct ch_close {
  struct ch_close *prev, *next;
  ch_plugin *pl;
  char *stream_id;
  int64_t t0_ns;
} ch_close;

struct ch_plugin {
  notifd_plugin *self;
  const notifd_api *api;
  /* configuration (strings owned by the host) */
  const char *topic, *group, *dead_letter_topic;
  const char *chat_ws_url, *notifications_url; /* without a trailing '/' */
  char *chat_ws_base, *notifications_base;      /* owned, trimmed copies */
  int64_t chat_ws_timeout_ms, notifications_timeout_ms, close_timeout_ms;
  int32_t dedupe;
  int64_t dedupe_ttl_ms;
  int64_t max_key_bytes;
  int32_t forward_reads;
  int32_t close_on_exhausted;
  notifd_consumer *consumer;
  ch_metrics m;
  ch_event *events;       /* in flight */
  ch_close *closes;       /* in flight */
  ch_memo *memo;
};

/* ch_pipeline.c */
void ch_on_record(notifd_bus_msg *m, void *ud);
void ch_on_exhausted(notifd_bus_msg *m, const char *error, void *ud);
void ch_event_free(ch_event *ev);
void ch_close_free(ch_close *c);

/* ch_forward.c: starts the calls for every target not in ev->done; calls
 * ch_forward_finished(ev) once all of them reported. */
void ch_forward(ch_event *ev);
void ch_forward_finished(ch_event *ev);
/* POST {chat_ws}/chat/streams/{stream_id}/close (fire and forget). */
void ch_close_stream(ch_plugin *pl, const char *stream_id);
/* Percent-encodes for a query value or path segment (RFC 3986 unreserved
 * kept); malloc'd or NULL. */
char *ch_url_encode(const char *s);

/* ch_memo.c: which targets a record already reached, across attempts,
 * keyed by (topic, partition, offset).  Bounded; the oldest entry goes. */
int ch_memo_new(size_t cap, ch_memo **out);
void ch_memo_free(ch_memo *mm);
unsigned ch_memo_get(ch_memo *mm, notifd_bus_msg *m, const notifd_api *api);
void ch_memo_put(ch_memo *mm, notifd_bus_msg *m, const notifd_api *api, unsigned done);
void ch_memo_forget(ch_memo *mm, notifd_bus_msg *m, const notifd_api *api);


#endif
