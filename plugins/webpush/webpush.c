/* webpush: offline delivery by Web Push (RFC 8030) with aes128gcm payload
 * encryption (RFC 8291) and VAPID (RFC 8292).
 *
 *   POST   /push/subscriptions       a browser PushSubscription -> 201
 *   GET    /push/subscriptions       the user's endpoints
 *   DELETE /push/subscriptions       {"endpoint"} -> 204
 *   GET    /push/vapid-public-key    {"public_key"} (public)
 *   POST   /push/send                {"user_id","notification"} -> 202 (internal)
 *   bus    events_topic              notification events -> pushes (wp_events.c)
 *
 * Every configuration key is documented in plugins/webpush/README.md. */
#include "webpush.h"
#include "pc_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_plugin.h"

#define LOGE(wp, ...) (wp)->api->log((wp)->self, NOTIFD_LOG_ERROR, __VA_ARGS__)

/* ---- jobs on the worker pool --------------------------------------------- */

wp_job *wp_job_new(webpush *wp, notifd_req *req) {
  wp_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->wp = wp;
  j->req = req;
  return j;
}

void wp_job_free(wp_job *j) {
  if (!j) return;
  webpush *wp = j->wp;
  if (j->prev) j->prev->next = j->next;
  else if (wp->jobs == j) wp->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  free(j->user_id);
  free(j->sub.endpoint);
  free(j->sub.p256dh);
  free(j->sub.auth);
  free(j->payload);
  for (size_t i = 0; j->ready && i < j->nsubs; i++) wp_delivery_free(j->ready[i]);
  free(j->ready);
  wp_subs_free(j->subs, j->nsubs);
  free(j);
}

static void job_run(void *ud) {
  wp_job *j = ud;
  j->run(j);
}

static void job_done(void *ud) {
  wp_job *j = ud;
  /* Stopping: the API may no longer be called; destroy frees the rest. */
  if (j->wp->stopping) return;
  if (j->done) j->done(j);
  wp_job_free(j);
}

int wp_job_submit(wp_job *j) {
  webpush *wp = j->wp;
  j->next = wp->jobs;
  if (wp->jobs) wp->jobs->prev = j;
  wp->jobs = j;
  int rc = wp->api->work_submit(wp->self, job_run, job_done, j);
  if (rc < 0) wp_job_free(j);
  return rc;
}

/* ---- requests -------------------------------------------------------------- */

const char *wp_req_user(webpush *wp, notifd_req *req) {
  const notifd_api *api = wp->api;
  const char *q = api->req_query(req, "user_id");
  if (wp->auth == NOTIFD_AUTH_TOKEN) {
    const char *sub = api->req_auth_subject(req);
    if (!sub || !*sub) {
      PC_RESPOND_ERROR_LIT(api, req, 401, "authentication required");
      return NULL;
    }
    if (q && strcmp(q, sub) != 0) {
      PC_RESPOND_ERROR_LIT(api, req, 403, "user_id must be the authenticated user");
      return NULL;
    }
    return sub;
  }
  if (!q || !*q || strlen(q) > 256) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "user_id query parameter is required (1..256 bytes)");
    return NULL;
  }
  return q;
}

void wp_count(webpush *wp, const char *result) {
  const char *v[] = {result};
  wp->api->metric_add(wp->m_sends, v, 1);
}

/* ---- configuration ---------------------------------------------------------- */

typedef struct cfg {
  webpush *wp;
  int bad;
} cfg;

static void cfg_int(cfg *c, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out) {
  if (c->wp->api->config_int(c->wp->self, key, def, out) < 0) {
    c->bad = 1;
  } else if (*out < lo || *out > hi) {
    LOGE(c->wp, "config key '%s': expected %lld..%lld", key, (long long)lo, (long long)hi);
    c->bad = 1;
  }
}

static void cfg_dur(cfg *c, const char *key, int64_t def, int64_t lo, int64_t *out) {
  if (c->wp->api->config_duration_ms(c->wp->self, key, def, out) < 0) {
    c->bad = 1;
  } else if (*out < lo) {
    LOGE(c->wp, "config key '%s': must be at least %lldms", key, (long long)lo);
    c->bad = 1;
  }
}

