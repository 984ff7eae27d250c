/* YAML text -> nd_cfg_node tree with positions, through libyaml's event
 * API.  An explicit stack (not recursion) follows the nesting, so hostile
 * input cannot exhaust the C stack; the depth limit keeps the recursive
 * walkers elsewhere in the module bounded too. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/cfg_internal.h"

#define MAX_DEPTH 64
#define MAX_FILE_BYTES (16u << 20)

typedef struct frame {
  nd_cfg_node *node;  /* the map or list being filled */
  int orphan;         /* not attached (bad key, duplicate, wrong root): freed at its end */
  int quiet;          /* inside a dropped subtree: no checks, no expansion */
  int is_key;         /* a map/list used as a key: dropped with its value */
  int have_key;       /* maps: key read, value pending */
  int drop_value;     /* the pending key was refused: discard its value */
  char *key;          /* maps: pending key text */
  int key_line, key_col;
} frame;

typedef struct parse_state {
  nd_cfg_tree *tree;
  nd_errors *errs;
  frame *stack;
  size_t depth, cap;
  int failed;
  int documents;
} parse_state;

void nd_cfg_node_free(nd_cfg_node *n) {
  if (!n) return;
  for (size_t i = 0; i < n->n; i++) nd_cfg_node_free(n->items[i]);
  for (size_t i = 0; i < n->nasked; i++) free(n->asked[i]);
  free(n->asked);
  free(n->items);
  free(n->str);
  free(n->key);
  free(n);
}

void nd_cfg_tree_free(nd_cfg_tree *t) {
  if (!t) return;
  nd_cfg_node_free(t->root);
  free(t->file);
  memset(t, 0, sizeof *t);
}

