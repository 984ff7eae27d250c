/* The notification event stream (docs/events.md): every stored
 * notification is produced once, after its commit, to `events_topic`
 * (default "notification-events"; "" = off) with key = user_id and value
 *
 *   {"id":42,"user_id":"u1","notification_type":"...","timestamp":"...",
 *    "payload":{...}}
 *
 * (timestamp and payload: the websocket frame's bytes) and the headers
 * notifd-delivered (sockets reached here; absent on a replay),
 * notifd-muted (channels the preferences turn off for the type) and
 * notifd-quiet ("1" in quiet hours).
 *
 * At least once, by an outbox: a row is stored with event_sent = 0; a
 * produce the bus confirmed puts (user, id) on a list that the next group
 * commit marks sent in its own transaction (or, when no batch comes, a
 * marks-only batch from the EV_TICK_MS timer).  On MongoDB the marks are
 * one more command per batch, which FerretDB v1 runs as a read of the whole
 * collection, so there they ride on the first batch after each tick (or
 * once EV_MARKS_MAX are waiting): a crash replays at most about a tick more
 * of events (consumers dedupe).  At start, and after a
 * produce failed (EV_RETRY_MS later), the unsent rows of the last
 * `events_replay_window` are produced again, oldest first, in rounds of
 * EV_ROUND_MAX: a round's produces are confirmed and marked before the next
 * round reads.  A consumer may see an event twice; it dedupes on
 * (user_id, id). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifications_ws.h"
#include "pc_jenc.h"

#define EV_TICK_MS 500
#define EV_RETRY_MS 5000
#define EV_ROUND_MAX 500
#define EV_MARKS_MAX 1024

static const char *const result_labels[] = {"result", NULL};

typedef struct ev_pending {
  notif_ws *s;
  int64_t id;
  int replay;
  char user[]; /* NUL-terminated */
} ev_pending;

static void count(notif_ws *s, const char *result) {
  const char *v[] = {result};
  s->api->metric_add(s->m_events, v, 1);
}

void inbox_sent_free(inbox_sent *sent, size_t n) {
  for (size_t i = 0; sent && i < n; i++) free(sent[i].user_id);
  free(sent);
}

inbox_sent *events_take_sent(notif_ws *s, size_t *n) {
  inbox_sent *out = s->ev_sent;
  *n = s->ev_nsent;
  s->ev_sent = NULL;
  s->ev_nsent = s->ev_capsent = 0;
  return out;
}

/* Appends `n` marks (taking their strings); on OOM they are dropped (the
 * events replay after a restart: a duplicate, never a loss). */
static void add_sent(notif_ws *s, inbox_sent *sent, size_t n) {
  if (s->ev_nsent + n > s->ev_capsent) {
    size_t cap = s->ev_capsent ? s->ev_capsent : 64;
    while (cap < s->ev_nsent + n) cap *= 2;
    inbox_sent *more = realloc(s->ev_sent, cap * sizeof *more);
    if (!more) {
      for (size_t i = 0; i < n; i++) free(sent[i].user_id);
      return;
    }
    s->ev_sent = more;
    s->ev_capsent = cap;
  }
  memcpy(s->ev_sent + s->ev_nsent, sent, n * sizeof *sent);
  s->ev_nsent += n;
}

inbox_sent *events_take_due(notif_ws *s, size_t *n) {
  if (s->mongo && !s->ev_marks_due && s->ev_nsent < EV_MARKS_MAX) {
    *n = 0;
    return NULL;
  }
  s->ev_marks_due = 0;
  return events_take_sent(s, n);
}

void events_return_sent(notif_ws *s, inbox_sent *sent, size_t n) {
  if (!sent) return;
  add_sent(s, sent, n);
  free(sent);
}

/* ---- producing ---- */

static void round_step(notif_ws *s);

static void on_produced(int32_t status, void *ud) {
  ev_pending *p = ud;
  notif_ws *s = p->s;
  if (status == 0) {
    count(s, p->replay ? "replayed" : "produced");
    inbox_sent mark = {.user_id = strdup(p->user), .id = p->id};
    if (mark.user_id) add_sent(s, &mark, 1);
  } else {
    count(s, "failed");
    if (!s->ev_failed)
      s->api->log(s->self, NOTIFD_LOG_WARN,
                  "events: producing to %s failed (%d); unsent events replay in %ds",
                  s->events_topic, (int)status, EV_RETRY_MS / 1000);
    s->ev_failed = 1;
    s->ev_retry_at_ms = notif_now_ms() + EV_RETRY_MS;
  }
  int replay = p->replay;
  free(p);
  if (replay && --s->ev_round_left == 0) round_step(s);
}

