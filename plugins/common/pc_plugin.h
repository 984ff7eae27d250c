/* Small SDK-side helpers shared by the websocket role plugins: auth
 * policy config values, gin-style JSON answers, and the text describing a
 * publish that did not reach every connection. */
#ifndef PC_PLUGIN_H
#define PC_PLUGIN_H

#include <notifd/plugin.h>
#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"

#define PC_AUTH_ALLOW_NONE     (1u << NOTIFD_AUTH_NONE)
#define PC_AUTH_ALLOW_TOKEN    (1u << NOTIFD_AUTH_TOKEN)
#define PC_AUTH_ALLOW_INTERNAL (1u << NOTIFD_AUTH_INTERNAL)

/* The default of an auth setting under the host's auth.mode: `secure`
 * (NOTIFD_AUTH_TOKEN for routes users call, NOTIFD_AUTH_INTERNAL for
 * routes services call) unless the host runs in seed-compatibility mode,
 * then NOTIFD_AUTH_NONE.  A host older than ABI 1.1 counts as users mode. */
uint32_t pc_auth_default(const notifd_api *api, notifd_plugin *p, uint32_t secure);
/* Name of a NOTIFD_AUTH_* policy ("none", "token", "internal"). */
const char *pc_auth_name(uint32_t policy);
/* 1 when the host runs in seed-compatibility mode (auth.mode: none). */
int pc_auth_seed_mode(const notifd_api *api, notifd_plugin *p);

/* Reads config `key` ("none", "token" or "internal", default `def`) into a
 * NOTIFD_AUTH_* value.  A value outside `allowed` is reported with
 * pc_config_error and gives NOTIFD_EINVAL. */
int pc_config_auth(const notifd_api *api, notifd_plugin *p, const char *key, const char *def,
                   uint32_t allowed, uint32_t *out);

/* Reports a problem with the plugin's config key `key` (dotted; NULL = the
 * whole map): as file:line:column through config_error on a host with ABI
 * 1.2, else as an error log line.  Returns NOTIFD_EINVAL, so a reader can
 * `bad |= pc_config_error(...) < 0;`, go on checking, and fail at the end. */
int pc_config_error(const notifd_api *api, notifd_plugin *p, const char *key, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
/* 1 under `notifd --check` (ABI 1.3 check_only): validate the config but
 * open no store and write nothing. */
int pc_check_only(const notifd_api *api, notifd_plugin *p);
/* Reads `forward_max_body` (bytes, 1 KiB..4 GiB), the body limit of the
 * routes other services forward messages to.  Not http.max_body: a chat
 * message Go accepted (chat_persistence's largest max_content_bytes,
 * 16 MiB, every byte escaped as \u00XX) must get through; default
 * PC_FORWARD_MAX_BODY.  Out of range: pc_config_error, NOTIFD_EINVAL. */
#define PC_FORWARD_MAX_BODY ((uint64_t)100 << 20)
int pc_config_forward_max_body(const notifd_api *api, notifd_plugin *p, uint64_t *out);

/* Answers with `body` as gin's c.JSON does (application/json;
 * charset=utf-8); a body that ran out of memory becomes a 500. */
int pc_respond_json(const notifd_api *api, notifd_req *r, int32_t status, pc_buf *body);
/* Answers {"error": msg} with Go's string escaping. */
int pc_respond_error(const notifd_api *api, notifd_req *r, int32_t status, const char *msg,
                     size_t len);
/* pc_respond_error with a string literal. */
#define PC_RESPOND_ERROR_LIT(api, r, status, lit) \
  pc_respond_error((api), (r), (status), "" lit, sizeof(lit) - 1)

/* The outcome of one ws_publish. */
typedef struct pc_publish {
  int rc;             /* ws_publish's return */
  uint32_t delivered;
  uint32_t failed;    /* for rc < 0: the connections the key had */
} pc_publish;

/* ws_publish to `key` (which must not hold NUL bytes: no connection can
 * have such a key, so it is reported as 0 deliveries). */
void pc_publish_to(const notifd_api *api, notifd_ws_channel *ch, const char *key, size_t keylen,
                   const void *data, size_t len, pc_publish *out);
/* The "error" text of a 206 / 500 answer for a failed publish. */
void pc_publish_error_text(const pc_publish *pub, size_t frame_len, pc_buf *out);

#endif
