/* Config tree (YAML -> nodes with file:line:column marks), ${VAR} expansion,
 * and the host's typed configuration built from it.  Errors are collected,
 * never fatal on the first one, so `notifd --check` can print them all. */
#ifndef ND_CONFIG_H
#define ND_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* ---- error list -------------------------------------------------------- */
typedef struct nd_errors {
  char **msgs;
  size_t n, cap;
} nd_errors;

void nd_errors_init(nd_errors *e);
/* Appends "file:line:col: message" (line/col 1-based; 0 omits them). */
void nd_errors_add(nd_errors *e, const char *file, int line, int col,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Joins all messages, one per line, into buf (truncating safely). */
void nd_errors_format(const nd_errors *e, char *buf, size_t len);
void nd_errors_free(nd_errors *e);

/* ---- node tree --------------------------------------------------------- */
typedef enum { ND_CFG_SCALAR = 1, ND_CFG_MAP, ND_CFG_SEQ } nd_cfg_kind;

typedef struct nd_cfg_node nd_cfg_node;
struct nd_cfg_node {
  nd_cfg_kind kind;
  const char *file;   /* shared, owned by the tree */
  int line, col;      /* 1-based position of the value */
  int key_line, key_col; /* position of the map key naming this node */
  int quoted;         /* scalar was quoted: never a number/bool/null */
  int is_null;        /* plain ~, null, Null, NULL or empty */
  char *str;          /* scalar text after ${VAR} expansion */
  char *key;          /* key under which it sits in its parent map, or NULL */
  size_t n;           /* map entries / seq items */
  nd_cfg_node **items;/* children; for maps each child's `key` is set */
  int used;           /* set by lookups; unread keys are "unknown" */
  nd_cfg_node *parent;/* enclosing map/seq (NULL for the root or for nodes
                       * built by hand); gives messages the full key path */
  char **asked;       /* maps: every key looked up in it, present or not
                       * (the known keys did-you-mean suggests from) */
  size_t nasked;
};

/* A backends.<name> section this build cannot serve: adds "<where>:
 * backends.<name>: this notifd was built without <what> (meson
 * -D<name>=enabled with its library installed)", marks the section's keys
 * read (the one error says it all) and returns NOTIFD_ENOTSUP. */
int nd_errors_backend_missing(nd_errors *e, nd_cfg_node *section, const char *name,
                              const char *what);


typedef struct nd_cfg_tree {
  nd_cfg_node *root;  /* a map (or NULL for an empty document) */
  char *file;
} nd_cfg_tree;

/* Parses YAML text; `name` is the file name used in marks.  Anchors,
 * aliases, explicit tags, non-scalar keys, duplicate keys and a second
 * document are errors; the top level must be a map (an empty document gives
 * root NULL).  Nesting deeper than 64 levels is refused.
 * Expansion applies to every scalar VALUE (not to keys), in every quoting
 * style, anywhere in the text and several times per scalar:
 *   ${VAR}           VAR's value; unset -> error naming VAR
 *   ${VAR:-default}  default when VAR is unset or empty (shell semantics)
 *   ${VAR-default}   default only when VAR is unset
 *   $$               a literal '$'
 * `$NAME` without braces and a lone `$` stay as they are.  The default is
 * literal text up to the first `}` (no nested ${...}).  A plain scalar that
 * expands to "" (e.g. `${X:-}`) is null, i.e. "not set".
 * On failure the tree is left empty (root NULL).  Returns 0, or -1 with
 * errors added. */
int nd_cfg_parse(const char *text, size_t len, const char *name,
                 nd_cfg_tree *out, nd_errors *errs);
int nd_cfg_parse_file(const char *path, nd_cfg_tree *out, nd_errors *errs);
void nd_cfg_tree_free(nd_cfg_tree *t);
/* Frees a node and its children (for nodes built by hand). */
void nd_cfg_node_free(nd_cfg_node *n);

/* Child of a map by key (marks it used), or NULL.  The key is remembered
 * as one the map's reader knows, present or not (for did-you-mean). */
nd_cfg_node *nd_cfg_get(nd_cfg_node *map, const char *key);
/* Dotted path lookup ("a.b.c") through maps, marking each step used; a
 * decimal segment indexes a list ("types.0.name"). */
nd_cfg_node *nd_cfg_path(nd_cfg_node *map, const char *dotted);

/* Typed reads of a scalar node: 0 on success; on a type error add
 * "file:line:col: key 'a.b': expected <type>, got '<text>'" (full key path
 * from the document root) and return -1.  A null scalar or a map/list is a
 * type error for every read.  Integers, numbers and booleans must be
 * unquoted; strings and durations may be quoted.
 *   int:      [+-]digits or [+-]0x hex digits, int64 range (no suffixes;
 *             leading zeros are decimal, not octal)
 *   double:   decimal or exponent notation, finite (no inf/nan/hex)
 *   bool:     see nd_parse_bool
 *   duration: see nd_parse_duration_ms
 * Host sizes (http.max_body, websocket.max_message...) also accept the
 * suffixes B, KB, MB, GB (powers of 1000) and KiB, MiB, GiB (powers of
 * 1024), e.g. `1MiB` or `64 KiB`. */
int nd_cfg_as_string(nd_cfg_node *n, nd_errors *e, const char **out);
int nd_cfg_as_int(nd_cfg_node *n, nd_errors *e, int64_t *out);
int nd_cfg_as_double(nd_cfg_node *n, nd_errors *e, double *out);
int nd_cfg_as_bool(nd_cfg_node *n, nd_errors *e, int *out);
int nd_cfg_as_duration_ms(nd_cfg_node *n, nd_errors *e, int64_t *out);

/* Go time.ParseDuration syntax -> milliseconds (truncated toward zero):
 * [+-] then one or more <number><unit> with units ns us µs μs ms s m h and
 * decimal fractions ("1.5s", "1h30m", "2h45m10.5s"), or "0".  A bare
 * integer ("250", "-5") is milliseconds.  The sign is accepted; callers
 * that need a positive value check it.  0 on success, -1 if malformed or
 * out of range (|d| > ~292 years, as in Go). */
int nd_parse_duration_ms(const char *s, int64_t *out);
/* Go strconv.ParseBool set plus yes/no/on/off. */
int nd_parse_bool(const char *s, int *out);

/* Adds "unknown key" errors for every map key under `n` never marked used,
 * with its key's file:line:column and full dotted path (prefix + key, e.g.
 * "plugins[2].config.foo") and, when a key the map's reader asked for is
 * close (edit distance), "(did you mean 'port'?)".  A used key whose value
 * is a map or a list is searched inside; list items are always searched. */
void nd_cfg_report_unused(nd_cfg_node *n, const char *prefix, nd_errors *e);
/* The "unknown key" error for one unused map entry `k` whose full path is
 * `path`, with its did-you-mean. */
void nd_cfg_report_unknown_key(const nd_cfg_node *k, const char *path, nd_errors *e);
/* Marks n and everything under it used (nobody will read it). */
void nd_cfg_mark_used(nd_cfg_node *n);
/* For a subtree whose reader stopped early (a plugin's init failed): marks
 * every unread key used, so it is not reported as unknown, except a key
 * with a did-you-mean among the keys its map's reader asked for: that one
 * is misspelt whatever else the reader would have read. */
void nd_cfg_forgive_unread(nd_cfg_node *n);

/* Adds "file:line:col: key 'path': <msg>" at n's value position (path
 * from the document root, e.g. plugins[2].config.url). */
void nd_cfg_error_at(nd_errors *e, const nd_cfg_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the host's configuration ----------------------------------------- */
#define ND_AUTH_POLICY_MAX 3

typedef struct nd_retry_cfg {
  int32_t max_attempts;
  int64_t initial_interval_ms, max_interval_ms;
  double multiplier, jitter;
} nd_retry_cfg;

typedef struct nd_plugin_cfg {
  char *name;
  char *path;          /* explicit .so path or NULL */
  int builtin;         /* provided by notifd_host_add_builtin */
  nd_cfg_node *config; /* the `config:` subtree (may be NULL) */
  int line, col;       /* position of the entry, for messages */
} nd_plugin_cfg;

typedef struct nd_config {
  nd_cfg_tree tree;

  char *listen_address;   int listen_port;     /* listen.address/port */
  char *admin_address;    int admin_port;      /* admin.*; port -1 = off */
  /* listen.tls: cert NULL = plaintext.  The nodes mark file errors. */
  char *tls_cert, *tls_key;         /* PEM; cert may hold the chain */
  int tls_min_version;              /* 12 (default) or 13 */
  int64_t tls_handshake_timeout_ms; /* 10 s */
  const nd_cfg_node *tls_cert_at, *tls_key_at;
  char *data_dir;
  int log_level;          /* NOTIFD_LOG_* */
  int log_json;           /* logging.format: json (1) or logfmt (0) */
  int log_access;         /* logging.access: a line per request and per
                             websocket open/close (default 1) */

  /* http */
  uint64_t http_max_body;           /* default 1 MiB */
  uint32_t http_max_header_bytes;   /* default 16 KiB */
  uint32_t http_max_connections;    /* default 100000 */
  int64_t http_keepalive_ms;        /* idle keep-alive, default 60 s */
  int64_t http_request_timeout_ms;  /* read a whole request, default 30 s */
  char *static_dir;                 /* http.static_dir or NULL */
  int http_openapi;                 /* http.openapi: GET /openapi.json, default 1 */
  /* limits against anonymous clients (0 in a hand-built config: see
   * nd_http_server_new for which zero means "default" and which "off") */
  int64_t http_idle_timeout_ms;     /* a new connection's first byte, 10 s */
  uint64_t http_max_pending_body;   /* unfinished request bodies, 64 MiB */
  uint32_t http_max_conns_per_ip;   /* 256; 0 = no cap */
  char **http_trusted_proxies;      /* exact IPs; NULL = 127.0.0.1, ::1 */
  char **http_cors_origins;         /* NULL = no CORS headers */
  double http_rate;                 /* writes per second per user, 20; 0 = off */
  uint32_t http_rate_burst;         /* 100 */
  int64_t shutdown_deadline_ms;     /* default 10 s */

  /* auth */
  int auth_mode;                    /* NOTIFD_AUTH_MODE_*, default users */
  char *jwt_secret;                 /* may be set at start (generated) */
  char *internal_token;
  int accounts;                     /* auth.accounts: built-in accounts */
  int registration_open;            /* auth.registration: open (1) / closed */
  int64_t token_ttl_ms;             /* auth.token_ttl, default 1 h */
  uint32_t login_per_user;          /* auth.login_limit.per_user, per minute (0 = off) */
  uint32_t login_per_ip;            /* auth.login_limit.per_ip, per minute (0 = off) */

  /* ---- auth.jwt: external identity (JWT / JWKS) ---- */
  uint32_t jwt_algs;                /* ND_JWT_BIT set; 0 = default (HS256 when
                                       a secret exists at start, plus RS256,
                                       ES256, EdDSA when jwks_url is set) */
  char *jwt_jwks_url;               /* http(s) URL or NULL */
  int64_t jwt_jwks_refresh_ms;      /* cache lifetime, default 1 h */
  char *jwt_issuer;                 /* required iss, or NULL */
  char **jwt_audience;              /* accepted aud values, NULL-terminated,
                                       or NULL = not checked */
  int64_t jwt_max_lifetime_ms;      /* exp - iat limit, default 24 h; 0 = none */
  int64_t jwt_leeway_ms;            /* clock skew, default 60 s */
  /* ---- end of auth.jwt ---- */

  /* websocket */
  int64_t ws_ping_interval_ms;      /* 25 s */
  int64_t ws_pong_timeout_ms;       /* 10 s */
  int64_t ws_handshake_timeout_ms;  /* 10 s */
  uint64_t ws_max_message;          /* 64 KiB */
  uint64_t ws_max_queue_bytes;      /* 1 MiB */
  uint32_t ws_max_queue_frames;     /* 1024 */
  int64_t ws_write_delay_ms;        /* 0: frames go out after the next poll;
                                       more batches broadcasts (a latency
                                       for CPU trade, bench/README.md) */
  uint32_t ws_io_threads;           /* 0: sockets on the loop thread;
                                       N: on N I/O threads (ws_loop.c) */
  uint32_t ws_max_connections;      /* 100000 */
  uint32_t ws_max_per_key;          /* 64 */
  char **ws_allowed_origins;        /* NULL-terminated; the Host's own
                                       origin is always allowed, "*" any */

  uint32_t workers;                 /* worker pool threads, default 4 */
  char **plugin_dirs;               /* NULL-terminated search dirs */

  /* backends: NULL/0 = embedded */
  nd_cfg_node *kafka;               /* backends.kafka subtree or NULL */
  nd_cfg_node *redis;               /* backends.redis subtree or NULL */
  nd_cfg_node *mongodb;             /* backends.mongodb subtree or NULL */
  nd_cfg_node *bus_cfg;             /* bus subtree or NULL */
  nd_cfg_node *kv_cfg;              /* kv subtree or NULL */
  nd_retry_cfg retry;               /* bus.retry defaults */

  nd_plugin_cfg *plugins;
  size_t nplugins;
} nd_config;

/* Builds the host config from a parsed tree (takes ownership of the tree,
 * also on failure).  Every problem is added to `errs`; returns -1 if any.
 * A key set to null (`~`, empty) takes its default.  Defaults: listen
 * 0.0.0.0:8080, admin 127.0.0.1:9090, data_dir ./data, logging info/logfmt/access,
 * the http/websocket/shutdown values noted at each field, workers 4, no
 * plugin_dirs, embedded backends, bus.retry 5 attempts, 100ms, 30s, x2.0,
 * jitter 0.2.  The keys `backends`, `backends.kafka|redis|mongodb`, `bus`,
 * `kv` and each plugin's `config` are marked used but their contents are
 * left to the modules that read them (unknown keys are reported later by
 * nd_cfg_report_unused on the whole tree).  `websocket.allowed_origins`
 * absent or `[]` allows browser pages of the same origin as the Host
 * header only; listed origins are allowed too, "*" allows any. */
int nd_config_load(nd_cfg_tree *tree, nd_config *out, nd_errors *errs);
void nd_config_free(nd_config *c);

/* Unknown keys in the host's own part of a loaded config, without the
 * subtrees other modules read later (contents of backends.<name>, bus
 * except bus.retry, kv, plugins[i].config).  For when nd_config_load
 * failed and plugins never ran, so `--check` still lists misspelt keys. */
void nd_config_report_unknown_host_keys(const nd_config *c, nd_errors *errs);

#endif
