/* Frames a client sends on its chat socket.  v1 sockets: ignored, as the
 * Go service did.  v2 sockets speak JSON events; the only one a client
 * sends today is {"type":"typing"}, relayed to the stream's other users
 * at most once per typing_interval per socket.  Anything else closes the
 * socket (README "Close codes"):
 *   1003  a binary frame
 *   1009  a frame over CHAT_WS_CLIENT_MAX bytes
 *   1008  not a JSON object with a string "type", or an unknown type */
#include <jansson.h>
#include <string.h>

#include "chat_ws.h"

static void count(chat_ws *s, const char *result) {
  const char *v[] = {result};
  s->api->metric_add(s->client, v, 1);
}

static void refuse(chat_ws *s, notifd_ws_conn *c, int32_t code, const char *reason,
                   const char *result) {
  count(s, result);
  s->api->ws_close(c, code, reason);
}

static void relay_typing(chat_ws *s, cw_conn *cc) {
  int64_t now = cw_now_ms();
  if (cc->last_typing_ms && now - cc->last_typing_ms < s->typing_interval_ms) {
    count(s, "typing_dropped");
    return;
  }
  cc->last_typing_ms = now;
  count(s, "typing");
  pc_buf ev;
  pc_buf_init(&ev);
  cw_event_typing(&ev, cc->owner->id);
  /* Not echoed to the typist's own sockets (other tabs included). */
  cw_send_stream(s, cc->stream, cc->owner, "typing", &ev);
  pc_buf_free(&ev);
}

void cw_on_message(notifd_ws_conn *c, const void *data, size_t len, int32_t is_text, void *ud) {
  chat_ws *s = ud;
  cw_conn *cc = s->api->ws_conn_data(c);
  if (!cc || !cc->v2) return; /* v1: client frames are ignored */
  if (!is_text) {
    refuse(s, c, 1003, "binary frames are not supported", "binary");
    return;
  }
  if (len > CHAT_WS_CLIENT_MAX) {
    refuse(s, c, 1009, "event too big", "too_big");
    return;
  }
  json_t *root = json_loadb(data, len, 0, NULL);
  const char *type = json_string_value(json_object_get(root, "type"));
  if (!type) refuse(s, c, 1008, "invalid event: a JSON object with a string type", "invalid");
  else if (strcmp(type, "typing") == 0) relay_typing(s, cc);
  else refuse(s, c, 1008, "unknown event type", "unknown_type");
  json_decref(root);
}
