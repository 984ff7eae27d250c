/* webhook: a notification channel plugin built outside the notifd tree
 * against the installed SDK (pkg-config notifd-sdk).
 *
 * It consumes the notification event stream (topic `notification-events`,
 * docs/events.md) and POSTs each event's JSON to one URL:
 *   - header X-Notifd-Event-Id: <user_id>:<id>, so the receiver can drop
 *     the duplicates an at-least-once stream delivers;
 *   - 2xx: done (acked);
 *   - 5xx, 408, 429, connect errors and timeouts: retried with the
 *     consumer's exponential backoff (bus_retry), then dead-lettered;
 *   - other answers (4xx) and malformed events: dead-lettered at once
 *     (bus_drop with the reason) to <topic>.dlq;
 *   - the user's preferences travel in the event's headers: nothing is sent
 *     when the channel is in `notifd-muted` or `notifd-quiet` is 1.
 * Metrics: webhook_deliveries_total{result}, webhook_retries_total and
 * webhook_request_duration_seconds.  docs/plugin-guide.md ("Writing a
 * channel plugin") walks through this file. */
#include <notifd/plugin.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef WEBHOOK_VERSION
#define WEBHOOK_VERSION "1.0.0"
#endif

#define MAX_EXTRA_HEADERS 16
#define MAX_CHANNEL 32

typedef struct delivery delivery;

typedef struct webhook {
  notifd_plugin *self;
  const notifd_api *api;
  /* config (strings owned by the host, valid for the plugin's life) */
  const char *url, *topic, *group, *channel;
  int64_t timeout_ms;
  const char *extra[MAX_EXTRA_HEADERS]; /* "Name: value" lines */
  size_t nextra;
  int bad_config;
  /* metrics */
  notifd_metric *deliveries, *retries, *latency;
  /* HTTP calls in flight: a forced shutdown cancels them without calling
   * back, so destroy() frees what is left here. */
  delivery *inflight;
} webhook;

/* One POST in flight for one bus record. */
struct delivery {
  webhook *w;
  notifd_bus_msg *msg;
  struct timespec started;
  delivery *prev, *next;
};

/* ---- small helpers ------------------------------------------------------ */

static double seconds_since(const struct timespec *t0) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void count(webhook *w, const char *result) {
  const char *values[] = {result};
  w->api->metric_add(w->deliveries, values, 1);
}

/* The SDK has no strerror (yet): names for what http_call reports. */
static const char *call_error(int32_t status) {
  switch (status) {
  case NOTIFD_ETIMEDOUT: return "timed out";
  case NOTIFD_ECLOSED: return "connection closed";
  case NOTIFD_ETOOBIG: return "answer too large";
  case NOTIFD_ENOMEM: return "out of memory";
  default: return "connect or transfer error";
  }
}

/* 1 when `name` is one of the comma-separated items of the header value
 * (not NUL-terminated), spaces around items ignored. */
static int in_list(const char *v, size_t len, const char *name) {
  size_t n = strlen(name), i = 0;
  while (i < len) {
    size_t j = i;
    while (j < len && v[j] != ',') j++;
    size_t a = i, b = j;
    while (a < b && v[a] == ' ') a++;
    while (b > a && v[b - 1] == ' ') b--;
    if (b - a == n && memcmp(v + a, name, n) == 0) return 1;
    i = j + 1;
  }
  return 0;
}

/* Why the preferences say "not this channel", or NULL to send. */
static const char *suppressed(webhook *w, notifd_bus_msg *m) {
  size_t len = 0;
  const char *muted = w->api->msg_header(m, "notifd-muted", &len);
  if (muted && in_list(muted, len, w->channel)) return "muted";
  const char *quiet = w->api->msg_header(m, "notifd-quiet", &len);
  if (quiet && len == 1 && quiet[0] == '1') return "quiet";
  return NULL;
}

/* Checks the event and writes "X-Notifd-Event-Id: <user_id>:<id>" into
 * `hdr`.  Returns NULL, or why the event is malformed. */
