/* The host's typed configuration from a parsed tree: defaults, types and
 * ranges.  Every problem is collected; nothing stops at the first one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <notifd/plugin.h>

#include "auth/jwt_algs.h"
#include "config/cfg_internal.h"
#include "util/ipcount.h"

#define KIB UINT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define DAY_MS (INT64_C(24) * 3600 * 1000)
#define PLUGIN_NAME_MAX 64

typedef struct loader {
  nd_errors *e;
  int bad;
} loader;

static void oom(loader *L) {
  nd_errors_add(L->e, NULL, 0, 0, "out of memory while loading the configuration");
  L->bad = 1;
}

static char *dup_or_oom(loader *L, const char *s) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) oom(L);
  return d;
}

/* The value under `key`, marked used; NULL when absent or null. */
static nd_cfg_node *value(nd_cfg_node *map, const char *key) {
  nd_cfg_node *n = nd_cfg_get(map, key);
  return n && n->kind == ND_CFG_SCALAR && n->is_null ? NULL : n;
}

/* A map-valued key (NULL when absent or null; an error otherwise). */
static nd_cfg_node *section(loader *L, nd_cfg_node *map, const char *key) {
  nd_cfg_node *n = value(map, key);
  if (!n || n->kind == ND_CFG_MAP) return n;
  nd_cfg_error_at(L->e, n, "expected a map, got %s",
                  n->kind == ND_CFG_SEQ ? "a list" : "a single value");
  L->bad = 1;
  return NULL;
}

static void get_string(loader *L, nd_cfg_node *map, const char *key, const char *def,
                       int allow_empty, char **out) {
  nd_cfg_node *n = value(map, key);
  const char *s = def;
  if (n && nd_cfg_as_string(n, L->e, &s) < 0) {
    L->bad = 1;
    s = def;
  } else if (n && !*s && !allow_empty) {
    nd_cfg_error_at(L->e, n, "must not be empty");
    L->bad = 1;
    s = def;
  }
  *out = dup_or_oom(L, s);
}

static void get_int(loader *L, nd_cfg_node *map, const char *key, int64_t def, int64_t lo,
                    int64_t hi, int64_t *out) {
  nd_cfg_node *n = value(map, key);
  int64_t v = def;
  if (n) {
    if (nd_cfg_as_int(n, L->e, &v) < 0) {
      L->bad = 1;
      v = def;
    } else if (v < lo || v > hi) {
      nd_cfg_error_at(L->e, n, "must be between %lld and %lld, got %lld", (long long)lo,
                      (long long)hi, (long long)v);
      L->bad = 1;
      v = def;
    }
  }
  *out = v;
}

static void get_u32(loader *L, nd_cfg_node *map, const char *key, uint32_t def, uint32_t lo,
                    uint32_t hi, uint32_t *out) {
  int64_t v;
  get_int(L, map, key, def, lo, hi, &v);
  *out = (uint32_t)v;
}

static void get_size(loader *L, nd_cfg_node *map, const char *key, uint64_t def, uint64_t lo,
                     uint64_t hi, uint64_t *out) {
  nd_cfg_node *n = value(map, key);
  uint64_t v = def;
  if (n) {
    if (nd_cfg_as_size(n, L->e, &v) < 0) {
      L->bad = 1;
      v = def;
    } else if (v < lo || v > hi) {
      nd_cfg_error_at(L->e, n, "must be between %llu and %llu bytes, got %llu",
                      (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)v);
      L->bad = 1;
      v = def;
    }
  }
  *out = v;
}

/* A duration in [lo, hi] milliseconds. */
static void get_duration(loader *L, nd_cfg_node *map, const char *key, int64_t def, int64_t lo,
                         int64_t hi, int64_t *out) {
  nd_cfg_node *n = value(map, key);
  int64_t v = def;
  if (n) {
    if (nd_cfg_as_duration_ms(n, L->e, &v) < 0) {
      L->bad = 1;
      v = def;
    } else if (v < lo || v > hi) {
      nd_cfg_error_at(L->e, n, "must be between %lldms and %lldms, got %lldms", (long long)lo,
                      (long long)hi, (long long)v);
      L->bad = 1;
      v = def;
    }
  }
  *out = v;
}

