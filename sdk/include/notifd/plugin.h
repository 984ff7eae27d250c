/*
 * notifd plugin SDK, ABI v1.
 *
 * A plugin is a shared object exporting exactly one symbol,
 * notifd_plugin_entry_v1(), which returns a static description of the
 * plugin (notifd_plugin_def).  The host then calls, on its loop thread:
 *
 *     entry -> init -> start -> ... -> stop -> destroy
 *
 * `init` receives the host API table (notifd_api) and an opaque handle for
 * this plugin instance (notifd_plugin).  HTTP routes, websocket channels, bus
 * consumers and metrics are registered inside `init` only (later calls get
 * NOTIFD_ESTATE): the host builds its router, consumer groups and /metrics
 * families once, before serving.  Timers are the exception: they may be
 * started at any time on the loop thread until `stop`, because one-shot
 * timers are how a plugin waits (a retry backoff, a grace period).  The host
 * owns every registration and timer and drops them itself at stop.  A plugin
 * keeps no mutable globals: the host library may be created twice in one
 * process, so keep state in the pointer `init` returns.
 *
 * Rules that hold for every function below unless its comment says otherwise:
 *  - Threads: call it on the loop thread only (inside a callback).  Only
 *    notifd_api.post() and notifd_api.log() may be called from any thread.
 *  - Errors: it returns 0 on success or a negative NOTIFD_E* code.  A call
 *    that fails never invokes its callback.
 *  - Ownership: pointer arguments are borrowed for the duration of the call
 *    and copied if the host keeps them.  Pointers the host returns are
 *    borrowed and valid for the duration of the callback that produced them
 *    (or as the comment states).
 *  - Callbacks run on the loop thread.
 *
 * ABI evolution: notifd_api is append-only; new functions go at the end and
 * bump NOTIFD_ABI_MINOR.  A plugin states the minor it needs in its def; the
 * host refuses a plugin that needs a newer minor or another major.  Every
 * struct a plugin hands to the host begins with a uint32_t `size` and the
 * host reads only what that size covers, so old plugins keep working.  A
 * plugin that declares an older minor can still use a newer function when
 * the host has it: test with NOTIFD_API_HAS(api, member) first.
 *
 * jansson is part of the ABI: json_t pointers cross it (req_json_or_400,
 * respond_json), so host and plugin must share one jansson.  Link it
 * dynamically (-ljansson, soname libjansson.so.4, jansson 2.x >= 2.10,
 * as pkg-config notifd-sdk says), never statically: the dynamic linker then
 * gives the plugin the host's copy.  A json_t the host hands over is
 * borrowed as the function says; never call json_object_seed().
 */
#ifndef NOTIFD_PLUGIN_H
#define NOTIFD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NOTIFD_ABI_MAJOR 1
#define NOTIFD_ABI_MINOR 3

/* The one exported entry symbol; the ABI major is part of its name. */
#define NOTIFD_PLUGIN_ENTRY_SYMBOL "notifd_plugin_entry_v1"

#if defined(__GNUC__)
#define NOTIFD_PLUGIN_EXPORT __attribute__((visibility("default")))
#define NOTIFD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NOTIFD_PLUGIN_EXPORT
#define NOTIFD_PRINTF(a, b)
#endif

/* ---- error codes (negative returns) ------------------------------------ */
#define NOTIFD_OK          0
#define NOTIFD_EINVAL    (-22)  /* bad argument or wrong config type */
#define NOTIFD_ENOMEM    (-12)
#define NOTIFD_ENOENT     (-2)  /* no such key / route / topic */
#define NOTIFD_EEXIST    (-17)  /* duplicate registration */
#define NOTIFD_ESTATE   (-1001) /* wrong lifecycle phase (e.g. register after init) */
#define NOTIFD_EBACKEND (-1002) /* backend (Kafka, Redis, SQLite...) failed */
#define NOTIFD_EBADJSON (-1003) /* body is not valid JSON */
#define NOTIFD_ETOOBIG  (-1004) /* over a configured size limit */
#define NOTIFD_ECLOSED  (-1005) /* connection or host already closed */
#define NOTIFD_ETIMEDOUT (-110)
#define NOTIFD_ENOTSUP   (-95)  /* feature not available in this build/backend */

