/* Offline delivery: a stored notification that reached no socket of its
 * user (delivered == 0) goes to POST {push_url}/push/send (the webpush
 * role; internal auth; `local:` = this process) when the user's
 * preferences allow push for its type and it is not quiet hours:
 *
 *   {"user_id":U,"notification":{"id","notification_type","timestamp","payload"}}
 *
 * The call is fire-and-forget: its outcome is counted
 * (notifications_ws_push_total{result}) and otherwise ignored.  A 404 means
 * no push service is loaded: pushes pause for PUSH_404_PAUSE_MS, so a node
 * without one does not make a pointless call per notification.  At most
 * PUSH_INFLIGHT_MAX calls run at once; beyond that a push is dropped
 * (result "busy") rather than queued without bound. */
#include <stdlib.h>
#include <string.h>

#include "notifications_ws.h"
#include "pc_jenc.h"

#define PUSH_404_PAUSE_MS 30000
#define PUSH_INFLIGHT_MAX 256

static void count(notif_ws *s, const char *result) {
  const char *v[] = {result};
  s->api->metric_add(s->m_push, v, 1);
}

static void on_reply(int32_t status, notifd_http_resp *resp, void *ud) {
  (void)resp;
  notif_ws *s = ud;
  s->push_inflight--;
  if (status >= 200 && status < 300) {
    count(s, "sent");
  } else if (status == 404) {
    count(s, "not_found");
    s->push_off_until_ms = notif_now_ms() + PUSH_404_PAUSE_MS;
  } else {
    count(s, "error");
    s->api->log(s->self, NOTIFD_LOG_DEBUG, "push: %s/push/send answered %d", s->push_url,
                (int)status);
  }
}

void push_maybe(notif_ws *s, const notif_item *it, uint32_t delivered, int allowed, int quiet) {
  if (delivered > 0 || !*s->push_url) return;
  if (!allowed) {
    count(s, "disabled");
    return;
  }
  if (quiet) {
    count(s, "quiet");
    return;
  }
  if (s->push_off_until_ms && notif_now_ms() < s->push_off_until_ms) {
    count(s, "no_push_service");
    return;
  }
  if (s->push_inflight >= PUSH_INFLIGHT_MAX) {
    count(s, "busy");
    return;
  }
  pc_buf body, url;
  pc_buf_init(&body);
  pc_buf_init(&url);
  pc_buf_puts(&body, "{\"user_id\":");
  pc_json_put_cstring(&body, it->rec.user_id);
  pc_buf_puts(&body, ",\"notification\":");
  notif_frame(&body, it->rec.id, it->rec.type, it->rec.ts, it->rec.payload);
  pc_buf_putc(&body, '}');
  pc_buf_printf(&url, "%s/push/send", s->push_url);
  if (body.oom || url.oom || !pc_buf_cstr(&url)) {
    count(s, "error");
  } else {
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    notifd_http_client_req req = {
        .size = sizeof req,
        .internal_auth = 1,
        .method = "POST",
        .url = url.data,
        .headers = headers,
        .body = body.data,
        .body_len = body.len,
        .timeout_ms = s->push_timeout_ms,
    };
    s->push_inflight++; /* before: the callback may run inside the call */
    if (s->api->http_call(s->self, &req, on_reply, s) < 0) {
      s->push_inflight--;
      count(s, "error");
    }
  }
  pc_buf_free(&body);
  pc_buf_free(&url);
}
