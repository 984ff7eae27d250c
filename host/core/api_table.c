/* The host API table handed to plugins.  Thin wrappers here add what the
 * subsystems do not know about: the calling plugin, the registration phase,
 * the host's lazily opened backends, and a record of the last call refused
 * and why, so an init failure's message names it. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "bus/bus.h"
#include "core/host.h"
#include "core/loop_services.h"
#include "core/plugin_config.h"
#include "http/http.h"
#include "kv/kv.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "ws/ws.h"

static const char *api_host_version(void) { return NOTIFD_VERSION; }

/* Remembers that `call` refused with rc < 0 because of fmt... (loop thread
 * only: every caller but post, which records only during init); returns rc
 * unchanged so wrappers can `return refused(...)`. */
static int refused(notifd_plugin *p, const char *call, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refused(notifd_plugin *p, const char *call, int rc, const char *fmt, ...) {
  if (!p || rc >= 0) return rc;
  p->refused.call = call;
  p->refused.rc = rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->refused.why, sizeof p->refused.why, fmt, ap);
  va_end(ap);
  return rc;
}

void nd_api_refusal_clear(notifd_plugin *p) { memset(&p->refused, 0, sizeof p->refused); }

void nd_api_refusal_text(const notifd_plugin *p, char *buf, size_t len) {
  if (!len) return;
  buf[0] = '\0';
  if (!p || !p->refused.call) return;
  const char *name = notifd_strerror_name(p->refused.rc);
  snprintf(buf, len, "%s: %s (%d%s%s)", p->refused.call, p->refused.why, p->refused.rc,
           name ? " " : "", name ? name : "");
}

/* Refusal for a call made outside init that may only be made in it. */
static int init_only(notifd_plugin *p, const char *call, const char *what) {
  return refused(p, call, NOTIFD_ESTATE, "%s are registered in init only", what);
}

/* Refusal for a backend call under --check, which writes nothing. */
static int not_checking(notifd_plugin *p, const char *call) {
  return refused(p, call, NOTIFD_ESTATE, "not available under --check (check_only)");
}

/* While serving, errors and warnings are rate-limited per call site (the
 * format string): a plugin that logs one line per failed message (a full
 * disk, a backend down) writes ND_LOG_RL_BURST of them per window and then
 * a count.  Startup (init, --check) logs every line. */
static void api_log(notifd_plugin *p, int32_t level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *comp = p && p->cfg ? p->cfg->name : "plugin";
  int serving = p && p->host && p->host->phase >= ND_PHASE_RUNNING;
  if (serving && level <= NOTIFD_LOG_WARN && fmt) nd_log_limitedv(fmt, level, comp, fmt, ap);
  else nd_logv(level, comp, fmt, ap);
  va_end(ap);
}

static void *api_get_feature(notifd_plugin *p, const char *name) {
  (void)p;
  (void)name;
  return NULL; /* no optional features in ABI 1.0 */
}

static int32_t api_check_only(notifd_plugin *p) { return p && p->host->check_only; }

static int32_t api_auth_mode(notifd_plugin *p) {
  return p ? p->host->cfg.auth_mode : NOTIFD_AUTH_MODE_USERS;
}

static const char *api_plugin_name(notifd_plugin *p) { return p->cfg->name; }
static const char *api_data_dir(notifd_plugin *p) { return p->host->cfg.data_dir; }

static int api_http_route(notifd_plugin *p, const char *method, const char *pattern,
                          notifd_http_handler h, void *ud, const notifd_route_opts *opts) {
  static const char call[] = "http_route";
  if (!p) return NOTIFD_EINVAL;
  if (!method || !pattern || !h)
    return refused(p, call, NOTIFD_EINVAL, "method, pattern and handler must not be NULL");
  if (!nd_host_registering(p->host)) return init_only(p, call, "routes");
  notifd_route_opts o = {sizeof o, NOTIFD_AUTH_NONE, 0};
  if (opts) memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
  if (o.auth > NOTIFD_AUTH_INTERNAL)
    return refused(p, call, NOTIFD_EINVAL, "opts->auth %u is not a NOTIFD_AUTH_* policy", o.auth);
  int rc = nd_router_add(p->host->router, method, pattern, h, ud, o.auth, o.max_body, p->cfg->name);
  return refused(p, call, rc, "%s %s: %s", method, pattern, notifd_strerror(rc));
}

