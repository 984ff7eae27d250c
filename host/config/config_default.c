/* The config file used without -c (notifd, notifd user, notifd bus). */
#include "config/config_default.h"

#include <stdlib.h>
#include <unistd.h>

#include "notifd_build_config.h"

const char *nd_config_installed_path(void) { return NOTIFD_DEFAULT_CONFIG; }

const char *nd_config_default_path(void) {
  const char *env = getenv("NOTIFD_CONFIG");
  if (env && *env) return env;
  return access(NOTIFD_DEFAULT_CONFIG, R_OK) == 0 ? NOTIFD_DEFAULT_CONFIG : NULL;
}