static const char *event_id_header(const void *value, size_t len, char *hdr, size_t hdrlen) {
  if (!value || !len) return "malformed event: empty value";
  json_error_t jerr;
  json_t *ev = json_loadb(value, len, 0, &jerr);
  if (!ev) return "malformed event: not JSON";
  const char *why = NULL;
  json_t *id = json_object_get(ev, "id");
  const char *user = json_string_value(json_object_get(ev, "user_id"));
  if (!json_is_object(ev)) why = "malformed event: not a JSON object";
  else if (!json_is_integer(id) || json_integer_value(id) < 0)
    why = "malformed event: no integer id";
  else if (!user || !*user) why = "malformed event: no user_id";
  else if (!json_is_string(json_object_get(ev, "notification_type")))
    why = "malformed event: no notification_type";
  for (const char *c = user; !why && *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f)
      why = "malformed event: control character in user_id";
  if (!why && snprintf(hdr, hdrlen, "X-Notifd-Event-Id: %s:%lld", user,
                       (long long)json_integer_value(id)) >= (int)hdrlen)
    why = "malformed event: user_id too long";
  json_decref(ev);
  return why;
}

/* ---- delivery ------------------------------------------------------------ */

static void unlink_delivery(delivery *d) {
  if (d->prev) d->prev->next = d->next;
  else d->w->inflight = d->next;
  if (d->next) d->next->prev = d->prev;
}

/* Finishes a record whose POST failed in a way worth another try: the
 * host waits the consumer's backoff and delivers it again; the record is
 * not committed meanwhile, so a restart delivers it too. */
static void retry(webhook *w, notifd_bus_msg *m, const char *error) {
  w->api->metric_add(w->retries, NULL, 1);
  w->api->log(w->self, NOTIFD_LOG_WARN, "attempt %d failed (%s); retrying",
              (int)w->api->msg_attempt(m), error);
  w->api->bus_retry(m, error);
}

static void on_response(int32_t status, notifd_http_resp *resp, void *ud) {
  (void)resp;
  delivery *d = ud;
  webhook *w = d->w;
  notifd_bus_msg *m = d->msg;
  unlink_delivery(d);
  w->api->metric_observe(w->latency, NULL, seconds_since(&d->started));
  free(d);

  char why[96];
  if (status >= 200 && status < 300) {
    count(w, "delivered");
    w->api->bus_ack(m);
  } else if (status < 0) {
    snprintf(why, sizeof why, "webhook call failed: %s (%d)", call_error(status), (int)status);
    retry(w, m, why);
  } else if (status >= 500 || status == 408 || status == 429) {
    snprintf(why, sizeof why, "webhook answered %d", (int)status);
    retry(w, m, why);
  } else {
    /* The receiver refused this event: sending it again will not help. */
    snprintf(why, sizeof why, "webhook answered %d", (int)status);
    count(w, "rejected");
    w->api->bus_drop(m, why);
  }
}

/* Retries ran out: the host dead-letters the record right after this. */
static void on_exhausted(notifd_bus_msg *m, const char *error, void *ud) {
  webhook *w = ud;
  count(w, "exhausted");
  w->api->log(w->self, NOTIFD_LOG_ERROR, "giving up after %d attempts: %s",
              (int)w->api->msg_attempt(m), error);
}

/* One event from the bus.  Every path finishes the record exactly once:
 * bus_ack, bus_retry or bus_drop, now or in on_response. */
