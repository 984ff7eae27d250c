/* Typed getters over a plugin's `config:` subtree.  Lookups mark keys used,
 * so whatever a plugin never reads is reported as an unknown key. */
#include "core/plugin_config.h"

#include <stdarg.h>
#include <string.h>

#include "util/buf.h"

static nd_cfg_node *lookup(notifd_plugin *p, const char *key) {
  if (!p || !key || !p->cfg || !p->cfg->config) return NULL;
  if (p->cfg->config->kind != ND_CFG_MAP) return NULL;
  return nd_cfg_path(p->cfg->config, key);
}

static int absent(const nd_cfg_node *n) { return !n || (n->kind == ND_CFG_SCALAR && n->is_null); }

int nd_plugin_config_string(notifd_plugin *p, const char *key, const char *def, const char **out) {
  if (!out) return NOTIFD_EINVAL;
  nd_cfg_node *n = lookup(p, key);
  *out = def;
  if (absent(n)) return 0;
  return nd_cfg_as_string(n, &p->host->errs, out) < 0 ? NOTIFD_EINVAL : 0;
}

int nd_plugin_config_int(notifd_plugin *p, const char *key, int64_t def, int64_t *out) {
  if (!out) return NOTIFD_EINVAL;
  nd_cfg_node *n = lookup(p, key);
  *out = def;
  if (absent(n)) return 0;
  return nd_cfg_as_int(n, &p->host->errs, out) < 0 ? NOTIFD_EINVAL : 0;
}

int nd_plugin_config_double(notifd_plugin *p, const char *key, double def, double *out) {
  if (!out) return NOTIFD_EINVAL;
  nd_cfg_node *n = lookup(p, key);
  *out = def;
  if (absent(n)) return 0;
  return nd_cfg_as_double(n, &p->host->errs, out) < 0 ? NOTIFD_EINVAL : 0;
}

int nd_plugin_config_bool(notifd_plugin *p, const char *key, int32_t def, int32_t *out) {
  if (!out) return NOTIFD_EINVAL;
  nd_cfg_node *n = lookup(p, key);
  *out = def;
  if (absent(n)) return 0;
  int v = 0;
  if (nd_cfg_as_bool(n, &p->host->errs, &v) < 0) return NOTIFD_EINVAL;
  *out = v;
  return 0;
}

int nd_plugin_config_duration_ms(notifd_plugin *p, const char *key, int64_t def, int64_t *out) {
  if (!out) return NOTIFD_EINVAL;
  nd_cfg_node *n = lookup(p, key);
  *out = def;
  if (absent(n)) return 0;
  return nd_cfg_as_duration_ms(n, &p->host->errs, out) < 0 ? NOTIFD_EINVAL : 0;
}

int nd_plugin_config_list_len(notifd_plugin *p, const char *key, size_t *out) {
  if (!out) return NOTIFD_EINVAL;
  nd_cfg_node *n = lookup(p, key);
  *out = 0;
  if (absent(n)) return 0;
  if (n->kind != ND_CFG_SEQ) {
    nd_errors_add(&p->host->errs, n->file, n->line, n->col, "key '%s' of plugin '%s': expected a list",
                  key, p->cfg->name);
    return NOTIFD_EINVAL;
  }
  *out = n->n;
  return 0;
}

int nd_plugin_config_list_string(notifd_plugin *p, const char *key, size_t i, const char **out) {
  if (!out) return NOTIFD_EINVAL;
  nd_cfg_node *n = lookup(p, key);
  if (absent(n) || n->kind != ND_CFG_SEQ || i >= n->n) return NOTIFD_ENOENT;
  n->items[i]->used = 1;
  return nd_cfg_as_string(n->items[i], &p->host->errs, out) < 0 ? NOTIFD_EINVAL : 0;
}

int nd_plugin_backend_string(notifd_plugin *p, const char *backend, const char *key,
                             const char **out) {
  if (!p || !backend || !key || !out) return NOTIFD_EINVAL;
  *out = NULL;
  nd_config *c = &p->host->cfg;
  nd_cfg_node *b = strcmp(backend, "kafka") == 0     ? c->kafka
                   : strcmp(backend, "redis") == 0   ? c->redis
                   : strcmp(backend, "mongodb") == 0 ? c->mongodb
                                                     : NULL;
  if (!b || b->kind != ND_CFG_MAP) return 0;
  nd_cfg_node *n = nd_cfg_path(b, key);
  if (absent(n)) return 0;
  return nd_cfg_as_string(n, &p->host->errs, out) < 0 ? NOTIFD_EINVAL : 0;
}

int nd_plugin_config_error(notifd_plugin *p, const char *key, const char *fmt, ...) {
  if (!p || !fmt) return NOTIFD_EINVAL;
  if (!nd_host_registering(p->host)) return NOTIFD_ESTATE;
  nd_buf msg;
  nd_buf_init(&msg);
  va_list ap;
  va_start(ap, fmt);
  nd_buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  const char *text = msg.data ? msg.data : "out of memory";
  nd_cfg_node *n = key ? lookup(p, key) : p->cfg->config;
  if (n) {
    nd_cfg_error_at(&p->host->errs, n, "%s", text);
  } else {
    /* Absent key: at the deepest part of its path that exists (the list
     * item, the config map, else the plugin entry), named the way present
     * keys are ("types[0].name"). */
    nd_cfg_node *at = p->cfg->config, *deepest = at;
    nd_buf path;
    nd_buf_init(&path);
    nd_buf_printf(&path, "plugins[%zu].config", (size_t)(p->cfg - p->host->cfg.plugins));
    for (const char *seg = key;;) {
      size_t len = strcspn(seg, ".");
      int index = len > 0 && strspn(seg, "0123456789") >= len;
      nd_buf_printf(&path, index ? "[%.*s]" : ".%.*s", (int)len, seg);
      char part[128];
      if (at && len >= sizeof part) {
        at = NULL; /* no key is that long */
      } else if (at) {
        memcpy(part, seg, len);
        part[len] = '\0';
        if ((at = nd_cfg_path(at, part)) != NULL) deepest = at;
      }
      if (!seg[len]) break;
      seg += len + 1;
    }
    at = deepest;
    nd_errors_add(&p->host->errs, p->host->cfg.tree.file, at ? at->line : p->cfg->line,
                  at ? at->col : p->cfg->col, "key '%s': %s", path.data ? path.data : "?", text);
    nd_buf_free(&path);
  }
  nd_buf_free(&msg);
  return 0;
}
