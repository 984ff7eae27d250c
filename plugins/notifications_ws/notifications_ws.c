/* notifications_ws: the general notifications websocket role (replaces
 * the Go generalnotificationshandler, contract section 6), with a
 * notification inbox (README.md).
 *
 *   GET  /notifications/subscribe?user_id=[&since=ID][&v=2]  websocket
 *   POST /notifications/chat?user_id=            body: ChatMessage
 *   POST /notifications/purchase?user_id=        body: PurchaseUpdate
 *   POST /notifications/payment-reminder?user_id= body: PaymentReminder
 *   POST /notifications/shipping-update?user_id= body: ShippingUpdate
 *        Each stores the notification in the user's inbox, then sends
 *        {"notification_type","timestamp","payload"} to the user's sockets:
 *        200 {"delivered":n,"notification_type":...,"user_id":...}, 206 /
 *        500 when some / all sockets failed, 400 for an invalid body
 *        (checked first) or a missing user_id, 500 when it cannot be stored.
 *   GET  /notifications?user_id=&limit=&before=   the inbox, newest first
 *   POST /notifications/read?user_id=             {"ids":[...]} | {"all":true}
 *   GET|PUT /users/{user_id}/preferences          channels, quiet hours
 *   GET  /internal/users/{user_id}/preferences    the same for services
 *   POST /notifications/<declared type>?user_id=  config `types:` (types.c)
 *   Bus topic (default "notifications", group "notifications_ws"): the
 *        same notifications from other systems; record format in README.md;
 *        stored here, or (bus_input: forward) POSTed to forward_url.
 *   Bus topic events_topic (default "notification-events"): every stored
 *        notification, produced after its commit (events.c, docs/events.md).
 *
 * Config: README.md ("Configuration").  Metrics:
 * notifications_ws_forwards_total{source,type,result},
 * notifications_ws_inbox_ops_total{op,result},
 * notifications_ws_inbox_purged_total, notifications_ws_events_total{result},
 * notifications_ws_replay_seconds. */
#include "notifications_ws.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pc_event.h"
#include "pc_build.h"
#include "pc_jenc.h"

static const char *const forward_labels[] = {"source", "type", "result", NULL};
static const char *const op_labels[] = {"op", "result", NULL};

void notif_count(notif_ws *s, const char *source, const pc_notification_kind *kind,
                 const char *result) {
  const char *v[] = {source, kind ? kind->name : "unknown", result};
  s->api->metric_add(s->forwards, v, 1);
}

const char *notif_result(const pc_publish *pub) {
  if (pub->rc == 0 && pub->failed == 0) return pub->delivered ? "delivered" : "no_subscribers";
  return pub->delivered ? "partial" : "failed";
}

const char *notif_user_id_problem(const char *u, size_t n) {
  if (n > PC_EVENT_USER_MAX) return "user_id: at most 256 bytes";
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f) return "user_id: no control characters";
  return NULL;
}

int64_t notif_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* NotificationEnvelope's fields in declaration order; "id" first when the
 * subscriber asked for ids. */
void notif_frame(pc_buf *b, int64_t id, const char *type, const char *ts, const char *payload) {
  if (id >= 0) pc_buf_printf(b, "{\"id\":%lld,\"notification_type\":", (long long)id);
  else pc_buf_puts(b, "{\"notification_type\":");
  pc_json_put_cstring(b, type);
  pc_buf_puts(b, ",\"timestamp\":");
  pc_buf_puts(b, ts);
  pc_buf_puts(b, ",\"payload\":");
  pc_buf_puts(b, payload);
  pc_buf_putc(b, '}');
}

const char *notif_req_user(notif_ws *s, notifd_req *req, const char *given) {
  const notifd_api *api = s->api;
  const char *sub = api->req_auth_subject(req);
  if (given && !*given) given = NULL;
  if (sub) {
    if (given && strcmp(given, sub) != 0) {
      PC_RESPOND_ERROR_LIT(api, req, 403, "the token's user may not act for another user");
      return NULL;
    }
    return sub;
  }
  if (!given) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "user_id query parameter required");
    return NULL;
  }
  return given;
}

/* ---- configuration ---- */

/* A config problem at `key`, as file:line:column on a host that can. */
#define cfg_fail(s, key, ...) pc_config_error((s)->api, (s)->self, (key), __VA_ARGS__)

/* Reads and checks the store settings; opens the store when `open` (and
 * not under --check). */
