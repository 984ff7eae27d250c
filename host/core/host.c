/* Host object: creation from config, lazily opened backends, free. */
#include "core/host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/accounts.h"
#include "bus/bus.h"
#include "core/lifecycle.h"
#include "core/loader.h"
#include "core/loop_services.h"
#include "http/http.h"
#include "kv/kv.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "ws/ws.h"

const char *notifd_version(void) { return NOTIFD_VERSION; }

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

static int is_loopback(const char *addr) {
  return addr && (strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
                  strcmp(addr, "localhost") == 0);
}

/* Settings that work but expose users: said at every start and by
 * --check. */
static void warn_exposure(const nd_config *c) {
  if (c->auth_mode == NOTIFD_AUTH_MODE_NONE && !is_loopback(c->listen_address))
    ND_WARN("auth", "auth.mode is none (seed compatibility) on the non-loopback address %s: "
            "anyone who reaches port %d can post as any user and read and subscribe to "
            "every conversation; use it on private networks only (docs/security.md)",
            c->listen_address, c->listen_port);
  if (c->auth_mode == NOTIFD_AUTH_MODE_USERS && !c->accounts &&
      (!c->jwt_secret || !*c->jwt_secret))
    ND_WARN("auth", "auth.mode is users but no token can be verified (set auth.jwt_secret "
            "or turn on auth.accounts): user routes and channels will refuse every request");
}

/* for_check: a config with errors still gives a host, holding them, so
 * notifd_host_check adds the plugins' problems to the same report. */
static int host_new(nd_cfg_tree *tree, struct event_base *base, int for_check,
                    notifd_host **out, char *err, size_t errlen) {
  *out = NULL;
  notifd_host *h = calloc(1, sizeof *h);
  if (!h) {
    nd_cfg_tree_free(tree);
    set_err(err, errlen, "out of memory");
    return NOTIFD_ENOMEM;
  }
  h->base = base;
  nd_errors_init(&h->errs);
  if (nd_config_load(tree, &h->cfg, &h->errs) < 0) {
    if (for_check) {
      h->config_bad = 1; /* the check reports unknown keys of the whole tree */
    } else {
      /* Name misspelt keys too: they often explain the value errors. */
      nd_config_report_unknown_host_keys(&h->cfg, &h->errs);
      nd_errors_format(&h->errs, err, errlen);
      notifd_host_free(h);
      return NOTIFD_EINVAL;
    }
  }
  nd_log_configure(h->cfg.log_level, h->cfg.log_json);
  warn_exposure(&h->cfg);
  nd_api_fill(&h->api);
  h->metrics = nd_metrics_new();
  h->router = nd_router_new();
  h->admin_router = nd_router_new();
  h->poster = nd_poster_new(base);
  h->ws = nd_ws_hub_new(h);
  if (!h->metrics || !h->router || !h->admin_router || !h->poster || !h->ws ||
      nd_admin_register(h) < 0 || (h->cfg.accounts && nd_accounts_new(h, &h->accounts) < 0)) {
    set_err(err, errlen, "out of memory creating the host");
    notifd_host_free(h);
    return NOTIFD_ENOMEM;
  }
  *out = h;
  return 0;
}

/* Parses `yaml` (or the file `path` when yaml is NULL) and creates the host. */
static int host_from(const char *path, const char *yaml, size_t len, const char *name,
                     struct event_base *base, int for_check, notifd_host **out, char *err,
                     size_t errlen) {
  if (!base || !out || (!path && !yaml)) return NOTIFD_EINVAL;
  nd_errors e;
  nd_errors_init(&e);
  nd_cfg_tree tree = {0};
  int rc = path ? nd_cfg_parse_file(path, &tree, &e)
                : nd_cfg_parse(yaml, len, name ? name : "<string>", &tree, &e);
  if (rc < 0) {
    nd_errors_format(&e, err, errlen);
    nd_errors_free(&e);
    nd_cfg_tree_free(&tree);
    return NOTIFD_EINVAL;
  }
  nd_errors_free(&e);
  return host_new(&tree, base, for_check, out, err, errlen);
}

