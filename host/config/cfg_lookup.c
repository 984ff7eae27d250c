/* Lookups that mark keys used (and remember what each map was asked for),
 * key paths for messages, and the report of keys nobody read, with
 * did-you-mean suggestions from the keys asked. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_internal.h"

/* A list's item by a decimal index segment ("0", "12"), marking it used. */
static nd_cfg_node *get_item(nd_cfg_node *seq, const char *key, size_t len) {
  size_t i = 0;
  if (len == 0 || len > 9) return NULL;
  for (size_t k = 0; k < len; k++) {
    if (key[k] < '0' || key[k] > '9') return NULL;
    i = i * 10 + (size_t)(key[k] - '0');
  }
  if (i >= seq->n) return NULL;
  seq->items[i]->used = 1;
  return seq->items[i];
}

/* Remembers `key` as one the map's reader knows (once; memory failures
 * only cost a suggestion). */
static void remember_asked(nd_cfg_node *map, const char *key, size_t len) {
  for (size_t i = 0; i < map->nasked; i++)
    if (strlen(map->asked[i]) == len && memcmp(map->asked[i], key, len) == 0) return;
  char **v = realloc(map->asked, (map->nasked + 1) * sizeof *v);
  if (!v) return;
  map->asked = v;
  if ((v[map->nasked] = strndup(key, len)) != NULL) map->nasked++;
}

static nd_cfg_node *get_n(nd_cfg_node *map, const char *key, size_t len) {
  if (map && key && map->kind == ND_CFG_SEQ) return get_item(map, key, len);
  if (!map || !key || map->kind != ND_CFG_MAP) return NULL;
  remember_asked(map, key, len);
  for (size_t i = 0; i < map->n; i++) {
    nd_cfg_node *c = map->items[i];
    if (c->key && strlen(c->key) == len && memcmp(c->key, key, len) == 0) {
      c->used = 1;
      return c;
    }
  }
  return NULL;
}

nd_cfg_node *nd_cfg_get(nd_cfg_node *map, const char *key) {
  return key ? get_n(map, key, strlen(key)) : NULL;
}

/* Element `i` of a list named by a segment of decimal digits ("0", "12"),
 * marked used; NULL when the segment is not one or is out of range. */
static nd_cfg_node *get_i(nd_cfg_node *seq, const char *seg, size_t len) {
  if (!seq || seq->kind != ND_CFG_SEQ || len > 9) return NULL;
  size_t i = 0;
  for (size_t k = 0; k < len; k++) {
    if (seg[k] < '0' || seg[k] > '9') return NULL;
    i = i * 10 + (size_t)(seg[k] - '0');
  }
  if (i >= seq->n) return NULL;
  seq->items[i]->used = 1;
  return seq->items[i];
}

nd_cfg_node *nd_cfg_path(nd_cfg_node *map, const char *dotted) {
  if (!dotted) return NULL;
  nd_cfg_node *cur = map;
  const char *p = dotted;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (len == 0) return NULL;
    cur = cur && cur->kind == ND_CFG_SEQ ? get_i(cur, p, len) : get_n(cur, p, len);
    if (!cur || !dot) return cur;
    p = dot + 1;
  }
}

void nd_cfg_key_path(const nd_cfg_node *n, nd_buf *b) {
  if (!n) return;
  const nd_cfg_node *parent = n->parent;
  if (parent) nd_cfg_key_path(parent, b);
  if (parent && parent->kind == ND_CFG_SEQ) {
    size_t i = 0;
    while (i < parent->n && parent->items[i] != n) i++;
    nd_buf_printf(b, "[%zu]", i);
  } else if (n->key) {
    if (b->len) nd_buf_puts(b, ".");
    nd_buf_puts(b, n->key);
  }
}

