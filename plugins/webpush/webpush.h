/* The webpush plugin's shared state, and the units of work that outlive a
 * callback: a job on the worker pool (a store call for a request, or the
 * preparation of a send), and one delivery to one push service. */
#ifndef WEBPUSH_H
#define WEBPUSH_H

#include <jansson.h>
#include <notifd/plugin.h>
#include <stdint.h>

#include "pc_buf.h"
#include "pc_event.h"
#include "pc_map.h"
#include "wp_crypto.h"
#include "wp_store.h"

typedef struct wp_job wp_job;
typedef struct wp_delivery wp_delivery;

typedef struct webpush {
  notifd_plugin *self;
  const notifd_api *api;

  /* config (strings owned by the host) */
  uint32_t auth, send_auth;
  const char *subject, *vapid_private_key, *store_path;
  const char *store_kind, *collection, *mongo_uri, *mongo_db;
  const char *events_topic, *events_group;
  int32_t allow_insecure;
  int64_t max_per_user, ttl_s, max_payload, timeout_ms, max_pending;
  int64_t retry_attempts, retry_initial_ms, retry_max_ms;
  int64_t dedupe_entries, dedupe_age_ms;

  wp_vapid vapid;    /* loaded in start() */
  wp_store *store;   /* opened in start() */
  notifd_timer *prepare_timer;
  pc_recent *recent; /* events seen lately: (user_id, id) */
  /* Users a lookup just found without a subscription -> until when (ms,
   * monotonic) events for them skip the store (wp_events.c). */
  pc_map no_subs;
  int64_t subs_changed_ms; /* the last subscription written here */

  notifd_metric *m_sends, *m_pending, *m_events;

  /* runtime, loop thread only */
  int stopping;
  wp_job *jobs;            /* every job submitted and not yet done */
  wp_delivery *deliveries; /* every delivery in a call or waiting to retry */
  int64_t ndeliveries;
} webpush;

/* One worker-pool job; `run` on the worker, `done` on the loop (skipped
 * when the plugin is stopping), then the job is freed. */
struct wp_job {
  webpush *wp;
  wp_job *prev, *next;
  notifd_req *req;
  notifd_bus_msg *msg;  /* send for an event: finished in done */
  int64_t event_id;
  int64_t submitted_ms; /* event sends: monotonic ms at submit */
  void (*run)(wp_job *j);
  void (*done)(wp_job *j);
  /* inputs */
  char *user_id;
  wp_sub sub;           /* subscribe: the new one; unsubscribe: endpoint */
  char *payload;        /* send: the plaintext JSON */
  size_t payload_len;
  /* results */
  int rc;
  char err[256];
  wp_sub *subs;         /* list / send: the user's subscriptions */
  size_t nsubs;
  wp_delivery **ready;  /* send: the prepared deliveries (NULL = skipped) */
};

struct wp_delivery {
  webpush *wp;
  wp_delivery *prev, *next;
  int linked;           /* in wp->deliveries (loop thread only) */
  char *user_id, *endpoint;
  pc_buf body;          /* the encrypted payload */
  pc_buf authz;         /* "Authorization: vapid t=..., k=..." */
  int attempt;          /* calls made so far */
  notifd_timer *timer;  /* waiting to retry */
};

/* webpush.c */
void wp_count(webpush *wp, const char *result);
/* Submits `j` (linked into wp->jobs); on failure frees it and returns < 0. */
int wp_job_submit(wp_job *j);
wp_job *wp_job_new(webpush *wp, notifd_req *req);
void wp_job_free(wp_job *j);
/* The user a request acts for, or NULL after answering 400/403 itself. */
const char *wp_req_user(webpush *wp, notifd_req *req);

/* wp_http.c: the subscription routes and the public key. */
int wp_http_register(webpush *wp);

/* wp_send.c: POST /push/send and the deliveries. */
int wp_send_register(webpush *wp);
void wp_delivery_free(wp_delivery *d);
/* The plaintext for `full` (malloc'd notification JSON, taken): itself, or
 * over max_payload the stub {"id","notification_type","truncated":true};
 * NULL when even the stub is too large or memory ran out. */
char *wp_payload_fit(webpush *wp, char *full, const json_t *id, const char *type, size_t *len);
/* Queues the send job `j` (user_id and payload set): the user's
 * subscriptions are read and encrypted for on a worker, then delivered. */
int wp_send_submit(wp_job *j);

/* wp_events.c: the notification event stream consumer. */
int wp_events_register(webpush *wp);
void wp_events_count(webpush *wp, const char *result);
/* A send job for an event finished (queued, or failed: rc < 0). */
void wp_events_send_done(wp_job *j, size_t queued);
/* A subscription of `user` was stored: events for them look it up again. */
void wp_events_subscribed(webpush *wp, const char *user);

#endif