static void get_double(loader *L, nd_cfg_node *map, const char *key, double def, double lo,
                       double hi, double *out) {
  nd_cfg_node *n = value(map, key);
  double v = def;
  if (n) {
    if (nd_cfg_as_double(n, L->e, &v) < 0) {
      L->bad = 1;
      v = def;
    } else if (v < lo || v > hi) {
      nd_cfg_error_at(L->e, n, "must be between %g and %g, got %g", lo, hi, v);
      L->bad = 1;
      v = def;
    }
  }
  *out = v;
}

static void get_bool(loader *L, nd_cfg_node *map, const char *key, int def, int *out) {
  nd_cfg_node *n = value(map, key);
  int v = def;
  if (n && nd_cfg_as_bool(n, L->e, &v) < 0) {
    L->bad = 1;
    v = def;
  }
  *out = v;
}

/* One of `names` (case-insensitive); returns its index or `def`. */
static int get_choice(loader *L, nd_cfg_node *map, const char *key, const char *const *names,
                      int def) {
  nd_cfg_node *n = value(map, key);
  const char *s;
  if (!n) return def;
  if (nd_cfg_as_string(n, L->e, &s) < 0) {
    L->bad = 1;
    return def;
  }
  for (int i = 0; names[i]; i++)
    if (strcasecmp(s, names[i]) == 0) return i;
  nd_buf allowed;
  nd_buf_init(&allowed);
  for (int i = 0; names[i]; i++) nd_buf_printf(&allowed, "%s%s", i ? "|" : "", names[i]);
  nd_cfg_error_at(L->e, n, "expected one of %s, got '%s'", allowed.data ? allowed.data : "?", s);
  nd_buf_free(&allowed);
  L->bad = 1;
  return def;
}

static void free_strv(char **v) {
  for (size_t i = 0; v && v[i]; i++) free(v[i]);
  free(v);
}

/* A list of non-empty strings -> NULL-terminated array (NULL when absent). */
static void get_string_list(loader *L, nd_cfg_node *map, const char *key, char ***out) {
  *out = NULL;
  nd_cfg_node *n = value(map, key);
  if (!n) return;
  if (n->kind != ND_CFG_SEQ) {
    nd_cfg_error_at(L->e, n, "expected a list of strings, got %s",
                    n->kind == ND_CFG_MAP ? "a map" : "a single value");
    L->bad = 1;
    return;
  }
  char **v = calloc(n->n + 1, sizeof *v);
  if (!v) {
    oom(L);
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < n->n; i++) {
    nd_cfg_node *item = n->items[i];
    const char *s;
    item->used = 1;
    if (nd_cfg_as_string(item, L->e, &s) < 0) {
      L->bad = 1;
      continue;
    }
    if (!*s) {
      nd_cfg_error_at(L->e, item, "must not be empty");
      L->bad = 1;
      continue;
    }
    if (!(v[k] = strdup(s))) {
      oom(L);
      break;
    }
    k++;
  }
  *out = v;
}

/* listen.tls: the files are opened when the listener starts (tls.c). */
static void load_tls(loader *L, nd_cfg_node *listen, nd_config *c) {
  static const char *const versions[] = {"1.2", "1.3", NULL};
  nd_cfg_node *tls = section(L, listen, "tls");
  if (!tls) return;
  get_string(L, tls, "cert", NULL, 0, &c->tls_cert);
  get_string(L, tls, "key", NULL, 0, &c->tls_key);
  c->tls_cert_at = value(tls, "cert");
  c->tls_key_at = value(tls, "key");
  c->tls_min_version = 12 + get_choice(L, tls, "min_version", versions, 0);
  get_duration(L, tls, "handshake_timeout", 10000, 1, DAY_MS, &c->tls_handshake_timeout_ms);
  if (!c->tls_cert_at || !c->tls_key_at) {
    nd_cfg_error_at(L->e, tls, "needs both cert and key (PEM files)");
    L->bad = 1;
  }
}

