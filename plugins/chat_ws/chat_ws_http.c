/* The HTTP side of chat_ws: forwarding a message to a stream's sockets
 * with the Go service's 200/206/500 answers (contract 5), and closing a
 * stream's sockets. */
#include <stdint.h>
#include <string.h>

#include "chat_ws.h"
#include "pc_bind.h"
#include "pc_jenc.h"
#include "pc_models.h"
#include "pc_plugin.h"

static void count(chat_ws *s, const char *result) {
  const char *v[] = {result};
  s->api->metric_add(s->forwards, v, 1);
}

/* One publish per kind of socket, each frame encoded once: the bare
 * ChatMessage to the sockets without a subprotocol, the message event to
 * the v2 ones; the outcome counts both. */
static void publish_both(chat_ws *s, cw_stream *st, const pc_buf *frame, pc_publish *out) {
  const notifd_api *api = s->api;
  uint32_t nv2 = st->nv2, all = api->ws_key_count(s->ch, st->id);
  pc_publish v1 = {0}, v2 = {0};
  v1.rc = api->ws_publish_proto(s->ch, st->id, NULL, frame->data, frame->len, &v1.delivered,
                                &v1.failed);
  if (v1.rc < 0) v1.failed = all > nv2 ? all - nv2 : 0;
  pc_buf ev;
  pc_buf_init(&ev);
  cw_event_message(&ev, frame->data, frame->len);
  v2.rc = ev.oom ? NOTIFD_ENOMEM
                 : api->ws_publish_proto(s->ch, st->id, CHAT_WS_V2, ev.data, ev.len,
                                         &v2.delivered, &v2.failed);
  if (v2.rc < 0) v2.failed = nv2;
  pc_buf_free(&ev);
  cw_count_event(s, "message", v2.delivered);
  out->rc = v1.rc < 0 ? v1.rc : v2.rc;
  out->delivered = (v1.rc < 0 ? 0 : v1.delivered) + (v2.rc < 0 ? 0 : v2.delivered);
  out->failed = v1.failed + v2.failed;
}

void chat_ws_on_forward(notifd_req *req, void *ud) {
  chat_ws *s = ud;
  const notifd_api *api = s->api;
  size_t len = 0;
  const void *body = api->req_body(req, &len);
  pc_model msg;
  pc_buf err, frame, out;
  pc_buf_init(&err);
  pc_buf_init(&frame);
  pc_buf_init(&out);

  int rc = pc_bind_body(&pc_chat_message_def, body, len, &msg, &err);
  if (rc != PC_BIND_OK) {
    count(s, "invalid");
    if (rc == PC_BIND_NOMEM) PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    else pc_respond_error(api, req, 400, err.data ? err.data : "", err.len);
    goto done;
  }
  /* The frame is the bound message re-serialized, as json.Marshal did. */
  if (pc_model_put_json(&frame, &msg) < 0) {
    count(s, "failed");
    PC_RESPOND_ERROR_LIT(api, req, 500, "failed to serialize message");
    goto done_msg;
  }
  if (frame.oom) {
    count(s, "failed");
    PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    goto done_msg;
  }
  size_t sidlen;
  const char *sid = pc_model_str(&msg, PC_CHAT_STREAM_ID, &sidlen);
  /* Only a stream with v2 sockets has an entry: the others keep the one
   * plain publish of the Go-compatible frame. */
  cw_stream *st = s->nv2 && !memchr(sid, '\0', sidlen) ? cw_stream_find(s, sid) : NULL;
  pc_publish pub;
  if (!st) pc_publish_to(api, s->ch, sid, sidlen, frame.data, frame.len, &pub);
  else publish_both(s, st, &frame, &pub);

  /* gin.H bodies: keys in alphabetical order. */
  int status;
  if (pub.rc == 0 && pub.failed == 0) {
    status = 200;
    count(s, pub.delivered ? "delivered" : "no_subscribers");
    pc_buf_printf(&out, "{\"delivered\":%u,\"stream_id\":", pub.delivered);
    pc_json_put_string(&out, sid, sidlen);
    pc_buf_putc(&out, '}');
  } else {
    pc_buf text;
    pc_buf_init(&text);
    pc_publish_error_text(&pub, frame.len, &text);
    if (pub.delivered == 0) {
      status = 500;
      count(s, "failed");
      pc_buf_puts(&out, "{\"error\":");
      pc_json_put_string(&out, text.data ? text.data : "", text.len);
      pc_buf_puts(&out, ",\"message\":\"failed to deliver message to any connections\"}");
    } else {
      status = 206;
      count(s, "partial");
      pc_buf_printf(&out, "{\"delivered\":%u,\"error\":", pub.delivered);
      pc_json_put_string(&out, text.data ? text.data : "", text.len);
      pc_buf_puts(&out,
                  ",\"message\":\"message delivered to some connections but encountered "
                  "errors\"}");
    }
    if (text.oom) out.oom = 1;
    pc_buf_free(&text);
  }
  pc_respond_json(api, req, status, &out);
done_msg:
  pc_model_free(&msg);
done:
  pc_buf_free(&err);
  pc_buf_free(&frame);
  pc_buf_free(&out);
}

void chat_ws_on_close_stream(notifd_req *req, void *ud) {
  chat_ws *s = ud;
  const notifd_api *api = s->api;
  const char *sid = api->req_param(req, "stream_id");
  if (!sid || !*sid) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "stream_id required");
    return;
  }
  int n = api->ws_close_key(s->ch, sid, CHAT_WS_CLOSE_RELOAD, CHAT_WS_CLOSE_RELOAD_REASON);
  if (n < 0) {
    PC_RESPOND_ERROR_LIT(api, req, 500, "cannot close the stream's connections");
    return;
  }
  if (n > 0) {
    api->metric_add(s->closed, NULL, n);
    api->log(s->self, NOTIFD_LOG_INFO, "closed %d websocket(s) of stream %s with %d", n, sid,
             CHAT_WS_CLOSE_RELOAD);
  }
  pc_buf out;
  pc_buf_init(&out);
  pc_buf_printf(&out, "{\"closed\":%d}", n);
  pc_respond_json(api, req, 200, &out);
  pc_buf_free(&out);
}
