/* chat_ws: the chat websocket role (replaces the Go chatwebsocketshandler,
 * contract section 5).
 *
 *   GET  /chat/subscribe-websocket?stream_id=&sender_id=&receiver_id=
 *        websocket keyed by stream_id; the three parameters are required
 *        (400 before the upgrade).  Without a subprotocol: bare ChatMessage
 *        frames, client frames ignored (the Go service).  With
 *        Sec-WebSocket-Protocol: notifd.chat.v2: typed JSON events
 *        (message, read, typing, presence) and typing from the client
 *        (cw_client.c; README "Protocol v2").
 *   POST /chat/forward-to-websocket
 *        body: a ChatMessage; sends it, re-serialized as Go did, to every
 *        socket of its stream_id: 200 {"delivered":n,"stream_id":...}
 *        (n may be 0), 206 when some sockets failed, 500 when all did,
 *        400 {"error":...} for an invalid body.
 *   POST /chat/forward-event
 *        body {"stream_id","event":{"type":"read","user_id","message_id"}}:
 *        to the stream's v2 sockets; 200 {"delivered":n} (forward_auth).
 *   POST /chat/streams/{stream_id}/close
 *        closes the stream's sockets with 4001 "retries exhausted, reload
 *        history" (clients reload the history); 200 {"closed":n}.
 *
 * Config (all optional; defaults under the host's auth.mode users, with
 * the seed-compatible default of auth.mode none in brackets):
 *   auth: none|token            # subscribe; token: the JWT's sub must be
 *                               # sender_id or receiver_id: token [none]
 *   verify_stream_id: bool      # subscribe: stream_id must equal
 *                               # ComputeStreamID(sender_id, receiver_id):
 *                               # true [false]
 *   forward_auth: none|internal # forward endpoint: internal [none]
 *   close_auth: none|internal   # close endpoint: internal [internal]
 *   forward_max_body: 104857600 # forward endpoints' body limit in bytes
 *                               # (pc_config_forward_max_body)
 *   typing_interval: 2s         # at most one typing relayed per v2 socket
 *   presence_grace: 5s          # offline told only if still gone after it
 *   presence_topic: chat-presence  # bus topic between instances ("" = off)
 *   presence_refresh: 30s       # re-announce this instance's users
 *   presence_expiry: 90s        # drop another instance's unrefreshed report
 *
 * Metrics: chat_ws_forwards_total{result} with result delivered,
 * no_subscribers, partial, failed, invalid; chat_ws_stream_closes_total;
 * chat_ws_v2_events_total{type}; chat_ws_client_frames_total{result};
 * chat_ws_presence_changes_total{online}; chat_ws_presence_online_users;
 * chat_ws_presence_records_total{result}. */
#include "chat_ws.h"

#include <stdlib.h>
#include <string.h>

#include "pc_plugin.h"
#include "pc_stream_id.h"

static const char *const chat_params[] = {"sender_id", "receiver_id", NULL};
static const char *const result_label[] = {"result", NULL};
static const char *const type_label[] = {"type", NULL};
static const char *const online_label[] = {"online", NULL};
static const char *const subprotocols[] = {CHAT_WS_V2, NULL};

/* verify_stream_id: the stream must be the pair's ComputeStreamID. */
static int32_t on_upgrade(notifd_req *req, const char **reason, void *ud) {
  chat_ws *s = ud;
  const char *sid = s->api->req_query(req, "stream_id");
  const char *a = s->api->req_query(req, "sender_id");
  const char *b = s->api->req_query(req, "receiver_id");
  char want[PC_STREAM_ID_LEN + 1];
  if (!sid || !a || !b) {
    *reason = "stream_id, sender_id and receiver_id query parameters required";
    return 400;
  }
  if (pc_stream_id(a, strlen(a), b, strlen(b), want) < 0) {
    *reason = "cannot compute the stream id";
    return 500;
  }
  if (strcmp(sid, want) != 0) {
    *reason = "stream_id does not match sender_id and receiver_id";
    return 400;
  }
  return 0;
}