/* Text for a NOTIFD_E* code (or "unknown error" for any other), e.g. for
 * log lines: "%s (%d)", notifd_strerror(rc), rc.  Static inline, so a
 * plugin uses it on every host without linking anything from notifd. */
static inline const char *notifd_strerror(int code) {
  switch (code) {
    case NOTIFD_OK: return "success";
    case NOTIFD_EINVAL: return "invalid argument";
    case NOTIFD_ENOMEM: return "out of memory";
    case NOTIFD_ENOENT: return "no such key, route or topic";
    case NOTIFD_EEXIST: return "already registered";
    case NOTIFD_ESTATE: return "wrong lifecycle phase";
    case NOTIFD_EBACKEND: return "backend failed";
    case NOTIFD_EBADJSON: return "not valid JSON";
    case NOTIFD_ETOOBIG: return "over a size limit";
    case NOTIFD_ECLOSED: return "closed";
    case NOTIFD_ETIMEDOUT: return "timed out";
    case NOTIFD_ENOTSUP: return "not supported";
    default: return "unknown error";
  }
}

/* The code's symbolic name ("EINVAL"), or NULL for a code notifd does not
 * define. */
static inline const char *notifd_strerror_name(int code) {
  switch (code) {
    case NOTIFD_OK: return "OK";
    case NOTIFD_EINVAL: return "EINVAL";
    case NOTIFD_ENOMEM: return "ENOMEM";
    case NOTIFD_ENOENT: return "ENOENT";
    case NOTIFD_EEXIST: return "EEXIST";
    case NOTIFD_ESTATE: return "ESTATE";
    case NOTIFD_EBACKEND: return "EBACKEND";
    case NOTIFD_EBADJSON: return "EBADJSON";
    case NOTIFD_ETOOBIG: return "ETOOBIG";
    case NOTIFD_ECLOSED: return "ECLOSED";
    case NOTIFD_ETIMEDOUT: return "ETIMEDOUT";
    case NOTIFD_ENOTSUP: return "ENOTSUP";
    default: return NULL;
  }
}

/* ---- log levels -------------------------------------------------------- */
#define NOTIFD_LOG_ERROR 0
#define NOTIFD_LOG_WARN  1
#define NOTIFD_LOG_INFO  2
#define NOTIFD_LOG_DEBUG 3

/* ---- auth policies for routes and websocket channels ------------------- */
#define NOTIFD_AUTH_NONE     0 /* anyone who reaches the port */
#define NOTIFD_AUTH_TOKEN    1 /* a user's JWT: Authorization: Bearer or ?token= */
#define NOTIFD_AUTH_INTERNAL 2 /* shared secret header X-Notifd-Internal-Token
                                  (in-process local: calls are trusted) */

/* ---- the host's authentication mode (config auth.mode; ABI 1.1) -------- *
 * Plugins take it as the default of their own auth settings: under USERS a
 * route a user calls defaults to NOTIFD_AUTH_TOKEN and a route other
 * services call to NOTIFD_AUTH_INTERNAL; under NONE (seed compatibility,
 * private networks only) both default to NOTIFD_AUTH_NONE. */
#define NOTIFD_AUTH_MODE_USERS 0
#define NOTIFD_AUTH_MODE_NONE  1

/* ---- opaque handles ---------------------------------------------------- */
typedef struct notifd_plugin     notifd_plugin;     /* this plugin instance */
typedef struct notifd_req        notifd_req;        /* one HTTP request */
typedef struct notifd_ws_channel notifd_ws_channel; /* a registered channel */
typedef struct notifd_ws_conn    notifd_ws_conn;    /* one websocket */
typedef struct notifd_consumer   notifd_consumer;   /* a bus consumer */
typedef struct notifd_bus_msg    notifd_bus_msg;    /* one consumed record */
typedef struct notifd_timer      notifd_timer;
typedef struct notifd_metric     notifd_metric;
typedef struct notifd_http_resp  notifd_http_resp;  /* outgoing call's reply */

/* ---- callback types ---------------------------------------------------- */

/* Handles one HTTP request.  The handler answers with one of the respond
 * functions now or later (asynchronously); `req` stays valid until it has
 * been answered, even if the client goes away meanwhile. */
typedef void (*notifd_http_handler)(notifd_req *req, void *ud);

