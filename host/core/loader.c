/* Plugin loading per the ABI rules: one versioned entry symbol, RTLD_NOW |
 * RTLD_LOCAL, a self-sized definition, major must match, the minor a plugin
 * needs must not exceed the host's. */
#include "core/loader.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/loop_services.h"
#include "notifd_build_config.h"
#include "util/buf.h"

/* The definition must at least reach `destroy` (all of ABI 1.0). */
#define DEF_MIN_SIZE (offsetof(notifd_plugin_def, destroy) + sizeof(void (*)(void *)))

static char *try_file(const char *dir, const char *name, int nested) {
  nd_buf b;
  nd_buf_init(&b);
  if (nested) nd_buf_printf(&b, "%s/%s/%s.so", dir, name, name);
  else nd_buf_printf(&b, "%s/%s.so", dir, name);
  char *path = nd_buf_steal(&b, NULL);
  if (path && access(path, R_OK) == 0) return path;
  free(path);
  return NULL;
}

/* Search order: explicit path; each plugin_dirs entry; the build tree
 * (unless built with -Dtests=false: then empty, skipped); the install
 * dir.  In a dir: <name>.so, then <name>/<name>.so. */
static char *resolve_path(notifd_host *h, nd_plugin_cfg *pc) {
  if (pc->path) return strdup(pc->path);
  const char *builtin_dirs[] = {NOTIFD_BUILD_PLUGIN_DIR, NOTIFD_PLUGIN_DIR, NULL};
  for (int pass = 0; pass < 2; pass++) {
    char **dirs = pass == 0 ? h->cfg.plugin_dirs : (char **)builtin_dirs;
    for (size_t i = 0; dirs && dirs[i]; i++) {
      if (!dirs[i][0]) continue;
      char *p = try_file(dirs[i], pc->name, 0);
      if (!p) p = try_file(dirs[i], pc->name, 1);
      if (p) return p;
    }
  }
  return NULL;
}

static const notifd_plugin_def *find_builtin(notifd_host *h, const char *name) {
  for (size_t i = 0; i < h->nbuiltins; i++)
    if (strcmp(h->builtins[i]->name, name) == 0) return h->builtins[i];
  return NULL;
}

/* Why no v1 entry: name another major's entry if the object has one. */
static void explain_missing_entry(void *dl, const char *where, const char *name, nd_errors *e,
                                  const nd_plugin_cfg *pc, const char *file) {
  for (int major = 0; major <= 9; major++) {
    char sym[64];
    snprintf(sym, sizeof sym, "notifd_plugin_entry_v%d", major);
    if (major != NOTIFD_ABI_MAJOR && dlsym(dl, sym)) {
      nd_errors_add(e, file, pc->line, pc->col,
                    "plugin '%s' (%s): built for ABI major %d (exports %s), host provides ABI %d.%d",
                    name, where, major, sym, NOTIFD_ABI_MAJOR, NOTIFD_ABI_MINOR);
      return;
    }
  }
  nd_errors_add(e, file, pc->line, pc->col,
                "plugin '%s' (%s): missing entry symbol %s (is it a notifd plugin?)", name, where,
                NOTIFD_PLUGIN_ENTRY_SYMBOL);
}

static int check_def(const notifd_plugin_def *def, const char *where, nd_plugin_cfg *pc,
                     nd_errors *e, const char *file) {
  if (!def) {
    nd_errors_add(e, file, pc->line, pc->col, "plugin '%s' (%s): entry returned NULL",
                  pc->name, where);
    return -1;
  }
  if (def->size < DEF_MIN_SIZE) {
    nd_errors_add(e, file, pc->line, pc->col,
                  "plugin '%s' (%s): definition size %u is smaller than ABI 1.0's %zu", pc->name,
                  where, def->size, (size_t)DEF_MIN_SIZE);
    return -1;
  }
  if (def->abi_major != NOTIFD_ABI_MAJOR) {
    nd_errors_add(e, file, pc->line, pc->col,
                  "plugin '%s' (%s): ABI major mismatch: plugin built for %u.%u, host provides %d.%d",
                  pc->name, where, def->abi_major, def->abi_minor, NOTIFD_ABI_MAJOR,
                  NOTIFD_ABI_MINOR);
    return -1;
  }
  if (def->abi_minor > NOTIFD_ABI_MINOR) {
    nd_errors_add(e, file, pc->line, pc->col,
                  "plugin '%s' (%s): needs ABI %u.%u, host provides %d.%d (upgrade notifd)",
                  pc->name, where, def->abi_major, def->abi_minor, NOTIFD_ABI_MAJOR,
                  NOTIFD_ABI_MINOR);
    return -1;
  }
  if (!def->name || strcmp(def->name, pc->name) != 0) {
    nd_errors_add(e, file, pc->line, pc->col,
                  "plugin '%s' (%s): the plugin calls itself '%s'; the config name must match",
                  pc->name, where, def->name ? def->name : "(null)");
    return -1;
  }
  if (!def->init) {
    nd_errors_add(e, file, pc->line, pc->col, "plugin '%s' (%s): no init function",
                  pc->name, where);
    return -1;
  }
  return 0;
}

int nd_plugin_load(notifd_host *h, nd_plugin_cfg *pc, notifd_plugin **out, nd_errors *e) {
  const char *file = h->cfg.tree.file;
  const notifd_plugin_def *def = NULL;
  void *dl = NULL;
  char *path = NULL;

  if (pc->builtin) {
    def = find_builtin(h, pc->name);
    if (!def) {
      nd_errors_add(e, file, pc->line, pc->col,
                    "plugin '%s': marked builtin but this program provides no such builtin",
                    pc->name);
      return NOTIFD_ENOENT;
    }
    path = strdup("(builtin)");
  } else {
    path = resolve_path(h, pc);
    if (!path) {
      nd_errors_add(e, file, pc->line, pc->col,
                    "plugin '%s': %s.so not found (set `path:` or `plugin_dirs:`)", pc->name,
                    pc->name);
      return NOTIFD_ENOENT;
    }
    dlerror();
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
      nd_errors_add(e, file, pc->line, pc->col, "plugin '%s' (%s): dlopen failed: %s",
                    pc->name, path, dlerror());
      free(path);
      return NOTIFD_ENOENT;
    }
    notifd_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, NOTIFD_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
      explain_missing_entry(dl, path, pc->name, e, pc, file);
      dlclose(dl);
      free(path);
      return NOTIFD_ENOENT;
    }
    def = entry();
  }
  if (!path || check_def(def, path, pc, e, file) < 0) {
    if (dl) dlclose(dl);
    free(path);
    return NOTIFD_EINVAL;
  }

  notifd_plugin *p = calloc(1, sizeof *p);
  if (!p || !(p->timers = nd_timer_list_new(h->base))) {
    free(p);
    if (dl) dlclose(dl);
    free(path);
    return NOTIFD_ENOMEM;
  }
  /* Read only what the plugin's own size covers; the rest stays zero. */
  memcpy(&p->def, def, def->size < sizeof p->def ? def->size : sizeof p->def);
  p->def.size = (uint32_t)sizeof p->def;
  p->host = h;
  p->cfg = pc;
  p->dl = dl;
  p->path = path;
  *out = p;
  return 0;
}

void nd_plugin_unload(notifd_plugin *p) {
  if (!p) return;
  nd_timer_list_free(p->timers);
  if (p->dl) dlclose(p->dl);
  free(p->path);
  free(p);
}
