/* POST /chat/forward-event {"stream_id","event":{...}}: another service
 * (chat_persistence, for read receipts) sends an event to a stream's v2
 * sockets on this process.  The only event accepted is
 * {"type":"read","user_id","message_id"}; answers 200 {"delivered":n}
 * (n may be 0), 400 {"error":...} for anything else. */
#include <jansson.h>
#include <string.h>

#include "chat_ws.h"
#include "pc_plugin.h"

/* A non-empty JSON string without NUL bytes, or NULL. */
static const char *text(json_t *obj, const char *key, size_t *len) {
  json_t *v = json_object_get(obj, key);
  const char *str = json_string_value(v);
  if (!str) return NULL;
  *len = json_string_length(v);
  return *len && strlen(str) == *len ? str : NULL;
}

void chat_ws_on_forward_event(notifd_req *req, void *ud) {
  chat_ws *s = ud;
  const notifd_api *api = s->api;
  json_t *root = api->req_json_or_400(req);
  if (!root) return;
  size_t sidlen = 0, ulen = 0, mlen = 0;
  const char *sid = text(root, "stream_id", &sidlen);
  json_t *event = json_object_get(root, "event");
  const char *type = json_string_value(json_object_get(event, "type"));
  if (!sid) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "stream_id (a non-empty string) required");
    return;
  }
  if (!json_is_object(event) || !type) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "event (an object with a string type) required");
    return;
  }
  if (strcmp(type, "read") != 0) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "unsupported event type (only read is forwarded)");
    return;
  }
  const char *user = text(event, "user_id", &ulen);
  const char *msg = text(event, "message_id", &mlen);
  if (!user || !msg) {
    PC_RESPOND_ERROR_LIT(api, req, 400,
                         "a read event needs user_id and message_id (non-empty strings)");
    return;
  }
  pc_buf ev, out;
  pc_buf_init(&ev);
  pc_buf_init(&out);
  cw_event_read(&ev, user, ulen, msg, mlen);
  uint32_t delivered = 0, failed = 0;
  int rc = ev.oom ? NOTIFD_ENOMEM
                  : api->ws_publish_proto(s->ch, sid, CHAT_WS_V2, ev.data, ev.len, &delivered,
                                          &failed);
  if (rc < 0) {
    PC_RESPOND_ERROR_LIT(api, req, 500, "cannot publish the event");
  } else {
    cw_count_event(s, "read", delivered);
    pc_buf_printf(&out, "{\"delivered\":%u}", delivered);
    pc_respond_json(api, req, 200, &out);
  }
  pc_buf_free(&ev);
  pc_buf_free(&out);
}