int notifd_host_new_from_file(const char *path, struct event_base *base, notifd_host **out,
                              char *err, size_t errlen) {
  if (!path) return NOTIFD_EINVAL;
  return host_from(path, NULL, 0, NULL, base, 0, out, err, errlen);
}

int notifd_host_new_from_string(const char *yaml, size_t len, const char *name,
                                struct event_base *base, notifd_host **out, char *err,
                                size_t errlen) {
  if (!yaml) return NOTIFD_EINVAL;
  return host_from(NULL, yaml, len, name, base, 0, out, err, errlen);
}

int nd_host_new_for_check(const char *path, struct event_base *base, notifd_host **out,
                          char *err, size_t errlen) {
  if (!path) return NOTIFD_EINVAL;
  return host_from(path, NULL, 0, NULL, base, 1, out, err, errlen);
}

int notifd_host_add_builtin(notifd_host *h, const notifd_plugin_def *def) {
  if (!h || !def || !def->name) return NOTIFD_EINVAL;
  if (h->phase != ND_PHASE_NEW) return NOTIFD_ESTATE;
  for (size_t i = 0; i < h->nbuiltins; i++)
    if (strcmp(h->builtins[i]->name, def->name) == 0) return NOTIFD_EEXIST;
  const notifd_plugin_def **v = realloc(h->builtins, (h->nbuiltins + 1) * sizeof *v);
  if (!v) return NOTIFD_ENOMEM;
  v[h->nbuiltins++] = def;
  h->builtins = v;
  return 0;
}

nd_bus *nd_host_bus(notifd_host *h) {
  if (h->bus) return h->bus;
  if (h->phase >= ND_PHASE_STOPPING) return NULL;
  if (nd_host_ensure_data_dir(h) < 0) return NULL;
  if (nd_bus_open(h, &h->bus, &h->errs) < 0) {
    ND_ERROR("host", "bus backend could not be opened");
    h->bus = NULL;
  }
  return h->bus;
}

nd_kv *nd_host_kv(notifd_host *h) {
  if (h->kv) return h->kv;
  if (h->phase >= ND_PHASE_STOPPING) return NULL;
  if (nd_host_ensure_data_dir(h) < 0) return NULL;
  if (nd_kv_open(h, &h->kv, &h->errs) < 0) {
    ND_ERROR("host", "kv backend could not be opened");
    h->kv = NULL;
  }
  return h->kv;
}

nd_httpc *nd_host_httpc(notifd_host *h) {
  if (!h->httpc && h->phase < ND_PHASE_STOPPING) h->httpc = nd_httpc_new(h);
  return h->httpc;
}

int notifd_host_port(const notifd_host *h) {
  return h && h->http ? nd_http_server_port(h->http) : -1;
}

int notifd_host_admin_port(const notifd_host *h) {
  return h && h->admin ? nd_http_server_port(h->admin) : -1;
}

void notifd_host_request_stop(notifd_host *h) {
  if (h) nd_poster_signal_stop(h->poster);
}

void notifd_host_set_stop_callback(notifd_host *h, notifd_host_stopped_cb cb, void *ud) {
  if (!h) return;
  h->stop_cb = cb;
  h->stop_ud = ud;
}

void notifd_host_free(notifd_host *h) {
  if (!h) return;
  nd_host_teardown(h); /* abrupt stop of whatever still runs */
  for (size_t i = h->nplugins; i-- > 0;) {
    notifd_plugin *p = h->plugins[i];
    if (p->init_called && p->def.destroy) p->def.destroy(p->state);
    nd_plugin_unload(p);
  }
  free(h->plugins);
  free(h->builtins);
  if (h->ws) nd_ws_hub_free(h->ws);
  nd_accounts_free(h->accounts);
  if (h->router) nd_router_free(h->router);
  if (h->admin_router) nd_router_free(h->admin_router);
  nd_poster_free(h->poster);
  nd_metrics_free(h->metrics);
  nd_config_free(&h->cfg);
  nd_errors_free(&h->errs);
  free(h);
}