/* Websocket upgrade check, run before the 101 response with the request's
 * accessors usable.  Return 0 to accept, or an HTTP status (400, 403, ...)
 * to refuse; `reason` (optional, may be left NULL) becomes the JSON error
 * message and must be a static string or live until the call returns. */
typedef int32_t (*notifd_ws_upgrade_cb)(notifd_req *req, const char **reason,
                                        void *ud);
typedef void (*notifd_ws_open_cb)(notifd_ws_conn *c, void *ud);
/* One complete (reassembled) message; `is_text` 1 for text frames. */
typedef void (*notifd_ws_message_cb)(notifd_ws_conn *c, const void *data,
                                     size_t len, int32_t is_text, void *ud);
/* The connection is gone; `c` is valid only during this call. */
typedef void (*notifd_ws_close_cb)(notifd_ws_conn *c, int32_t code, void *ud);

/* One consumed record.  Finish it exactly once, now or later, with
 * bus_ack, bus_retry or bus_drop.  `m` stays valid until finished. */
typedef void (*notifd_bus_handler)(notifd_bus_msg *m, void *ud);
/* Retries ran out; called before the record is dead-lettered and committed.
 * `m` is valid only during this call and must not be finished. */
typedef void (*notifd_bus_exhausted_cb)(notifd_bus_msg *m, const char *error,
                                        void *ud);
/* A produce finished: status 0 = durably accepted by the bus, or < 0. */
typedef void (*notifd_produce_cb)(int32_t status, void *ud);

/* kv result: 1 = yes (claimed / exists), 0 = no, < 0 = backend error (only
 * reported under the fail-closed policy; fail-open reports success). */
typedef void (*notifd_kv_cb)(int32_t result, void *ud);

typedef void (*notifd_timer_cb)(notifd_timer *t, void *ud);
typedef void (*notifd_post_cb)(void *ud);
/* Runs on a host worker thread: may block (libmongoc, file I/O). */
typedef void (*notifd_work_cb)(void *ud);
/* Runs on the loop after the work finished. */
typedef void (*notifd_work_done_cb)(void *ud);

/* Outgoing HTTP call finished.  `resp` is NULL on transport error or
 * timeout (`status` is then negative), else borrowed for this call. */
typedef void (*notifd_http_client_cb)(int32_t status, notifd_http_resp *resp,
                                      void *ud);

/* ---- option structs (each starts with its own size) -------------------- */

typedef struct notifd_route_opts {
  uint32_t size;           /* sizeof(notifd_route_opts) */
  uint32_t auth;           /* NOTIFD_AUTH_* */
  uint64_t max_body;       /* bytes, 0 = host default (http.max_body) */
} notifd_route_opts;

typedef struct notifd_ws_channel_opts {
  uint32_t size;                   /* sizeof(notifd_ws_channel_opts) */
  uint32_t auth;                   /* NOTIFD_AUTH_* */
  const char *path;                /* e.g. "/chat/subscribe-websocket" */
  const char *key_param;           /* query parameter that routes: "stream_id" */
  const char *const *required_params; /* NULL-terminated, or NULL */
  /* For NOTIFD_AUTH_TOKEN: query parameters one of which the token's `sub`
   * must equal (NULL-terminated; NULL means key_param). */
  const char *const *subject_params;
  notifd_ws_upgrade_cb on_upgrade; /* optional */
  notifd_ws_open_cb on_open;       /* optional */
  notifd_ws_message_cb on_message; /* optional; absent = client data ignored */
  notifd_ws_close_cb on_close;     /* optional */
  void *ud;
  /* ABI 1.1: Sec-WebSocket-Protocol values this channel speaks
   * (NULL-terminated, or NULL for none).  The host answers with the first
   * value the client offers that is in this list; a client offering none
   * of them is still accepted, with no subprotocol. */
  const char *const *subprotocols;
} notifd_ws_channel_opts;

