/* The Go emailhandler's endpoints (contract 7) and the directory upsert:
 *
 *   POST /email/chat        ChatMessage -> mail the receiver; 201 echo
 *   POST /email/purchased   PurchaseUpdate -> mail the shop owner; 201 echo
 *   PUT  /email/users/{user_id}  {"email","name"} -> 200 {"user_id","email","name"}
 *
 * 400 {"error": <Go binding text>}, 500 {"error":"failed to send email"}
 * (unknown recipient or any send failure), as the Go service answered.
 * HTTP sends are not deduplicated: each request is one mail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"
#include "email_util.h"
#include "email_gojson.h"

static void respond_bind_error(email_plugin *ep, notifd_req *req, int rc, char *err) {
  if (rc == -2)
    ep->api->respond_error(req, 500, "out of memory");
  else
    ep->api->respond_error(req, 400, err ? err : "invalid request");
  free(err);
}

static void start_send(email_op *op) {
  email_plugin *ep = op->ep;
  if (email_submit_send(op) < 0) {
    ep->api->respond_error(op->req, 500, "failed to send email");
    email_op_free(op);
  }
}

static void on_chat(notifd_req *req, void *ud) {
  email_plugin *ep = ud;
  json_t *body = ep->api->req_json_or_400(req);
  if (!body) return;
  email_chat_msg m;
  char *err = NULL;
  int rc = email_bind_chat(body, &m, &err);
  if (rc < 0) {
    respond_bind_error(ep, req, rc, err);
    return;
  }
  email_op *op = email_op_new(ep, OP_HTTP_SEND);
  if (!op || !(op->echo = email_echo_chat(&m, &op->echo_len)) ||
      email_event_from_chat(&op->ev, &m) < 0) {
    email_chat_msg_free(&m);
    email_op_free(op);
    ep->api->respond_error(req, 500, "out of memory");
    return;
  }
  email_chat_msg_free(&m);
  op->req = req;
  start_send(op);
}

static void on_purchased(notifd_req *req, void *ud) {
  email_plugin *ep = ud;
  json_t *body = ep->api->req_json_or_400(req);
  if (!body) return;
  email_purchase p;
  char *err = NULL;
  int rc = email_bind_purchase(body, &p, &err);
  if (rc < 0) {
    respond_bind_error(ep, req, rc, err);
    return;
  }
  email_op *op = email_op_new(ep, OP_HTTP_SEND);
  if (!op || !(op->echo = email_echo_purchase(&p, &op->echo_len)) ||
      email_event_from_purchase(&op->ev, &p) < 0) {
    email_purchase_free(&p);
    email_op_free(op);
    ep->api->respond_error(req, 500, "out of memory");
    return;
  }
  email_purchase_free(&p);
  op->req = req;
  start_send(op);
}

/* ---- PUT /email/users/{user_id} ---- */

static void upsert_work(void *ud) {
  email_op *op = ud;
  email_plugin *ep = op->ep;
  char err[256] = "";
  if (ep->store->ops->upsert(ep->store, op->user_id, op->email, op->name, err, sizeof err) < 0) {
    op->outcome = OUT_STORE_ERROR;
    snprintf(op->detail, sizeof op->detail, "%s", err);
  } else {
    op->outcome = OUT_SENT;
  }
}

static void upsert_done(void *ud) {
  email_op *op = ud;
  email_plugin *ep = op->ep;
  if (ep->stopping) {
    email_op_free(op);
    return;
  }
  if (op->outcome != OUT_SENT) {
    ep->api->log(ep->self, NOTIFD_LOG_ERROR, "upsert of user %s failed: %s", op->user_id,
                 op->detail);
    ep->api->respond_error(op->req, 500, "failed to store the email address");
  } else {
    json_t *out = json_pack("{s:s, s:s, s:s}", "user_id", op->user_id, "email", op->email, "name",
                            op->name);
    if (out)
      ep->api->respond_json(op->req, 200, out);
    else
      ep->api->respond_error(op->req, 500, "out of memory");
    json_decref(out);
  }
  email_op_free(op);
}

static void on_put_user(notifd_req *req, void *ud) {
  email_plugin *ep = ud;
  const char *user_id = ep->api->req_param(req, "user_id");
  json_t *body = ep->api->req_json_or_400(req);
  if (!body) return;
  const json_t *je = json_object_get(body, "email"), *jn = json_object_get(body, "name");
  if (!json_is_object(body) || !json_is_string(je)) {
    ep->api->respond_error(req, 400, "body must be {\"email\": string, \"name\": string}");
    return;
  }
  if (jn && !json_is_null(jn) && !json_is_string(jn)) {
    ep->api->respond_error(req, 400, "\"name\" must be a string");
    return;
  }
  const char *email = json_string_value(je), *name = jn ? json_string_value(jn) : NULL;
  if (!email_addr_valid(email)) {
    ep->api->respond_error(req, 400, "\"email\" is not a valid address (local@domain)");
    return;
  }
  if (name && (!email_utf8_printable(name, strlen(name)) || strlen(name) > 256)) {
    ep->api->respond_error(req, 400, "\"name\" must be one line of at most 256 bytes");
    return;
  }
  if (!user_id || !*user_id || !email_utf8_printable(user_id, strlen(user_id))) {
    ep->api->respond_error(req, 400, "bad user_id");
    return;
  }
  email_op *op = email_op_new(ep, OP_UPSERT);
  if (op) {
    op->req = req;
    op->user_id = strdup(user_id);
    op->email = strdup(email);
    op->name = strdup(name ? name : "");
  }
  if (!op || !op->user_id || !op->email || !op->name ||
      ep->api->work_submit(ep->self, upsert_work, upsert_done, op) < 0) {
    email_op_free(op);
    ep->api->respond_error(req, 500, "failed to store the email address");
  }
}

int email_http_register(email_plugin *ep) {
  notifd_route_opts o = {.size = sizeof o, .auth = ep->auth};
  int rc = 0;
  if (ep->enabled & (1u << EMAIL_CHAT))
    rc = ep->api->http_route(ep->self, "POST", "/email/chat", on_chat, ep, &o);
  if (rc == 0 && (ep->enabled & (1u << EMAIL_PURCHASE)))
    rc = ep->api->http_route(ep->self, "POST", "/email/purchased", on_purchased, ep, &o);
  if (rc == 0) rc = ep->api->http_route(ep->self, "PUT", "/email/users/{user_id}", on_put_user, ep, &o);
  return rc;
}