/* Produces one event; delivered < 0 leaves notifd-delivered out. */
static void produce(notif_ws *s, const inbox_rec *r, const char *name, int64_t delivered,
                    int replay) {
  pc_buf v, muted;
  pc_buf_init(&v);
  pc_buf_init(&muted);
  pc_buf_printf(&v, "{\"id\":%lld,\"user_id\":", (long long)r->id);
  pc_json_put_cstring(&v, r->user_id);
  pc_buf_puts(&v, ",\"notification_type\":");
  pc_json_put_cstring(&v, r->type);
  pc_buf_puts(&v, ",\"timestamp\":");
  pc_buf_puts(&v, r->ts);
  pc_buf_puts(&v, ",\"payload\":");
  pc_buf_puts(&v, r->payload);
  pc_buf_putc(&v, '}');
  int quiet = 0;
  prefs_event_flags(s, r->user_id, r->type, name, &muted, &quiet);
  char dtext[24];
  const char *h[7];
  size_t nh = 0;
  if (delivered >= 0) {
    snprintf(dtext, sizeof dtext, "%lld", (long long)delivered);
    h[nh++] = "notifd-delivered";
    h[nh++] = dtext;
  }
  if (muted.len && pc_buf_cstr(&muted)) {
    h[nh++] = "notifd-muted";
    h[nh++] = muted.data;
  }
  if (quiet) {
    h[nh++] = "notifd-quiet";
    h[nh++] = "1";
  }
  h[nh] = NULL;
  size_t ulen = strlen(r->user_id);
  ev_pending *p = malloc(sizeof *p + ulen + 1);
  int rc = NOTIFD_ENOMEM, held = 0;
  if (p && !v.oom && !muted.oom) {
    p->s = s;
    p->id = r->id;
    p->replay = replay;
    memcpy(p->user, r->user_id, ulen + 1);
    held = replay;
    s->ev_round_left += (size_t)held; /* before: the callback may run inside the call */
    rc = s->api->bus_produce(s->self, s->events_topic, r->user_id, ulen, v.data, v.len, h,
                             on_produced, p);
  }
  pc_buf_free(&v);
  pc_buf_free(&muted);
  if (rc < 0) { /* the callback never runs */
    s->ev_round_left -= (size_t)held;
    free(p);
    count(s, "failed");
    s->ev_failed = 1;
    s->ev_retry_at_ms = notif_now_ms() + EV_RETRY_MS;
    return;
  }
}

void events_publish(notif_ws *s, const inbox_rec *rec, const pc_notification_kind *kind,
                    uint32_t delivered) {
  if (!s->events_topic || rec->id < 0) return;
  produce(s, rec, kind->name, delivered, 0);
}

/* ---- marks-only batches ---- */

typedef struct sent_job {
  nw_job base;
  inbox_sent *sent;
  size_t n;
  int rc;
  char err[200];
} sent_job;

static void sent_work(nw_job *j) {
  sent_job *sj = (sent_job *)j;
  inbox_store *st = j->s->store;
  sj->rc = st->ops->insert_batch(st, NULL, 0, sj->sent, sj->n, sj->err, sizeof sj->err);
}

static void sent_release(nw_job *j) {
  sent_job *sj = (sent_job *)j;
  events_return_sent(j->s, sj->sent, sj->n);
  free(sj);
}

static void sent_done(nw_job *j) {
  sent_job *sj = (sent_job *)j;
  notif_ws *s = j->s;
  s->ev_flush_busy = 0;
  if (sj->rc < 0) {
    s->api->log(s->self, NOTIFD_LOG_WARN, "events: marking %zu event(s) sent failed: %s", sj->n,
                sj->err);
    events_return_sent(s, sj->sent, sj->n);
  } else {
    inbox_sent_free(sj->sent, sj->n);
  }
  free(sj);
  /* A replay round finished confirming: the next one reads after the marks. */
  if (s->ev_replaying && s->ev_round_left == 0) round_step(s);
}

/* Commits the marks now unless a batch is about to carry them. */
static int flush_sent(notif_ws *s) {
  if (s->ev_flush_busy || !s->ev_nsent || (s->mongo && !s->mongo_ready)) return -1;
  sent_job *sj = calloc(1, sizeof *sj);
  if (!sj) return -1;
  sj->sent = events_take_sent(s, &sj->n);
  return nw_job_start(s, &sj->base, sent_work, sent_done, sent_release, &s->ev_flush_busy);
}

/* ---- replay ---- */

typedef struct outbox_job {
  nw_job base;
  int64_t since_ms;
  inbox_rec *recs;
  size_t n;
  prefs_load prefs; /* of the rows' users */
  int rc;
  char err[200];
} outbox_job;

static void outbox_work(nw_job *j) {
  outbox_job *rj = (outbox_job *)j;
  inbox_store *st = j->s->store;
  rj->rc = st->ops->unsent(st, rj->since_ms, EV_ROUND_MAX, &rj->recs, &rj->n, rj->err,
                           sizeof rj->err);
  if (rj->rc < 0 || !rj->n) return;
  if (prefs_load_init(&rj->prefs, rj->n) < 0) return; /* headers without preferences */
  for (size_t i = 0; i < rj->n; i++) prefs_load_add(&rj->prefs, rj->recs[i].user_id);
  prefs_load_work(&rj->prefs, st);
}