static void on_event(notifd_bus_msg *m, void *ud) {
  webhook *w = ud;
  const notifd_api *api = w->api;
  size_t len = 0;
  const void *value = api->msg_value(m, &len);
  char id_header[320];
  const char *bad = event_id_header(value, len, id_header, sizeof id_header);
  if (bad) {
    count(w, "malformed");
    api->bus_drop(m, bad);
    return;
  }
  const char *skip = suppressed(w, m);
  if (skip) {
    count(w, skip);
    api->bus_ack(m);
    return;
  }

  char attempt[48];
  snprintf(attempt, sizeof attempt, "X-Notifd-Attempt: %d", (int)api->msg_attempt(m));
  const char *headers[MAX_EXTRA_HEADERS + 5] = {
      "Content-Type: application/json", "User-Agent: notifd-webhook/" WEBHOOK_VERSION, id_header,
      attempt};
  memcpy(headers + 4, w->extra, w->nextra * sizeof *w->extra);
  headers[4 + w->nextra] = NULL;

  delivery *d = calloc(1, sizeof *d);
  if (!d) {
    retry(w, m, "out of memory");
    return;
  }
  d->w = w;
  d->msg = m;
  clock_gettime(CLOCK_MONOTONIC, &d->started);
  notifd_http_client_req req = {
      .size = sizeof req,
      .method = "POST",
      .url = w->url,
      .headers = headers,
      .body = value, /* the event as it came: the receiver gets docs/events.md's JSON */
      .body_len = len,
      .timeout_ms = w->timeout_ms,
  };
  int rc = api->http_call(w->self, &req, on_response, d);
  if (rc < 0) {
    /* A failed call never calls back: the record is still ours. */
    free(d);
    char why[96];
    snprintf(why, sizeof why, "webhook call not started: %s (%d)", notifd_strerror(rc), rc);
    retry(w, m, why);
    return;
  }
  d->next = w->inflight;
  if (w->inflight) w->inflight->prev = d;
  w->inflight = d;
}

/* ---- configuration -------------------------------------------------------- */

/* Reports a bad value as file:line:col with the host's config errors (ABI
 * 1.2), or as a log line on an older host. */
static void bad_config(webhook *w, const char *key, const char *fmt, ...) NOTIFD_PRINTF(3, 4);
static void bad_config(webhook *w, const char *key, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  w->bad_config = 1;
  if (NOTIFD_API_HAS(w->api, config_error))
    w->api->config_error(w->self, key, "%s", msg);
  else
    w->api->log(w->self, NOTIFD_LOG_ERROR, "config key '%s': %s", key, msg);
}

static int url_ok(const char *url) {
  const char *rest = strncmp(url, "http://", 7) == 0    ? url + 7
                     : strncmp(url, "https://", 8) == 0 ? url + 8
                                                        : NULL;
  if (!rest || !*rest || *rest == '/' || *rest == ':') return 0;
  for (const char *c = url; *c; c++)
    if ((unsigned char)*c <= ' ' || *c == 0x7f) return 0;
  return 1;
}

static int channel_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_CHANNEL) return 0;
  return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static int header_ok(const char *line) {
  const char *colon = strchr(line, ':');
  if (!colon || colon == line) return 0;
  for (const char *c = line; c < colon; c++)
    if ((unsigned char)*c <= ' ' || *c == 0x7f) return 0;
  for (const char *c = colon; *c; c++)
    if (*c == '\r' || *c == '\n') return 0;
  return 1;
}

/* Reads and checks every key, reporting every problem in one pass (so
 * `notifd --check` lists them all).  A value of the wrong type is reported
 * by the getter itself (file:line:col) and makes it return < 0; a value of
 * the right type that is still wrong is reported by bad_config. */
