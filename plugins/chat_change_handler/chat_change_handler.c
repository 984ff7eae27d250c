/* chat_change_handler: consumes the chat change topic (Debezium MongoDB
 * envelope, or the records chat_persistence's relay writes in the same
 * shape), dedupes by record key, and delivers each new message to the
 * chat websockets of its stream and to the receiver's notifications
 * (replaces the Go chatpersistencechangehandler, contract section 4).
 *
 * Config keys (all optional):
 *   change_topic           chat-persistence-change
 *   group                  chat-persistence-change-consumer
 *   chat_ws_url            local:     base URL of the chat_ws role
 *   notifications_url      local:     base URL of the notifications_ws role
 *                          ("local:" = this process, no socket)
 *   chat_ws_timeout        2s
 *   notifications_timeout  2s
 *   close_timeout          2s         the close call after exhaustion
 *   close_on_exhausted     true       close the stream's sockets when
 *                                     retries run out (clients reload history)
 *   dedupe                 true
 *   dedupe_ttl             5m         0 = keys never expire
 *   max_key_bytes          1024       longer record keys are dropped
 *   forward_reads          false      also deliver snapshot reads (op r)
 *   start_from_latest      false      a new group starts at the topic's end
 *   dead_letter_topic      (host default "<topic>.dlq")
 *   retry.max_attempts     (host bus.retry)  total attempts
 *   retry.initial_interval, retry.max_interval, retry.multiplier, retry.jitter
 *   metric_prefix          chat_persistence_change_consumer
 *
 * Metrics: <prefix>_success_event_total{event_type},
 * <prefix>_failed_event_total{event_type} (once per failed attempt),
 * <prefix>_dropped_event_total{dropped_reason} (invalid_format,
 * dropped_from_event_store_validation), <prefix>_ignored_event_total{reason},
 * <prefix>_exhausted_event_total and
 * <prefix>_forward_duration_seconds{target,outcome}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_internal.h"
#include "pc_plugin.h"

/* A config problem at `key`, as file:line:column on a host that can. */
#define cfg_fail(pl, key, ...) pc_config_error((pl)->api, (pl)->self, (key), __VA_ARGS__)

#define MEMO_CAP 4096

static char *trim_base(const char *url) {
  size_t n = strlen(url);
  while (n > 0 && url[n - 1] == '/') n--;
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, url, n);
  s[n] = '\0';
  return s;
}

static int register_metrics(ch_plugin *pl, const char *prefix) {
  const notifd_api *api = pl->api;
  static const char *const event_type[] = {"event_type", NULL};
  static const char *const dropped_reason[] = {"dropped_reason", NULL};
  static const char *const reason[] = {"reason", NULL};
  static const char *const forward[] = {"target", "outcome", NULL};
  char name[200];
  int rc;
#define NAME(suffix) (snprintf(name, sizeof name, "%s" suffix, prefix), name)
  rc = api->metric_counter(pl->self, NAME("_success_event_total"),
                           "Change events handled, by Debezium op.", event_type, &pl->m.success);
  if (rc == 0)
    rc = api->metric_counter(pl->self, NAME("_failed_event_total"),
                             "Failed delivery attempts, by Debezium op.", event_type,
                             &pl->m.failed);
  if (rc == 0)
    rc = api->metric_counter(pl->self, NAME("_dropped_event_total"),
                             "Records dropped: invalid_format or duplicates "
                             "(dropped_from_event_store_validation).",
                             dropped_reason, &pl->m.dropped);
  if (rc == 0)
    rc = api->metric_counter(pl->self, NAME("_ignored_event_total"),
                             "Records that are no change: tombstones, heartbeats, transaction "
                             "markers.",
                             reason, &pl->m.ignored);
  if (rc == 0)
    rc = api->metric_counter(pl->self, NAME("_exhausted_event_total"),
                             "Records given up after the last retry (then dead-lettered).", NULL,
                             &pl->m.exhausted);
  if (rc == 0)
    rc = api->metric_histogram(pl->self, NAME("_forward_duration_seconds"),
                               "Forward call latency by target and outcome.", forward, NULL, 0,
                               &pl->m.forward);
#undef NAME
  return rc;
}