static void load_listeners(loader *L, nd_cfg_node *root, nd_config *c) {
  nd_cfg_node *listen = section(L, root, "listen");
  int64_t port;
  get_string(L, listen, "address", "0.0.0.0", 0, &c->listen_address);
  get_int(L, listen, "port", 8080, 0, 65535, &port);
  c->listen_port = (int)port;
  load_tls(L, listen, c);
  nd_cfg_node *admin = section(L, root, "admin");
  get_string(L, admin, "address", "127.0.0.1", 0, &c->admin_address);
  get_int(L, admin, "port", 9090, -1, 65535, &port);
  c->admin_port = (int)port;
  get_string(L, root, "data_dir", "./data", 0, &c->data_dir);
}

static void load_logging(loader *L, nd_cfg_node *root, nd_config *c) {
  /* Indexes follow NOTIFD_LOG_ERROR..NOTIFD_LOG_DEBUG. */
  static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
  static const char *const formats[] = {"logfmt", "json", NULL};
  nd_cfg_node *log = section(L, root, "logging");
  c->log_level = get_choice(L, log, "level", levels, NOTIFD_LOG_INFO);
  c->log_json = get_choice(L, log, "format", formats, 0);
  get_bool(L, log, "access", 1, &c->log_access);
}

/* Each listed origin as a browser sends it: "scheme://host[:port]", no
 * path, or "*". */
static void check_origins(loader *L, nd_cfg_node *http, const char *key, char **list) {
  nd_cfg_node *n = nd_cfg_get(http, key);
  for (size_t i = 0; list && list[i]; i++) {
    const char *o = list[i], *sep = strstr(o, "://");
    if (strcmp(o, "*") == 0) continue;
    if (!sep || sep == o || !sep[3] || strchr(sep + 3, '/')) {
      nd_cfg_error_at(L->e, n && n->kind == ND_CFG_SEQ && i < n->n ? n->items[i] : n,
                      "'%s' is not an origin (scheme://host[:port], no path) or \"*\"", o);
      L->bad = 1;
    }
  }
}

static void load_http_limits(loader *L, nd_cfg_node *http, nd_config *c) {
  get_duration(L, http, "idle_timeout", 10000, 1, DAY_MS, &c->http_idle_timeout_ms);
  get_size(L, http, "max_pending_body_bytes", 64 * MIB, 1, 64 * GIB, &c->http_max_pending_body);
  get_u32(L, http, "max_connections_per_ip", 256, 0, 10000000, &c->http_max_conns_per_ip);
  get_string_list(L, http, "trusted_proxies", &c->http_trusted_proxies);
  nd_cfg_node *tp = nd_cfg_get(http, "trusted_proxies");
  for (size_t i = 0; c->http_trusted_proxies && c->http_trusted_proxies[i]; i++)
    if (!nd_ip_valid(c->http_trusted_proxies[i])) {
      nd_cfg_error_at(L->e, tp && tp->kind == ND_CFG_SEQ && i < tp->n ? tp->items[i] : tp,
                      "'%s' is not an IP address", c->http_trusted_proxies[i]);
      L->bad = 1;
    }
  get_string_list(L, http, "cors_origins", &c->http_cors_origins);
  check_origins(L, http, "cors_origins", c->http_cors_origins);
  nd_cfg_node *rl = section(L, http, "rate_limit");
  int64_t burst;
  get_double(L, rl, "rate", 20, 0, 1e6, &c->http_rate);
  get_int(L, rl, "burst", 100, 1, 1000000000, &burst);
  c->http_rate_burst = (uint32_t)burst;
}

static void load_http(loader *L, nd_cfg_node *root, nd_config *c) {
  nd_cfg_node *http = section(L, root, "http");
  get_size(L, http, "max_body", MIB, 1, 4 * GIB, &c->http_max_body);
  uint64_t hdr;
  get_size(L, http, "max_header_bytes", 16 * KIB, 1 * KIB, 16 * MIB, &hdr);
  c->http_max_header_bytes = (uint32_t)hdr;
  get_u32(L, http, "max_connections", 100000, 1, 10000000, &c->http_max_connections);
  get_duration(L, http, "keepalive_timeout", 60000, 1, DAY_MS, &c->http_keepalive_ms);
  get_duration(L, http, "request_timeout", 30000, 1, DAY_MS, &c->http_request_timeout_ms);
  get_string(L, http, "static_dir", NULL, 0, &c->static_dir);
  get_bool(L, http, "openapi", 1, &c->http_openapi);
  load_http_limits(L, http, c);
  nd_cfg_node *shutdown = section(L, root, "shutdown");
  get_duration(L, shutdown, "deadline", 10000, 1, DAY_MS, &c->shutdown_deadline_ms);
}