static void fail_at(parse_state *ps, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_at(parse_state *ps, yaml_mark_t m, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  nd_errors_add(ps->errs, ps->tree->file, (int)m.line + 1, (int)m.column + 1, "%s", msg);
  ps->failed = 1;
}

static void oom(parse_state *ps) {
  nd_errors_add(ps->errs, ps->tree->file, 0, 0, "out of memory while parsing");
  ps->failed = 1;
}

/* Children arrays grow to powers of two; the capacity follows from n. */
static int append_child(nd_cfg_node *parent, nd_cfg_node *child) {
  size_t n = parent->n;
  if (n == 0 || (n & (n - 1)) == 0) {
    size_t cap = n ? n * 2 : 1;
    nd_cfg_node **v = realloc(parent->items, cap * sizeof *v);
    if (!v) return -1;
    parent->items = v;
  }
  parent->items[parent->n++] = child;
  child->parent = parent;
  return 0;
}

static nd_cfg_node *new_node(parse_state *ps, nd_cfg_kind kind, yaml_mark_t m) {
  nd_cfg_node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = kind;
  n->file = ps->tree->file;
  n->line = (int)m.line + 1;
  n->col = (int)m.column + 1;
  return n;
}

static frame *top(parse_state *ps) { return ps->depth ? &ps->stack[ps->depth - 1] : NULL; }

/* Places a finished scalar or a just-opened map/list into its parent.
 * Returns 1 if attached, 0 if the caller must treat it as an orphan,
 * -1 on out-of-memory (n is then freed by the caller as an orphan). */
static int attach(parse_state *ps, nd_cfg_node *n) {
  frame *f = top(ps);
  if (!f) {
    if (n->kind == ND_CFG_MAP) {
      ps->tree->root = n;
      return 1;
    }
    if (!(n->kind == ND_CFG_SCALAR && n->is_null)) {
      nd_errors_add(ps->errs, ps->tree->file, n->line, n->col,
                    "the top level must be a map of settings");
      ps->failed = 1;
    }
    return 0;
  }
  if (f->quiet) {
    /* Inside something that will be dropped: keep the shape only. */
    f->have_key = 0;
    return append_child(f->node, n) < 0 ? -1 : 1;
  }
  if (f->node->kind == ND_CFG_SEQ) return append_child(f->node, n) < 0 ? -1 : 1;
  /* A map value. */
  int drop = f->drop_value;
  f->have_key = 0;
  f->drop_value = 0;
  if (drop) {
    free(f->key);
    f->key = NULL;
    return 0;
  }
  n->key = f->key;
  n->key_line = f->key_line;
  n->key_col = f->key_col;
  f->key = NULL;
  if (append_child(f->node, n) < 0) return -1;
  return 1;
}

static int is_null_text(const char *s) {
  return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
         strcmp(s, "NULL") == 0;
}

static void refuse_anchor_tag(parse_state *ps, yaml_mark_t m, const yaml_char_t *anchor,
                              const yaml_char_t *tag) {
  if (anchor) fail_at(ps, m, "anchors (&%s) are not supported", (const char *)anchor);
  if (tag) fail_at(ps, m, "explicit tags (%s) are not supported", (const char *)tag);
}

/* A scalar in key position: validate and remember it. */
static void map_key(parse_state *ps, frame *f, const yaml_event_t *ev) {
  const char *text = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  yaml_mark_t m = ev->start_mark;
  f->have_key = 1;
  f->drop_value = 0;
  f->key_line = (int)m.line + 1;
  f->key_col = (int)m.column + 1;
  if (f->quiet) return;
  if (memchr(text, '\0', len)) {
    fail_at(ps, m, "a key contains a NUL character");
    f->drop_value = 1;
    return;
  }
  if (len == 0) {
    fail_at(ps, m, "empty map key");
    f->drop_value = 1;
    return;
  }
  for (size_t i = 0; i < f->node->n; i++) {
    nd_cfg_node *c = f->node->items[i];
    if (strcmp(c->key, text) != 0) continue;
    nd_buf path;
    nd_buf_init(&path);
    nd_cfg_key_path(c, &path);
    nd_errors_add(ps->errs, ps->tree->file, f->key_line, f->key_col,
                  "duplicate key '%s' (first at line %d, column %d)",
                  path.data ? path.data : text, c->key_line, c->key_col);
    nd_buf_free(&path);
    ps->failed = 1;
    f->drop_value = 1;
    return;
  }
  f->key = strdup(text);
  if (!f->key) {
    oom(ps);
    f->drop_value = 1;
  }
}

static void expand_scalar(parse_state *ps, nd_cfg_node *n) {
  if (!strchr(n->str, '$')) return;
  char *why = NULL;
  char *v = nd_cfg_expand(n->str, &why);
  if (!v) {
    if (why) nd_cfg_error_at(ps->errs, n, "%s", why);
    else oom(ps);
    free(why);
    ps->failed = 1;
    return;
  }
  free(n->str);
  n->str = v;
}

static void on_scalar(parse_state *ps, const yaml_event_t *ev) {
  yaml_mark_t m = ev->start_mark;
  refuse_anchor_tag(ps, m, ev->data.scalar.anchor, ev->data.scalar.tag);
  frame *f = top(ps);
  if (f && f->node->kind == ND_CFG_MAP && !f->have_key) {
    map_key(ps, f, ev);
    return;
  }
  nd_cfg_node *n = new_node(ps, ND_CFG_SCALAR, m);
  const char *text = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  if (!n || !(n->str = strndup(text, len))) {
    free(n);
    oom(ps);
    return;
  }
  n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
  n->is_null = !n->quoted && is_null_text(n->str);
  int quiet = f && f->quiet;
  if (!quiet && memchr(text, '\0', len)) fail_at(ps, m, "a value contains a NUL character");
  int placed = attach(ps, n);
  if (placed == 1 && !quiet) {
    expand_scalar(ps, n);
    n->is_null = !n->quoted && is_null_text(n->str);
  }
  if (placed < 0) oom(ps);
  if (placed != 1) nd_cfg_node_free(n);
}

static void on_alias(parse_state *ps, const yaml_event_t *ev) {
  fail_at(ps, ev->start_mark, "aliases (*%s) are not supported",
          (const char *)ev->data.alias.anchor);
  frame *f = top(ps);
  if (f && f->node->kind == ND_CFG_MAP && !f->have_key) {
    /* Alias as a key: its value is dropped. */
    f->have_key = 1;
    f->drop_value = 1;
    return;
  }
  nd_cfg_node *n = new_node(ps, ND_CFG_SCALAR, ev->start_mark);
  if (!n || !(n->str = strdup(""))) {
    free(n);
    oom(ps);
    return;
  }
  n->is_null = 1;
  int placed = attach(ps, n);
  if (placed < 0) oom(ps);
  if (placed != 1) nd_cfg_node_free(n);
}

static int on_open(parse_state *ps, const yaml_event_t *ev, nd_cfg_kind kind) {
  yaml_mark_t m = ev->start_mark;
  if (kind == ND_CFG_MAP)
    refuse_anchor_tag(ps, m, ev->data.mapping_start.anchor, ev->data.mapping_start.tag);
  else
    refuse_anchor_tag(ps, m, ev->data.sequence_start.anchor, ev->data.sequence_start.tag);
  if (ps->depth >= MAX_DEPTH) {
    nd_errors_add(ps->errs, ps->tree->file, (int)m.line + 1, (int)m.column + 1,
                  "nesting deeper than %d levels", MAX_DEPTH);
    ps->failed = 1;
    return -1;
  }
  if (ps->depth == ps->cap) {
    size_t cap = ps->cap ? ps->cap * 2 : 8;
    frame *v = realloc(ps->stack, cap * sizeof *v);
    if (!v) {
      oom(ps);
      return -1;
    }
    ps->stack = v;
    ps->cap = cap;
  }
  nd_cfg_node *n = new_node(ps, kind, m);
  if (!n) {
    oom(ps);
    return -1;
  }
  frame nf = {.node = n};
  frame *f = top(ps);
  if (f && f->node->kind == ND_CFG_MAP && !f->have_key) {
    if (!f->quiet) {
      nd_errors_add(ps->errs, ps->tree->file, n->line, n->col, "map keys must be scalars");
      ps->failed = 1;
    }
    nf.is_key = nf.orphan = 1;
  } else {
    int placed = attach(ps, n);
    if (placed < 0) {
      nd_cfg_node_free(n);
      oom(ps);
      return -1;
    }
    nf.orphan = placed == 0;
  }
  nf.quiet = nf.orphan || (f && f->quiet);
  ps->stack[ps->depth++] = nf;
  return 0;
}

static void on_close(parse_state *ps) {
  if (!ps->depth) return;
  frame f = ps->stack[--ps->depth];
  free(f.key);
  if (f.is_key) {
    frame *p = top(ps);
    if (p) {
      p->have_key = 1;
      p->drop_value = 1;
    }
  }
  if (f.orphan) nd_cfg_node_free(f.node);
}

/* libyaml reader errors carry a byte offset, not a mark. */
static void syntax_error(parse_state *ps, const yaml_parser_t *p, const char *text, size_t len) {
  if (p->error == YAML_MEMORY_ERROR) {
    oom(ps);
    return;
  }
  int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
  if (p->error == YAML_READER_ERROR) {
    line = 1;
    col = 1;
    for (size_t i = 0; i < p->problem_offset && i < len; i++) {
      if (text[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
  }
  const char *problem = p->problem ? p->problem : "invalid YAML";
  if (p->context)
    nd_errors_add(ps->errs, ps->tree->file, line, col, "%s (%s)", problem, p->context);
  else
    nd_errors_add(ps->errs, ps->tree->file, line, col, "%s", problem);
  ps->failed = 1;
}

int nd_cfg_parse(const char *text, size_t len, const char *name, nd_cfg_tree *out,
                 nd_errors *errs) {
  memset(out, 0, sizeof *out);
  out->file = strdup(name ? name : "<config>");
  if (!out->file) {
    nd_errors_add(errs, name, 0, 0, "out of memory");
    return -1;
  }
  parse_state ps = {.tree = out, .errs = errs};
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    nd_errors_add(errs, out->file, 0, 0, "out of memory");
    nd_cfg_tree_free(out);
    return -1;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), text ? len : 0);
  int done = 0;
  while (!done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      syntax_error(&ps, &parser, text, len);
      break;
    }
    switch (ev.type) {
    case YAML_STREAM_END_EVENT: done = 1; break;
    case YAML_DOCUMENT_START_EVENT:
      if (++ps.documents > 1) {
        fail_at(&ps, ev.start_mark, "only one YAML document is allowed");
        done = 1;
      }
      break;
    case YAML_SCALAR_EVENT: on_scalar(&ps, &ev); break;
    case YAML_ALIAS_EVENT: on_alias(&ps, &ev); break;
    case YAML_MAPPING_START_EVENT:
      if (on_open(&ps, &ev, ND_CFG_MAP) < 0) done = 1;
      break;
    case YAML_SEQUENCE_START_EVENT:
      if (on_open(&ps, &ev, ND_CFG_SEQ) < 0) done = 1;
      break;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT: on_close(&ps); break;
    default: break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  while (ps.depth) on_close(&ps);
  free(ps.stack);
  if (ps.failed) {
    nd_cfg_node_free(out->root);
    out->root = NULL;
    return -1;
  }
  return 0;
}

int nd_cfg_parse_file(const char *path, nd_cfg_tree *out, nd_errors *errs) {
  memset(out, 0, sizeof *out);
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    nd_errors_add(errs, path, 0, 0, "cannot open: %s", strerror(errno));
    return -1;
  }
  nd_buf b;
  nd_buf_init(&b);
  char chunk[8192];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0) {
    if (b.len + got > MAX_FILE_BYTES) {
      nd_errors_add(errs, path, 0, 0, "file larger than %u bytes", MAX_FILE_BYTES);
      fclose(fp);
      nd_buf_free(&b);
      return -1;
    }
    nd_buf_append(&b, chunk, got);
  }
  int rd_err = ferror(fp);
  fclose(fp);
  if (rd_err || b.oom) {
    nd_errors_add(errs, path, 0, 0, rd_err ? "read error" : "out of memory");
    nd_buf_free(&b);
    return -1;
  }
  int rc = nd_cfg_parse(b.data, b.len, path, out, errs);
  nd_buf_free(&b);
  return rc;
}