typedef struct notifd_consumer_opts {
  uint32_t size;                   /* sizeof(notifd_consumer_opts) */
  uint32_t reserved;
  const char *const *topics;       /* NULL-terminated */
  const char *group;               /* consumer group id */
  notifd_bus_handler handler;
  void *ud;
  /* Retry policy; 0 / NULL fields take the host's bus.retry defaults. */
  int32_t max_attempts;            /* total attempts, >= 1; -1 = host default */
  int32_t reserved2;
  int64_t initial_interval_ms;
  int64_t max_interval_ms;
  double multiplier;
  double jitter;                   /* 0..1, fraction of the wait randomised;
                                      0 = host default, < 0 = none */
  const char *dead_letter_topic;   /* NULL = "<topic>.dlq" */
  notifd_bus_exhausted_cb on_exhausted; /* optional */
  int32_t start_from_latest;       /* 1 = new group starts at the end */
  int32_t reserved3;
} notifd_consumer_opts;

typedef struct notifd_http_client_req {
  uint32_t size;                   /* sizeof(notifd_http_client_req) */
  uint32_t internal_auth;          /* 1 = add the internal token header */
  const char *method;              /* "POST" */
  const char *url;                 /* absolute; "local:/path" = this process
                                      (the route's own max_body applies,
                                      http.max_body does not) */
  const char *const *headers;      /* NULL-terminated "Name: value" lines */
  const void *body;
  size_t body_len;
  int64_t timeout_ms;              /* 0 = 2000 */
} notifd_http_client_req;

/* ---- the host API table ------------------------------------------------ */

