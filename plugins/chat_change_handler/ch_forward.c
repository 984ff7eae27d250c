/* The two deliveries of a chat message, made concurrently through the
 * host's HTTP client ("local:" bases are dispatched in-process):
 *
 *   chat_ws:        POST {chat_ws_url}/chat/forward-to-websocket?stream_id=S
 *                   2xx except 206 is success (206 = some sockets failed)
 *   notifications:  POST {notifications_url}/notifications/chat?user_id=R
 *                   (R = receiver_id, the parameter the Go service forgot);
 *                   any 2xx is success, as in Go
 *
 * The ?stream_id= on the chat_ws call is the routing hint an L7 proxy
 * hashes on (the Go service had none).  Bodies are the ChatMessage as Go
 * JSON; every call carries the internal token. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ch_internal.h"
#include "pc_buf.h"

static const char *const target_names[CH_TARGETS] = {"chat_ws", "notifications"};

char *ch_url_encode(const char *s) {
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_put_url_escaped(&b, s);
  return pc_buf_steal(&b, NULL);
}

/* "target: what" appended to the attempt's error text. */
static void add_error(ch_event *ev, int target, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_error(ch_event *ev, int target, const char *fmt, ...) {
  size_t used = strlen(ev->err);
  if (used + 8 >= sizeof ev->err) return;
  int n = snprintf(ev->err + used, sizeof ev->err - used, "%s%s: ", used ? "; " : "",
                   target_names[target]);
  if (n < 0 || (size_t)n >= sizeof ev->err - used) return;
  used += (size_t)n;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ev->err + used, sizeof ev->err - used, fmt, ap);
  va_end(ap);
}

