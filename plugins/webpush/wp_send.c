/* Sending: POST /push/send {"user_id","notification":{...}} (internal)
 * answers 202 {"subscriptions":n}, and an event from the bus (wp_events.c)
 * is acked, once the user's subscriptions are read and the payload
 * encrypted for each (on a worker); then deliveries run in the
 * background, one http_call per subscription:
 *   2xx                 sent
 *   404, 410            gone: the subscription is removed
 *   429, 5xx, transport retried with backoff (Retry-After honoured up to
 *                       retry.max_interval) until retry.max_attempts
 *   anything else       failed: logged and dropped (400, 403, 413, ...)
 * Retries wait in memory on timers, at most max_pending deliveries in all;
 * a stop drops what is still waiting (push is best effort: the inbox keeps
 * the notification). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pc_b64.h"
#include "pc_plugin.h"
#include "webpush.h"

#define JWT_LIFETIME_S (12 * 3600)

static void set_pending(webpush *wp) {
  wp->api->metric_set(wp->m_pending, NULL, (double)wp->ndeliveries);
}

/* Logs name the push service by origin only: the endpoint's path is a
 * capability (whoever knows it can push to the browser). */
static const char *service(const char *endpoint, char *buf, size_t n) {
  return wp_url_origin(endpoint, buf, n) == 0 ? buf : "?";
}

/* "timeout" or "transport error N" for a negative http_call status. */
static const char *failure(int32_t status, char *buf, size_t n) {
  if (status == NOTIFD_ETIMEDOUT) snprintf(buf, n, "timeout");
  else if (status < 0) snprintf(buf, n, "transport error %d", status);
  else snprintf(buf, n, "status %d", status);
  return buf;
}

void wp_delivery_free(wp_delivery *d) {
  if (!d) return;
  webpush *wp = d->wp;
  if (d->linked) {
    if (d->prev) d->prev->next = d->next;
    else wp->deliveries = d->next;
    if (d->next) d->next->prev = d->prev;
    wp->ndeliveries--;
    if (d->timer) wp->api->timer_stop(d->timer);
    set_pending(wp);
  }
  free(d->user_id);
  free(d->endpoint);
  pc_buf_free(&d->body);
  pc_buf_free(&d->authz);
  free(d);
}

/* ---- preparing (worker thread) -------------------------------------------- */

/* One subscription's delivery: the encrypted payload and the VAPID header
 * for the endpoint's origin; NULL (logged) when the stored keys are
 * unusable or memory ran out. */
static wp_delivery *prepare(webpush *wp, const char *user_id, const wp_sub *s, const void *plain,
                            size_t len, time_t now) {
  unsigned char point[WP_POINT_LEN], auth[WP_AUTH_LEN];
  char origin[2100];
  if (pc_b64url_decode(s->p256dh, strlen(s->p256dh), point, sizeof point) != WP_POINT_LEN ||
      pc_b64url_decode(s->auth, strlen(s->auth), auth, sizeof auth) != WP_AUTH_LEN ||
      wp_url_origin(s->endpoint, origin, sizeof origin) < 0) {
    wp->api->log(wp->self, NOTIFD_LOG_ERROR, "user %s: unusable stored subscription", user_id);
    return NULL;
  }
  wp_delivery *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->wp = wp;
  pc_buf_init(&d->body);
  pc_buf_init(&d->authz);
  d->user_id = strdup(user_id);
  d->endpoint = strdup(s->endpoint);
  pc_buf_puts(&d->authz, "Authorization: ");
  if (!d->user_id || !d->endpoint || wp_ece_encrypt(point, auth, plain, len, &d->body) < 0 ||
      wp_vapid_header(&wp->vapid, origin, (int64_t)now + JWT_LIFETIME_S, wp->subject, &d->authz) <
          0 ||
      !pc_buf_cstr(&d->authz)) {
    wp->api->log(wp->self, NOTIFD_LOG_ERROR, "user %s: cannot encrypt for %s", user_id, origin);
    wp_delivery_free(d);
    return NULL;
  }
  return d;
}

