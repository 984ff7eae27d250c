/* Conversations and read state of chat_persistence.
 *
 *   GET  /chat/conversations?user_id=&limit=&before=   a user's conversations,
 *                                                     most recent first
 *   POST /chat/streams/{stream_id}/read {"message_id"} read mark, then a read
 *                                                     receipt to the peer
 *
 * The store keeps both per user and stream (maintained by the message
 * inserts), so neither request scans history.  The receipt is
 * POST {chat_ws_url}/chat/forward-event (internal auth); the stored mark is
 * the truth, so a failed receipt is only logged at debug level. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_buf.h"
#include "chat_json.h"
#include "chat_model.h"
#include "pc_stream_id.h"
#include "cp_internal.h"

#define JSON_CT "application/json; charset=utf-8"

static void put_str(pc_buf *b, const char *s) { chat_json_str(b, s, strlen(s), CHAT_JSON_GO); }

/* ---- GET /chat/conversations ---- */

typedef struct conv_job {
  cp_job base;
  notifd_req *req;
  char *user;
  cp_cursor before;
  size_t limit;
  cp_conv_page page;
  int rc;
  int64_t t0;
  char err[256];
} conv_job;

static void conv_work(cp_job *j) {
  conv_job *cj = (conv_job *)j;
  cp_store *s = j->pl->store;
  cj->rc = s->ops->conversations(s, cj->user, &cj->before, cj->limit, &cj->page, cj->err,
                                 sizeof cj->err);
}

static void conv_release(cp_job *j) {
  conv_job *cj = (conv_job *)j;
  free(cj->user);
  cp_cursor_free(&cj->before);
  cp_conv_page_free(&cj->page);
  free(cj);
}

static int render_conversations(const cp_conv_page *page, pc_buf *b) {
  pc_buf_puts(b, "{\"conversations\":[");
  for (size_t i = 0; i < page->n; i++) {
    const cp_conv *c = &page->items[i];
    if (i) pc_buf_putc(b, ',');
    pc_buf_puts(b, "{\"stream_id\":");
    put_str(b, c->stream_id);
    pc_buf_puts(b, ",\"peer_id\":");
    put_str(b, c->peer_id);
    pc_buf_puts(b, ",\"last_message\":");
    if (c->last.message_id && *c->last.message_id) {
      if (chat_message_gojson(&c->last, b) < 0) return -1;
    } else {
      pc_buf_puts(b, "null"); /* its message could not be read back */
    }
    pc_buf_printf(b, ",\"unread\":%lld,\"peer_read_message_id\":", (long long)c->unread);
    if (c->peer_read_id) put_str(b, c->peer_read_id);
    else pc_buf_puts(b, "null");
    pc_buf_putc(b, '}');
  }
  pc_buf_puts(b, "],\"next_before\":");
  if (page->next.kind != CP_CUR_NONE) {
    char *tok = cp_cursor_format(&page->next);
    if (!tok) return -1;
    put_str(b, tok);
    free(tok);
  } else {
    pc_buf_puts(b, "null");
  }
  pc_buf_putc(b, '}');
  return b->oom ? -1 : 0;
}

static void conv_done(cp_job *j) {
  conv_job *cj = (conv_job *)j;
  cp_plugin *pl = j->pl;
  cp_observe_store(pl, "conversations", cj->t0);
  if (cj->rc < 0) {
    pl->api->log(pl->self, NOTIFD_LOG_ERROR, "conversations of %s failed: %s", cj->user,
                 cj->err);
    pl->api->respond_error(cj->req, 500, "failed to read conversations");
  } else {
    pc_buf b;
    pc_buf_init(&b);
    if (render_conversations(&cj->page, &b) < 0)
      pl->api->respond_error(cj->req, 500, "failed to serialize conversations");
    else
      pl->api->respond(cj->req, 200, JSON_CT, b.data, b.len);
    pc_buf_free(&b);
  }
  conv_release(j);
}

static void on_conversations(notifd_req *req, void *ud) {
  cp_plugin *pl = ud;
  const notifd_api *api = pl->api;
  const char *user = cp_acting_user(pl, req, api->req_query(req, "user_id"));
  if (!user) return;
  size_t limit = cp_parse_limit(pl, api->req_query(req, "limit"));
  if (!limit) {
    api->respond_error(req, 400, "limit: expected a positive integer");
    return;
  }
  conv_job *cj = calloc(1, sizeof *cj);
  if (!cj) {
    api->respond_error(req, 500, "out of memory");
    return;
  }
  const char *before = api->req_query(req, "before");
  /* Conversation cursors name (time, stream); a history cursor is no use. */
  if (before && *before &&
      (cp_cursor_parse(before, &cj->before) < 0 ||
       (cj->before.kind != CP_CUR_TIME && cj->before.kind != CP_CUR_STR_ID))) {
    api->respond_error(req, 400, "before: expected a cursor from next_before or an RFC 3339 time");
    conv_release(&cj->base);
    return;
  }
  cj->user = strdup(user);
  if (!cj->user) {
    api->respond_error(req, 500, "out of memory");
    conv_release(&cj->base);
    return;
  }
  cj->limit = limit;
  cj->req = req;
  cj->t0 = pc_mono_ns();
  cj->base.work = conv_work;
  cj->base.done = conv_done;
  cj->base.release = conv_release;
  cp_submit_after_conv(pl, req, &cj->base);
}

