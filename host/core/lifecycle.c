/* entry -> init -> start -> stop -> destroy, fail-fast startup, and graceful
 * shutdown with a deadline. */
#include "core/lifecycle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/accounts.h"
#include "auth/secret_file.h"
#include "auth/auth.h"
#include "bus/bus.h"
#include "core/disk_probe.h"
#include "core/loader.h"
#include "core/loop_services.h"
#include "http/http.h"
#include "http/tls.h"
#include "kv/kv.h"
#include "log/log.h"
#include "ws/ws.h"

#define DRAIN_POLL_MS 10

int nd_host_ensure_data_dir(notifd_host *h) {
  const char *dir = h->cfg.data_dir;
  if (!dir || !*dir || h->check_only) return 0; /* --check writes nothing */
  char *tmp = strdup(dir);
  if (!tmp) return -1;
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST) break;
    *p = '/';
  }
  int rc = mkdir(tmp, 0750);
  int saved = errno;
  free(tmp);
  if (rc < 0 && saved != EEXIST) {
    nd_errors_add(&h->errs, NULL, 0, 0, "data_dir '%s': %s", dir, strerror(saved));
    return -1;
  }
  return 0;
}

static int add_plugin(notifd_host *h, notifd_plugin *p) {
  notifd_plugin **v = realloc(h->plugins, (h->nplugins + 1) * sizeof *v);
  if (!v) return NOTIFD_ENOMEM;
  v[h->nplugins++] = p;
  h->plugins = v;
  return 0;
}

/* The error for an init that returned rc < 0 without reporting config
 * errors: names the last API call the host refused during it, if any. */
static void init_failed(notifd_host *h, notifd_plugin *p, int rc) {
  const nd_plugin_cfg *pc = p->cfg;
  char call[384];
  nd_api_refusal_text(p, call, sizeof call);
  const char *name = notifd_strerror_name(rc);
  char code[48];
  snprintf(code, sizeof code, "%d%s%s", rc, name ? " " : "", name ? name : "");
  if (call[0] && p->refused.rc == rc)
    nd_errors_add(&h->errs, h->cfg.tree.file, pc->line, pc->col,
                  "plugin '%s' (%s): init failed: %s", pc->name, p->path, call);
  else if (call[0])
    nd_errors_add(&h->errs, h->cfg.tree.file, pc->line, pc->col,
                  "plugin '%s' (%s): init failed (%s); the last call the host refused: %s",
                  pc->name, p->path, code, call);
  else
    nd_errors_add(&h->errs, h->cfg.tree.file, pc->line, pc->col,
                  "plugin '%s' (%s): init failed (%s)", pc->name, p->path, code);
}

/* Loads and inits every configured plugin.  fail_fast: stop at the first
 * problem (start); otherwise try them all and collect every problem
 * (--check).  Returns the number of problems. */
static size_t load_and_init(notifd_host *h, int fail_fast) {
  size_t before = h->errs.n;
  nd_host_ensure_data_dir(h);
  h->phase = ND_PHASE_INIT;
  for (size_t i = 0; i < h->cfg.nplugins; i++) {
    nd_plugin_cfg *pc = &h->cfg.plugins[i];
    notifd_plugin *p = NULL;
    size_t errs_now = h->errs.n;
    if (nd_plugin_load(h, pc, &p, &h->errs) < 0 || add_plugin(h, p) < 0) {
      if (p) nd_plugin_unload(p);
      nd_cfg_mark_used(pc->config); /* nothing read it */
      if (fail_fast) break;
      continue;
    }
    p->init_called = 1;
    nd_api_refusal_clear(p);
    int rc = p->def.init(p, &h->api, &p->state);
    /* NOTIFD_EINVAL after config errors (its own or a config_* type
     * error): those messages already say what is wrong. */
    int explained = rc == NOTIFD_EINVAL && h->errs.n > errs_now;
    if (rc < 0) {
      if (!explained) init_failed(h, p, rc);
      /* A failed init owns nothing: its registrations die with the host.
       * It may have stopped before reading every key: only keys that are
       * surely misspelt (close to one it asked for) are still reported. */
      nd_cfg_forgive_unread(pc->config);
    } else {
      p->inited = 1;
      ND_INFO("host", "plugin %s %s loaded from %s", pc->name,
              p->def.version ? p->def.version : "?", p->path);
    }
    if (fail_fast && h->errs.n > errs_now) break;
  }
  /* Configured backends open now even if no plugin asked for them, so
   * their settings are checked (and counted as read) before the
   * unknown-key report. */
  if (h->cfg.kafka || h->cfg.bus_cfg) nd_host_bus(h);
  if (h->cfg.redis || h->cfg.kv_cfg) nd_host_kv(h);
  h->phase = ND_PHASE_READY;
  if (h->errs.n == before || !fail_fast)
    nd_cfg_report_unused(h->cfg.tree.root, "", &h->errs);
  return h->errs.n - before;
}