static void send_run(wp_job *j) {
  webpush *wp = j->wp;
  j->rc = wp->store->ops->list(wp->store, j->user_id, &j->subs, &j->nsubs, j->err,
                               sizeof j->err);
  if (j->rc < 0 || j->nsubs == 0) return;
  if (!(j->ready = calloc(j->nsubs, sizeof *j->ready))) {
    j->rc = -1;
    snprintf(j->err, sizeof j->err, "out of memory");
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  for (size_t i = 0; i < j->nsubs; i++) {
    const wp_sub *s = &j->subs[i];
    if (s->expires_ms && s->expires_ms <= now_ms) continue; /* the browser renews it */
    j->ready[i] = prepare(wp, j->user_id, s, j->payload, j->payload_len, ts.tv_sec);
  }
}

/* ---- delivering (loop) ------------------------------------------------------ */

static void attempt(wp_delivery *d);

static void on_retry_timer(notifd_timer *t, void *ud) {
  wp_delivery *d = ud;
  d->wp->api->timer_stop(t);
  d->timer = NULL;
  attempt(d);
}

static void gone_run(wp_job *j) {
  wp_store *st = j->wp->store;
  j->rc = st->ops->del(st, j->user_id, j->sub.endpoint, j->err, sizeof j->err);
}

static void gone_done(wp_job *j) {
  if (j->rc < 0)
    j->wp->api->log(j->wp->self, NOTIFD_LOG_ERROR, "user %s: cannot remove a subscription: %s",
                    j->user_id, j->err);
}

/* The push service says the subscription no longer exists. */
static void remove_gone(wp_delivery *d, int32_t status) {
  webpush *wp = d->wp;
  char o[2100];
  wp->api->log(wp->self, NOTIFD_LOG_INFO,
               "user %s: push service %s answered %d, removing the subscription", d->user_id,
               service(d->endpoint, o, sizeof o), status);
  wp_count(wp, "gone");
  wp_job *j = wp_job_new(wp, NULL);
  if (j) {
    /* The delivery's strings move to the job. */
    j->user_id = d->user_id;
    j->sub.endpoint = d->endpoint;
    d->user_id = d->endpoint = NULL;
    j->run = gone_run;
    j->done = gone_done;
    wp_job_submit(j);
  }
  wp_delivery_free(d);
}

static int64_t backoff_ms(webpush *wp, const wp_delivery *d, notifd_http_resp *resp) {
  int64_t ms = wp->retry_initial_ms;
  for (int i = 1; i < d->attempt && ms < wp->retry_max_ms; i++) ms *= 2;
  const char *ra = resp ? wp->api->http_resp_header(resp, "Retry-After") : NULL;
  if (ra) {
    char *end;
    long long s = strtoll(ra, &end, 10);
    if (end != ra && *end == '\0' && s > 0 && s < 86400 && s * 1000 > ms) ms = s * 1000;
  }
  return ms < wp->retry_max_ms ? ms : wp->retry_max_ms;
}

static void fail(wp_delivery *d, int32_t status) {
  webpush *wp = d->wp;
  char o[2100], f[64];
  wp->api->log(wp->self, NOTIFD_LOG_WARN, "user %s: push to %s dropped after %d attempt(s): %s",
               d->user_id, service(d->endpoint, o, sizeof o), d->attempt,
               failure(status, f, sizeof f));
  wp_count(wp, "failed");
  wp_delivery_free(d);
}

static void retry_or_fail(wp_delivery *d, int32_t status, notifd_http_resp *resp) {
  webpush *wp = d->wp;
  if (d->attempt >= wp->retry_attempts) {
    fail(d, status);
    return;
  }
  int64_t ms = backoff_ms(wp, d, resp);
  if (wp->api->timer_start(wp->self, ms, 0, on_retry_timer, d, &d->timer) < 0) {
    d->timer = NULL;
    fail(d, status);
    return;
  }
  char o[2100], f[64];
  wp->api->log(wp->self, NOTIFD_LOG_DEBUG, "user %s: push to %s: %s, retry in %lldms",
               d->user_id, service(d->endpoint, o, sizeof o), failure(status, f, sizeof f),
               (long long)ms);
  wp_count(wp, "retried");
}

static void on_reply(int32_t status, notifd_http_resp *resp, void *ud) {
  wp_delivery *d = ud;
  if (status >= 200 && status < 300) {
    wp_count(d->wp, "sent");
    wp_delivery_free(d);
  } else if (status == 404 || status == 410) {
    remove_gone(d, status);
  } else if (status < 0 || status == 429 || status >= 500) {
    retry_or_fail(d, status, resp);
  } else {
    fail(d, status);
  }
}

static void attempt(wp_delivery *d) {
  webpush *wp = d->wp;
  char ttl[40];
  snprintf(ttl, sizeof ttl, "TTL: %lld", (long long)wp->ttl_s);
  const char *headers[] = {d->authz.data, "Content-Encoding: aes128gcm",
                           "Content-Type: application/octet-stream", ttl, "Urgency: normal", NULL};
  notifd_http_client_req q = {.size = sizeof q,
                              .method = "POST",
                              .url = d->endpoint,
                              .headers = headers,
                              .body = d->body.data,
                              .body_len = d->body.len,
                              .timeout_ms = wp->timeout_ms};
  d->attempt++;
  int rc = wp->api->http_call(wp->self, &q, on_reply, d);
  if (rc < 0) retry_or_fail(d, rc, NULL);
}

static void start_delivery(webpush *wp, wp_delivery *d) {
  if (wp->ndeliveries >= wp->max_pending) {
    char o[2100];
    wp->api->log(wp->self, NOTIFD_LOG_WARN,
                 "user %s: push to %s dropped: %lld deliveries pending (max_pending)", d->user_id,
                 service(d->endpoint, o, sizeof o), (long long)wp->ndeliveries);
    wp_count(wp, "failed");
    wp_delivery_free(d);
    return;
  }
  d->next = wp->deliveries;
  if (wp->deliveries) wp->deliveries->prev = d;
  wp->deliveries = d;
  d->linked = 1;
  wp->ndeliveries++;
  set_pending(wp);
  attempt(d);
}

static void send_done(wp_job *j) {
  webpush *wp = j->wp;
  if (j->rc < 0) {
    wp->api->log(wp->self, NOTIFD_LOG_ERROR, "subscription store: %s", j->err);
    if (j->msg) wp_events_send_done(j, 0);
    else PC_RESPOND_ERROR_LIT(wp->api, j->req, 500, "subscription store unavailable");
    return;
  }
  size_t n = 0;
  for (size_t i = 0; j->ready && i < j->nsubs; i++) n += j->ready[i] != NULL;
  if (j->req) {
    json_t *out = json_pack("{s:I}", "subscriptions", (json_int_t)n);
    if (out) wp->api->respond_json(j->req, 202, out);
    else PC_RESPOND_ERROR_LIT(wp->api, j->req, 500, "out of memory");
    json_decref(out);
  }
  for (size_t i = 0; j->ready && i < j->nsubs; i++) {
    wp_delivery *d = j->ready[i];
    j->ready[i] = NULL;
    if (d) start_delivery(wp, d);
  }
  if (j->msg) wp_events_send_done(j, n);
}

int wp_send_submit(wp_job *j) {
  j->run = send_run;
  j->done = send_done;
  return wp_job_submit(j);
}

/* ---- the route ------------------------------------------------------------- */

char *wp_payload_fit(webpush *wp, char *full, const json_t *id, const char *type, size_t *len) {
  if (full && strlen(full) <= (size_t)wp->max_payload) {
    *len = strlen(full);
    return full;
  }
  free(full);
  json_t *stub = json_object();
  if (stub && id) json_object_set(stub, "id", (json_t *)id);
  if (stub && type) json_object_set_new(stub, "notification_type", json_string(type));
  if (stub) json_object_set_new(stub, "truncated", json_true());
  char *s = stub ? json_dumps(stub, JSON_COMPACT) : NULL;
  json_decref(stub);
  /* A stub over the limit (a huge id or type) is not sent at all. */
  if (s && strlen(s) > (size_t)wp->max_payload) {
    free(s);
    return NULL;
  }
  if (s) *len = strlen(s);
  return s;
}

static void on_send(notifd_req *req, void *ud) {
  webpush *wp = ud;
  const notifd_api *api = wp->api;
  json_t *body = api->req_json_or_400(req);
  if (!body) return;
  const char *user = json_string_value(json_object_get(body, "user_id"));
  const json_t *n = json_object_get(body, "notification");
  if (!json_is_object(body) || !user || !*user || strlen(user) > 256 || !json_is_object(n)) {
    PC_RESPOND_ERROR_LIT(api, req, 400,
                         "body must be {\"user_id\": string, \"notification\": object}");
    return;
  }
  wp_job *j = wp_job_new(wp, req);
  if (j && (j->user_id = strdup(user)))
    j->payload = wp_payload_fit(wp, json_dumps(n, JSON_COMPACT | JSON_ENCODE_ANY),
                                json_object_get(n, "id"),
                                json_string_value(json_object_get(n, "notification_type")),
                                &j->payload_len);
  if (!j || !j->user_id || !j->payload) {
    wp_job_free(j);
    PC_RESPOND_ERROR_LIT(api, req, 500, "cannot encode the notification");
    return;
  }
  if (wp_send_submit(j) < 0) PC_RESPOND_ERROR_LIT(api, req, 503, "shutting down");
}

int wp_send_register(webpush *wp) {
  /* The body carries one notification (the inbox caps payloads). */
  notifd_route_opts o = {.size = sizeof o, .auth = wp->send_auth, .max_body = 1 << 20};
  return wp->api->http_route(wp->self, "POST", "/push/send", on_send, wp, &o);
}
