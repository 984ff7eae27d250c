/* The host object shared by every subsystem (internal, not installed). */
#ifndef ND_HOST_H
#define ND_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <notifd/plugin.h>
#include <notifd/embed.h>
#include "config/config.h"

typedef struct nd_metrics nd_metrics;
typedef struct nd_router nd_router;
typedef struct nd_http_server nd_http_server;
typedef struct nd_ws_hub nd_ws_hub;
typedef struct nd_bus nd_bus;
typedef struct nd_kv nd_kv;
typedef struct nd_httpc nd_httpc;
typedef struct nd_workers nd_workers;
typedef struct nd_poster nd_poster;
typedef struct nd_timer_list nd_timer_list;
typedef struct nd_accounts nd_accounts;
typedef struct nd_verifier nd_verifier;
typedef struct nd_disk_probe nd_disk_probe;

enum nd_phase {
  ND_PHASE_NEW = 0,   /* config parsed */
  ND_PHASE_INIT,      /* plugins' init running: registration allowed */
  ND_PHASE_READY,     /* every init done, not serving (after --check) */
  ND_PHASE_RUNNING,   /* started and serving */
  ND_PHASE_STOPPING,  /* graceful shutdown under way */
  ND_PHASE_STOPPED
};

struct notifd_plugin {
  notifd_host *host;
  nd_plugin_cfg *cfg;          /* borrowed from host->cfg */
  notifd_plugin_def def;       /* copy, zero-filled past def->size */
  void *dl;                    /* dlopen handle, NULL for builtins */
  char *path;                  /* resolved path or "(builtin)" */
  void *state;
  int init_called; /* init ran (even if it failed): destroy gets the state */
  int inited, started;
  nd_timer_list *timers;       /* owned; stopped at plugin stop */
  /* The last API call the table refused on the loop thread (api_table.c):
   * an init failure's message names it.  call NULL = none yet. */
  struct {
    const char *call;          /* static: "bus_consume" */
    int rc;
    char why[256];
  } refused;
};

struct notifd_host {
  struct event_base *base;     /* borrowed */
  nd_config cfg;
  nd_errors errs;              /* startup problems */
  int phase;                   /* enum nd_phase */
  int check_only;              /* notifd --check: validate, write nothing */
  int config_bad;              /* the host config had errors (check only) */

  nd_metrics *metrics;
  nd_router *router;           /* public routes */
  nd_router *admin_router;     /* /healthz /readyz /metrics */
  nd_http_server *http;
  nd_http_server *admin;
  nd_ws_hub *ws;
  nd_bus *bus;                 /* opened lazily by the first bus call */
  nd_kv *kv;                   /* opened lazily by the first kv call */
  nd_httpc *httpc;             /* outgoing HTTP, lazily */
  nd_verifier *verifier;       /* token verification (auth/), from start */
  nd_workers *workers;
  nd_poster *poster;
  nd_accounts *accounts;       /* auth.accounts, or NULL */
  nd_disk_probe *disk_probe;   /* data_dir writability for /readyz, from start */

  const notifd_plugin_def **builtins;
  size_t nbuiltins;
  notifd_plugin **plugins;     /* in config order */
  size_t nplugins;

  notifd_api api;              /* the table handed to plugins */

  notifd_host_stopped_cb stop_cb;   /* for stops requested by signal */
  void *stop_ud;
  notifd_host_stopped_cb stopping_cb; /* the stop under way */
  void *stopping_ud;
  int bus_stopped;                  /* nd_bus_stop finished */
  struct event *stop_ev;       /* activated by request_stop */
  struct event *deadline_ev;   /* shutdown deadline */
  struct event *drain_ev;      /* polls in-flight work while stopping */
};

/* Registration is allowed only while plugins' init runs. */
static inline int nd_host_registering(const notifd_host *h) {
  return h->phase == ND_PHASE_INIT;
}

/* A host for notifd_host_check only: unlike notifd_host_new_from_file it
 * is created when the config has errors (a YAML syntax error still fails),
 * holding them, so the check reports them with every plugin's problems.
 * notifd_host_start refuses it. */
int nd_host_new_for_check(const char *path, struct event_base *base, notifd_host **out,
                          char *err, size_t errlen);

/* Lazily opened backends; return NULL (and log) if they cannot open. */
nd_bus *nd_host_bus(notifd_host *h);
nd_kv *nd_host_kv(notifd_host *h);
nd_httpc *nd_host_httpc(notifd_host *h);

/* Fills the API table (host/core/api_table.c). */
void nd_api_fill(notifd_api *api);
/* "<call>: <why> (<rc> <NAME>)" of p's last refused call into buf, or ""
 * when none was refused (api_table.c). */
void nd_api_refusal_text(const notifd_plugin *p, char *buf, size_t len);
/* Forgets p's last refused call (before its init runs). */
void nd_api_refusal_clear(notifd_plugin *p);

#endif
