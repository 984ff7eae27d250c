/* notifications_ws internals shared by its source files:
 *
 *   notifications_ws.c      init, config, the envelope frame
 *   notifications_ws_http.c POST /notifications/<kind>
 *   notifications_ws_bus.c  the bus topic input (store, or forward: bus_forward.c)
 *   bus_forward.c           bus_input: forward - POST each record to forward_url
 *   types.c                 config-declared notification types (`types:`)
 *   events.c                the event stream: produce after commit, outbox
 *   inbox.c                 store before push: group commit, then publish;
 *                           worker jobs; retention timer
 *   inbox_store*.c          the store (SQLite, MongoDB)
 *   inbox_http.c            GET /notifications, POST /notifications/read
 *   recovery.c              the websocket channel: ?since= replay, v2 frames
 *   prefs.c                 GET/PUT /users/{user_id}/preferences, decisions */
#ifndef NOTIFICATIONS_WS_H
#define NOTIFICATIONS_WS_H

#include <jansson.h>
#include <notifd/plugin.h>
#include <stddef.h>
#include <stdint.h>

#include "inbox_store.h"
#include "pc_map.h"
#include "pc_bind.h"
#include "pc_buf.h"
#include "pc_models.h"
#include "pc_plugin.h"
#include "pc_time.h"

typedef struct notif_ws notif_ws;
typedef struct nw_job nw_job;
typedef struct notif_item notif_item;

/* One POST /notifications/<kind> route's context. */
typedef struct notif_route {
  notif_ws *s;
  const pc_notification_kind *kind;
} notif_route;

/* A config-declared notification type (types.c): `kind` has no model (the
 * payload is any JSON object with the `required` top-level fields). */
typedef struct nw_type {
  pc_notification_kind kind; /* name, notification_type (owned), model NULL */
  const char **required;     /* host-owned strings */
  size_t nrequired;
  notif_route route;
} nw_type;

/* Blocking work for the host pool: `work` on a worker thread (touches the
 * job and the store only), `done` on the loop.  A job whose completion
 * never ran (host torn down) is freed with `release` at destroy. */
struct nw_job {
  nw_job *prev, *next;
  notif_ws *s;
  void (*work)(nw_job *j);
  void (*done)(nw_job *j);
  void (*release)(nw_job *j);
};

/* A notification finished: rc 0 = stored (unless the inbox is off) and
 * published with outcome *pub; rc < 0 = the store failed (it->err). */
typedef void (*notif_done_cb)(notif_ws *s, notif_item *it, int rc, const pc_publish *pub,
                              void *ud);

/* One notification on its way: stored, then pushed. */
struct notif_item {
  notif_item *qnext;
  const pc_notification_kind *kind;
  inbox_rec rec;      /* rec.type points at kind->notification_type (not owned) */
  size_t frame_len;   /* the Go frame's length (for 206/500 texts) */
  int64_t t0_ns;      /* queued at (monotonic) */
  notif_done_cb done;
  void *ud;
  char err[200];
};

/* The upgrade being accepted: on_upgrade parses ?since= and ?v=, the host
 * calls on_open right after it on the same stack (host/ws/ws_handshake.c). */
typedef struct notif_upgrade {
  int set, has_since, v2;
  int64_t since;
} notif_upgrade;

struct notif_ws {
  notifd_plugin *self;
  const notifd_api *api;
  notifd_ws_channel *ch;
  notifd_metric *forwards; /* notifications_ws_forwards_total{source,type,result} */
  notifd_metric *m_store;  /* notifications_ws_inbox_ops_total{op,result} */
  notifd_metric *m_events; /* notifications_ws_events_total{result} */
  notifd_metric *m_replay; /* notifications_ws_replay_seconds */
  notifd_metric *m_purged; /* notifications_ws_inbox_purged_total */
  notifd_metric *m_commit; /* notifications_ws_inbox_commit_seconds */
  const char *topics[2];   /* bus input: {topic, NULL} */
  notif_route routes[PC_NOTIFICATION_KINDS];
  uint32_t auth;           /* user routes and the channel */
  uint32_t forward_auth;   /* service routes */
  int seed;                /* auth.mode none: user_id parameters decide */
  int answer_on_arrival;   /* config answer: arrival (POSTs answered when queued) */
  int chat_answer_on_arrival; /* chat_answer: arrival, for POST /notifications/chat only */

  /* config-declared types */
  nw_type *types;
  size_t ntypes;