static int api_ws_channel(notifd_plugin *p, const notifd_ws_channel_opts *opts,
                          notifd_ws_channel **out) {
  static const char call[] = "ws_channel";
  if (!p) return NOTIFD_EINVAL;
  if (!opts || !out) return refused(p, call, NOTIFD_EINVAL, "opts and out must not be NULL");
  if (!nd_host_registering(p->host)) return init_only(p, call, "websocket channels");
  if (!p->host->ws) return refused(p, call, NOTIFD_ENOTSUP, "no websocket hub in this host");
  int rc = nd_ws_channel_add(p->host->ws, p, opts, out);
  const char *path = opts->size >= offsetof(notifd_ws_channel_opts, key_param) ? opts->path : NULL;
  return refused(p, call, rc, "channel %s: %s", path ? path : "(no path)", notifd_strerror(rc));
}

static int api_bus_consume(notifd_plugin *p, const notifd_consumer_opts *opts,
                           notifd_consumer **out) {
  static const char call[] = "bus_consume";
  if (out) *out = NULL;
  if (!p) return NOTIFD_EINVAL;
  if (!opts) return refused(p, call, NOTIFD_EINVAL, "opts must not be NULL");
  if (!nd_host_registering(p->host)) return init_only(p, call, "bus consumers");
  nd_bus *b = nd_host_bus(p->host);
  if (!b) return refused(p, call, NOTIFD_EBACKEND, "the bus could not be opened (see above)");
  int rc = nd_bus_consume(b, p, opts, out);
  return refused(p, call, rc,
                 rc == NOTIFD_EINVAL ? "group '%s': opts need size, topics (non-empty, each "
                                       "once), group, handler and a valid retry policy"
                                     : "group '%s': %s",
                 opts->size >= offsetof(notifd_consumer_opts, handler) && opts->group
                     ? opts->group
                     : "?",
                 notifd_strerror(rc));
}

static int api_bus_produce(notifd_plugin *p, const char *topic, const void *key, size_t key_len,
                           const void *value, size_t value_len, const char *const *headers,
                           notifd_produce_cb cb, void *ud) {
  static const char call[] = "bus_produce";
  if (!p) return NOTIFD_EINVAL;
  if (!topic) return refused(p, call, NOTIFD_EINVAL, "topic must not be NULL");
  if (p->host->check_only) return not_checking(p, call);
  nd_bus *b = nd_host_bus(p->host);
  if (!b) return refused(p, call, NOTIFD_EBACKEND, "the bus could not be opened (see above)");
  int rc = nd_bus_produce(b, topic, key, key_len, value, value_len, headers, cb, ud);
  return refused(p, call, rc, "topic '%s': %s", topic, notifd_strerror(rc));
}

/* The kv for a kv_* call, or NULL after recording why not. */
static nd_kv *kv_for(notifd_plugin *p, const char *call) {
  if (!p) return NULL;
  if (p->host->check_only) {
    not_checking(p, call);
    return NULL;
  }
  nd_kv *kv = nd_host_kv(p->host);
  if (!kv) refused(p, call, NOTIFD_EBACKEND, "the kv store could not be opened (see above)");
  return kv;
}

/* What a kv_* call returns when kv_for found no kv. */
static int kv_rc(notifd_plugin *p) {
  return !p ? NOTIFD_EINVAL : p->host->check_only ? NOTIFD_ESTATE : NOTIFD_EBACKEND;
}

static int api_kv_claim(notifd_plugin *p, const char *key, int64_t ttl_ms, notifd_kv_cb cb,
                        void *ud) {
  nd_kv *kv = kv_for(p, "kv_claim");
  return kv ? nd_kv_claim(kv, key, ttl_ms, cb, ud) : kv_rc(p);
}