/* ---- auth.jwt: external identity (JWT / JWKS) --------------------------- */
static void jwt_algorithms(loader *L, nd_cfg_node *jwt, nd_config *c) {
  char **names = NULL;
  get_string_list(L, jwt, "algorithms", &names);
  nd_cfg_node *list = value(jwt, "algorithms");
  if (!names || !list) {
    free_strv(names);
    return;
  }
  for (size_t i = 0; names[i]; i++) {
    int a = nd_jwt_alg_from_name(names[i]);
    if (a >= 0) {
      c->jwt_algs |= ND_JWT_BIT(a);
      continue;
    }
    /* get_string_list skips bad items, so find the node by its text. */
    nd_cfg_node *at = list;
    for (size_t k = 0; k < list->n; k++)
      if (list->items[k]->str && strcmp(list->items[k]->str, names[i]) == 0) at = list->items[k];
    if (strcmp(names[i], "none") == 0)
      nd_cfg_error_at(L->e, at, "algorithm 'none' (unsigned tokens) is never accepted");
    else
      nd_cfg_error_at(L->e, at, "unknown algorithm '%s' (expected one of %s)", names[i],
                      nd_jwt_alg_names());
    L->bad = 1;
  }
  if (list->n == 0) {
    nd_cfg_error_at(L->e, list, "must list at least one algorithm");
    L->bad = 1;
  }
  free_strv(names);
}

/* A string or a list of strings -> NULL-terminated array. */
static void get_string_or_list(loader *L, nd_cfg_node *map, const char *key, char ***out) {
  nd_cfg_node *n = value(map, key);
  if (!n || n->kind == ND_CFG_SEQ) {
    get_string_list(L, map, key, out);
    return;
  }
  char *s = NULL;
  get_string(L, map, key, NULL, 0, &s);
  if (!s) return;
  if (!(*out = calloc(2, sizeof **out))) {
    free(s);
    oom(L);
    return;
  }
  (*out)[0] = s;
}

static void load_auth_jwt(loader *L, nd_cfg_node *auth, nd_config *c) {
  nd_cfg_node *jwt = section(L, auth, "jwt");
  jwt_algorithms(L, jwt, c);
  get_string(L, jwt, "jwks_url", NULL, 0, &c->jwt_jwks_url);
  nd_cfg_node *url = value(jwt, "jwks_url");
  if (c->jwt_jwks_url && strncasecmp(c->jwt_jwks_url, "http://", 7) != 0 &&
      strncasecmp(c->jwt_jwks_url, "https://", 8) != 0) {
    nd_cfg_error_at(L->e, url, "must be an http:// or https:// URL");
    L->bad = 1;
  }
  get_duration(L, jwt, "jwks_refresh", 3600 * 1000, 1000, 7 * DAY_MS, &c->jwt_jwks_refresh_ms);
  get_string(L, jwt, "issuer", NULL, 0, &c->jwt_issuer);
  get_string_or_list(L, jwt, "audience", &c->jwt_audience);
  get_duration(L, jwt, "max_lifetime", DAY_MS, 1000, 366 * DAY_MS, &c->jwt_max_lifetime_ms);
  get_duration(L, jwt, "leeway", 60 * 1000, 0, 3600 * 1000, &c->jwt_leeway_ms);
  if ((c->jwt_algs & ~ND_JWT_HMAC_ALGS) && !c->jwt_jwks_url) {
    nd_cfg_error_at(L->e, value(jwt, "algorithms"),
                    "public-key algorithms need auth.jwt.jwks_url (only HS256, HS384, HS512 "
                    "work with auth.jwt_secret alone)");
    L->bad = 1;
  }
}
/* ---- end of auth.jwt ------------------------------------------------------ */