  /* bus_input: forward (forward_url NULL: store) */
  const char *forward_url;
  char *forward_url_owned;
  int64_t forward_timeout_ms;
  int forward_inflight;

  /* inbox (store NULL: `store: none`, the Go service's behaviour) */
  inbox_store *store;
  int mongo, mongo_ready;
  notifd_timer *setup_timer, *purge_timer, *ckpt_timer;
  int ckpt_busy;
  nw_job *jobs;
  notif_item *q_head, *q_tail; /* waiting for the next group commit */
  int q_inflight, q_max_inflight; /* batches committing */
  struct batch_job *q_ready;   /* committed, waiting for an earlier batch */
  int64_t q_expect;            /* next id to publish (-1: ids are per user) */
  int purge_busy;
  int64_t max_age_ms, max_per_user, purge_ms;
  int64_t list_default, list_max, replay_max, pending_max;

  /* recovery: user -> nw_user (every open socket of this channel) */
  pc_map users;
  notif_upgrade up;

  /* preferences cache: user -> prefs_ent */
  pc_map prefs;

  /* the event stream (events.c); events_topic NULL = off */
  const char *events_topic;
  int64_t replay_window_ms;
  inbox_sent *ev_sent;       /* confirmed, to be marked by the next batch */
  size_t ev_nsent, ev_capsent;
  int ev_flush_busy;         /* a marks-only batch is committing */
  int ev_marks_due;          /* a tick passed since marks were last taken */
  int ev_failed;             /* a produce failed since the last replay */
  int64_t ev_retry_at_ms;    /* replay after a failure no sooner than this */
  int ev_replaying;          /* a replay round is reading or producing */
  int ev_reading;            /* its outbox job is reading */
  size_t ev_round_left;      /* the round's produces not confirmed yet */
  int ev_round_full;         /* the round read its maximum: another follows */
  notifd_timer *ev_timer;
};

/* ---- notifications_ws.c ---- */
/* The envelope {"id"?,"notification_type","timestamp","payload"} from its
 * stored parts; id < 0 leaves "id" out (Go-compatible frame). */
void notif_frame(pc_buf *b, int64_t id, const char *type, const char *ts, const char *payload);
void notif_count(notif_ws *s, const char *source, const pc_notification_kind *kind,
                 const char *result);
const char *notif_result(const pc_publish *pub);
/* The user a request acts for: the token subject (user_id, when given,
 * must equal it: 403), else the user_id parameter (400 when missing).
 * NULL after answering. */
const char *notif_req_user(notif_ws *s, notifd_req *req, const char *given);
/* Why `u` (n bytes) cannot be a notification's user, NULL if it can: the
 * event stream's consumers (pc_event: 1..256 bytes; email: no control
 * characters) would dead-letter the event of any other, so it is refused
 * before it is stored (400 over HTTP, invalid_user_id on the bus). */
const char *notif_user_id_problem(const char *u, size_t n);

/* ---- inbox.c ---- */
/* Renders, stores and publishes one notification; `done` runs once it is
 * published (later, or inside this call when the inbox is off).  The
 * payload is `payload` rendered as Go does, or (payload NULL: a
 * config-declared type) the JSON text `json` as it is.  Returns 0, -1 when
 * Go's marshaller would have refused the payload, -2 on OOM (`done` is
 * then never called). */
int notif_submit(notif_ws *s, const pc_notification_kind *kind, const pc_model *payload,
                 const char *json, const char *user_id, notif_done_cb done, void *ud);
int nw_job_submit(notif_ws *s, nw_job *j);
/* Sets the job's callbacks and submits it; *busy (busy may be NULL) is 1
 * from now until `done` clears it.  On failure *busy is 0 again and the job
 * is released (`release`). */
int nw_job_start(notif_ws *s, nw_job *j, void (*work)(nw_job *), void (*done)(nw_job *),
                 void (*release)(nw_job *), int *busy);
int inbox_start(notif_ws *s);
void inbox_destroy(notif_ws *s);

/* ---- inbox_http.c ---- */
int inbox_http_register(notif_ws *s);

/* ---- recovery.c ---- */
int recovery_register(notif_ws *s);
/* Publishes a stored notification to `user`'s sockets: the Go frame to
 * plain subscribers, the frame with "id" to v2 ones, queued for sockets
 * still replaying. */
