/* Finds, dlopens and version-checks plugins; builtins come from the host's
 * list instead of dlopen. */
#ifndef ND_LOADER_H
#define ND_LOADER_H

#include "core/host.h"

/* Loads the plugin a config entry names.  On failure adds one message
 * (path + expected/found versions) to `errs` and returns < 0. */
int nd_plugin_load(notifd_host *h, nd_plugin_cfg *pc, notifd_plugin **out, nd_errors *errs);
/* dlcloses and frees (after destroy). */
void nd_plugin_unload(notifd_plugin *p);

#endif