static void outbox_free(outbox_job *rj) {
  inbox_recs_free(rj->recs, rj->n);
  prefs_load_free(&rj->prefs);
  free(rj);
}

static void outbox_release(nw_job *j) { outbox_free((outbox_job *)j); }

static void outbox_done(nw_job *j) {
  outbox_job *rj = (outbox_job *)j;
  notif_ws *s = j->s;
  s->ev_reading = 0;
  if (rj->rc < 0) {
    s->api->log(s->self, NOTIFD_LOG_WARN, "events: reading unsent events failed: %s", rj->err);
    s->ev_replaying = 0;
    s->ev_failed = 1;
    s->ev_retry_at_ms = notif_now_ms() + EV_RETRY_MS;
    outbox_free(rj);
    return;
  }
  prefs_load_done(s, &rj->prefs);
  if (rj->n)
    s->api->log(s->self, NOTIFD_LOG_INFO, "events: replaying %zu unsent event(s)", rj->n);
  s->ev_round_full = rj->n == EV_ROUND_MAX;
  s->ev_round_left = 1; /* held while producing: callbacks may run inside bus_produce */
  for (size_t i = 0; i < rj->n; i++) {
    const inbox_rec *r = &rj->recs[i];
    const pc_notification_kind *k = types_find(s, r->type, strlen(r->type), NULL);
    produce(s, r, k ? k->name : NULL, -1, 1);
  }
  outbox_free(rj);
  if (--s->ev_round_left == 0) round_step(s);
}

static void round_start(notif_ws *s) {
  outbox_job *rj = calloc(1, sizeof *rj);
  if (!rj) return;
  rj->since_ms = notif_now_ms() - s->replay_window_ms;
  s->ev_replaying = 1;
  if (nw_job_start(s, &rj->base, outbox_work, outbox_done, outbox_release, &s->ev_reading) < 0)
    s->ev_replaying = 0;
}

/* A round's produces are all confirmed (or failed): mark them, then read
 * the next round when this one was full and nothing failed. */
static void round_step(notif_ws *s) {
  if (!s->ev_replaying || s->ev_reading) return;
  if (s->ev_nsent && flush_sent(s) == 0) return; /* sent_done comes back here */
  if (s->ev_flush_busy) return;
  if (s->ev_round_full && !s->ev_failed) {
    round_start(s);
    return;
  }
  s->ev_replaying = 0;
}

static void on_tick(notifd_timer *t, void *ud) {
  (void)t;
  notif_ws *s = ud;
  s->ev_marks_due = 1;
  if (s->q_inflight == 0 && !s->q_head) flush_sent(s);
  if (s->ev_failed && !s->ev_replaying && notif_now_ms() >= s->ev_retry_at_ms &&
      (!s->mongo || s->mongo_ready)) {
    s->ev_failed = 0;
    round_start(s);
  }
}

void events_start(notif_ws *s) {
  if (!s->events_topic || !s->store) return;
  if (!s->ev_timer &&
      s->api->timer_start(s->self, EV_TICK_MS, EV_TICK_MS, on_tick, s, &s->ev_timer) < 0)
    s->api->log(s->self, NOTIFD_LOG_WARN, "events: cannot start the outbox timer");
  if (!s->ev_replaying) round_start(s);
}

void events_destroy(notif_ws *s) {
  if (s->store && s->ev_nsent && (!s->mongo || s->mongo_ready)) {
    char err[200];
    if (s->store->ops->insert_batch(s->store, NULL, 0, s->ev_sent, s->ev_nsent, err,
                                    sizeof err) < 0)
      s->api->log(s->self, NOTIFD_LOG_WARN,
                  "events: marking %zu event(s) sent at stop failed (%s): they replay at start",
                  s->ev_nsent, err);
  }
  inbox_sent_free(s->ev_sent, s->ev_nsent);
  s->ev_sent = NULL;
  s->ev_nsent = s->ev_capsent = 0;
}

int events_init(notif_ws *s) {
  const notifd_api *api = s->api;
  const char *topic = NULL;
  int rc = api->config_string(s->self, "events_topic", "notification-events", &topic);
  if (rc == 0)
    rc = api->config_duration_ms(s->self, "events_replay_window", 3600 * 1000,
                                 &s->replay_window_ms);
  if (rc < 0) return rc;
  if (s->replay_window_ms < 0) {
    return pc_config_error(api, s->self, "events_replay_window", "must not be negative");
  }
  s->events_topic = topic && *topic && s->store ? topic : NULL;
  return api->metric_counter(s->self, "notifications_ws_events_total",
                             "Notification events produced to events_topic (produced), "
                             "re-produced from the outbox (replayed), or not confirmed by the "
                             "bus (failed).",
                             result_labels, &s->m_events);
}