static int ch_init(notifd_plugin *p, const notifd_api *api, void **state) {
  ch_plugin *pl = calloc(1, sizeof *pl);
  if (!pl) return NOTIFD_ENOMEM;
  *state = pl; /* destroy() frees it even when init fails below */
  pl->self = p;
  pl->api = api;
  const char *prefix = NULL;
  int32_t from_latest = 0;
  int64_t max_attempts, initial_ms, max_ms;
  double multiplier, jitter;
  int bad = 0;
  bad |= api->config_string(p, "change_topic", "chat-persistence-change", &pl->topic) < 0;
  bad |= api->config_string(p, "group", "chat-persistence-change-consumer", &pl->group) < 0;
  bad |= api->config_string(p, "chat_ws_url", "local:", &pl->chat_ws_url) < 0;
  bad |= api->config_string(p, "notifications_url", "local:", &pl->notifications_url) < 0;
  bad |= api->config_duration_ms(p, "chat_ws_timeout", 2000, &pl->chat_ws_timeout_ms) < 0;
  bad |= api->config_duration_ms(p, "notifications_timeout", 2000,
                                 &pl->notifications_timeout_ms) < 0;
  bad |= api->config_duration_ms(p, "close_timeout", 2000, &pl->close_timeout_ms) < 0;
  bad |= api->config_bool(p, "close_on_exhausted", 1, &pl->close_on_exhausted) < 0;
  bad |= api->config_bool(p, "dedupe", 1, &pl->dedupe) < 0;
  bad |= api->config_duration_ms(p, "dedupe_ttl", 5 * 60 * 1000, &pl->dedupe_ttl_ms) < 0;
  bad |= api->config_int(p, "max_key_bytes", 1024, &pl->max_key_bytes) < 0;
  bad |= api->config_bool(p, "forward_reads", 0, &pl->forward_reads) < 0;
  bad |= api->config_bool(p, "start_from_latest", 0, &from_latest) < 0;
  bad |= api->config_string(p, "dead_letter_topic", NULL, &pl->dead_letter_topic) < 0;
  bad |= api->config_int(p, "retry.max_attempts", -1, &max_attempts) < 0;
  bad |= api->config_duration_ms(p, "retry.initial_interval", 0, &initial_ms) < 0;
  bad |= api->config_duration_ms(p, "retry.max_interval", 0, &max_ms) < 0;
  bad |= api->config_double(p, "retry.multiplier", 0, &multiplier) < 0;
  bad |= api->config_double(p, "retry.jitter", 0, &jitter) < 0;
  bad |= api->config_string(p, "metric_prefix", "chat_persistence_change_consumer", &prefix) < 0;
  /* Every value is checked (a mistyped one holds its default), so --check
   * reports them all in one pass. */
  if (!*pl->topic) bad |= cfg_fail(pl, "change_topic", "must not be empty") < 0;
  if (!*pl->group) bad |= cfg_fail(pl, "group", "must not be empty") < 0;
  if (pl->chat_ws_timeout_ms <= 0) bad |= cfg_fail(pl, "chat_ws_timeout", "must be positive") < 0;
  if (pl->notifications_timeout_ms <= 0)
    bad |= cfg_fail(pl, "notifications_timeout", "must be positive") < 0;
  if (pl->close_timeout_ms <= 0) bad |= cfg_fail(pl, "close_timeout", "must be positive") < 0;
  if (pl->dedupe_ttl_ms < 0) bad |= cfg_fail(pl, "dedupe_ttl", "must not be negative") < 0;
  if (pl->max_key_bytes < 16 || pl->max_key_bytes > 65536)
    bad |= cfg_fail(pl, "max_key_bytes", "must be between 16 and 65536") < 0;
  if (max_attempts == 0 || max_attempts < -1 || max_attempts > 1000)
    bad |= cfg_fail(pl, "retry.max_attempts", "must be between 1 and 1000") < 0;
  if (initial_ms < 0) bad |= cfg_fail(pl, "retry.initial_interval", "must not be negative") < 0;
  if (max_ms < 0) bad |= cfg_fail(pl, "retry.max_interval", "must not be negative") < 0;
  if (multiplier < 0) bad |= cfg_fail(pl, "retry.multiplier", "must not be negative") < 0;
  if (jitter < 0 || jitter > 1) bad |= cfg_fail(pl, "retry.jitter", "must be between 0 and 1") < 0;
  if (bad) return NOTIFD_EINVAL;
  pl->chat_ws_base = trim_base(pl->chat_ws_url);
  pl->notifications_base = trim_base(pl->notifications_url);
  if (!pl->chat_ws_base || !pl->notifications_base) return NOTIFD_ENOMEM;
  int rc = ch_memo_new(MEMO_CAP, &pl->memo);
  if (rc < 0) return rc;
  if ((rc = register_metrics(pl, prefix)) < 0) {
    api->log(p, NOTIFD_LOG_ERROR, "cannot register metrics under %s (%d)", prefix, rc);
    return rc;
  }
  const char *topics[] = {pl->topic, NULL};
  notifd_consumer_opts o = {
      .size = sizeof o,
      .topics = topics,
      .group = pl->group,
      .handler = ch_on_record,
      .ud = pl,
      .max_attempts = (int32_t)max_attempts,
      .initial_interval_ms = initial_ms,
      .max_interval_ms = max_ms,
      .multiplier = multiplier,
      .jitter = jitter,
      .dead_letter_topic = pl->dead_letter_topic,
      .on_exhausted = ch_on_exhausted,
      .start_from_latest = from_latest,
  };
  rc = api->bus_consume(p, &o, &pl->consumer);
  if (rc < 0) {
    api->log(p, NOTIFD_LOG_ERROR, "cannot consume %s as group %s (%d)", pl->topic, pl->group, rc);
    return rc;
  }
  api->log(p, NOTIFD_LOG_INFO, "consuming %s as %s; chat_ws at %s, notifications at %s",
           pl->topic, pl->group, pl->chat_ws_base, pl->notifications_base);
  return 0;
}

/* The host stopped the bus and the HTTP client before this: callbacks of
 * whatever is still listed will never come, so it is only freed. */
static void ch_destroy(void *state) {
  ch_plugin *pl = state;
  if (!pl) return;
  while (pl->events) {
    ch_event *ev = pl->events;
    pl->events = ev->next;
    ch_event_free(ev);
  }
  while (pl->closes) {
    ch_close *c = pl->closes;
    pl->closes = c->next;
    ch_close_free(c);
  }
  ch_memo_free(pl->memo);
  free(pl->chat_ws_base);
  free(pl->notifications_base);
  free(pl);
}

static const notifd_plugin_def chat_change_handler_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 0,
    .name = "chat_change_handler",
    .version = "1.0.0",
    .init = ch_init,
    .destroy = ch_destroy,
};
NOTIFD_PLUGIN_DEFINE(chat_change_handler_def)