static int api_kv_mark(notifd_plugin *p, const char *key, int64_t ttl_ms, notifd_kv_cb cb,
                       void *ud) {
  nd_kv *kv = kv_for(p, "kv_mark");
  return kv ? nd_kv_mark(kv, key, ttl_ms, cb, ud) : kv_rc(p);
}

static int api_kv_exists(notifd_plugin *p, const char *key, notifd_kv_cb cb, void *ud) {
  nd_kv *kv = kv_for(p, "kv_exists");
  return kv ? nd_kv_exists(kv, key, cb, ud) : kv_rc(p);
}

static int api_http_call(notifd_plugin *p, const notifd_http_client_req *req,
                         notifd_http_client_cb cb, void *ud) {
  if (!p) return NOTIFD_EINVAL;
  if (!req) return refused(p, "http_call", NOTIFD_EINVAL, "req must not be NULL");
  int rc = nd_http_call(p->host, req, cb, ud);
  return refused(p, "http_call", rc, "%s: %s",
                 req->size >= offsetof(notifd_http_client_req, headers) && req->url ? req->url
                                                                                   : "?",
                 notifd_strerror(rc));
}

static int api_timer_start(notifd_plugin *p, int64_t after_ms, int64_t repeat_ms,
                           notifd_timer_cb cb, void *ud, notifd_timer **out) {
  static const char call[] = "timer_start";
  if (!p) return NOTIFD_EINVAL;
  if (p->host->phase >= ND_PHASE_STOPPING)
    return refused(p, call, NOTIFD_ECLOSED, "the host is stopping");
  int rc = nd_timer_start(p->timers, after_ms, repeat_ms, cb, ud, out);
  return refused(p, call, rc, "after %lld ms, every %lld ms: %s", (long long)after_ms,
                 (long long)repeat_ms, notifd_strerror(rc));
}

/* Thread-safe: records a refusal only while init runs (on the loop). */
static int api_post(notifd_plugin *p, notifd_post_cb cb, void *ud) {
  if (!p) return NOTIFD_EINVAL;
  int rc = nd_poster_post(p->host->poster, cb, ud);
  if (rc < 0 && nd_host_registering(p->host)) refused(p, "post", rc, "%s", notifd_strerror(rc));
  return rc;
}

static int api_work_submit(notifd_plugin *p, notifd_work_cb work, notifd_work_done_cb done,
                           void *ud) {
  static const char call[] = "work_submit";
  if (!p) return NOTIFD_EINVAL;
  if (!p->host->workers)
    return refused(p, call, NOTIFD_ECLOSED, "no worker pool (not started, or stopping)");
  int rc = nd_workers_submit(p->host->workers, work, done, ud);
  return refused(p, call, rc, "%s", notifd_strerror(rc));
}

static int metric_reg(notifd_plugin *p, const char *call, int type, const char *name,
                      const char *help, const char *const *labels, const double *buckets,
                      size_t nb, notifd_metric **out) {
  if (!p) return NOTIFD_EINVAL;
  if (!nd_host_registering(p->host)) return init_only(p, call, "metrics");
  int rc = nd_metric_register(p->host->metrics, type, name, help, labels, buckets, nb, out);
  return refused(p, call, rc, "'%s': %s", name ? name : "(null)", notifd_strerror(rc));
}

static int api_metric_counter(notifd_plugin *p, const char *name, const char *help,
                              const char *const *labels, notifd_metric **out) {
  return metric_reg(p, "metric_counter", ND_METRIC_COUNTER, name, help, labels, NULL, 0, out);
}

static int api_metric_gauge(notifd_plugin *p, const char *name, const char *help,
                            const char *const *labels, notifd_metric **out) {
  return metric_reg(p, "metric_gauge", ND_METRIC_GAUGE, name, help, labels, NULL, 0, out);
}

