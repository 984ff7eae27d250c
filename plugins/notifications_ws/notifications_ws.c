/* notifications_ws: the general notifications websocket role (replaces
 * the Go generalnotificationshandler, contract section 6).
 *
 *   GET  /notifications/subscribe?user_id=       websocket keyed by user_id
 *   POST /notifications/chat?user_id=            body: ChatMessage
 *   POST /notifications/purchase?user_id=        body: PurchaseUpdate
 *   POST /notifications/payment-reminder?user_id= body: PaymentReminder
 *   POST /notifications/shipping-update?user_id= body: ShippingUpdate
 *        Each sends {"notification_type","timestamp","payload"} to the
 *        user's sockets: 200 {"delivered":n,"notification_type":...,
 *        "user_id":...}, 206 / 500 when some / all sockets failed, 400 for
 *        an invalid body (checked first) or a missing user_id.
 *   Bus topic (default "notifications", group "notifications_ws"): the
 *        same notifications from other systems; record format in README.md.
 *
 * Config (all optional; defaults under the host's auth.mode users, with
 * the seed-compatible default of auth.mode none in brackets):
 *   auth: none|token             # subscribe; token: sub must be user_id:
 *                                # token [none]
 *   forward_auth: none|internal  # the POST endpoints: internal [none]
 *   topic: notifications         # bus input topic; "" disables it
 *   group: notifications_ws      # consumer group
 *   start_from_latest: false     # a new group skips the topic's backlog
 *
 * Metrics: notifications_ws_forwards_total{source,type,result}. */
#include "notifications_ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_jenc.h"
#include "pc_time.h"

static const char *const forward_labels[] = {"source", "type", "result", NULL};

void notif_count(notif_ws *s, const char *source, const pc_notification_kind *kind,
                 const char *result) {
  const char *v[] = {source, kind ? kind->name : "unknown", result};
  s->api->metric_add(s->forwards, v, 1);
}

const char *notif_result(const pc_publish *pub) {
  if (pub->rc == 0 && pub->failed == 0) return pub->delivered ? "delivered" : "no_subscribers";
  return pub->delivered ? "partial" : "failed";
}

int notif_deliver(notif_ws *s, const pc_notification_kind *kind, const pc_model *payload,
                  const char *user_id, size_t user_id_len, pc_publish *pub, size_t *frame_len) {
  pc_buf frame;
  pc_buf_init(&frame);
  pc_time now;
  pc_time_now(&now);
  /* NotificationEnvelope's fields in declaration order. */
  pc_buf_puts(&frame, "{\"notification_type\":");
  pc_json_put_cstring(&frame, kind->notification_type);
  pc_buf_puts(&frame, ",\"timestamp\":");
  if (pc_time_put_json(&frame, &now) < 0) pc_buf_puts(&frame, "\"0001-01-01T00:00:00Z\"");
  pc_buf_puts(&frame, ",\"payload\":");
  if (pc_model_put_json(&frame, payload) < 0) {
    pc_buf_free(&frame);
    return -1;
  }
  pc_buf_putc(&frame, '}');
  if (frame.oom) {
    pc_buf_free(&frame);
    return -2;
  }
  *frame_len = frame.len;
  pc_publish_to(s->api, s->ch, user_id, user_id_len, frame.data, frame.len, pub);
  pc_buf_free(&frame);
  return 0;
}

static int notifications_ws_init(notifd_plugin *p, const notifd_api *api, void **state) {
  notif_ws *s = calloc(1, sizeof *s);
  if (!s) return NOTIFD_ENOMEM;
  *state = s; /* destroy() frees it even if init fails below */
  s->self = p;
  s->api = api;

  uint32_t auth = NOTIFD_AUTH_NONE, forward_auth = NOTIFD_AUTH_NONE;
  const char *topic = NULL, *group = NULL;
  int32_t from_latest = 0;
  int rc;
  if ((rc = pc_config_auth(api, p, "auth", pc_auth_name(pc_auth_default(api, p, NOTIFD_AUTH_TOKEN)),
                           PC_AUTH_ALLOW_NONE | PC_AUTH_ALLOW_TOKEN, &auth)) < 0 ||
      (rc = pc_config_auth(api, p, "forward_auth",
                           pc_auth_name(pc_auth_default(api, p, NOTIFD_AUTH_INTERNAL)),
                           PC_AUTH_ALLOW_NONE | PC_AUTH_ALLOW_INTERNAL, &forward_auth)) < 0 ||
      (rc = api->config_string(p, "topic", "notifications", &topic)) < 0 ||
      (rc = api->config_string(p, "group", "notifications_ws", &group)) < 0 ||
      (rc = api->config_bool(p, "start_from_latest", 0, &from_latest)) < 0)
    return rc;

  if ((rc = api->metric_counter(p, "notifications_ws_forwards_total",
                                "Notifications sent to websockets, by source, type and outcome.",
                                forward_labels, &s->forwards)) < 0)
    return rc;

  notifd_ws_channel_opts ch = {
      .size = sizeof ch,
      .auth = auth,
      .path = "/notifications/subscribe",
      .key_param = "user_id",
      .ud = s,
  };
  if ((rc = api->ws_channel(p, &ch, &s->ch)) < 0) return rc;

  notifd_route_opts ro = {.size = sizeof ro, .auth = forward_auth};
  for (size_t i = 0; i < PC_NOTIFICATION_KINDS; i++) {
    s->routes[i].s = s;
    s->routes[i].kind = &pc_notification_kinds[i];
    char path[64];
    snprintf(path, sizeof path, "/notifications/%s", pc_notification_kinds[i].name);
    if ((rc = api->http_route(p, "POST", path, notif_on_http, &s->routes[i], &ro)) < 0)
      return rc;
  }

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

static void notifications_ws_destroy(void *state) { free(state); }

static const notifd_plugin_def notifications_ws_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 0,
    .name = "notifications_ws",
    .version = "1.0.0",
    .init = notifications_ws_init,
    .destroy = notifications_ws_destroy,
};
NOTIFD_PLUGIN_DEFINE(notifications_ws_def)