typedef struct notifd_api {
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t size;                   /* sizeof(notifd_api) of the host */
  uint32_t reserved;

  /* -- identity, logging, features -- */
  /* Host version string, e.g. "0.1.0"; static. */
  const char *(*host_version)(void);
  /* Thread-safe.  One log line tagged with the plugin's name. */
  void (*log)(notifd_plugin *p, int32_t level, const char *fmt, ...)
      NOTIFD_PRINTF(3, 4);
  /* Optional extension by name, or NULL when the host lacks it. */
  void *(*get_feature)(notifd_plugin *p, const char *name);
  /* The name this plugin was loaded as (config `name`); valid for the
   * plugin's lifetime. */
  const char *(*plugin_name)(notifd_plugin *p);
  /* Absolute data directory (created by the host); plugin lifetime. */
  const char *(*data_dir)(notifd_plugin *p);

  /* -- per-plugin configuration (the plugin's `config:` subtree) --
   * `key` is a dotted path ("forward.timeout"; a decimal segment indexes a
   * list: "types.0.name").  Absent keys give `def`
   * and return 0.  A present key of the wrong type is recorded as a
   * config error with file:line:column and NOTIFD_EINVAL is returned.
   * Keys never read during init are reported as unknown keys.  Strings
   * returned are owned by the host and live as long as the plugin. */
  int (*config_string)(notifd_plugin *p, const char *key, const char *def,
                       const char **out);
  int (*config_int)(notifd_plugin *p, const char *key, int64_t def,
                    int64_t *out);
  int (*config_double)(notifd_plugin *p, const char *key, double def,
                       double *out);
  int (*config_bool)(notifd_plugin *p, const char *key, int32_t def,
                     int32_t *out);
  /* Go-style durations ("300ms", "1m30s") or integers (milliseconds). */
  int (*config_duration_ms)(notifd_plugin *p, const char *key, int64_t def,
                            int64_t *out);
  /* Length of a sequence (0 when absent); element i as a string. */
  int (*config_list_len)(notifd_plugin *p, const char *key, size_t *out);
  int (*config_list_string)(notifd_plugin *p, const char *key, size_t i,
                            const char **out);
  /* Value of a host backend setting, e.g. ("mongodb", "uri"); *out = NULL
   * when that backend is not configured (embedded mode). */
  int (*backend_string)(notifd_plugin *p, const char *backend,
                        const char *key, const char **out);

  /* -- HTTP routes --
   * `pattern` is a path with `{name}` segments: "/chat/messages/{id}".
   * `opts` may be NULL (auth none, default body limit). Init only. */
  int (*http_route)(notifd_plugin *p, const char *method, const char *pattern,
                    notifd_http_handler h, void *ud,
                    const notifd_route_opts *opts);
  const char *(*req_method)(notifd_req *r);
  const char *(*req_path)(notifd_req *r);             /* without query */
  const char *(*req_param)(notifd_req *r, const char *name); /* {name} */
  const char *(*req_query)(notifd_req *r, const char *name); /* decoded */
  const char *(*req_header)(notifd_req *r, const char *name);
  const void *(*req_body)(notifd_req *r, size_t *len);
  /* Parses the body once; the result is owned by the request (borrowed;
   * a jansson value, see "jansson is part of the ABI" above).
   * On malformed JSON returns NULL after answering 400 {"error": "..."}
   * itself, so the handler just returns. */
  json_t *(*req_json_or_400)(notifd_req *r);
  /* The token's `sub` when the route's auth is NOTIFD_AUTH_TOKEN. */
  const char *(*req_auth_subject)(notifd_req *r);
  /* Adds a response header; call before responding. */
  int (*resp_header)(notifd_req *r, const char *name, const char *value);
  /* Answers with a copy of `body`. `req` is invalid afterwards. */
  int (*respond)(notifd_req *r, int32_t status, const char *content_type,
                 const void *body, size_t len);
  /* Answers with `body` serialized (borrowed; compact, keys as inserted). */
  int (*respond_json)(notifd_req *r, int32_t status, const json_t *body);
  /* Answers {"error": msg}. */
  int (*respond_error)(notifd_req *r, int32_t status, const char *msg);

  /* -- websocket channels -- */
  int (*ws_channel)(notifd_plugin *p, const notifd_ws_channel_opts *opts,
                    notifd_ws_channel **out);
  /* Queues one text frame (encoded once) to every connection of `key`.
   * delivered/failed may be NULL.  Slow consumers over their outbound
   * limit are closed and counted as failed.  A frame larger than
   * websocket.max_queue_bytes goes only to connections with nothing
   * queued; the others are counted as failed but stay open.  (ws_send:
   * NOTIFD_ETOOBIG in that case.)  `delivered` counts frames queued to
   * open connections, not yet written; with websocket.io_threads a
   * connection whose peer has just closed can still be counted (its I/O
   * thread drops the frame), as one whose close is not read yet always
   * could. */
  int (*ws_publish)(notifd_ws_channel *ch, const char *key, const void *data,
                    size_t len, uint32_t *delivered, uint32_t *failed);
  /* Closes every connection of `key`; returns the count closed (>= 0). */
  int (*ws_close_key)(notifd_ws_channel *ch, const char *key, int32_t code,
                      const char *reason);
  int (*ws_send)(notifd_ws_conn *c, const void *data, size_t len,
                 int32_t is_text);
  int (*ws_close)(notifd_ws_conn *c, int32_t code, const char *reason);
  const char *(*ws_conn_key)(notifd_ws_conn *c);
  const char *(*ws_conn_param)(notifd_ws_conn *c, const char *name);
  void (*ws_conn_set_data)(notifd_ws_conn *c, void *data);
  void *(*ws_conn_data)(notifd_ws_conn *c);
  /* Number of open connections for `key` on this process. */
  uint32_t (*ws_key_count)(notifd_ws_channel *ch, const char *key);

  /* -- bus (Kafka or embedded) -- */
  /* Registers a consumer (init only; copies opts).  `out` may be NULL;
   * otherwise *out gets a handle owned by the host, valid until destroy
   * (NULL under --check, see check_only). */
  int (*bus_consume)(notifd_plugin *p, const notifd_consumer_opts *opts,
                     notifd_consumer **out);
  /* Copies everything; `headers` is NULL-terminated name,value,... pairs. */
  int (*bus_produce)(notifd_plugin *p, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     const char *const *headers, notifd_produce_cb cb,
                     void *ud);
  const char *(*msg_topic)(notifd_bus_msg *m);
  int32_t (*msg_partition)(notifd_bus_msg *m);
  int64_t (*msg_offset)(notifd_bus_msg *m);
  /* NULL with *len = 0 for a null key / value (tombstone). */
  const void *(*msg_key)(notifd_bus_msg *m, size_t *len);
  const void *(*msg_value)(notifd_bus_msg *m, size_t *len);
  const void *(*msg_header)(notifd_bus_msg *m, const char *name, size_t *len);
  int64_t (*msg_timestamp_ms)(notifd_bus_msg *m);
  int32_t (*msg_attempt)(notifd_bus_msg *m); /* 1 for the first delivery */
  int (*bus_ack)(notifd_bus_msg *m);
  /* Redelivers after the consumer's backoff; `error` is kept for the
   * dead-letter headers when attempts run out. */
  int (*bus_retry)(notifd_bus_msg *m, const char *error);
  /* Gives up now: counted, dead-lettered with `reason`, committed. */
  int (*bus_drop)(notifd_bus_msg *m, const char *reason);

  /* -- kv / dedupe (Redis or embedded); keys get the host's prefix -- */
  int (*kv_claim)(notifd_plugin *p, const char *key, int64_t ttl_ms,
                  notifd_kv_cb cb, void *ud);
  int (*kv_mark)(notifd_plugin *p, const char *key, int64_t ttl_ms,
                 notifd_kv_cb cb, void *ud);
  int (*kv_exists)(notifd_plugin *p, const char *key, notifd_kv_cb cb,
                   void *ud);

  /* -- outgoing HTTP (libcurl multi on the loop, or in-process) -- */
  int (*http_call)(notifd_plugin *p, const notifd_http_client_req *req,
                   notifd_http_client_cb cb, void *ud);
  const void *(*http_resp_body)(notifd_http_resp *r, size_t *len);
  const char *(*http_resp_header)(notifd_http_resp *r, const char *name);

  /* -- timers, cross-thread post, worker pool -- */
  /* First fire after `after_ms`, then every `repeat_ms` (0 = once).  Any
   * time on the loop thread (not only in init: one-shot timers are how a
   * plugin waits); NOTIFD_ECLOSED once the host is stopping.  Stopped
   * automatically at plugin stop. */
  int (*timer_start)(notifd_plugin *p, int64_t after_ms, int64_t repeat_ms,
                     notifd_timer_cb cb, void *ud, notifd_timer **out);
  void (*timer_stop)(notifd_timer *t);  /* frees `t`; safe inside its cb */
  /* Thread-safe: runs `cb(ud)` on the loop thread soon.  Returns
   * NOTIFD_ECLOSED once the host is stopping. */
  int (*post)(notifd_plugin *p, notifd_post_cb cb, void *ud);
  /* Runs `work(ud)` on a worker thread, then `done(ud)` on the loop. */
  int (*work_submit)(notifd_plugin *p, notifd_work_cb work,
                     notifd_work_done_cb done, void *ud);

  /* -- metrics (Prometheus on the admin listener) --
   * Names get no prefix; `labels` is NULL-terminated (or NULL).
   * Registration in init only (NOTIFD_ESTATE afterwards); updates on the
   * loop thread. */
  int (*metric_counter)(notifd_plugin *p, const char *name, const char *help,
                        const char *const *labels, notifd_metric **out);
  int (*metric_gauge)(notifd_plugin *p, const char *name, const char *help,
                      const char *const *labels, notifd_metric **out);
  /* `buckets` ascending upper bounds (NULL = latency defaults, seconds). */
  int (*metric_histogram)(notifd_plugin *p, const char *name,
                          const char *help, const char *const *labels,
                          const double *buckets, size_t nbuckets,
                          notifd_metric **out);
  /* `values` match the registered labels in order (NULL if none). */
  void (*metric_add)(notifd_metric *m, const char *const *values, double v);
  void (*metric_set)(notifd_metric *m, const char *const *values, double v);
  void (*metric_observe)(notifd_metric *m, const char *const *values,
                         double v);

  /* -- ABI 1.1 (check with NOTIFD_API_HAS before calling) -- */
  /* The host's auth.mode: NOTIFD_AUTH_MODE_USERS or NOTIFD_AUTH_MODE_NONE. */
  int32_t (*auth_mode)(notifd_plugin *p);
  /* The subprotocol negotiated at the upgrade (one of the channel's
   * `subprotocols`, borrowed for the connection's life) or NULL. */
  const char *(*ws_conn_subprotocol)(notifd_ws_conn *c);
  /* The connection's authenticated user (its token's `sub`) or NULL when
   * the channel's policy is not token. */
  const char *(*ws_conn_subject)(notifd_ws_conn *c);
  /* ws_publish to the connections of `key` that negotiated `subprotocol`
   * only (NULL: those that negotiated none), so each kind of client gets
   * its own encoding of one event. */
  int (*ws_publish_proto)(notifd_ws_channel *ch, const char *key,
                          const char *subprotocol, const void *data,
                          size_t len, uint32_t *delivered, uint32_t *failed);
  /* Takes an open connection out of its key: ws_publish*, ws_key_count and
   * ws_close_key skip it until ws_conn_resume, while ws_send still reaches
   * it.  For replaying stored items before live ones with no gap and no
   * duplicate (pause in on_open, ws_send the replay and what the plugin
   * published meanwhile, resume).  NOTIFD_ECLOSED when not open. */
  int (*ws_conn_pause)(notifd_ws_conn *c);
  int (*ws_conn_resume)(notifd_ws_conn *c);

  /* -- ABI 1.2 (check with NOTIFD_API_HAS before calling) -- */
  /* Reports a problem with the value of the plugin's config key `key`
   * (dotted, as for config_*; NULL = the whole `config:` map) the way the
   * host reports its own: "<file>:<line>:<col>: key
   * 'plugins[<i>].config.<key>': <message>" (list indexes as [n]), at the
   * value's position, or when the key is absent at the deepest part of its
   * path that exists (a list item, the `config:` map, else the entry).
   * The host fails startup and `notifd --check` once init returns; init
   * may go on checking and report every problem, then return
   * NOTIFD_EINVAL (no extra "init failed" line is printed then).  Init
   * only: NOTIFD_ESTATE afterwards. */
  int (*config_error)(notifd_plugin *p, const char *key, const char *fmt, ...)
      NOTIFD_PRINTF(3, 4);

  /* -- ABI 1.3 (check with NOTIFD_API_HAS before calling) -- */
  /* 1 while `notifd --check` runs this init, else 0.  A checking init
   * reads and validates all of its config (reporting every problem) and
   * registers as usual, but writes nothing: it opens no store or file in
   * the data directory (which the host does not create then) and starts
   * no connection that changes state.  Under --check the host's bus and kv
   * only validate their config: bus_consume registers nothing (*out is
   * NULL), bus_produce and kv_* return NOTIFD_ESTATE. */
  int32_t (*check_only)(notifd_plugin *p);
} notifd_api;

