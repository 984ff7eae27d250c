/* The notification event stream (docs/events.md): one record per stored
 * notification, keyed by user_id, on `events_topic` (group
 * `events_group`).  A record is pushed to the user's subscriptions unless
 *
 *   notifd-delivered > 0      a socket of the user got it       "delivered"
 *   notifd-muted has "push"   the user's preferences say no     "muted"
 *   notifd-quiet: 1           the user's quiet hours            "quiet"
 *   (user_id, id) seen lately at-least-once redelivery          "duplicate"
 *
 * (each acked and counted in webpush_events_total{result}).  A user a
 * lookup found without any subscription is remembered for NO_SUBS_TTL_MS
 * (forgotten at once when a subscription is stored through this process),
 * so a busy node where few users subscribed does not read the store for
 * every notification: with several webpush processes on one MongoDB, a
 * subscription stored through another one is seen within that time.  An invalid
 * record is dropped to the dead-letter topic with the reason ("invalid").
 * Otherwise the send job is queued as for POST /push/send and the record
 * acked once its deliveries are started ("pushed", "no_subscriptions");
 * a store error is retried with the consumer's backoff ("failed", then
 * dead-lettered when attempts run out).  Push stays best effort: the
 * deliveries themselves are not waited for. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pc_event.h"
#include "webpush.h"

#define NO_SUBS_TTL_MS 10000
#define NO_SUBS_MAX 100000 /* then the memory starts over */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wp_events_count(webpush *wp, const char *result) {
  const char *v[] = {result};
  wp->api->metric_add(wp->m_events, v, 1);
}

/* 1 while `user` is remembered without a subscription. */
static int no_subs_known(webpush *wp, const char *user, int64_t now) {
  void *v = pc_map_get(&wp->no_subs, user);
  if (!v) return 0;
  if ((int64_t)(uintptr_t)v > now) return 1;
  pc_map_del(&wp->no_subs, user);
  return 0;
}

/* The lookup of a job submitted before a subscription was stored here
 * may have missed it: only later ones are remembered. */
static void no_subs_remember(webpush *wp, const wp_job *j) {
  if (j->submitted_ms <= wp->subs_changed_ms) return;
  if (wp->no_subs.count >= NO_SUBS_MAX) {
    pc_map_free(&wp->no_subs, NULL);
    pc_map_init(&wp->no_subs);
  }
  /* Out of memory only costs a lookup next time. */
  (void)pc_map_put(&wp->no_subs, j->user_id, (void *)(uintptr_t)(now_ms() + NO_SUBS_TTL_MS));
}

void wp_events_subscribed(webpush *wp, const char *user) {
  wp->subs_changed_ms = now_ms();
  pc_map_del(&wp->no_subs, user);
}

void wp_events_send_done(wp_job *j, size_t queued) {
  webpush *wp = j->wp;
  notifd_bus_msg *m = j->msg;
  j->msg = NULL;
  if (j->rc < 0) {
    pc_recent_forget(wp->recent, j->user_id, j->event_id);
    wp_events_count(wp, "failed");
    wp->api->bus_retry(m, j->err);
    return;
  }
  if (j->nsubs == 0) no_subs_remember(wp, j);
  wp_events_count(wp, queued ? "pushed" : "no_subscriptions");
  wp->api->bus_ack(m);
}

/* Invalid: dead-lettered with the reason, never retried. */
static void drop_invalid(webpush *wp, notifd_bus_msg *m, const char *why) {
  const notifd_api *api = wp->api;
  api->log(wp->self, NOTIFD_LOG_WARN, "event %s[%d]@%lld dropped: %s", api->msg_topic(m),
           (int)api->msg_partition(m), (long long)api->msg_offset(m), why);
  wp_events_count(wp, "invalid");
  api->bus_drop(m, why);
}

/* Queues the send job for a parsed, wanted event; finishes `m` itself
 * when that fails. */
static void queue_send(webpush *wp, notifd_bus_msg *m, const pc_event *ev) {
  const notifd_api *api = wp->api;
  pc_buf plain;
  pc_buf_init(&plain);
  pc_event_put_notification(ev, &plain);
  char *full = pc_buf_steal(&plain, NULL);
  json_t *id = json_integer(ev->id);
  wp_job *j = full && id ? wp_job_new(wp, NULL) : NULL;
  if (j && (j->user_id = strdup(ev->user_id.data))) {
    j->payload = wp_payload_fit(wp, full, id, ev->type.data, &j->payload_len);
    full = NULL;
  }
  json_decref(id);
  free(full);
  if (!j || !j->user_id || !j->payload) {
    /* With the text built, only a notification_type too long for the stub
     * makes the payload NULL; it will not fit on another attempt. */
    int too_large = j && j->user_id && !j->payload;
    wp_job_free(j);
    pc_recent_forget(wp->recent, ev->user_id.data, ev->id);
    if (too_large) {
      drop_invalid(wp, m, "notification too large to push");
    } else {
      wp_events_count(wp, "failed");
      api->bus_retry(m, "out of memory");
    }
    return;
  }
  j->msg = m;
  j->event_id = ev->id;
  j->submitted_ms = now_ms();
  if (wp_send_submit(j) < 0) { /* j is freed */
    pc_recent_forget(wp->recent, ev->user_id.data, ev->id);
    wp_events_count(wp, "failed");
    api->bus_retry(m, "cannot queue the push (shutting down)");
  }
}

static void on_event(notifd_bus_msg *m, void *ud) {
  webpush *wp = ud;
  const notifd_api *api = wp->api;
  size_t len = 0;
  const void *value = api->msg_value(m, &len);
  pc_event ev;
  pc_event_init(&ev);
  const char *why = NULL;
  if (pc_event_parse(value, len, &ev, &why) < 0) {
    if (strcmp(why, "out of memory") == 0) {
      wp_events_count(wp, "failed");
      api->bus_retry(m, why);
    } else {
      drop_invalid(wp, m, why);
    }
    pc_event_free(&ev);
    return;
  }
  const char *skip = pc_event_skip_reason(api, m, "push", 1);
  if (!skip && no_subs_known(wp, ev.user_id.data, now_ms())) skip = "no_subscriptions";
  int claim = skip ? 0 : pc_recent_claim(wp->recent, ev.user_id.data, ev.id, now_ms());
  if (skip || claim == 1) {
    wp_events_count(wp, skip ? skip : "duplicate");
    api->bus_ack(m);
  } else if (claim < 0) {
    wp_events_count(wp, "failed");
    api->bus_retry(m, "out of memory");
  } else {
    queue_send(wp, m, &ev);
  }
  pc_event_free(&ev);
}

int wp_events_register(webpush *wp) {
  if (!*wp->events_topic) return 0;
  const char *topics[] = {wp->events_topic, NULL};
  notifd_consumer_opts o = {.size = sizeof o,
                            .topics = topics,
                            .group = wp->events_group,
                            .handler = on_event,
                            .ud = wp,
                            .max_attempts = -1,
                            /* A new group does not push the retained past. */
                            .start_from_latest = 1};
  notifd_consumer *c = NULL;
  int rc = wp->api->bus_consume(wp->self, &o, &c);
  if (rc < 0)
    wp->api->log(wp->self, NOTIFD_LOG_ERROR, "cannot consume %s (group %s): error %d",
                 wp->events_topic, wp->events_group, rc);
  return rc;
}
