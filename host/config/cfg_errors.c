/* The error list: every config problem is collected, none is fatal alone. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include <notifd/plugin.h>
#include "util/buf.h"

void nd_errors_init(nd_errors *e) { memset(e, 0, sizeof *e); }

/* An error that cannot be stored is still counted as a stored one when
 * possible: a fixed text replaces the message that did not fit. */
static void push(nd_errors *e, char *msg) {
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 8;
    char **v = realloc(e->msgs, cap * sizeof *v);
    if (!v) {
      free(msg);
      return;
    }
    e->msgs = v;
    e->cap = cap;
  }
  if (!msg) msg = strdup("out of memory while reporting an error");
  if (msg) e->msgs[e->n++] = msg;
}

void nd_errors_add(nd_errors *e, const char *file, int line, int col, const char *fmt, ...) {
  if (!e) return;
  nd_buf b;
  nd_buf_init(&b);
  if (file && *file) {
    nd_buf_puts(&b, file);
    if (line > 0) nd_buf_printf(&b, ":%d", line);
    if (line > 0 && col > 0) nd_buf_printf(&b, ":%d", col);
    nd_buf_puts(&b, ": ");
  }
  va_list ap;
  va_start(ap, fmt);
  nd_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  push(e, nd_buf_steal(&b, NULL));
}

void nd_errors_format(const nd_errors *e, char *buf, size_t len) {
  if (!buf || !len) return;
  buf[0] = '\0';
  if (!e) return;
  size_t off = 0;
  for (size_t i = 0; i < e->n && off + 1 < len; i++) {
    int w = snprintf(buf + off, len - off, "%s%s", i ? "\n" : "", e->msgs[i]);
    if (w < 0) break;
    off += (size_t)w;
  }
  /* snprintf truncated the last message if it did not fit; buf stays
   * NUL-terminated either way. */
}

void nd_errors_free(nd_errors *e) {
  if (!e) return;
  for (size_t i = 0; i < e->n; i++) free(e->msgs[i]);
  free(e->msgs);
  nd_errors_init(e);
}

static void mark_used(nd_cfg_node *n) {
  n->used = 1;
  for (size_t i = 0; i < n->n; i++) mark_used(n->items[i]);
}

int nd_errors_backend_missing(nd_errors *e, nd_cfg_node *section, const char *name,
                              const char *what) {
  if (section) mark_used(section);
  nd_errors_add(e, section ? section->file : NULL, section ? section->line : 0,
                section ? section->col : 0,
                "backends.%s: this notifd was built without %s (meson -D%s=enabled with its "
                "library installed)",
                name, what, name);
  return NOTIFD_ENOTSUP;
}
