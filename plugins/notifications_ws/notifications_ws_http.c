/* POST /notifications/<kind>?user_id= with the Go service's order of
 * checks and answers (contract 6): the body is bound and validated first,
 * then user_id; the notification is stored, then published; 200 / 206 /
 * 500 by delivery outcome, 500 when it could not be stored (a caller that
 * retries, like chat_change_handler, tries again).
 *
 * With `answer: arrival` (or `chat_answer: arrival` for POST
 * /notifications/chat alone) the POST is answered as soon as the notification
 * is queued for the group commit - 200 with `delivered` = the user's
 * sockets at that moment - and stored and published right after: a caller
 * that waits for each answer before its next notification (the change
 * handler, one record per bus partition) then does not wait for a commit's
 * round trip.  The price: a crash in the milliseconds before the commit, or
 * a failing store (logged, counted as inbox_ops{op="insert",
 * result="error"}), loses a notification that was answered 200. */
#include <string.h>

#include "notifications_ws.h"
#include "pc_jenc.h"

/* answer: arrival - the POST was answered already; count the outcome. */
static void published(notif_ws *s, notif_item *it, int rc, const pc_publish *pub, void *ud) {
  (void)ud;
  notif_count(s, "http", it->kind, rc < 0 ? "failed" : notif_result(pub));
}

static void respond(notif_ws *s, notifd_req *req, const pc_notification_kind *kind,
                    const char *user_id, size_t frame_len, const pc_publish *pub);

static void answer(notif_ws *s, notif_item *it, int rc, const pc_publish *pub, void *ud) {
  notifd_req *req = ud;
  const notifd_api *api = s->api;
  const pc_notification_kind *kind = it->kind;
  if (rc < 0) {
    notif_count(s, "http", kind, "failed");
    pc_buf e;
    pc_buf_init(&e);
    pc_buf_printf(&e, "failed to store notification: %s", it->err);
    pc_respond_error(api, req, 500, e.data ? e.data : "out of memory", e.len);
    pc_buf_free(&e);
    return;
  }
  notif_count(s, "http", kind, notif_result(pub));
  respond(s, req, kind, it->rec.user_id, it->frame_len, pub);
}

static void respond(notif_ws *s, notifd_req *req, const pc_notification_kind *kind,
                    const char *user_id, size_t frame_len, const pc_publish *pub) {
  const notifd_api *api = s->api;
  pc_buf out;
  pc_buf_init(&out);
  /* gin.H bodies: keys in alphabetical order. */
  int status;
  if (pub->rc == 0 && pub->failed == 0) {
    status = 200;
    pc_buf_printf(&out, "{\"delivered\":%u,\"notification_type\":", pub->delivered);
    pc_json_put_cstring(&out, kind->notification_type);
    pc_buf_puts(&out, ",\"user_id\":");
    pc_json_put_cstring(&out, user_id);
    pc_buf_putc(&out, '}');
  } else {
    pc_buf text;
    pc_buf_init(&text);
    pc_publish_error_text(pub, frame_len, &text);
    if (pub->delivered == 0) {
      status = 500;
      pc_buf_puts(&out, "{\"error\":");
      pc_json_put_string(&out, text.data ? text.data : "", text.len);
      pc_buf_puts(&out, ",\"message\":\"failed to deliver notification to any connections\"}");
    } else {
      status = 206;
      pc_buf_printf(&out, "{\"delivered\":%u,\"error\":", pub->delivered);
      pc_json_put_string(&out, text.data ? text.data : "", text.len);
      pc_buf_puts(&out,
                  ",\"message\":\"notification delivered to some connections but encountered "
                  "errors\"}");
    }
    if (text.oom) out.oom = 1;
    pc_buf_free(&text);
  }
  pc_respond_json(api, req, status, &out);
  pc_buf_free(&out);
}

void notif_http_submit(notif_ws *s, notifd_req *req, const pc_notification_kind *kind,
                       const pc_model *payload, const char *json, const char *user_id) {
  const notifd_api *api = s->api;
  if (!user_id || !*user_id) {
    notif_count(s, "http", kind, "invalid");
    PC_RESPOND_ERROR_LIT(api, req, 400, "user_id query parameter required");
    return;
  }
  const char *bad = notif_user_id_problem(user_id, strlen(user_id));
  if (bad) {
    notif_count(s, "http", kind, "invalid");
    pc_respond_error(api, req, 400, bad, strlen(bad));
    return;
  }
  /* A chat notification is derived from a message already stored in the
   * chat store: chat_answer may answer it on arrival while the other
   * types still wait for their commit. */
  int is_chat = strcmp(kind->name, "chat") == 0;
  int early = s->store && (is_chat ? s->chat_answer_on_arrival || s->answer_on_arrival
                                   : s->answer_on_arrival);
  int rc = notif_submit(s, kind, payload, json, user_id, early ? published : answer,
                        early ? NULL : req);
  if (rc < 0) {
    notif_count(s, "http", kind, "failed");
    if (rc == -1) PC_RESPOND_ERROR_LIT(api, req, 500, "failed to serialize notification");
    else PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
  } else if (early) {
    pc_publish pub = {.delivered = recovery_sockets(s, user_id)};
    respond(s, req, kind, user_id, 0, &pub);
  }
}

void notif_on_http(notifd_req *req, void *ud) {
  notif_route *route = ud;
  notif_ws *s = route->s;
  const pc_notification_kind *kind = route->kind;
  const notifd_api *api = s->api;
  size_t len = 0;
  const void *body = api->req_body(req, &len);
  pc_model payload;
  pc_buf err;
  pc_buf_init(&err);

  int rc = pc_bind_body(kind->model, body, len, &payload, &err);
  if (rc != PC_BIND_OK) {
    notif_count(s, "http", kind, "invalid");
    if (rc == PC_BIND_NOMEM) PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    else pc_respond_error(api, req, 400, err.data ? err.data : "", err.len);
    pc_buf_free(&err);
    return;
  }
  pc_buf_free(&err);
  notif_http_submit(s, req, kind, &payload, NULL, api->req_query(req, "user_id"));
  pc_model_free(&payload);
}