static void load_auth(loader *L, nd_cfg_node *root, nd_config *c) {
  /* Indexes follow NOTIFD_AUTH_MODE_USERS, NOTIFD_AUTH_MODE_NONE. */
  static const char *const modes[] = {"users", "none", NULL};
  static const char *const registration[] = {"closed", "open", NULL};
  nd_cfg_node *auth = section(L, root, "auth");
  c->auth_mode = get_choice(L, auth, "mode", modes, NOTIFD_AUTH_MODE_USERS);
  get_string(L, auth, "jwt_secret", NULL, 1, &c->jwt_secret);
  get_string(L, auth, "internal_token", NULL, 1, &c->internal_token);
  /* Built-in accounts. */
  get_bool(L, auth, "accounts", 0, &c->accounts);
  c->registration_open = get_choice(L, auth, "registration", registration, 0);
  get_duration(L, auth, "token_ttl", 3600 * 1000, 60 * 1000, 30 * DAY_MS, &c->token_ttl_ms);
  nd_cfg_node *limit = section(L, auth, "login_limit");
  get_u32(L, limit, "per_user", 10, 0, 1000000, &c->login_per_user);
  get_u32(L, limit, "per_ip", 60, 0, 1000000, &c->login_per_ip);
  load_auth_jwt(L, auth, c);
  if (c->accounts && c->jwt_max_lifetime_ms && c->token_ttl_ms > c->jwt_max_lifetime_ms) {
    nd_cfg_node *n = value(auth, "token_ttl");
    if (n)
      nd_cfg_error_at(L->e, n, "is longer than auth.jwt.max_lifetime (%lld s): the "
                      "accounts' own tokens would be refused", (long long)(c->jwt_max_lifetime_ms / 1000));
    else
      nd_errors_add(L->e, NULL, 0, 0, "auth.token_ttl (default 1h) is longer than "
                    "auth.jwt.max_lifetime: the accounts' own tokens would be refused");
    L->bad = 1;
  }
}

static void load_websocket(loader *L, nd_cfg_node *root, nd_config *c) {
  nd_cfg_node *ws = section(L, root, "websocket");
  get_duration(L, ws, "ping_interval", 25000, 1, DAY_MS, &c->ws_ping_interval_ms);
  get_duration(L, ws, "pong_timeout", 10000, 1, DAY_MS, &c->ws_pong_timeout_ms);
  get_duration(L, ws, "handshake_timeout", 10000, 1, DAY_MS, &c->ws_handshake_timeout_ms);
  get_size(L, ws, "max_message", 64 * KIB, 1, GIB, &c->ws_max_message);
  get_size(L, ws, "max_queue_bytes", MIB, 1, 64 * GIB, &c->ws_max_queue_bytes);
  get_u32(L, ws, "max_queue_frames", 1024, 1, 100000000, &c->ws_max_queue_frames);
  get_duration(L, ws, "write_delay", 0, 0, 1000, &c->ws_write_delay_ms);
  get_u32(L, ws, "io_threads", 0, 0, 64, &c->ws_io_threads);
  get_u32(L, ws, "max_connections", 100000, 1, 100000000, &c->ws_max_connections);
  get_u32(L, ws, "max_connections_per_key", 64, 1, 100000000, &c->ws_max_per_key);
  get_string_list(L, ws, "allowed_origins", &c->ws_allowed_origins);
  check_origins(L, ws, "allowed_origins", c->ws_allowed_origins);
}

static void load_backends(loader *L, nd_cfg_node *root, nd_config *c) {
  /* The keys inside are read (and marked) by the bus, kv and store. */
  nd_cfg_node *b = section(L, root, "backends");
  c->kafka = section(L, b, "kafka");
  c->redis = section(L, b, "redis");
  c->mongodb = section(L, b, "mongodb");
  c->kv_cfg = section(L, root, "kv");
  c->bus_cfg = section(L, root, "bus");
  nd_cfg_node *r = section(L, c->bus_cfg, "retry");
  nd_retry_cfg *rc = &c->retry;
  int64_t attempts;
  get_int(L, r, "max_attempts", 5, 1, 1000000, &attempts);
  rc->max_attempts = (int32_t)attempts;
  get_duration(L, r, "initial_interval", 100, 1, DAY_MS, &rc->initial_interval_ms);
  get_duration(L, r, "max_interval", 30000, 1, DAY_MS, &rc->max_interval_ms);
  get_double(L, r, "multiplier", 2.0, 1.0, 1000.0, &rc->multiplier);
  get_double(L, r, "jitter", 0.2, 0.0, 1.0, &rc->jitter);
  if (rc->max_interval_ms < rc->initial_interval_ms) {
    nd_cfg_node *n = value(r, "max_interval");
    nd_cfg_error_at(L->e, n ? n : r, "max_interval must not be below initial_interval");
    L->bad = 1;
  }
}