static int read_config(webpush *wp) {
  const notifd_api *api = wp->api;
  notifd_plugin *p = wp->self;
  cfg c = {wp, 0};
  uint32_t any = PC_AUTH_ALLOW_NONE | PC_AUTH_ALLOW_TOKEN | PC_AUTH_ALLOW_INTERNAL;
  if (pc_config_auth(api, p, "auth",
                     pc_auth_name(pc_auth_default(api, p, NOTIFD_AUTH_TOKEN)), any, &wp->auth) < 0 ||
      pc_config_auth(api, p, "send_auth",
                     pc_auth_name(pc_auth_default(api, p, NOTIFD_AUTH_INTERNAL)),
                     PC_AUTH_ALLOW_NONE | PC_AUTH_ALLOW_INTERNAL, &wp->send_auth) < 0)
    c.bad = 1;
  if (api->config_string(p, "subject", "mailto:admin@localhost", &wp->subject) < 0 ||
      api->config_string(p, "vapid_private_key", "", &wp->vapid_private_key) < 0 ||
      api->config_string(p, "store_path", "", &wp->store_path) < 0 ||
      api->config_string(p, "store", "auto", &wp->store_kind) < 0 ||
      api->config_string(p, "collection", "push_subscriptions", &wp->collection) < 0 ||
      api->config_string(p, "events_topic", "notification-events", &wp->events_topic) < 0 ||
      api->config_string(p, "events_group", "webpush", &wp->events_group) < 0 ||
      api->backend_string(p, "mongodb", "uri", &wp->mongo_uri) < 0 ||
      api->backend_string(p, "mongodb", "database", &wp->mongo_db) < 0 ||
      api->config_bool(p, "allow_insecure_endpoints", 0, &wp->allow_insecure) < 0)
    c.bad = 1;
  int64_t ttl_ms = 0;
  cfg_int(&c, "max_subscriptions_per_user", 10, 1, 1000, &wp->max_per_user);
  cfg_dur(&c, "ttl", 24LL * 3600 * 1000, 0, &ttl_ms);
  cfg_int(&c, "max_payload", 3072, 64, WP_ECE_MAX_PLAINTEXT, &wp->max_payload);
  cfg_dur(&c, "timeout", 10000, 1, &wp->timeout_ms);
  cfg_int(&c, "max_pending", 10000, 1, 10000000, &wp->max_pending);
  cfg_int(&c, "retry.max_attempts", 5, 1, 1000, &wp->retry_attempts);
  cfg_int(&c, "dedupe.max_entries", 100000, 1, 10000000, &wp->dedupe_entries);
  cfg_dur(&c, "dedupe.max_age", 3600 * 1000, 1, &wp->dedupe_age_ms);
  cfg_dur(&c, "retry.initial_interval", 1000, 1, &wp->retry_initial_ms);
  cfg_dur(&c, "retry.max_interval", 60000, 1, &wp->retry_max_ms);
  wp->ttl_s = ttl_ms / 1000;
  if (c.bad) return -1;
  if (strcmp(wp->store_kind, "auto") == 0) wp->store_kind = wp->mongo_uri ? "mongodb" : "sqlite";
  if (strcmp(wp->store_kind, "mongodb") == 0 && !wp->mongo_uri) {
    pc_config_error(wp->api, wp->self, "store", "mongodb needs backends.mongodb.uri");
    c.bad = 1;
  } else if (strcmp(wp->store_kind, "mongodb") != 0 && strcmp(wp->store_kind, "sqlite") != 0) {
    pc_config_error(wp->api, wp->self, "store", "expected auto, sqlite or mongodb, got '%s'", wp->store_kind);
    c.bad = 1;
  }
  if (*wp->events_topic && !*wp->events_group) {
    pc_config_error(wp->api, wp->self, "events_group", "must not be empty");
    c.bad = 1;
  }
  if (wp->retry_max_ms < wp->retry_initial_ms) wp->retry_max_ms = wp->retry_initial_ms;
  /* Push services want a way to reach the sender (RFC 8292 section 2.1). */
  if (wp->subject && strncmp(wp->subject, "mailto:", 7) != 0 &&
      strncmp(wp->subject, "https://", 8) != 0) {
    pc_config_error(wp->api, wp->self, "subject", "expected a mailto: or https: URI, got '%s'", wp->subject);
    c.bad = 1;
  }
  for (const unsigned char *s = (const unsigned char *)wp->subject; s && *s; s++) {
    if (*s < 0x20 || *s == 0x7f) {
      pc_config_error(wp->api, wp->self, "subject", "control characters are not allowed");
      c.bad = 1;
      break;
    }
  }
  return c.bad ? -1 : 0;
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void webpush_destroy(void *state);

static int webpush_init(notifd_plugin *p, const notifd_api *api, void **state) {
  webpush *wp = calloc(1, sizeof *wp);
  *state = wp;
  if (!wp) return NOTIFD_ENOMEM;
  wp->self = p;
  wp->api = api;
  static const char *const result_l[] = {"result", NULL};
  int bad = read_config(wp) < 0;
  if (api->metric_counter(p, "webpush_sends_total",
                          "Web Push deliveries by outcome (sent, gone, failed, retried).",
                          result_l, &wp->m_sends) < 0 ||
      api->metric_gauge(p, "webpush_pending_deliveries",
                        "Deliveries in a call to a push service or waiting to retry.", NULL,
                        &wp->m_pending) < 0 ||
      api->metric_counter(p, "webpush_events_total",
                          "Notification events by outcome (pushed, no_subscriptions, delivered, "
                          "muted, quiet, duplicate, invalid, failed).",
                          result_l, &wp->m_events) < 0)
    bad = 1;
  pc_map_init(&wp->no_subs);
  if (!bad && !(wp->recent = pc_recent_new((size_t)wp->dedupe_entries, wp->dedupe_age_ms))) {
    LOGE(wp, "out of memory for the dedupe window");
    bad = 1;
  }
  if (!bad && (wp_http_register(wp) < 0 || wp_send_register(wp) < 0 ||
               wp_events_register(wp) < 0))
    bad = 1;
  if (bad) {
    webpush_destroy(wp);
    *state = NULL;
    return NOTIFD_EINVAL;
  }
  return 0;
}

/* ---- the store ------------------------------------------------------------------ */

static void prepare_submit(webpush *wp);

static void prepare_run(wp_job *j) {
  j->rc = j->wp->store->ops->prepare(j->wp->store, j->err, sizeof j->err);
}

static void on_prepare_timer(notifd_timer *t, void *ud) {
  webpush *wp = ud;
  wp->api->timer_stop(t);
  wp->prepare_timer = NULL;
  prepare_submit(wp);
}

static void prepare_done(wp_job *j) {
  webpush *wp = j->wp;
  if (j->rc == 0) {
    wp->api->log(wp->self, NOTIFD_LOG_INFO, "subscription store %s ready (indexes in place)",
                 wp->store->ops->name);
    return;
  }
  /* The store works without its indexes meanwhile (slower, and a racing
   * double registration may store one endpoint twice). */
  wp->api->log(wp->self, NOTIFD_LOG_WARN, "subscription store setup failed (%s); retrying in 5s",
               j->err);
  if (wp->api->timer_start(wp->self, 5000, 0, on_prepare_timer, wp, &wp->prepare_timer) < 0)
    wp->prepare_timer = NULL;
}

static void prepare_submit(webpush *wp) {
  wp_job *j = wp_job_new(wp, NULL);
  if (!j) return;
  j->run = prepare_run;
  j->done = prepare_done;
  wp_job_submit(j);
}

static int open_store(webpush *wp, char *where, size_t wherelen, char *err, size_t errlen) {
  if (strcmp(wp->store_kind, "mongodb") == 0) {
    const char *db = wp->mongo_db ? wp->mongo_db : "notifications";
    snprintf(where, wherelen, "mongodb %s.%s", db, wp->collection);
#if NOTIFD_WITH_MONGODB
    return wp_store_open_mongo(wp->mongo_uri, db, wp->collection, &wp->store, err, errlen);
#else
    snprintf(err, errlen, "%s", PC_MONGODB_MISSING);
    return -1;
#endif
  }
  if (*wp->store_path) snprintf(where, wherelen, "%s", wp->store_path);
  else snprintf(where, wherelen, "%s/webpush.db", wp->api->data_dir(wp->self));
  return wp_store_open_sqlite(where, &wp->store, err, errlen);
}

/* ---- lifecycle (continued) ----------------------------------------------------- */

static int webpush_start(void *state) {
  webpush *wp = state;
  const char *dir = wp->api->data_dir(wp->self);
  char where[4096], err[512] = "";
  if (open_store(wp, where, sizeof where, err, sizeof err) < 0) {
    LOGE(wp, "cannot open the subscription store: %s", err);
    return NOTIFD_EBACKEND;
  }
  if (wp->store->ops->prepare) prepare_submit(wp);
  char pem[4096];
  snprintf(pem, sizeof pem, "%s/vapid.pem", dir);
  int created = 0;
  if (wp_vapid_load(wp->vapid_private_key, pem, &wp->vapid, &created, err, sizeof err) < 0) {
    LOGE(wp, "VAPID key: %s", err);
    return NOTIFD_EINVAL;
  }
  if (created) wp->api->log(wp->self, NOTIFD_LOG_INFO, "generated a VAPID key into %s", pem);
  wp->api->log(wp->self, NOTIFD_LOG_INFO,
               "webpush ready: store=%s events=%s vapid public key=%s subject=%s", where,
               *wp->events_topic ? wp->events_topic : "(off)", wp->vapid.pub_b64, wp->subject);
  return 0;
}

static void webpush_stop(void *state) {
  webpush *wp = state;
  if (!wp) return;
  /* No call answers after this (the host cancels them without calling
   * back); retries waiting on a timer are dropped. */
  if (wp->ndeliveries)
    wp->api->log(wp->self, NOTIFD_LOG_WARN, "stopping with %lld push deliveries unfinished",
                 (long long)wp->ndeliveries);
  while (wp->deliveries) wp_delivery_free(wp->deliveries);
  if (wp->prepare_timer) wp->api->timer_stop(wp->prepare_timer);
  wp->prepare_timer = NULL;
  wp->stopping = 1;
}

static void webpush_destroy(void *state) {
  webpush *wp = state;
  if (!wp) return;
  /* The workers are joined: a job left here never gets its completion. */
  while (wp->jobs) wp_job_free(wp->jobs);
  while (wp->deliveries) wp_delivery_free(wp->deliveries);
  if (wp->store) wp->store->ops->close(wp->store);
  pc_recent_free(wp->recent);
  pc_map_free(&wp->no_subs, NULL);
  wp_vapid_free(&wp->vapid);
  free(wp);
}

static const notifd_plugin_def webpush_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 0,
    .name = "webpush",
    .version = "1.0.0",
    .init = webpush_init,
    .start = webpush_start,
    .stop = webpush_stop,
    .destroy = webpush_destroy,
};
NOTIFD_PLUGIN_DEFINE(webpush_def)