static int api_metric_histogram(notifd_plugin *p, const char *name, const char *help,
                                const char *const *labels, const double *buckets,
                                size_t nbuckets, notifd_metric **out) {
  return metric_reg(p, "metric_histogram", ND_METRIC_HISTOGRAM, name, help, labels, buckets, nbuckets, out);
}

void nd_api_fill(notifd_api *a) {
  memset(a, 0, sizeof *a);
  a->abi_major = NOTIFD_ABI_MAJOR;
  a->abi_minor = NOTIFD_ABI_MINOR;
  a->size = (uint32_t)sizeof *a;

  a->host_version = api_host_version;
  a->log = api_log;
  a->get_feature = api_get_feature;
  a->plugin_name = api_plugin_name;
  a->data_dir = api_data_dir;

  a->config_string = nd_plugin_config_string;
  a->config_int = nd_plugin_config_int;
  a->config_double = nd_plugin_config_double;
  a->config_bool = nd_plugin_config_bool;
  a->config_duration_ms = nd_plugin_config_duration_ms;
  a->config_list_len = nd_plugin_config_list_len;
  a->config_list_string = nd_plugin_config_list_string;
  a->backend_string = nd_plugin_backend_string;

  a->http_route = api_http_route;
  a->req_method = nd_req_method;
  a->req_path = nd_req_path;
  a->req_param = nd_req_param;
  a->req_query = nd_req_query;
  a->req_header = nd_req_header;
  a->req_body = nd_req_body;
  a->req_json_or_400 = nd_req_json_or_400;
  a->req_auth_subject = nd_req_auth_subject;
  a->resp_header = nd_resp_header;
  a->respond = nd_respond;
  a->respond_json = nd_respond_json;
  a->respond_error = nd_respond_error;

  a->ws_channel = api_ws_channel;
  a->ws_publish = nd_ws_publish;
  a->ws_close_key = nd_ws_close_key;
  a->ws_send = nd_ws_send;
  a->ws_close = nd_ws_close;
  a->ws_conn_key = nd_ws_conn_key;
  a->ws_conn_param = nd_ws_conn_param;
  a->ws_conn_set_data = nd_ws_conn_set_data;
  a->ws_conn_data = nd_ws_conn_data;
  a->ws_key_count = nd_ws_key_count;

  a->bus_consume = api_bus_consume;
  a->bus_produce = api_bus_produce;
  a->msg_topic = nd_msg_topic;
  a->msg_partition = nd_msg_partition;
  a->msg_offset = nd_msg_offset;
  a->msg_key = nd_msg_key;
  a->msg_value = nd_msg_value;
  a->msg_header = nd_msg_header;
  a->msg_timestamp_ms = nd_msg_timestamp_ms;
  a->msg_attempt = nd_msg_attempt;
  a->bus_ack = nd_bus_ack;
  a->bus_retry = nd_bus_retry;
  a->bus_drop = nd_bus_drop;

  a->kv_claim = api_kv_claim;
  a->kv_mark = api_kv_mark;
  a->kv_exists = api_kv_exists;

  a->http_call = api_http_call;
  a->http_resp_body = nd_http_resp_body;
  a->http_resp_header = nd_http_resp_header;

  a->timer_start = api_timer_start;
  a->timer_stop = nd_timer_stop;
  a->post = api_post;
  a->work_submit = api_work_submit;

  a->metric_counter = api_metric_counter;
  a->metric_gauge = api_metric_gauge;
  a->metric_histogram = api_metric_histogram;
  a->metric_add = nd_metric_add;
  a->metric_set = nd_metric_set;
  a->metric_observe = nd_metric_observe;

  a->auth_mode = api_auth_mode;
  a->ws_conn_subprotocol = nd_ws_conn_subprotocol;
  a->ws_conn_subject = nd_ws_conn_subject;
  a->ws_publish_proto = nd_ws_publish_proto;
  a->ws_conn_pause = nd_ws_conn_pause;
  a->ws_conn_resume = nd_ws_conn_resume;

  a->config_error = nd_plugin_config_error;

  a->check_only = api_check_only;
}