static int read_config(webhook *w, notifd_consumer_opts *o) {
  const notifd_api *api = w->api;
  notifd_plugin *p = w->self;
  int failed = 0; /* a getter refused a value (already reported) */

  if (api->config_string(p, "url", NULL, &w->url) < 0) failed = 1;
  else if (!w->url) bad_config(w, "url", "is required: the receiver's http:// or https:// URL");
  else if (!url_ok(w->url))
    bad_config(w, "url", "expected an http:// or https:// URL, got '%s'", w->url);

  if (api->config_string(p, "topic", "notification-events", &w->topic) < 0) failed = 1;
  else if (!*w->topic) bad_config(w, "topic", "must not be empty");
  if (api->config_string(p, "group", "webhook", &w->group) < 0) failed = 1;
  else if (!*w->group) bad_config(w, "group", "must not be empty");
  if (api->config_string(p, "channel", "webhook", &w->channel) < 0) failed = 1;
  else if (!channel_ok(w->channel))
    bad_config(w, "channel", "expected 1-32 of [a-z0-9_-], got '%s'", w->channel);
  if (api->config_duration_ms(p, "timeout", 5000, &w->timeout_ms) < 0) failed = 1;
  else if (w->timeout_ms <= 0) bad_config(w, "timeout", "must be positive");

  /* The consumer's backoff; 0 (absent) = the host's bus.retry setting. */
  int64_t attempts = 0;
  if (api->config_int(p, "retry.max_attempts", 0, &attempts) < 0) failed = 1;
  else if (attempts < 0 || attempts > 1000000)
    bad_config(w, "retry.max_attempts", "must be 0 (the host's bus.retry) to 1000000");
  o->max_attempts = (int32_t)attempts;
  if (api->config_duration_ms(p, "retry.initial_interval", 0, &o->initial_interval_ms) < 0)
    failed = 1;
  else if (o->initial_interval_ms < 0)
    bad_config(w, "retry.initial_interval", "must not be negative");
  if (api->config_duration_ms(p, "retry.max_interval", 0, &o->max_interval_ms) < 0) failed = 1;
  else if (o->max_interval_ms < 0) bad_config(w, "retry.max_interval", "must not be negative");
  if (api->config_double(p, "retry.multiplier", 0, &o->multiplier) < 0) failed = 1;
  else if (o->multiplier < 0) bad_config(w, "retry.multiplier", "must not be negative");

  /* Extra request headers, e.g. ["Authorization: Bearer ..."]. */
  size_t n = 0;
  if (api->config_list_len(p, "headers", &n) < 0) failed = 1;
  else if (n > MAX_EXTRA_HEADERS) bad_config(w, "headers", "at most %d headers", MAX_EXTRA_HEADERS);
  for (size_t i = 0; i < n && i < MAX_EXTRA_HEADERS; i++) {
    const char *h = NULL;
    if (api->config_list_string(p, "headers", i, &h) < 0) failed = 1;
    else if (!header_ok(h))
      bad_config(w, "headers", "item %zu: expected 'Name: value', got '%s'", i, h);
    else w->extra[w->nextra++] = h;
  }
  return failed || w->bad_config ? NOTIFD_EINVAL : 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

static int webhook_init(notifd_plugin *p, const notifd_api *api, void **state) {
  webhook *w = calloc(1, sizeof *w);
  if (!w) return NOTIFD_ENOMEM;
  *state = w; /* destroy() gets it even if init fails below */
  w->self = p;
  w->api = api;

  notifd_consumer_opts o = {.size = sizeof o};
  int rc = read_config(w, &o);
  if (rc < 0) return rc;

  static const char *const result[] = {"result", NULL};
  if ((rc = api->metric_counter(p, "webhook_deliveries_total",
                                "Events by outcome: delivered, rejected (4xx), exhausted "
                                "(retries ran out), malformed, muted, quiet.",
                                result, &w->deliveries)) < 0 ||
      (rc = api->metric_counter(p, "webhook_retries_total",
                                "POSTs that failed with 5xx/408/429 or no answer and were retried.",
                                NULL, &w->retries)) < 0 ||
      (rc = api->metric_histogram(p, "webhook_request_duration_seconds",
                                  "Time of each POST to the webhook, answered or not.", NULL, NULL,
                                  0, &w->latency)) < 0)
    return rc;

  const char *topics[] = {w->topic, NULL};
  o.topics = topics;
  o.group = w->group;
  o.handler = on_event;
  o.ud = w;
  o.on_exhausted = on_exhausted;
  /* The handle is not needed: out may be NULL.  A refusal is named in
   * the host's "init failed" message; the log line adds the topic. */
  if ((rc = api->bus_consume(p, &o, NULL)) < 0) {
    api->log(p, NOTIFD_LOG_ERROR, "cannot consume %s as group %s: %s (%d)", w->topic, w->group,
             notifd_strerror(rc), rc);
    return rc;
  }
  api->log(p, NOTIFD_LOG_INFO, "webhook %s: %s -> %s", WEBHOOK_VERSION, w->topic, w->url);
  return 0;
}

static void webhook_destroy(void *state) {
  webhook *w = state;
  if (!w) return;
  while (w->inflight) {
    delivery *d = w->inflight;
    w->inflight = d->next;
    free(d);
  }
  free(w);
}

static const notifd_plugin_def webhook_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 0, /* config_error (1.2) is used only when NOTIFD_API_HAS finds it */
    .name = "webhook",
    .version = WEBHOOK_VERSION,
    .init = webhook_init,
    .destroy = webhook_destroy,
};
NOTIFD_PLUGIN_DEFINE(webhook_def)