static int open_store(notif_ws *s, int open) {
  const notifd_api *api = s->api;
  notifd_plugin *p = s->self;
  const char *kind = NULL, *path = NULL, *sync = NULL, *coll = NULL, *uri = NULL, *db = NULL;
  int bad = 0;
  bad |= api->config_string(p, "store", "auto", &kind) < 0;
  bad |= api->config_string(p, "store_path", NULL, &path) < 0;
  bad |= api->config_string(p, "sqlite_synchronous", "normal", &sync) < 0;
  bad |= api->config_string(p, "collection", "notifications", &coll) < 0;
  bad |= api->config_duration_ms(p, "retention.max_age", 30LL * 24 * 3600 * 1000,
                                 &s->max_age_ms) < 0;
  bad |= api->config_int(p, "retention.max_per_user", 1000, &s->max_per_user) < 0;
  bad |= api->config_duration_ms(p, "retention.interval", 60000, &s->purge_ms) < 0;
  bad |= api->config_int(p, "list_default_limit", 50, &s->list_default) < 0;
  bad |= api->config_int(p, "list_max_limit", 200, &s->list_max) < 0;
  bad |= api->config_int(p, "recovery.max_replay", 1000, &s->replay_max) < 0;
  bad |= api->config_int(p, "recovery.max_pending", 1000, &s->pending_max) < 0;
  const char *answer = NULL, *chat_answer = NULL;
  bad |= api->config_string(p, "answer", "stored", &answer) < 0;
  bad |= api->config_string(p, "chat_answer", "stored", &chat_answer) < 0;
  bad |= api->backend_string(p, "mongodb", "uri", &uri) < 0;
  bad |= api->backend_string(p, "mongodb", "database", &db) < 0;
  if (bad) return NOTIFD_EINVAL;
  /* Every value is checked, so --check reports them all in one pass. */
  if (s->max_age_ms < 1000) bad |= cfg_fail(s, "retention.max_age", "at least 1s") < 0;
  if (s->max_per_user < 0)
    bad |= cfg_fail(s, "retention.max_per_user", "0 (no cap) or more") < 0;
  if (s->purge_ms < 10) bad |= cfg_fail(s, "retention.interval", "at least 10ms") < 0;
  if (s->list_max < 1 || s->list_max > 10000)
    bad |= cfg_fail(s, "list_max_limit", "must be between 1 and 10000") < 0;
  else if (s->list_default < 1 || s->list_default > s->list_max)
    bad |= cfg_fail(s, "list_default_limit", "must be between 1 and list_max_limit (%lld)",
                    (long long)s->list_max) < 0;
  if (s->replay_max < 1 || s->replay_max > 100000)
    bad |= cfg_fail(s, "recovery.max_replay", "must be between 1 and 100000") < 0;
  if (s->pending_max < 1 || s->pending_max > 1000000)
    bad |= cfg_fail(s, "recovery.max_pending", "must be between 1 and 1000000") < 0;
  if (strcmp(sync, "full") != 0 && strcmp(sync, "normal") != 0)
    bad |= cfg_fail(s, "sqlite_synchronous", "expected one of full|normal, got '%s'", sync) < 0;
  if (strcmp(answer, "arrival") == 0) s->answer_on_arrival = 1;
  else if (strcmp(answer, "stored") != 0)
    bad |= cfg_fail(s, "answer", "expected one of stored|arrival, got '%s'", answer) < 0;
  if (strcmp(chat_answer, "arrival") == 0) s->chat_answer_on_arrival = 1;
  else if (strcmp(chat_answer, "stored") != 0)
    bad |= cfg_fail(s, "chat_answer", "expected one of stored|arrival, got '%s'", chat_answer) < 0;
  if (bad) return NOTIFD_EINVAL;
  if (strcmp(kind, "auto") == 0) kind = uri ? "mongodb" : "sqlite";
  if (strcmp(kind, "none") == 0) {
    api->log(p, NOTIFD_LOG_INFO, "inbox off (store: none): notifications are not stored");
    return 0;
  }
  char err[512];
  int rc;
  if (strcmp(kind, "sqlite") == 0) {
    if (!open || pc_check_only(api, p)) return 0; /* --check: no notifications.db */
    char def[4096];
    if (!path) {
      snprintf(def, sizeof def, "%s/notifications.db", api->data_dir(p));
      path = def;
    }
    rc = inbox_store_sqlite_open(path, strcmp(sync, "full") == 0, &s->store, err, sizeof err);
  } else if (strcmp(kind, "mongodb") == 0) {
    if (!uri) return cfg_fail(s, "store", "mongodb needs backends.mongodb.uri");
#if NOTIFD_WITH_MONGODB
    if (!open || pc_check_only(api, p)) return 0; /* --check: open nothing */
    s->mongo = 1;
    rc = inbox_store_mongo_open(uri, db ? db : "notifications", coll, &s->store, err,
                                sizeof err);
#else
    return cfg_fail(s, "store", "mongodb: %s", PC_MONGODB_MISSING);
#endif
  } else {
    return cfg_fail(s, "store", "expected one of auto|sqlite|mongodb|none, got '%s'", kind);
  }
  if (rc < 0) {
    api->log(p, NOTIFD_LOG_ERROR, "cannot open the notification inbox: %s", err);
    return NOTIFD_EBACKEND;
  }
  api->log(p, NOTIFD_LOG_INFO, "inbox store %s", s->store->ops->name);
  return 0;
}

