/* The YAML config loader (host/config: cfg_tree.c over libyaml, ${VAR}
 * expansion in cfg_expand.c, the typed reads of cfg_scalar.c, the host's
 * settings in config_load.c): parse, load, report unknown keys, format
 * the errors, and read every scalar of the tree as each type.  Bad input
 * gives errors, never a crash.  Input: the YAML text. */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  /* Variables the seeds expand: one set, one empty; FUZZ_UNSET never is. */
  setenv("FUZZ_SET", "8080", 1);
  setenv("FUZZ_EMPTY", "", 1);
  unsetenv("FUZZ_UNSET");
  return 0;
}

/* Every typed read of every scalar; the results themselves vary. */
static void read_all(nd_cfg_node *n, nd_errors *e, int depth) {
  FUZZ_CHECK(depth <= 66, "tree deeper than the parser allows");
  if (n->kind != ND_CFG_SCALAR) {
    for (size_t i = 0; i < n->n; i++) {
      FUZZ_CHECK(n->items[i]->parent == n, "child without its parent");
      read_all(n->items[i], e, depth + 1);
    }
    return;
  }
  const char *s;
  int64_t i, ms;
  double d;
  int b;
  (void)nd_cfg_as_string(n, e, &s);
  (void)nd_cfg_as_int(n, e, &i);
  (void)nd_cfg_as_double(n, e, &d);
  (void)nd_cfg_as_bool(n, e, &b);
  (void)nd_cfg_as_duration_ms(n, e, &ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_copy(data, size, 0);
  nd_cfg_tree tree;
  nd_errors errs;
  nd_errors_init(&errs);
  int rc = nd_cfg_parse(text, size, "fuzz.yaml", &tree, &errs);
  if (rc < 0) FUZZ_CHECK(errs.n > 0 && tree.root == NULL, "refused without an error");
  nd_config cfg;
  int loaded = nd_config_load(&tree, &cfg, &errs);
  if (loaded < 0) FUZZ_CHECK(errs.n > 0, "load failed without an error");
  nd_config_report_unknown_host_keys(&cfg, &errs);
  if (cfg.tree.root) {
    nd_errors scratch;
    nd_errors_init(&scratch);
    read_all(cfg.tree.root, &scratch, 0);
    nd_cfg_report_unused(cfg.tree.root, "", &scratch);
    nd_errors_free(&scratch);
  }
  char msg[4096];
  nd_errors_format(&errs, msg, sizeof msg);
  FUZZ_CHECK(strlen(msg) < sizeof msg, "error text overran its buffer");
  nd_errors_free(&errs);
  nd_config_free(&cfg);
  free(text);
  return 0;
}