void recovery_publish(notif_ws *s, const char *user, int64_t id, const char *frame, size_t len,
                      pc_publish *pub);
/* The sockets a notification for `user` would reach now (open ones plus
 * those replaying). */
uint32_t recovery_sockets(notif_ws *s, const char *user);
void recovery_destroy(notif_ws *s);

/* ---- prefs.c ---- */
/* Preferences a worker job loads for the loop's cache: users added on the
 * loop (or in the job, from rows it read), documents read by the job,
 * cached by its completion. */
typedef struct prefs_load {
  char **users;
  char **docs; /* NULL = none stored */
  int *found;  /* 1 found, 0 none, < 0 error (not cached) */
  size_t n, cap;
} prefs_load;
int prefs_load_init(prefs_load *pl, size_t cap);          /* 0, or -1 on OOM */
void prefs_load_add(prefs_load *pl, const char *user);   /* once per user; full: ignored */
void prefs_load_work(prefs_load *pl, inbox_store *st);   /* worker */
void prefs_load_done(notif_ws *s, const prefs_load *pl); /* loop: into the cache */
void prefs_load_free(prefs_load *pl);

int prefs_register(notif_ws *s);
/* 1 when the preferences of `user` are cached (decisions are possible). */
int prefs_cached(notif_ws *s, const char *user);
/* Caches a loaded document (NULL = none stored). */
void prefs_cache_put(notif_ws *s, const char *user, const char *json);
/* Whether the user's sockets get a notification of this kind now. */
int prefs_websocket_on(notif_ws *s, const char *user, const pc_notification_kind *kind);
/* For an event: the channels the user's preferences turn off for the type
 * (its notification_type, then its path name `name` when not NULL, then
 * "default"), comma-separated into `muted`, and whether it is quiet hours
 * now.  Uses the cache (nothing cached: nothing muted). */
void prefs_event_flags(notif_ws *s, const char *user, const char *type, const char *name,
                       pc_buf *muted, int *quiet);
void prefs_destroy(notif_ws *s);

/* ---- types.c ---- */
/* Reads `types:` (errors name the key path) and registers their routes. */
int types_init(notif_ws *s);
/* A built-in or config-declared kind by path name or notification_type;
 * *custom set to the nw_type for a declared one (else NULL). */
const pc_notification_kind *types_find(notif_ws *s, const char *name, size_t n,
                                       const nw_type **custom);
/* Checks a declared type's payload (a checked JSON value) and appends it
 * as compact JSON to `out`: 0; -1 with the reason in `err`; -2 on OOM. */
int types_payload(const nw_type *t, pc_jval v, pc_buf *out, pc_buf *err);
void types_destroy(notif_ws *s);

/* ---- events.c ---- */
int events_init(notif_ws *s);
/* After a stored notification was published (delivered sockets known). */
void events_publish(notif_ws *s, const inbox_rec *rec, const pc_notification_kind *kind,
                    uint32_t delivered);
/* The confirmed events for the next batch to mark (ownership moves; NULL
 * with *n = 0 when none), and their return when that batch failed. */
inbox_sent *events_take_sent(notif_ws *s, size_t *n);
/* The marks a batch should carry now: all of them, except on MongoDB,
 * where only after a tick or once many are waiting (events.c). */
inbox_sent *events_take_due(notif_ws *s, size_t *n);
void events_return_sent(notif_ws *s, inbox_sent *sent, size_t n);
void inbox_sent_free(inbox_sent *sent, size_t n);
/* Replays the outbox (at start, once the store is reachable). */
void events_start(notif_ws *s);
/* At destroy, before the store closes: marks what is confirmed (blocking). */
void events_destroy(notif_ws *s);

/* ---- bus_forward.c ---- */
int forward_init(notif_ws *s);
/* bus_input: forward - POSTs the record's payload for `user` to
 * {forward_url}/notifications/<kind>; finishes `m` by the answer. */
void forward_record(notif_ws *s, notifd_bus_msg *m, const pc_notification_kind *kind,
                    const char *user, pc_jval payload);

/* ---- handlers ---- */
void notif_on_http(notifd_req *req, void *ud);
/* Stores and publishes a checked notification for a POST and answers it as
 * Go did (payload or json: notif_submit). */
void notif_http_submit(notif_ws *s, notifd_req *req, const pc_notification_kind *kind,
                       const pc_model *payload, const char *json, const char *user_id);
void notif_on_record(notifd_bus_msg *m, void *ud);

#endif
