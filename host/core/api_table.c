/* The host API table handed to plugins.  Thin wrappers here add what the
 * subsystems do not know about: the calling plugin, the registration phase
 * and the host's lazily opened backends. */
#include <stdarg.h>
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

static int32_t api_auth_mode(notifd_plugin *p) {
  return p ? p->host->cfg.auth_mode : NOTIFD_AUTH_MODE_USERS;
}

static const char *api_plugin_name(notifd_plugin *p) { return p->cfg->name; }
static const char *api_data_dir(notifd_plugin *p) { return p->host->cfg.data_dir; }

static int api_http_route(notifd_plugin *p, const char *method, const char *pattern,
                          notifd_http_handler h, void *ud, const notifd_route_opts *opts) {
  if (!p || !method || !pattern || !h) return NOTIFD_EINVAL;
  if (!nd_host_registering(p->host)) return NOTIFD_ESTATE;
  notifd_route_opts o = {sizeof o, NOTIFD_AUTH_NONE, 0};
  if (opts) memcpy(&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
  if (o.auth > NOTIFD_AUTH_INTERNAL) return NOTIFD_EINVAL;
  return nd_router_add(p->host->router, method, pattern, h, ud, o.auth, o.max_body, p->cfg->name);
}

static int api_ws_channel(notifd_plugin *p, const notifd_ws_channel_opts *opts,
                          notifd_ws_channel **out) {
  if (!p || !opts || !out) return NOTIFD_EINVAL;
  if (!nd_host_registering(p->host)) return NOTIFD_ESTATE;
  if (!p->host->ws) return NOTIFD_ENOTSUP;
  return nd_ws_channel_add(p->host->ws, p, opts, out);
}

static int api_bus_consume(notifd_plugin *p, const notifd_consumer_opts *opts,
                           notifd_consumer **out) {
  if (!p || !opts || !out) return NOTIFD_EINVAL;
  if (!nd_host_registering(p->host)) return NOTIFD_ESTATE;
  nd_bus *b = nd_host_bus(p->host);
  if (!b) return NOTIFD_EBACKEND;
  return nd_bus_consume(b, p, opts, out);
}

static int api_bus_produce(notifd_plugin *p, const char *topic, const void *key, size_t key_len,
                           const void *value, size_t value_len, const char *const *headers,
                           notifd_produce_cb cb, void *ud) {
  if (!p || !topic) return NOTIFD_EINVAL;
  nd_bus *b = nd_host_bus(p->host);
  if (!b) return NOTIFD_EBACKEND;
  return nd_bus_produce(b, topic, key, key_len, value, value_len, headers, cb, ud);
}

static int api_kv_claim(notifd_plugin *p, const char *key, int64_t ttl_ms, notifd_kv_cb cb,
                        void *ud) {
  nd_kv *kv = p ? nd_host_kv(p->host) : NULL;
  return kv ? nd_kv_claim(kv, key, ttl_ms, cb, ud) : NOTIFD_EBACKEND;
}

static int api_kv_mark(notifd_plugin *p, const char *key, int64_t ttl_ms, notifd_kv_cb cb,
                       void *ud) {
  nd_kv *kv = p ? nd_host_kv(p->host) : NULL;
  return kv ? nd_kv_mark(kv, key, ttl_ms, cb, ud) : NOTIFD_EBACKEND;
}

static int api_kv_exists(notifd_plugin *p, const char *key, notifd_kv_cb cb, void *ud) {
  nd_kv *kv = p ? nd_host_kv(p->host) : NULL;
  return kv ? nd_kv_exists(kv, key, cb, ud) : NOTIFD_EBACKEND;
}

static int api_http_call(notifd_plugin *p, const notifd_http_client_req *req,
                         notifd_http_client_cb cb, void *ud) {
  if (!p || !req) return NOTIFD_EINVAL;
  return nd_http_call(p->host, req, cb, ud);
}

static int api_timer_start(notifd_plugin *p, int64_t after_ms, int64_t repeat_ms,
                           notifd_timer_cb cb, void *ud, notifd_timer **out) {
  if (!p) return NOTIFD_EINVAL;
  if (p->host->phase >= ND_PHASE_STOPPING) return NOTIFD_ECLOSED;
  return nd_timer_start(p->timers, after_ms, repeat_ms, cb, ud, out);
}

static int api_post(notifd_plugin *p, notifd_post_cb cb, void *ud) {
  if (!p) return NOTIFD_EINVAL;
  return nd_poster_post(p->host->poster, cb, ud);
}

static int api_work_submit(notifd_plugin *p, notifd_work_cb work, notifd_work_done_cb done,
                           void *ud) {
  if (!p) return NOTIFD_EINVAL;
  if (!p->host->workers) return NOTIFD_ECLOSED;
  return nd_workers_submit(p->host->workers, work, done, ud);
}

static int metric_reg(notifd_plugin *p, int type, const char *name, const char *help,
                      const char *const *labels, const double *buckets, size_t nb,
                      notifd_metric **out) {
  if (!p) return NOTIFD_EINVAL;
  return nd_metric_register(p->host->metrics, type, name, help, labels, buckets, nb, out);
}

static int api_metric_counter(notifd_plugin *p, const char *name, const char *help,
                              const char *const *labels, notifd_metric **out) {
  return metric_reg(p, ND_METRIC_COUNTER, name, help, labels, NULL, 0, out);
}

static int api_metric_gauge(notifd_plugin *p, const char *name, const char *help,
                            const char *const *labels, notifd_metric **out) {
  return metric_reg(p, ND_METRIC_GAUGE, name, help, labels, NULL, 0, out);
}

static int api_metric_histogram(notifd_plugin *p, const char *name, const char *help,
                                const char *const *labels, const double *buckets,
                                size_t nbuckets, notifd_metric **out) {
  return metric_reg(p, ND_METRIC_HISTOGRAM, name, help, labels, buckets, nbuckets, out);
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
}
