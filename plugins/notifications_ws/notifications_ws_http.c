/* POST /notifications/<kind>?user_id= with the Go service's order of
 * checks and answers (contract 6): the body is bound and validated first,
 * then user_id; 200 / 206 / 500 by delivery outcome. */
#include <string.h>

#include "notifications_ws.h"
#include "pc_jenc.h"

void notif_on_http(notifd_req *req, void *ud) {
  notif_route *route = ud;
  notif_ws *s = route->s;
  const pc_notification_kind *kind = route->kind;
  const notifd_api *api = s->api;
  size_t len = 0;
  const void *body = api->req_body(req, &len);
  pc_model payload;
  pc_buf err, out;
  pc_buf_init(&err);
  pc_buf_init(&out);

  int rc = pc_bind_body(kind->model, body, len, &payload, &err);
  if (rc != PC_BIND_OK) {
    notif_count(s, "http", kind, "invalid");
    if (rc == PC_BIND_NOMEM) PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    else pc_respond_error(api, req, 400, err.data ? err.data : "", err.len);
    goto done;
  }
  const char *user_id = api->req_query(req, "user_id");
  if (!user_id || !*user_id) {
    notif_count(s, "http", kind, "invalid");
    PC_RESPOND_ERROR_LIT(api, req, 400, "user_id query parameter required");
    goto done_payload;
  }
  size_t ulen = strlen(user_id);
  pc_publish pub;
  size_t frame_len = 0;
  rc = notif_deliver(s, kind, &payload, user_id, ulen, &pub, &frame_len);
  if (rc < 0) {
    notif_count(s, "http", kind, "failed");
    if (rc == -1) PC_RESPOND_ERROR_LIT(api, req, 500, "failed to serialize notification");
    else PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    goto done_payload;
  }
  notif_count(s, "http", kind, notif_result(&pub));

  /* gin.H bodies: keys in alphabetical order. */
  int status;
  if (pub.rc == 0 && pub.failed == 0) {
    status = 200;
    pc_buf_printf(&out, "{\"delivered\":%u,\"notification_type\":", pub.delivered);
    pc_json_put_cstring(&out, kind->notification_type);
    pc_buf_puts(&out, ",\"user_id\":");
    pc_json_put_string(&out, user_id, ulen);
    pc_buf_putc(&out, '}');
  } else {
    pc_buf text;
    pc_buf_init(&text);
    pc_publish_error_text(&pub, frame_len, &text);
    if (pub.delivered == 0) {
      status = 500;
      pc_buf_puts(&out, "{\"error\":");
      pc_json_put_string(&out, text.data ? text.data : "", text.len);
      pc_buf_puts(&out, ",\"message\":\"failed to deliver notification to any connections\"}");
    } else {
      status = 206;
      pc_buf_printf(&out, "{\"delivered\":%u,\"error\":", pub.delivered);
      pc_json_put_string(&out, text.data ? text.data : "", text.len);
      pc_buf_puts(&out,
                  ",\"message\":\"notification delivered to some connections but encountered "
                  "errors\"}");
    }
    if (text.oom) out.oom = 1;
    pc_buf_free(&text);
  }
  pc_respond_json(api, req, status, &out);
done_payload:
  pc_model_free(&payload);
done:
  pc_buf_free(&err);
  pc_buf_free(&out);
}