void nd_cfg_error_at(nd_errors *e, const nd_cfg_node *n, const char *fmt, ...) {
  nd_buf b;
  nd_buf_init(&b);
  nd_cfg_key_path(n, &b);
  if (b.len) {
    /* "key 'a.b': " prefix, then the message. */
    nd_buf path = b;
    nd_buf_init(&b);
    nd_buf_printf(&b, "key '%s': ", path.data);
    nd_buf_free(&path);
  }
  va_list ap;
  va_start(ap, fmt);
  nd_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  char *msg = nd_buf_steal(&b, NULL);
  nd_errors_add(e, n ? n->file : NULL, n ? n->line : 0, n ? n->col : 0, "%s",
                msg ? msg : "out of memory");
  free(msg);
}

/* Optimal string alignment distance (insertions, deletions, substitutions,
 * adjacent transpositions), case-insensitive; stops counting past `max`. */
static size_t edit_distance(const char *a, const char *b, size_t max) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return max + 1;
  if ((la > lb ? la - lb : lb - la) > max) return max + 1;
  size_t d[65][65];
  for (size_t i = 0; i <= la; i++) d[i][0] = i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
      size_t v = d[i - 1][j - 1] + !same;
      if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
          tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) &&
          d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  return d[la][lb];
}

/* The key asked of k's map that k most likely misspells, or NULL: within
 * 1 edit for keys up to 4 characters, 2 up to 8, 3 beyond. */
static const char *suggestion(const nd_cfg_node *k) {
  const nd_cfg_node *map = k->parent;
  if (!k->key || !map || map->kind != ND_CFG_MAP) return NULL;
  size_t len = strlen(k->key), max = len <= 4 ? 1 : len <= 8 ? 2 : 3, best_d = max + 1;
  const char *best = NULL;
  for (size_t i = 0; i < map->nasked; i++) {
    size_t d = edit_distance(k->key, map->asked[i], max);
    if (d > 0 && d < best_d) {
      best_d = d;
      best = map->asked[i];
    }
  }
  return best;
}

void nd_cfg_report_unknown_key(const nd_cfg_node *k, const char *path, nd_errors *e) {
  int kl = k->key_line ? k->key_line : k->line, kc = k->key_line ? k->key_col : k->col;
  const char *hint = suggestion(k);
  if (hint)
    nd_errors_add(e, k->file, kl, kc, "unknown key '%s' (did you mean '%s'?)", path, hint);
  else
    nd_errors_add(e, k->file, kl, kc, "unknown key '%s'", path);
}

void nd_cfg_mark_used(nd_cfg_node *n) {
  if (!n) return;
  n->used = 1;
  for (size_t i = 0; i < n->n; i++) nd_cfg_mark_used(n->items[i]);
}

void nd_cfg_forgive_unread(nd_cfg_node *n) {
  if (!n) return;
  n->used = 1;
  for (size_t i = 0; i < n->n; i++) {
    nd_cfg_node *c = n->items[i];
    if (n->kind == ND_CFG_MAP && !c->used && suggestion(c))
      continue; /* stays unused: reported with its suggestion */
    nd_cfg_forgive_unread(c);
  }
}

static void report(nd_cfg_node *n, nd_buf *path, nd_errors *e) {
  if (!n) return;
  size_t base = path->len;
  for (size_t i = 0; i < n->n; i++) {
    nd_cfg_node *c = n->items[i];
    if (n->kind == ND_CFG_MAP) {
      if (base) nd_buf_puts(path, ".");
      nd_buf_puts(path, c->key ? c->key : "?");
      if (!c->used)
        nd_cfg_report_unknown_key(c, path->data ? path->data : "?", e);
      else
        report(c, path, e);
    } else if (n->kind == ND_CFG_SEQ) {
      nd_buf_printf(path, "[%zu]", i);
      report(c, path, e);
    }
    if (path->data) {
      path->len = base;
      path->data[base] = '\0';
    }
  }
}

void nd_cfg_report_unused(nd_cfg_node *n, const char *prefix, nd_errors *e) {
  nd_buf path;
  nd_buf_init(&path);
  if (prefix) nd_buf_puts(&path, prefix);
  report(n, &path, e);
  nd_buf_free(&path);
}
