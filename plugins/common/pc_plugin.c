#include "pc_plugin.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pc_jenc.h"

static const char *const auth_names[] = {"none", "token", "internal"};

int pc_auth_seed_mode(const notifd_api *api, notifd_plugin *p) {
  return NOTIFD_API_HAS(api, auth_mode) && api->auth_mode(p) == NOTIFD_AUTH_MODE_NONE;
}

uint32_t pc_auth_default(const notifd_api *api, notifd_plugin *p, uint32_t secure) {
  return pc_auth_seed_mode(api, p) ? NOTIFD_AUTH_NONE : secure;
}

const char *pc_auth_name(uint32_t policy) {
  return policy < 3 ? auth_names[policy] : "?";
}

int pc_config_auth(const notifd_api *api, notifd_plugin *p, const char *key, const char *def,
                   uint32_t allowed, uint32_t *out) {
  const char *v = NULL;
  if (api->config_string(p, key, def, &v) < 0) return NOTIFD_EINVAL;
  for (uint32_t i = 0; i < 3; i++) {
    if (strcmp(v, auth_names[i]) != 0) continue;
    if (!(allowed & (1u << i))) break;
    *out = i;
    return 0;
  }
  char names[32] = "";
  for (uint32_t i = 0; i < 3; i++)
    if (allowed & (1u << i))
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? "|" : "",
               auth_names[i]);
  return pc_config_error(api, p, key, "expected one of %s, got '%s'", names, v);
}

int pc_config_error(const notifd_api *api, notifd_plugin *p, const char *key, const char *fmt,
                    ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (NOTIFD_API_HAS(api, config_error))
    api->config_error(p, key, "%s", msg);
  else
    api->log(p, NOTIFD_LOG_ERROR, "config %s: %s", key ? key : "", msg);
  return NOTIFD_EINVAL;
}

int pc_check_only(const notifd_api *api, notifd_plugin *p) {
  return NOTIFD_API_HAS(api, check_only) && api->check_only(p);
}

int pc_config_forward_max_body(const notifd_api *api, notifd_plugin *p, uint64_t *out) {
  int64_t v = 0;
  int rc = api->config_int(p, "forward_max_body", (int64_t)PC_FORWARD_MAX_BODY, &v);
  if (rc < 0) return rc;
  if (v < 1024 || v > (int64_t)4 << 30)
    return pc_config_error(api, p, "forward_max_body", "expected 1024 to 4294967296 bytes, got %lld",
                           (long long)v);
  *out = (uint64_t)v;
  return 0;
}

int pc_respond_json(const notifd_api *api, notifd_req *r, int32_t status, pc_buf *body) {
  if (body->oom || !pc_buf_cstr(body)) {
    static const char oom[] = "{\"error\":\"out of memory\"}";
    return api->respond(r, 500, "application/json; charset=utf-8", oom, sizeof oom - 1);
  }
  return api->respond(r, status, "application/json; charset=utf-8", body->data, body->len);
}

int pc_respond_error(const notifd_api *api, notifd_req *r, int32_t status, const char *msg,
                     size_t len) {
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_puts(&b, "{\"error\":");
  pc_json_put_string(&b, msg, len);
  pc_buf_putc(&b, '}');
  int rc = pc_respond_json(api, r, status, &b);
  pc_buf_free(&b);
  return rc;
}

void pc_publish_to(const notifd_api *api, notifd_ws_channel *ch, const char *key, size_t keylen,
                   const void *data, size_t len, pc_publish *out) {
  memset(out, 0, sizeof *out);
  if (memchr(key, '\0', keylen)) return; /* no connection can have this key */
  out->rc = api->ws_publish(ch, key, data, len, &out->delivered, &out->failed);
  if (out->rc < 0) {
    out->delivered = 0;
    out->failed = api->ws_key_count(ch, key);
  }
}

void pc_publish_error_text(const pc_publish *pub, size_t frame_len, pc_buf *out) {
  switch (pub->rc) {
    case NOTIFD_ETOOBIG:
      pc_buf_printf(out,
                    "%u connection(s) not sent to: the %zu-byte frame exceeds "
                    "websocket.max_queue_bytes",
                    pub->failed, frame_len);
      return;
    case NOTIFD_ENOMEM:
      pc_buf_printf(out, "%u connection(s) not sent to: out of memory", pub->failed);
      return;
    case 0:
      pc_buf_printf(out,
                    "%u of %u connection(s) failed: closed as slow consumers (outbound queue "
                    "limit) or already closing",
                    pub->failed, pub->failed + pub->delivered);
      return;
    default:
      pc_buf_printf(out, "%u connection(s) not sent to: publish failed (%d)", pub->failed,
                    pub->rc);
  }
}