/* 1 when the host's table has `member` (a function added in a later minor
 * than the plugin requires): the host fills api->size with its own
 * sizeof(notifd_api), so an older host's table ends before it.  E.g.
 *   if (NOTIFD_API_HAS(api, check_only) && api->check_only(p)) ... */
#define NOTIFD_API_HAS(api, member)                                          \
  ((api)->size >= offsetof(notifd_api, member) + sizeof((api)->member) &&    \
   (api)->member != NULL)

/* ---- the plugin's own description ------------------------------------- */

typedef struct notifd_plugin_def {
  uint32_t size;              /* sizeof(notifd_plugin_def) */
  uint32_t abi_major;         /* NOTIFD_ABI_MAJOR at build time */
  uint32_t abi_minor;         /* lowest host minor this plugin needs */
  uint32_t reserved;
  const char *name;           /* role name, e.g. "chat_ws" */
  const char *version;        /* plugin's own version string */
  /* Register everything here; store the plugin's state in *state.
   * Return < 0 to fail startup; destroy(*state) is still called, so set
   * *state before anything that can fail.  When init fails, the host's
   * message names the last API call it refused during this init and why
   * ("init failed: bus_consume: ... (-22 EINVAL)"), so returning that
   * call's code as it came is enough. */
  int (*init)(notifd_plugin *p, const notifd_api *api, void **state);
  /* After every plugin's init succeeded; may be NULL. */
  int (*start)(void *state);
  /* Reverse order at shutdown; cancel work, join own threads; may be NULL.
   * In-flight requests, websockets and consumers are drained (up to the
   * shutdown deadline) before it runs.  After stop returns the plugin must
   * not call the API; the host tears its registrations down. */
  void (*stop)(void *state);
  /* Frees state; may be NULL. */
  void (*destroy)(void *state);
} notifd_plugin_def;

typedef const notifd_plugin_def *(*notifd_plugin_entry_fn)(void);

/* Declare in the plugin:  NOTIFD_PLUGIN_DEFINE(my_def)  */
#define NOTIFD_PLUGIN_DEFINE(def)                                           \
  NOTIFD_PLUGIN_EXPORT const notifd_plugin_def *notifd_plugin_entry_v1(     \
      void);                                                                \
  const notifd_plugin_def *notifd_plugin_entry_v1(void) { return &(def); }

#ifdef __cplusplus
}
#endif
#endif /* NOTIFD_PLUGIN_H */