static int register_metrics(notif_ws *s) {
  const notifd_api *api = s->api;
  notifd_plugin *p = s->self;
  static const double replay_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,  0.1,    0.25,  0.5,  1,     2.5};
  int rc = api->metric_counter(p, "notifications_ws_forwards_total",
                               "Notifications sent to websockets, by source, type and outcome.",
                               forward_labels, &s->forwards);
  if (rc == 0)
    rc = api->metric_counter(p, "notifications_ws_inbox_ops_total",
                             "Inbox store operations by kind (insert batches, list, read, "
                             "replay, purge, preferences) and result.",
                             op_labels, &s->m_store);
  if (rc == 0)
    rc = api->metric_counter(p, "notifications_ws_inbox_purged_total",
                             "Notifications deleted by retention (age or per-user count).", NULL,
                             &s->m_purged);
  if (rc == 0)
    rc = api->metric_histogram(p, "notifications_ws_inbox_commit_seconds",
                               "From a notification's arrival to its publish (the group commit "
                               "it waited for and took part in).",
                               NULL, NULL, 0, &s->m_commit);
  if (rc == 0)
    rc = api->metric_histogram(p, "notifications_ws_replay_seconds",
                               "Recovery: from the socket's open to the end of its replay.",
                               NULL, replay_buckets, sizeof replay_buckets / sizeof *replay_buckets,
                               &s->m_replay);
  return rc;
}

static int notifications_ws_init(notifd_plugin *p, const notifd_api *api, void **state) {
  notif_ws *s = calloc(1, sizeof *s);
  if (!s) return NOTIFD_ENOMEM;
  *state = s; /* destroy() frees it even if init fails below */
  s->self = p;
  s->api = api;
  pc_map_init(&s->users);
  pc_map_init(&s->prefs);
  s->seed = pc_auth_seed_mode(api, p);

  const char *topic = NULL, *group = NULL;
  int32_t from_latest = 0;
  uint64_t forward_max = 0;
  int rc, bad = 0;
  /* Read every setting before failing, so --check lists every problem. */
  bad |= pc_config_auth(api, p, "auth", pc_auth_name(pc_auth_default(api, p, NOTIFD_AUTH_TOKEN)),
                        PC_AUTH_ALLOW_NONE | PC_AUTH_ALLOW_TOKEN, &s->auth) < 0;
  bad |= pc_config_auth(api, p, "forward_auth",
                        pc_auth_name(pc_auth_default(api, p, NOTIFD_AUTH_INTERNAL)),
                        PC_AUTH_ALLOW_NONE | PC_AUTH_ALLOW_INTERNAL, &s->forward_auth) < 0;
  bad |= api->config_string(p, "topic", "notifications", &topic) < 0;
  bad |= api->config_string(p, "group", "notifications_ws", &group) < 0;
  bad |= api->config_bool(p, "start_from_latest", 0, &from_latest) < 0;
  bad |= pc_config_forward_max_body(api, p, &forward_max) < 0;
  if (bad) {
    open_store(s, 0); /* for its config problems too */
    return NOTIFD_EINVAL;
  }
  if ((rc = open_store(s, 1)) < 0 || (rc = register_metrics(s)) < 0 ||
      (rc = events_init(s)) < 0 || (rc = forward_init(s)) < 0 || (rc = recovery_register(s)) < 0)
    return rc;
  if (s->store && ((rc = inbox_http_register(s)) < 0 || (rc = prefs_register(s)) < 0)) return rc;

  notifd_route_opts ro = {.size = sizeof ro, .auth = s->forward_auth, .max_body = forward_max};
  for (size_t i = 0; i < PC_NOTIFICATION_KINDS; i++) {
    s->routes[i].s = s;
    s->routes[i].kind = &pc_notification_kinds[i];
    char path[64];
    snprintf(path, sizeof path, "/notifications/%s", pc_notification_kinds[i].name);
    if ((rc = api->http_route(p, "POST", path, notif_on_http, &s->routes[i], &ro)) < 0)
      return rc;
  }
  if ((rc = types_init(s)) < 0) return rc;

  if (topic && *topic) {
    s->topics[0] = topic;
    s->topics[1] = NULL;
    notifd_consumer_opts co = {
        .size = sizeof co,
        .topics = s->topics,
        .group = group,
        .handler = notif_on_record,
        .ud = s,
        .max_attempts = -1,
        .start_from_latest = from_latest ? 1 : 0,
    };
    notifd_consumer *c = NULL;
    if ((rc = api->bus_consume(p, &co, &c)) < 0) {
      api->log(p, NOTIFD_LOG_ERROR, "cannot consume topic %s (group %s): %d", topic, group, rc);
      return rc;
    }
  }
  return 0;
}

static int notifications_ws_start(void *state) { return inbox_start(state); }

static void notifications_ws_destroy(void *state) {
  notif_ws *s = state;
  if (!s) return;
  inbox_destroy(s); /* releases jobs first: a replay job may hold a socket's record */
  recovery_destroy(s);
  prefs_destroy(s);
  types_destroy(s);
  free(s->forward_url_owned);
  free(s);
}

static const notifd_plugin_def notifications_ws_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 1, /* ws_conn_pause / ws_conn_resume */
    .name = "notifications_ws",
    .version = "1.1.0",
    .init = notifications_ws_init,
    .start = notifications_ws_start,
    .destroy = notifications_ws_destroy,
};
NOTIFD_PLUGIN_DEFINE(notifications_ws_def)
