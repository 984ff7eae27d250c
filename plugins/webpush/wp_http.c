/* The routes a browser (through the web client) calls:
 *
 *   POST   /push/subscriptions     PushSubscription JSON -> 201 {"endpoint"}
 *   GET    /push/subscriptions     -> 200 {"subscriptions":[{"endpoint"}]}
 *   DELETE /push/subscriptions     {"endpoint"} -> 204, 404 when unknown
 *   GET    /push/vapid-public-key  -> 200 {"public_key"} (no auth)
 *
 * A subscription is checked before anything is stored: an http(s)
 * endpoint URL (http only with allow_insecure_endpoints), p256dh an
 * uncompressed P-256 point on the curve, auth 16 bytes, not expired. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pc_b64.h"
#include "pc_jenc.h"
#include "pc_plugin.h"
#include "webpush.h"

#define MAX_BODY 4096
#define MAX_ENDPOINT 2048

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void respond_store_error(webpush *wp, wp_job *j) {
  wp->api->log(wp->self, NOTIFD_LOG_ERROR, "subscription store: %s", j->err);
  PC_RESPOND_ERROR_LIT(wp->api, j->req, 500, "subscription store unavailable");
}

/* Decodes a base64url key of exactly `want` bytes into a canonical
 * (unpadded) copy; NULL when it is not. */
static char *key_param(const json_t *keys, const char *name, unsigned char *raw, size_t want) {
  const char *s = json_string_value(json_object_get(keys, name));
  if (!s || pc_b64url_decode(s, strlen(s), raw, want) != (long)want) return NULL;
  pc_buf b;
  pc_buf_init(&b);
  pc_b64url_put(&b, raw, want);
  return pc_buf_steal(&b, NULL);
}

/* Fills j->sub from the body, or answers 400 and returns -1. */
static int parse_subscription(webpush *wp, notifd_req *req, const json_t *body, wp_job *j) {
  const notifd_api *api = wp->api;
  const char *endpoint = json_string_value(json_object_get(body, "endpoint"));
  const json_t *keys = json_object_get(body, "keys");
  const json_t *exp = json_object_get(body, "expirationTime");
  char origin[MAX_ENDPOINT + 16];
  if (!json_is_object(body) || !endpoint || !json_is_object(keys)) {
    PC_RESPOND_ERROR_LIT(api, req, 400,
                         "body must be a PushSubscription: {\"endpoint\", \"keys\": {\"p256dh\", "
                         "\"auth\"}}");
    return -1;
  }
  if (strlen(endpoint) > MAX_ENDPOINT || wp_url_origin(endpoint, origin, sizeof origin) < 0) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "endpoint must be an absolute https URL");
    return -1;
  }
  if (strncmp(origin, "https:", 6) != 0 && !wp->allow_insecure) {
    PC_RESPOND_ERROR_LIT(api, req, 400,
                         "endpoint must be an https URL (allow_insecure_endpoints is off)");
    return -1;
  }
  unsigned char point[WP_POINT_LEN], auth[WP_AUTH_LEN];
  j->sub.p256dh = key_param(keys, "p256dh", point, sizeof point);
  if (!j->sub.p256dh || !wp_point_valid(point, sizeof point)) {
    PC_RESPOND_ERROR_LIT(api, req, 400,
                         "keys.p256dh must be the base64url of an uncompressed P-256 point (65 "
                         "bytes) on the curve");
    return -1;
  }
  j->sub.auth = key_param(keys, "auth", auth, sizeof auth);
  if (!j->sub.auth) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "keys.auth must be the base64url of 16 bytes");
    return -1;
  }
  if (exp && !json_is_null(exp)) {
    if (!json_is_number(exp) || json_number_value(exp) < 0 || json_number_value(exp) > 9e15) {
      PC_RESPOND_ERROR_LIT(api, req, 400, "expirationTime must be null or milliseconds");
      return -1;
    }
    j->sub.expires_ms = (int64_t)json_number_value(exp);
    if (j->sub.expires_ms <= now_ms()) {
      PC_RESPOND_ERROR_LIT(api, req, 400, "the subscription has expired");
      return -1;
    }
  }
  if (!(j->sub.endpoint = strdup(endpoint))) {
    PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    return -1;
  }
  return 0;
}

/* ---- POST ------------------------------------------------------------------- */

static void put_run(wp_job *j) {
  webpush *wp = j->wp;
  j->rc = wp->store->ops->put(wp->store, j->user_id, &j->sub, now_ms(), wp->max_per_user, j->err,
                              sizeof j->err);
}

static void put_done(wp_job *j) {
  webpush *wp = j->wp;
  if (j->rc < 0) {
    respond_store_error(wp, j);
    return;
  }
  wp_events_subscribed(wp, j->user_id);
  if (j->rc > 0)
    wp->api->log(wp->self, NOTIFD_LOG_INFO,
                 "user %s: %d oldest push subscription(s) replaced (limit %lld)", j->user_id,
                 j->rc, (long long)wp->max_per_user);
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_puts(&b, "{\"endpoint\":");
  pc_json_put_cstring(&b, j->sub.endpoint);
  pc_buf_putc(&b, '}');
  pc_respond_json(wp->api, j->req, 201, &b);
  pc_buf_free(&b);
}

