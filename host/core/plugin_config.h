/* notifd_api config getters (see plugin.h for their contract). */
#ifndef ND_PLUGIN_CONFIG_H
#define ND_PLUGIN_CONFIG_H

#include "core/host.h"

int nd_plugin_config_string(notifd_plugin *p, const char *key, const char *def, const char **out);
int nd_plugin_config_int(notifd_plugin *p, const char *key, int64_t def, int64_t *out);
int nd_plugin_config_double(notifd_plugin *p, const char *key, double def, double *out);
int nd_plugin_config_bool(notifd_plugin *p, const char *key, int32_t def, int32_t *out);
int nd_plugin_config_duration_ms(notifd_plugin *p, const char *key, int64_t def, int64_t *out);
int nd_plugin_config_list_len(notifd_plugin *p, const char *key, size_t *out);
int nd_plugin_config_list_string(notifd_plugin *p, const char *key, size_t i, const char **out);
int nd_plugin_backend_string(notifd_plugin *p, const char *backend, const char *key,
                             const char **out);
int nd_plugin_config_error(notifd_plugin *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
