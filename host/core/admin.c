/* Operational endpoints: /healthz (live), /readyz (started and backends
 * reachable), /metrics (Prometheus text). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "core/disk_probe.h"
#include "core/lifecycle.h"
#include "http/http.h"
#include "kv/kv.h"
#include "metrics/metrics.h"
#include "ws/ws.h"

static void on_healthz(notifd_req *r, void *ud) {
  (void)ud;
  static const char body[] = "{\"status\":\"ok\"}";
  nd_respond(r, 200, "application/json", body, sizeof body - 1);
}

static void on_readyz(notifd_req *r, void *ud) {
  notifd_host *h = ud;
  json_t *o = json_object();
  json_t *checks = json_object();
  int ready = h->phase == ND_PHASE_RUNNING;
  json_object_set_new(checks, "plugins_started", json_boolean(ready));
  if (h->bus) {
    int ok = nd_bus_ready(h->bus);
    json_object_set_new(checks, "bus", json_boolean(ok));
    ready = ready && ok;
  }
  if (h->kv) {
    int ok = nd_kv_ready(h->kv);
    json_object_set_new(checks, "kv", json_boolean(ok));
    ready = ready && ok;
  }
  if (h->disk_probe) {
    /* A data dir that cannot be written fails every store and bus write. */
    int err = 0;
    int ok = nd_disk_probe_ok(h->disk_probe, &err);
    json_object_set_new(checks, "data_dir", json_boolean(ok));
    if (!ok) json_object_set_new(o, "data_dir_error", json_string(strerror(err)));
    ready = ready && ok;
  }
  json_object_set_new(o, "status", json_string(ready ? "ready" : "not ready"));
  json_object_set_new(o, "checks", checks);
  nd_respond_json(r, ready ? 200 : 503, o);
  json_decref(o);
}

/* Resident set size from /proc/self/statm (pages -> bytes). */
static double rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  return n == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : 0;
}

static void on_metrics(notifd_req *r, void *ud) {
  notifd_host *h = ud;
  nd_metric *m;
  if (nd_metric_register(h->metrics, ND_METRIC_GAUGE, "notifd_process_resident_memory_bytes",
                         "Resident set size of the notifd process.", NULL, NULL, 0, &m) == 0)
    nd_metric_set(m, NULL, rss_bytes());
  if (nd_metric_register(h->metrics, ND_METRIC_GAUGE, "notifd_plugins_started",
                         "Plugins loaded and started.", NULL, NULL, 0, &m) == 0) {
    size_t n = 0;
    for (size_t i = 0; i < h->nplugins; i++) n += h->plugins[i]->started ? 1 : 0;
    nd_metric_set(m, NULL, (double)n);
  }
  /* Which build of each plugin is serving (a swap is a restart). */
  static const char *const plugin_labels[] = {"name", "version", NULL};
  if (nd_metric_register(h->metrics, ND_METRIC_GAUGE, "notifd_plugin_info",
                         "Loaded plugins and the version each reports.", plugin_labels, NULL, 0,
                         &m) == 0) {
    for (size_t i = 0; i < h->nplugins; i++) {
      const notifd_plugin *p = h->plugins[i];
      if (!p->inited) continue;
      const char *v[] = {p->cfg->name, p->def.version ? p->def.version : ""};
      nd_metric_set(m, v, 1);
    }
  }
  char *text = NULL;
  size_t len = 0;
  if (nd_metrics_render(h->metrics, &text, &len) < 0) {
    nd_respond_error(r, 500, "metrics rendering failed");
    return;
  }
  nd_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
  free(text);
}

int nd_admin_register(notifd_host *h) {
  nd_metric *info;
  static const char *const labels[] = {"version", "abi", NULL};
  char abi[16];
  snprintf(abi, sizeof abi, "%d.%d", NOTIFD_ABI_MAJOR, NOTIFD_ABI_MINOR);
  const char *values[] = {NOTIFD_VERSION, abi};
  if (nd_metric_register(h->metrics, ND_METRIC_GAUGE, "notifd_build_info",
                         "notifd version and plugin ABI.", labels, NULL, 0, &info) == 0)
    nd_metric_set(info, values, 1);

  /* Liveness and readiness are on both listeners (the public port is what
   * a first-time user curls); metrics only on the admin listener unless it
   * is disabled. */
  nd_router *routers[] = {h->admin_router, h->router};
  for (size_t i = 0; i < 2; i++) {
    if (nd_router_add(routers[i], "GET", "/healthz", on_healthz, h, NOTIFD_AUTH_NONE, 0,
                      "host") < 0 ||
        nd_router_add(routers[i], "GET", "/readyz", on_readyz, h, NOTIFD_AUTH_NONE, 0,
                      "host") < 0)
      return -1;
  }
  if (nd_router_add(h->admin_router, "GET", "/metrics", on_metrics, h, NOTIFD_AUTH_NONE, 0,
                    "host") < 0)
    return -1;
  if (h->cfg.http_openapi && nd_openapi_register(h) < 0) return -1;
  if (h->cfg.admin_port < 0 &&
      nd_router_add(h->router, "GET", "/metrics", on_metrics, h, NOTIFD_AUTH_NONE, 0, "host") < 0)
    return -1;
  return 0;
}