/* ---- read receipts ---- */

struct cp_receipt {
  cp_receipt *prev, *next;
  cp_plugin *pl;
  char *body;
};

static void receipt_free(cp_receipt *r) {
  cp_plugin *pl = r->pl;
  if (r->prev) r->prev->next = r->next;
  else if (pl->receipts == r) pl->receipts = r->next;
  if (r->next) r->next->prev = r->prev;
  free(r->body);
  free(r);
}

void cp_state_drop_receipts(cp_plugin *pl) {
  while (pl->receipts) receipt_free(pl->receipts);
}

static void on_receipt_sent(int32_t status, notifd_http_resp *resp, void *ud) {
  (void)resp;
  cp_receipt *r = ud;
  cp_plugin *pl = r->pl;
  /* 404: no chat_ws with /chat/forward-event there (yet); the peer sees
   * the mark in the conversation list anyway. */
  if (status < 200 || status >= 300)
    pl->api->log(pl->self, NOTIFD_LOG_DEBUG, "read receipt not delivered (status %d): %s",
                 (int)status, r->body);
  receipt_free(r);
}

static int url_safe(const char *s) {
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~") ==
         strlen(s);
}

static void send_receipt(cp_plugin *pl, const char *stream, const char *user, const char *msg_id) {
  cp_receipt *r = calloc(1, sizeof *r);
  pc_buf body, url;
  pc_buf_init(&body);
  pc_buf_init(&url);
  pc_buf_puts(&body, "{\"stream_id\":");
  put_str(&body, stream);
  pc_buf_puts(&body, ",\"event\":{\"type\":\"read\",\"user_id\":");
  put_str(&body, user);
  pc_buf_puts(&body, ",\"message_id\":");
  put_str(&body, msg_id);
  pc_buf_puts(&body, "}}");
  /* ?stream_id= is the routing hint an L7 proxy hashes on, as on
   * /chat/forward-to-websocket. */
  pc_buf_printf(&url, "%s/chat/forward-event", pl->chat_ws_base);
  if (url_safe(stream)) pc_buf_printf(&url, "?stream_id=%s", stream);
  size_t body_len = 0;
  char *u = pc_buf_steal(&url, NULL);
  if (r) {
    r->pl = pl;
    r->body = pc_buf_steal(&body, &body_len);
  }
  pc_buf_free(&body);
  if (!r || !r->body || !u) {
    pl->api->log(pl->self, NOTIFD_LOG_WARN, "read receipt for %s: out of memory", stream);
    free(u);
    if (r) {
      free(r->body);
      free(r);
    }
    return;
  }
  static const char *const headers[] = {"Content-Type: application/json", NULL};
  notifd_http_client_req req = {
      .size = sizeof req,
      .internal_auth = 1,
      .method = "POST",
      .url = u,
      .headers = headers,
      .body = r->body,
      .body_len = body_len,
  };
  r->next = pl->receipts;
  if (pl->receipts) pl->receipts->prev = r;
  pl->receipts = r;
  int rc = pl->api->http_call(pl->self, &req, on_receipt_sent, r);
  free(u);
  if (rc < 0) {
    pl->api->log(pl->self, NOTIFD_LOG_DEBUG, "read receipt for %s: cannot call (%d)", stream, rc);
    receipt_free(r);
  }
}

/* ---- POST /chat/streams/{stream_id}/read ---- */

typedef struct read_job {
  cp_job base;
  notifd_req *req;
  char *stream_id, *user, *message_id;
  chat_message msg;
  int status; /* answer: 200, or the 4xx found by the checks, 500 */
  const char *why;
  int64_t unread;
  int64_t t0;
  char err[256];
} read_job;

static void read_work(cp_job *j) {
  read_job *rj = (read_job *)j;
  cp_plugin *pl = j->pl;
  cp_store *s = pl->store;
  int rc = s->ops->get(s, rj->message_id, &rj->msg, rj->err, sizeof rj->err);
  if (rc < 0) {
    rj->status = 500;
    return;
  }
  const chat_message *m = &rj->msg;
  int sender = rc == 1 && strcmp(rj->user, m->sender_id) == 0;
  int receiver = rc == 1 && strcmp(rj->user, m->receiver_id) == 0;
  const char *peer = sender ? m->receiver_id : m->sender_id;
  char want[PC_STREAM_ID_LEN + 1];
  if (rc == 0) {
    rj->status = 404;
    rj->why = "message not found";
  } else if (!sender && !receiver) {
    rj->status = 403;
    rj->why = "not a participant of this message's stream";
  } else if (strcmp(m->stream_id, rj->stream_id) != 0) {
    rj->status = 400;
    rj->why = "message_id: not a message of this stream";
  } else if (pl->verify_stream_id &&
             (pc_stream_id(rj->user, strlen(rj->user), peer, strlen(peer), want) < 0 ||
              strcmp(want, rj->stream_id) != 0)) {
    rj->status = 403;
    rj->why = "not a participant of this stream";
  } else if (s->ops->mark_read(s, rj->user, m, &rj->unread, rj->err, sizeof rj->err) < 0) {
    rj->status = 500;
  } else {
    rj->status = 200;
  }
}

