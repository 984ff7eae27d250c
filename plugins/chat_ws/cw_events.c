/* The JSON events of the v2 subprotocol (README "Protocol v2"), written
 * with Go's string escaping like every other chat frame. */
#include <string.h>

#include "chat_ws.h"
#include "pc_jenc.h"

void cw_event_message(pc_buf *b, const char *frame, size_t len) {
  pc_buf_puts(b, "{\"type\":\"message\",\"message\":");
  pc_buf_put(b, frame, len);
  pc_buf_putc(b, '}');
}

void cw_event_read(pc_buf *b, const char *user, size_t ulen, const char *msg, size_t mlen) {
  pc_buf_puts(b, "{\"type\":\"read\",\"user_id\":");
  pc_json_put_string(b, user, ulen);
  pc_buf_puts(b, ",\"message_id\":");
  pc_json_put_string(b, msg, mlen);
  pc_buf_putc(b, '}');
}

void cw_event_typing(pc_buf *b, const char *user) {
  pc_buf_puts(b, "{\"type\":\"typing\",\"user_id\":");
  pc_json_put_cstring(b, user);
  pc_buf_putc(b, '}');
}

void cw_event_presence(pc_buf *b, const char *user, int online) {
  pc_buf_puts(b, "{\"type\":\"presence\",\"user_id\":");
  pc_json_put_cstring(b, user);
  pc_buf_puts(b, online ? ",\"online\":true}" : ",\"online\":false}");
}

void cw_count_event(chat_ws *s, const char *type, uint32_t n) {
  if (!n) return;
  const char *v[] = {type};
  s->api->metric_add(s->events, v, n);
}

uint32_t cw_send_stream(chat_ws *s, cw_stream *st, const cw_user *skip, const char *type,
                        const pc_buf *ev) {
  if (ev->oom || !ev->len) return 0;
  uint32_t n = 0;
  /* ws_send never runs plugin code (on_close is deferred), so the list
   * stays as it is during the walk. */
  for (cw_conn *cc = st->head; cc; cc = cc->snext)
    if (cc->owner != skip && s->api->ws_send(cc->c, ev->data, ev->len, 1) == 0) n++;
  cw_count_event(s, type, n);
  return n;
}