static int valid_plugin_name(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > PLUGIN_NAME_MAX) return 0;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return 0;
  return 1;
}

/* One `plugins:` entry; 0 when it is valid and stored in *pc. */
static int load_plugin(loader *L, nd_cfg_node *item, nd_plugin_cfg *pc) {
  memset(pc, 0, sizeof *pc);
  item->used = 1;
  if (item->kind != ND_CFG_MAP) {
    nd_cfg_error_at(L->e, item, "a plugin entry must be a map with at least `name:`");
    return -1;
  }
  int bad = 0;
  const char *name = NULL;
  nd_cfg_node *n = value(item, "name");
  if (!n) {
    nd_cfg_error_at(L->e, item, "plugin entry without a name");
    bad = 1;
  } else if (nd_cfg_as_string(n, L->e, &name) < 0) {
    bad = 1;
  } else if (!valid_plugin_name(name)) {
    nd_cfg_error_at(L->e, n, "invalid plugin name '%s' (use 1 to %d of a-z, 0-9, _)", name,
                    PLUGIN_NAME_MAX);
    bad = 1;
  }
  const char *path = NULL;
  n = value(item, "path");
  if (n && nd_cfg_as_string(n, L->e, &path) < 0) bad = 1;
  else if (n && !*path) {
    nd_cfg_error_at(L->e, n, "must not be empty");
    bad = 1;
  }
  int builtin = 0;
  n = value(item, "builtin");
  if (n && nd_cfg_as_bool(n, L->e, &builtin) < 0) bad = 1;
  if (builtin && path) {
    nd_cfg_error_at(L->e, n, "a builtin plugin cannot also have a path");
    bad = 1;
  }
  nd_cfg_node *conf = section(L, item, "config");
  if (bad) {
    nd_cfg_mark_used(conf); /* no plugin will read it */
    return -1;
  }
  pc->name = strdup(name);
  pc->path = path ? strdup(path) : NULL;
  if (!pc->name || (path && !pc->path)) {
    free(pc->name);
    free(pc->path);
    memset(pc, 0, sizeof *pc);
    oom(L);
    return -1;
  }
  pc->builtin = builtin;
  pc->config = conf;
  pc->line = item->line;
  pc->col = item->col;
  return 0;
}

static void load_plugins(loader *L, nd_cfg_node *root, nd_config *c) {
  nd_cfg_node *list = value(root, "plugins");
  if (!list) return;
  if (list->kind != ND_CFG_SEQ) {
    nd_cfg_error_at(L->e, list, "expected a list of plugin entries");
    L->bad = 1;
    return;
  }
  if (list->n == 0) return;
  c->plugins = calloc(list->n, sizeof *c->plugins);
  if (!c->plugins) {
    oom(L);
    return;
  }
  for (size_t i = 0; i < list->n; i++) {
    nd_plugin_cfg *pc = &c->plugins[c->nplugins];
    if (load_plugin(L, list->items[i], pc) < 0) {
      L->bad = 1;
      continue;
    }
    const nd_plugin_cfg *first = NULL;
    for (size_t j = 0; j < c->nplugins && !first; j++)
      if (strcmp(c->plugins[j].name, pc->name) == 0) first = &c->plugins[j];
    if (first) {
      nd_cfg_error_at(L->e, nd_cfg_get(list->items[i], "name"),
                      "duplicate plugin name '%s' (first at line %d, column %d)", pc->name,
                      first->line, first->col);
      nd_cfg_mark_used(pc->config); /* this entry is never loaded */
      free(pc->name);
      free(pc->path);
      memset(pc, 0, sizeof *pc);
      L->bad = 1;
      continue;
    }
    c->nplugins++;
  }
}