static void read_release(cp_job *j) {
  read_job *rj = (read_job *)j;
  free(rj->stream_id);
  free(rj->user);
  free(rj->message_id);
  chat_message_free(&rj->msg);
  free(rj);
}

static void read_done(cp_job *j) {
  read_job *rj = (read_job *)j;
  cp_plugin *pl = j->pl;
  cp_observe_store(pl, "read", rj->t0);
  if (rj->status == 500) {
    pl->api->log(pl->self, NOTIFD_LOG_ERROR, "read mark of %s in %s failed: %s", rj->user,
                 rj->stream_id, rj->err);
    pl->api->respond_error(rj->req, 500, "failed to store the read mark");
  } else if (rj->status != 200) {
    pl->api->respond_error(rj->req, rj->status, rj->why);
  } else {
    pc_buf b;
    pc_buf_init(&b);
    pc_buf_puts(&b, "{\"stream_id\":");
    put_str(&b, rj->stream_id);
    pc_buf_puts(&b, ",\"user_id\":");
    put_str(&b, rj->user);
    pc_buf_puts(&b, ",\"message_id\":");
    put_str(&b, rj->msg.message_id);
    pc_buf_printf(&b, ",\"unread\":%lld}", (long long)rj->unread);
    if (b.oom) pl->api->respond_error(rj->req, 500, "out of memory");
    else pl->api->respond(rj->req, 200, JSON_CT, b.data, b.len);
    pc_buf_free(&b);
    send_receipt(pl, rj->stream_id, rj->user, rj->msg.message_id);
  }
  read_release(j);
}

/* A string member of the body: 1 present, 0 absent or null, -1 another type
 * (answered 400). */
static int body_string(cp_plugin *pl, notifd_req *req, json_t *body, const char *name,
                       const char **out) {
  json_t *v = json_object_get(body, name);
  *out = NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v)) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s: expected a string", name);
    pl->api->respond_error(req, 400, msg);
    return -1;
  }
  *out = json_string_value(v);
  return 1;
}

static void on_read(notifd_req *req, void *ud) {
  cp_plugin *pl = ud;
  const notifd_api *api = pl->api;
  const char *stream = api->req_param(req, "stream_id");
  if (!stream || !*stream || strlen(stream) > (size_t)pl->max_id_bytes) {
    api->respond_error(req, 400, "stream_id: required");
    return;
  }
  json_t *body = api->req_json_or_400(req);
  if (!body) return; /* answered 400 */
  if (!json_is_object(body)) {
    api->respond_error(req, 400, "body: expected a JSON object {\"message_id\": ...}");
    return;
  }
  const char *msg_id, *given;
  if (body_string(pl, req, body, "message_id", &msg_id) < 0 ||
      body_string(pl, req, body, "user_id", &given) < 0)
    return;
  if (!msg_id || !*msg_id || strlen(msg_id) > (size_t)pl->max_id_bytes) {
    api->respond_error(req, 400, "message_id: required");
    return;
  }
  const char *user = cp_acting_user(pl, req, given);
  if (!user) return;
  read_job *rj = calloc(1, sizeof *rj);
  if (rj) {
    chat_message_init(&rj->msg);
    rj->stream_id = strdup(stream);
    rj->user = strdup(user);
    rj->message_id = strdup(msg_id);
  }
  if (!rj || !rj->stream_id || !rj->user || !rj->message_id) {
    if (rj) read_release(&rj->base);
    api->respond_error(req, 500, "out of memory");
    return;
  }
  rj->req = req;
  rj->t0 = pc_mono_ns();
  rj->base.work = read_work;
  rj->base.done = read_done;
  rj->base.release = read_release;
  cp_submit_after_conv(pl, req, &rj->base);
}

int cp_state_register(cp_plugin *pl) {
  const notifd_api *api = pl->api;
  notifd_route_opts get = {sizeof get, pl->auth, 0};
  notifd_route_opts post = {sizeof post, pl->auth, 16384};
  int rc = api->http_route(pl->self, "GET", "/chat/conversations", on_conversations, pl, &get);
  if (rc == 0)
    rc = api->http_route(pl->self, "POST", "/chat/streams/{stream_id}/read", on_read, pl, &post);
  return rc;
}
