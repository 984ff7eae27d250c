/* bus_input: forward (README.md, "Several notifications_ws processes"):
 * with several processes on one shared consumer group, the process that
 * consumed a record is not the one holding the user's sockets, so it POSTs
 * the record's payload to {forward_url}/notifications/<type>?user_id=U
 * (the proxy routes by user_id) with the internal token, and the owning
 * process stores it once and delivers it.  By the answer:
 *
 *   200, 206                         ack (stored; 206: some sockets failed)
 *   500 not "failed to store ..."    ack (stored, no socket took it)
 *   500 "failed to store ...", other 5xx, transport error, timeout
 *                                    bus_retry (the consumer's backoff)
 *   400                              drop + dead letter (invalid_payload)
 *   404                              drop + dead letter (unknown_type)
 *   anything else (401, 403, ...)    bus_retry (a configuration error:
 *                                    retried, dead-lettered when attempts
 *                                    run out)
 *
 * At most FORWARD_INFLIGHT_MAX calls run at once; beyond that a record is
 * retried later rather than queued without bound (the bus hands a
 * partition's records one at a time, so this bounds the partitions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifications_ws.h"

#define FORWARD_INFLIGHT_MAX 256
#define STORE_FAILED "failed to store"

typedef struct fwd_call {
  notif_ws *s;
  notifd_bus_msg *m;
  const pc_notification_kind *kind;
} fwd_call;

/* Whether a 500 body says the notification was not stored. */
static int store_failed(const notifd_api *api, notifd_http_resp *resp) {
  size_t len = 0;
  const char *b = resp ? api->http_resp_body(resp, &len) : NULL;
  if (!b) return 1; /* cannot tell: redeliver (at least once) */
  size_t n = sizeof STORE_FAILED - 1;
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(b + i, STORE_FAILED, n) == 0) return 1;
  return 0;
}

static void on_reply(int32_t status, notifd_http_resp *resp, void *ud) {
  fwd_call *fc = ud;
  notif_ws *s = fc->s;
  const notifd_api *api = s->api;
  s->forward_inflight--;
  char why[96];
  if (status == 200 || status == 206 || (status == 500 && !store_failed(api, resp))) {
    notif_count(s, "bus", fc->kind, "forwarded");
    api->bus_ack(fc->m);
  } else if (status == 400 || status == 404) {
    size_t len = 0;
    const char *b = resp ? api->http_resp_body(resp, &len) : NULL;
    api->log(s->self, NOTIFD_LOG_WARN, "dropping record %s[%d]@%lld: forward answered %d: %.*s",
             api->msg_topic(fc->m), api->msg_partition(fc->m), (long long)api->msg_offset(fc->m),
             (int)status, (int)(len > 300 ? 300 : len), b ? b : "");
    notif_count(s, "bus", fc->kind, "invalid");
    api->bus_drop(fc->m, status == 400 ? "invalid_payload" : "unknown_type");
  } else {
    if (status < 0) snprintf(why, sizeof why, "forward: no answer (%d)", (int)status);
    else snprintf(why, sizeof why, "forward: answered %d", (int)status);
    notif_count(s, "bus", fc->kind, "failed");
    api->bus_retry(fc->m, why);
  }
  free(fc);
}

void forward_record(notif_ws *s, notifd_bus_msg *m, const pc_notification_kind *kind,
                    const char *user, pc_jval payload) {
  const notifd_api *api = s->api;
  if (s->forward_inflight >= FORWARD_INFLIGHT_MAX) {
    api->bus_retry(m, "forward: too many calls in flight");
    return;
  }
  pc_buf url;
  pc_buf_init(&url);
  pc_buf_printf(&url, "%s/notifications/%s?user_id=", s->forward_url, kind->name);
  pc_buf_put_url_escaped(&url, user);
  fwd_call *fc = calloc(1, sizeof *fc);
  if (!fc || !pc_buf_cstr(&url)) {
    free(fc);
    pc_buf_free(&url);
    api->bus_retry(m, "out of memory");
    return;
  }
  fc->s = s;
  fc->m = m;
  fc->kind = kind;
  static const char *const headers[] = {"Content-Type: application/json", NULL};
  notifd_http_client_req req = {
      .size = sizeof req,
      .internal_auth = 1,
      .method = "POST",
      .url = url.data,
      .headers = headers,
      .body = payload.p,
      .body_len = payload.n,
      .timeout_ms = s->forward_timeout_ms,
  };
  s->forward_inflight++; /* before: the callback may run inside the call */
  int rc = api->http_call(s->self, &req, on_reply, fc);
  pc_buf_free(&url);
  if (rc < 0) {
    s->forward_inflight--;
    free(fc);
    api->bus_retry(m, "forward: cannot start the call");
  }
}

int forward_init(notif_ws *s) {
  const notifd_api *api = s->api;
  const char *mode = NULL, *url = NULL;
  int rc = api->config_string(s->self, "bus_input", "store", &mode);
  if (rc == 0) rc = api->config_string(s->self, "forward_url", NULL, &url);
  if (rc == 0) rc = api->config_duration_ms(s->self, "forward_timeout", 5000, &s->forward_timeout_ms);
  if (rc < 0) return rc;
  if (url && !*url) url = NULL;
  if (strcmp(mode, "store") == 0) {
    if (url) {
      return pc_config_error(api, s->self, "forward_url", "only with bus_input: forward");
    }
    return 0;
  }
  if (strcmp(mode, "forward") != 0) {
    return pc_config_error(api, s->self, "bus_input", "expected one of store|forward, got '%s'",
                           mode);
  }
  if (!url) {
    return pc_config_error(api, s->self, "forward_url",
                           "required with bus_input: forward (e.g. http://proxy:8080)");
  }
  if (s->forward_timeout_ms < 1) {
    return pc_config_error(api, s->self, "forward_timeout", "must be positive");
  }
  size_t n = strlen(url);
  while (n > 0 && url[n - 1] == '/') n--; /* forward_url: http://proxy:8080/ works too */
  char *trimmed = strndup(url, n);
  if (!trimmed) return NOTIFD_ENOMEM;
  s->forward_url_owned = trimmed;
  s->forward_url = trimmed;
  return 0;
}