int nd_config_load(nd_cfg_tree *tree, nd_config *out, nd_errors *errs) {
  memset(out, 0, sizeof *out);
  if (tree) {
    out->tree = *tree;
    memset(tree, 0, sizeof *tree);
  }
  loader L = {.e = errs};
  nd_cfg_node *root = out->tree.root;
  if (root && root->kind != ND_CFG_MAP) {
    nd_cfg_error_at(errs, root, "the top level must be a map of settings");
    root = NULL;
    L.bad = 1;
  }
  load_listeners(&L, root, out);
  load_logging(&L, root, out);
  load_http(&L, root, out);
  load_auth(&L, root, out);
  load_websocket(&L, root, out);
  int64_t workers;
  get_int(&L, root, "workers", 4, 1, 1024, &workers);
  out->workers = (uint32_t)workers;
  get_string_list(&L, root, "plugin_dirs", &out->plugin_dirs);
  load_backends(&L, root, out);
  load_plugins(&L, root, out);
  return L.bad ? -1 : 0;
}

void nd_config_free(nd_config *c) {
  if (!c) return;
  free(c->listen_address);
  free(c->admin_address);
  free(c->tls_cert);
  free(c->tls_key);
  free(c->data_dir);
  free(c->static_dir);
  free(c->jwt_secret);
  free(c->internal_token);
  free(c->jwt_jwks_url); /* auth.jwt */
  free(c->jwt_issuer);
  free_strv(c->jwt_audience);
  free_strv(c->ws_allowed_origins);
  free_strv(c->http_trusted_proxies);
  free_strv(c->http_cors_origins);
  free_strv(c->plugin_dirs);
  for (size_t i = 0; i < c->nplugins; i++) {
    free(c->plugins[i].name);
    free(c->plugins[i].path);
  }
  free(c->plugins);
  nd_cfg_tree_free(&c->tree);
  memset(c, 0, sizeof *c);
}

static void unknown_key(const nd_cfg_node *n, const char *prefix, nd_errors *e) {
  nd_buf path;
  nd_buf_init(&path);
  nd_buf_printf(&path, "%s%s%s", prefix, *prefix ? "." : "", n->key ? n->key : "?");
  nd_cfg_report_unknown_key(n, path.data ? path.data : "?", e);
  nd_buf_free(&path);
}

void nd_config_report_unknown_host_keys(const nd_config *c, nd_errors *errs) {
  nd_cfg_node *root = c ? c->tree.root : NULL;
  if (!root || root->kind != ND_CFG_MAP) return;
  for (size_t i = 0; i < root->n; i++) {
    nd_cfg_node *k = root->items[i];
    if (!k->used) {
      unknown_key(k, "", errs);
    } else if (strcmp(k->key, "backends") == 0) {
      /* Which backends exist is ours; their contents are not. */
      for (size_t j = 0; k->kind == ND_CFG_MAP && j < k->n; j++)
        if (!k->items[j]->used) unknown_key(k->items[j], "backends", errs);
    } else if (strcmp(k->key, "bus") == 0) {
      /* Of the bus only `retry` is ours. */
      for (size_t j = 0; k->kind == ND_CFG_MAP && j < k->n; j++)
        if (strcmp(k->items[j]->key, "retry") == 0)
          nd_cfg_report_unused(k->items[j], "bus.retry", errs);
    } else if (strcmp(k->key, "plugins") == 0) {
      for (size_t j = 0; k->kind == ND_CFG_SEQ && j < k->n; j++) {
        nd_cfg_node *item = k->items[j];
        char prefix[32];
        snprintf(prefix, sizeof prefix, "plugins[%zu]", j);
        for (size_t m = 0; item->kind == ND_CFG_MAP && m < item->n; m++) {
          nd_cfg_node *f = item->items[m];
          if (!f->used) unknown_key(f, prefix, errs);
        }
      }
    } else if (strcmp(k->key, "kv") != 0) {
      nd_cfg_report_unused(k, k->key, errs);
    }
  }
}
