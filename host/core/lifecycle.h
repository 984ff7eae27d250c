/* Host lifecycle internals: load/init/start/stop of plugins and servers. */
#ifndef ND_LIFECYCLE_H
#define ND_LIFECYCLE_H

#include "core/host.h"

/* Creates cfg.data_dir (mkdir -p) once; 0 or -1 (logged, error added). */
int nd_host_ensure_data_dir(notifd_host *h);
/* Stops everything still running without waiting (used by free and by a
 * failed start); idempotent. */
void nd_host_teardown(notifd_host *h);
/* Registers /healthz, /readyz and /metrics. */
int nd_admin_register(notifd_host *h);
/* GET /openapi.json on the public listener (openapi.c). */
int nd_openapi_register(notifd_host *h);

#endif
