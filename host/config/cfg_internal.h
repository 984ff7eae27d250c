/* Helpers shared by the config module's files; not part of config.h. */
#ifndef ND_CFG_INTERNAL_H
#define ND_CFG_INTERNAL_H

#include <stdint.h>

#include "config/config.h"
#include "util/buf.h"

/* Appends n's key path from the document root ("a.b", "plugins[2].name")
 * to b.  Nodes without parents contribute their key only. */
void nd_cfg_key_path(const nd_cfg_node *n, nd_buf *b);

/* Expands ${VAR}, ${VAR:-def}, ${VAR-def} and $$ in `in` (see config.h).
 * Returns a malloc'd string, or NULL with *why set to a malloc'd reason
 * (caller frees it; *why stays NULL when memory ran out). */
char *nd_cfg_expand(const char *in, char **why);

/* Plain integer: [+-]digits or [+-]0x hexdigits, int64 range. */
int nd_parse_int64(const char *s, int64_t *out);
/* Non-negative integer with an optional B/KB/MB/GB/KiB/MiB/GiB suffix. */
int nd_parse_size(const char *s, uint64_t *out);
/* Typed read of a size (see nd_parse_size); errors as the nd_cfg_as_*. */
int nd_cfg_as_size(nd_cfg_node *n, nd_errors *e, uint64_t *out);

#endif