/* First bytes of a reply body, printable ASCII only, for the error text. */
static void snippet(const void *body, size_t len, char *out, size_t outlen) {
  size_t o = 0;
  const unsigned char *p = body;
  for (size_t i = 0; p && i < len && o + 1 < outlen; i++)
    out[o++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
  out[o] = '\0';
}

static void on_reply(int32_t status, notifd_http_resp *resp, void *ud) {
  ch_call *c = ud;
  ch_event *ev = c->ev;
  ch_plugin *pl = ev->pl;
  int ok = status >= 200 && status < 300 && !(c->target == CH_TARGET_CHAT_WS && status == 206);
  const char *labels[] = {target_names[c->target], ok ? "ok" : "error"};
  pl->api->metric_observe(pl->m.forward, labels, (double)(pc_mono_ns() - c->t0_ns) / 1e9);
  if (ok) {
    ev->done |= 1u << c->target;
  } else if (status == 413) {
    ev->too_large |= 1u << c->target; /* the same answer on every retry */
    add_error(ev, c->target, "HTTP 413: the record is larger than the target accepts");
  } else if (!resp) {
    add_error(ev, c->target, "transport error or timeout (%d)", (int)status);
  } else {
    size_t len = 0;
    const void *body = pl->api->http_resp_body(resp, &len);
    char text[161];
    snippet(body, len, text, sizeof text);
    add_error(ev, c->target, "HTTP %d: %s", (int)status, text);
  }
  if (--ev->pending == 0) ch_forward_finished(ev);
}

static char *target_url(ch_plugin *pl, const ch_event *ev, int target) {
  const chat_message *msg = &ev->change.msg;
  char *arg = ch_url_encode(target == CH_TARGET_CHAT_WS ? msg->stream_id : msg->receiver_id);
  if (!arg) return NULL;
  pc_buf b;
  pc_buf_init(&b);
  if (target == CH_TARGET_CHAT_WS)
    pc_buf_printf(&b, "%s/chat/forward-to-websocket?stream_id=%s", pl->chat_ws_base, arg);
  else
    pc_buf_printf(&b, "%s/notifications/chat?user_id=%s", pl->notifications_base, arg);
  free(arg);
  return pc_buf_steal(&b, NULL);
}

void ch_forward(ch_event *ev) {
  ch_plugin *pl = ev->pl;
  static const char *const headers[] = {"Content-Type: application/json", NULL};
  ev->err[0] = '\0';
  ev->pending = 1; /* held until every call is started */
  for (int t = 0; t < CH_TARGETS; t++) {
    if (ev->done & (1u << t)) continue; /* reached in an earlier attempt */
    char *url = target_url(pl, ev, t);
    if (!url) {
      add_error(ev, t, "out of memory");
      continue;
    }
    notifd_http_client_req req = {
        .size = sizeof req,
        .internal_auth = 1,
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = ev->body,
        .body_len = ev->body_len,
        .timeout_ms = t == CH_TARGET_CHAT_WS ? pl->chat_ws_timeout_ms
                                             : pl->notifications_timeout_ms,
    };
    ev->call[t].ev = ev;
    ev->call[t].target = t;
    ev->call[t].t0_ns = pc_mono_ns();
    ev->pending++; /* before the call: its callback may run inside it */
    int rc = pl->api->http_call(pl->self, &req, on_reply, &ev->call[t]);
    free(url);
    if (rc < 0) {
      ev->pending--;
      add_error(ev, t, "cannot call (%d)", rc);
    }
  }
  if (--ev->pending == 0) ch_forward_finished(ev);
}

/* ---- closing a stream after exhaustion ---- */

void ch_close_free(ch_close *c) {
  free(c->stream_id);
  free(c);
}

static void close_unlink(ch_close *c) {
  ch_plugin *pl = c->pl;
  if (c->prev) c->prev->next = c->next;
  else if (pl->closes == c) pl->closes = c->next;
  if (c->next) c->next->prev = c->prev;
}

static void on_closed(int32_t status, notifd_http_resp *resp, void *ud) {
  ch_close *c = ud;
  ch_plugin *pl = c->pl;
  if (status >= 200 && status < 300) {
    size_t len = 0;
    const void *body = resp ? pl->api->http_resp_body(resp, &len) : NULL;
    char text[81];
    snippet(body, len, text, sizeof text);
    pl->api->log(pl->self, NOTIFD_LOG_INFO, "stream %s closed: %s", c->stream_id, text);
  } else {
    pl->api->log(pl->self, NOTIFD_LOG_WARN, "closing stream %s failed (status %d)", c->stream_id,
                 (int)status);
  }
  close_unlink(c);
  ch_close_free(c);
}

void ch_close_stream(ch_plugin *pl, const char *stream_id) {
  char *enc = ch_url_encode(stream_id);
  ch_close *c = calloc(1, sizeof *c);
  pc_buf b;
  pc_buf_init(&b);
  if (enc) pc_buf_printf(&b, "%s/chat/streams/%s/close", pl->chat_ws_base, enc);
  char *url = enc ? pc_buf_steal(&b, NULL) : NULL;
  free(enc);
  if (c) {
    c->pl = pl;
    c->stream_id = strdup(stream_id);
  }
  if (!url || !c || !c->stream_id) {
    pl->api->log(pl->self, NOTIFD_LOG_ERROR, "cannot close stream %s: out of memory", stream_id);
    free(url);
    if (c) ch_close_free(c);
    pc_buf_free(&b);
    return;
  }
  static const char *const headers[] = {"Content-Type: application/json", NULL};
  static const char body[] = "{\"reason\":\"delivery retries exhausted\"}";
  notifd_http_client_req req = {
      .size = sizeof req,
      .internal_auth = 1,
      .method = "POST",
      .url = url,
      .headers = headers,
      .body = body,
      .body_len = sizeof body - 1,
      .timeout_ms = pl->close_timeout_ms,
  };
  c->next = pl->closes;
  if (pl->closes) pl->closes->prev = c;
  pl->closes = c;
  int rc = pl->api->http_call(pl->self, &req, on_closed, c);
  free(url);
  if (rc < 0) {
    pl->api->log(pl->self, NOTIFD_LOG_WARN, "closing stream %s: cannot call (%d)", stream_id, rc);
    close_unlink(c);
    ch_close_free(c);
  }
}