int notifd_host_check(notifd_host *h, char *err, size_t errlen) {
  if (!h) return NOTIFD_EINVAL;
  if (h->phase != ND_PHASE_NEW) return NOTIFD_ESTATE;
  h->check_only = 1;
  load_and_init(h, 0);
  nd_tls_check(&h->cfg, &h->errs); /* the listener opens them at start */
  /* h->errs may already hold the host config's errors (nd_host_new_for_check). */
  if (h->errs.n) {
    nd_errors_format(&h->errs, err, errlen);
    return NOTIFD_EINVAL;
  }
  if (err && errlen) err[0] = '\0';
  return 0;
}

static void stop_plugins(notifd_host *h) {
  for (size_t i = h->nplugins; i-- > 0;) {
    notifd_plugin *p = h->plugins[i];
    if (p->started && p->def.stop) p->def.stop(p->state);
    p->started = 0;
    nd_timer_list_free(p->timers);
    p->timers = NULL;
  }
}

void nd_host_teardown(notifd_host *h) {
  if (!h || h->phase == ND_PHASE_STOPPED) return;
  int was_serving = h->phase >= ND_PHASE_RUNNING || h->http || h->admin;
  h->phase = ND_PHASE_STOPPING;
  if (h->deadline_ev) event_free(h->deadline_ev);
  if (h->drain_ev) event_free(h->drain_ev);
  if (h->stop_ev) event_free(h->stop_ev);
  h->deadline_ev = h->drain_ev = h->stop_ev = NULL;
  if (h->http) nd_http_server_free(h->http);
  h->http = NULL;
  if (h->ws) nd_ws_hub_free(h->ws);
  h->ws = NULL;
  if (h->bus) nd_bus_free(h->bus);
  h->bus = NULL;
  stop_plugins(h);
  if (h->httpc) nd_httpc_free(h->httpc);
  h->httpc = NULL;
  if (h->kv) nd_kv_free(h->kv);
  h->kv = NULL;
  nd_poster_close(h->poster);
  nd_workers_free(h->workers);
  h->workers = NULL;
  if (h->admin) nd_http_server_free(h->admin);
  h->admin = NULL;
  nd_auth_stop(h); /* after the servers: their parked requests cancel waiters */
  nd_disk_probe_stop(h->disk_probe);
  h->disk_probe = NULL;
  h->phase = ND_PHASE_STOPPED;
  if (was_serving) ND_INFO("host", "notifd stopped");
}

static void on_stop_request(void *arg) {
  notifd_host *h = arg;
  if (h->phase == ND_PHASE_RUNNING) notifd_host_stop(h, h->stop_cb, h->stop_ud);
}