static int chat_ws_init(notifd_plugin *p, const notifd_api *api, void **state) {
  chat_ws *s = calloc(1, sizeof *s);
  if (!s) return NOTIFD_ENOMEM;
  *state = s; /* destroy() frees it even if init fails below */
  s->self = p;
  s->api = api;

  uint32_t auth = NOTIFD_AUTH_NONE, forward_auth = NOTIFD_AUTH_NONE,
           close_auth = NOTIFD_AUTH_INTERNAL;
  uint64_t forward_max = 0;
  int seed = pc_auth_seed_mode(api, p);
  int rc;
  if ((rc = pc_config_auth(api, p, "auth", pc_auth_name(pc_auth_default(api, p, NOTIFD_AUTH_TOKEN)),
                           PC_AUTH_ALLOW_NONE | PC_AUTH_ALLOW_TOKEN, &auth)) < 0 ||
      (rc = pc_config_auth(api, p, "forward_auth",
                           pc_auth_name(pc_auth_default(api, p, NOTIFD_AUTH_INTERNAL)),
                           PC_AUTH_ALLOW_NONE | PC_AUTH_ALLOW_INTERNAL, &forward_auth)) < 0 ||
      (rc = pc_config_auth(api, p, "close_auth", "internal",
                           PC_AUTH_ALLOW_NONE | PC_AUTH_ALLOW_INTERNAL, &close_auth)) < 0 ||
      (rc = api->config_bool(p, "verify_stream_id", !seed, &s->verify_stream_id)) < 0 ||
      (rc = api->config_duration_ms(p, "typing_interval", 2000, &s->typing_interval_ms)) < 0 ||
      (rc = api->config_duration_ms(p, "presence_grace", 5000, &s->grace_ms)) < 0 ||
      (rc = pc_config_forward_max_body(api, p, &forward_max)) < 0)
    return rc;
  if ((rc = cw_registry_init(s)) < 0) return rc;
  if (auth == NOTIFD_AUTH_TOKEN && !s->verify_stream_id)
    api->log(p, NOTIFD_LOG_WARN,
             "auth: token without verify_stream_id: a token holder can name any stream_id "
             "with their own id as sender_id; set verify_stream_id: true");

  if ((rc = api->metric_counter(p, "chat_ws_forwards_total",
                                "Chat messages forwarded to websockets, by outcome.",
                                result_label, &s->forwards)) < 0 ||
      (rc = api->metric_counter(p, "chat_ws_stream_closes_total",
                                "Chat websockets closed by the close-stream endpoint.", NULL,
                                &s->closed)) < 0 ||
      (rc = api->metric_counter(p, "chat_ws_v2_events_total",
                                "Events sent to notifd.chat.v2 sockets (sockets reached), by type.",
                                type_label, &s->events)) < 0 ||
      (rc = api->metric_counter(p, "chat_ws_client_frames_total",
                                "Frames from notifd.chat.v2 clients, by outcome.", result_label,
                                &s->client)) < 0 ||
      (rc = api->metric_counter(p, "chat_ws_presence_changes_total",
                                "Users seen going online or offline by this instance.",
                                online_label, &s->presence_changes)) < 0 ||
      (rc = api->metric_gauge(p, "chat_ws_presence_online_users",
                              "Users this instance counts as online (here or elsewhere).", NULL,
                              &s->online_gauge)) < 0 ||
      (rc = api->metric_counter(p, "chat_ws_presence_records_total",
                                "Presence records on the bus, by outcome.", result_label,
                                &s->presence_records)) < 0)
    return rc;
  if ((rc = cw_presence_bus_init(s)) < 0) return rc;

  notifd_ws_channel_opts ch = {
      .size = sizeof ch,
      .auth = auth,
      .path = "/chat/subscribe-websocket",
      .key_param = "stream_id",
      .required_params = chat_params,
      .subject_params = chat_params,
      .on_upgrade = s->verify_stream_id ? on_upgrade : NULL,
      .on_open = cw_on_open,
      .on_message = cw_on_message,
      .on_close = cw_on_close,
      .ud = s,
      .subprotocols = subprotocols,
  };
  if ((rc = api->ws_channel(p, &ch, &s->ch)) < 0) return rc;

  notifd_route_opts fwd = {.size = sizeof fwd, .auth = forward_auth,
                           .max_body = forward_max};
  notifd_route_opts cls = {.size = sizeof cls, .auth = close_auth};
  if ((rc = api->http_route(p, "POST", "/chat/forward-to-websocket", chat_ws_on_forward, s,
                            &fwd)) < 0)
    return rc;
  if ((rc = api->http_route(p, "POST", "/chat/forward-event", chat_ws_on_forward_event, s,
                            &fwd)) < 0)
    return rc;
  return api->http_route(p, "POST", "/chat/streams/{stream_id}/close", chat_ws_on_close_stream,
                         s, &cls);
}

static int chat_ws_start(void *state) { return cw_presence_bus_start(state); }

static void chat_ws_destroy(void *state) {
  chat_ws *s = state;
  if (!s) return;
  cw_registry_free(s);
  free(s);
}

static const notifd_plugin_def chat_ws_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 1, /* subprotocols, ws_conn_subject, ws_publish_proto */
    .name = "chat_ws",
    .version = "1.1.0",
    .init = chat_ws_init,
    .start = chat_ws_start,
    .destroy = chat_ws_destroy,
};
NOTIFD_PLUGIN_DEFINE(chat_ws_def)