/* A job for this request's user, or NULL after answering. */
static wp_job *user_job(webpush *wp, notifd_req *req) {
  const char *user = wp_req_user(wp, req);
  if (!user) return NULL;
  wp_job *j = wp_job_new(wp, req);
  if (!j || !(j->user_id = strdup(user))) {
    wp_job_free(j);
    PC_RESPOND_ERROR_LIT(wp->api, req, 500, "out of memory");
    return NULL;
  }
  return j;
}

static void submit(wp_job *j) {
  notifd_req *req = j->req;
  const notifd_api *api = j->wp->api;
  if (wp_job_submit(j) < 0) PC_RESPOND_ERROR_LIT(api, req, 503, "shutting down");
}

static void on_subscribe(notifd_req *req, void *ud) {
  webpush *wp = ud;
  wp_job *j = user_job(wp, req);
  if (!j) return;
  json_t *body = wp->api->req_json_or_400(req);
  if (!body || parse_subscription(wp, req, body, j) < 0) {
    wp_job_free(j);
    return;
  }
  j->run = put_run;
  j->done = put_done;
  submit(j);
}

/* ---- GET -------------------------------------------------------------------- */

static void list_run(wp_job *j) {
  wp_store *st = j->wp->store;
  j->rc = st->ops->list(st, j->user_id, &j->subs, &j->nsubs, j->err, sizeof j->err);
}

static void list_done(wp_job *j) {
  webpush *wp = j->wp;
  if (j->rc < 0) {
    respond_store_error(wp, j);
    return;
  }
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_puts(&b, "{\"subscriptions\":[");
  for (size_t i = 0; i < j->nsubs; i++) {
    pc_buf_puts(&b, i ? ",{\"endpoint\":" : "{\"endpoint\":");
    pc_json_put_cstring(&b, j->subs[i].endpoint);
    pc_buf_putc(&b, '}');
  }
  pc_buf_puts(&b, "]}");
  pc_respond_json(wp->api, j->req, 200, &b);
  pc_buf_free(&b);
}

static void on_list(notifd_req *req, void *ud) {
  wp_job *j = user_job(ud, req);
  if (!j) return;
  j->run = list_run;
  j->done = list_done;
  submit(j);
}

/* ---- DELETE ----------------------------------------------------------------- */

static void del_run(wp_job *j) {
  wp_store *st = j->wp->store;
  j->rc = st->ops->del(st, j->user_id, j->sub.endpoint, j->err, sizeof j->err);
}

static void del_done(wp_job *j) {
  webpush *wp = j->wp;
  if (j->rc < 0) respond_store_error(wp, j);
  else if (j->rc == 0) PC_RESPOND_ERROR_LIT(wp->api, j->req, 404, "no such subscription");
  else wp->api->respond(j->req, 204, NULL, NULL, 0);
}

static void on_unsubscribe(notifd_req *req, void *ud) {
  webpush *wp = ud;
  wp_job *j = user_job(wp, req);
  if (!j) return;
  json_t *body = wp->api->req_json_or_400(req);
  const char *endpoint = body ? json_string_value(json_object_get(body, "endpoint")) : NULL;
  if (!body || !endpoint) {
    if (body) PC_RESPOND_ERROR_LIT(wp->api, req, 400, "body must be {\"endpoint\": string}");
    wp_job_free(j);
    return;
  }
  if (!(j->sub.endpoint = strdup(endpoint))) {
    PC_RESPOND_ERROR_LIT(wp->api, req, 500, "out of memory");
    wp_job_free(j);
    return;
  }
  j->run = del_run;
  j->done = del_done;
  submit(j);
}

/* ---- the public key ------------------------------------------------------------ */

static void on_public_key(notifd_req *req, void *ud) {
  webpush *wp = ud;
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_puts(&b, "{\"public_key\":\"");
  pc_buf_puts(&b, wp->vapid.pub_b64);
  pc_buf_puts(&b, "\"}");
  pc_respond_json(wp->api, req, 200, &b);
  pc_buf_free(&b);
}

int wp_http_register(webpush *wp) {
  const notifd_api *api = wp->api;
  notifd_route_opts user = {.size = sizeof user, .auth = wp->auth, .max_body = MAX_BODY};
  notifd_route_opts open = {.size = sizeof open, .auth = NOTIFD_AUTH_NONE, .max_body = MAX_BODY};
  int rc = api->http_route(wp->self, "POST", "/push/subscriptions", on_subscribe, wp, &user);
  if (rc == 0) rc = api->http_route(wp->self, "GET", "/push/subscriptions", on_list, wp, &user);
  if (rc == 0)
    rc = api->http_route(wp->self, "DELETE", "/push/subscriptions", on_unsubscribe, wp, &user);
  if (rc == 0)
    rc = api->http_route(wp->self, "GET", "/push/vapid-public-key", on_public_key, wp, &open);
  return rc;
}