int notifd_host_start(notifd_host *h, char *err, size_t errlen) {
  if (!h || h->config_bad) return NOTIFD_EINVAL;
  if (h->phase != ND_PHASE_NEW) return NOTIFD_ESTATE;
  int rc = NOTIFD_EINVAL;
  h->workers = nd_workers_new(h->poster, h->cfg.workers);
  if (!h->workers) {
    nd_errors_add(&h->errs, NULL, 0, 0, "cannot start %u worker threads", h->cfg.workers);
    goto fail;
  }
  if (load_and_init(h, 1)) goto fail;
  /* Before serving, so /readyz has an answer from the first request. */
  if (!(h->disk_probe = nd_disk_probe_start(h->cfg.data_dir, ND_DISK_PROBE_INTERVAL_MS)))
    ND_WARN("host", "data_dir write probe not started: /readyz will not check the disk");
  if (h->accounts) {
    /* A single node with accounts and no configured secret signs its
     * tokens with one generated into the data dir. */
    if (!h->cfg.jwt_secret || !*h->cfg.jwt_secret) {
      free(h->cfg.jwt_secret);
      if (!(h->cfg.jwt_secret = nd_auth_secret_load_or_create(h->cfg.data_dir, &h->errs)))
        goto fail;
    }
    if (nd_accounts_start(h->accounts) < 0) goto fail;
  }
  /* After plugins' init and before serving: the verifier takes the HMAC
   * secret from h->cfg.jwt_secret now and starts the first JWKS fetch. */
  if (nd_auth_start(h) < 0) goto fail;

  h->http = nd_http_server_new(h, h->router, 0);
  if (!h->http ||
      nd_http_server_listen(h->http, h->cfg.listen_address, h->cfg.listen_port, &h->errs) < 0)
    goto fail;
  if (h->cfg.admin_port >= 0) {
    h->admin = nd_http_server_new(h, h->admin_router, 1);
    if (!h->admin ||
        nd_http_server_listen(h->admin, h->cfg.admin_address, h->cfg.admin_port, &h->errs) < 0)
      goto fail;
  }
  for (size_t i = 0; i < h->nplugins; i++) {
    notifd_plugin *p = h->plugins[i];
    if (p->def.start && (rc = p->def.start(p->state)) < 0) {
      nd_errors_add(&h->errs, h->cfg.tree.file, p->cfg->line, p->cfg->col,
                    "plugin '%s': start failed (%d)", p->cfg->name, rc);
      goto fail;
    }
    p->started = 1;
  }
  if (h->bus && nd_bus_start(h->bus) < 0) {
    nd_errors_add(&h->errs, NULL, 0, 0, "bus: consumers could not start");
    goto fail;
  }
  nd_poster_set_stop_handler(h->poster, on_stop_request, h);
  h->phase = ND_PHASE_RUNNING;
  ND_INFO("host", "notifd %s started: port=%d admin_port=%d plugins=%zu", NOTIFD_VERSION,
          notifd_host_port(h), notifd_host_admin_port(h), h->nplugins);
  return 0;
fail:
  nd_errors_format(&h->errs, err, errlen);
  nd_host_teardown(h);
  return rc < 0 ? rc : NOTIFD_EINVAL;
}

/* ---- graceful stop ---- */

static int bus_stopped_flag(notifd_host *h) { return h->bus == NULL || h->bus_stopped; }

static void on_bus_stopped(void *arg) {
  notifd_host *h = arg;
  h->bus_stopped = 1;
}

static size_t work_remaining(notifd_host *h) {
  return (h->http ? nd_http_server_inflight(h->http) : 0) + (h->ws ? nd_ws_hub_count(h->ws) : 0) +
         nd_workers_pending(h->workers) + (h->httpc ? nd_httpc_inflight(h->httpc) : 0) +
         (bus_stopped_flag(h) ? 0 : 1);
}

static void finish_stop(notifd_host *h, int forced) {
  if (forced)
    ND_WARN("host", "shutdown deadline reached with work in flight: %zu requests, %zu websockets, %zu jobs",
            h->http ? nd_http_server_inflight(h->http) : 0, h->ws ? nd_ws_hub_count(h->ws) : 0,
            nd_workers_pending(h->workers));
  notifd_host_stopped_cb cb = h->stopping_cb;
  void *ud = h->stopping_ud;
  nd_host_teardown(h);
  if (cb) cb(h, ud);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  notifd_host *h = arg;
  if (work_remaining(h) == 0) finish_stop(h, 0);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  finish_stop(arg, 1);
}

int notifd_host_stop(notifd_host *h, notifd_host_stopped_cb done, void *ud) {
  if (!h) return NOTIFD_EINVAL;
  if (h->phase != ND_PHASE_RUNNING) return NOTIFD_ESTATE;
  h->phase = ND_PHASE_STOPPING;
  h->stopping_cb = done;
  h->stopping_ud = ud;
  ND_INFO("host", "shutting down (deadline %lld ms)", (long long)h->cfg.shutdown_deadline_ms);
  if (h->http) nd_http_server_stop_accepting(h->http);
  if (h->ws) nd_ws_hub_close_all(h->ws, 1001, "server shutting down");
  h->bus_stopped = 0;
  if (h->bus) nd_bus_stop(h->bus, on_bus_stopped, h);

  struct timeval poll = {0, DRAIN_POLL_MS * 1000};
  int64_t dl = h->cfg.shutdown_deadline_ms;
  struct timeval deadline = {(time_t)(dl / 1000), (suseconds_t)((dl % 1000) * 1000)};
  h->drain_ev = event_new(h->base, -1, EV_PERSIST, on_drain_tick, h);
  h->deadline_ev = evtimer_new(h->base, on_deadline, h);
  if (!h->drain_ev || !h->deadline_ev || event_add(h->drain_ev, &poll) < 0 ||
      evtimer_add(h->deadline_ev, &deadline) < 0) {
    finish_stop(h, 1);
    return 0;
  }
  return 0;
}
