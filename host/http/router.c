/* Router: a tree of path segments.  Each node has literal children and at
 * most one `{param}` child; literal segments win over parameters, and the
 * search backtracks so "/a/b" can still reach "/a/{x}" routes when the
 * literal branch has no route for the path.  Matching works on the raw
 * (still percent-encoded) path; parameter values are decoded afterwards. */
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

#define MAX_SEGMENTS 64

typedef struct route {
  nd_route_info info;                      /* first: handed out as is */
  char *names[ND_ROUTE_MAX_PARAMS];
  unsigned short param_seg[ND_ROUTE_MAX_PARAMS]; /* segment index of each */
  size_t nparams;
} route;

typedef struct rnode rnode;
struct rnode {
  char *seg;                 /* literal text; NULL for the root and params */
  size_t seglen;
  rnode **kids;              /* literal children */
  size_t nkids, capkids;
  rnode *param;              /* the {name} child */
  route *routes[ND_M_COUNT];
};

struct nd_router {
  rnode root;
  size_t count;
};

typedef struct span {
  const char *p;
  size_t n;
} span;

nd_router *nd_router_new(void) { return calloc(1, sizeof(nd_router)); }

static void route_free(route *rt) {
  if (!rt) return;
  free((char *)rt->info.pattern);
  free((char *)rt->info.owner);
  for (size_t i = 0; i < rt->nparams; i++) free(rt->names[i]);
  free(rt);
}

static void node_clear(rnode *n) {
  for (size_t i = 0; i < n->nkids; i++) {
    node_clear(n->kids[i]);
    free(n->kids[i]);
  }
  free(n->kids);
  if (n->param) {
    node_clear(n->param);
    free(n->param);
  }
  for (int m = 0; m < ND_M_COUNT; m++) route_free(n->routes[m]);
  free(n->seg);
}

void nd_router_free(nd_router *r) {
  if (!r) return;
  node_clear(&r->root);
  free(r);
}

size_t nd_router_count(const nd_router *r) { return r ? r->count : 0; }

/* Splits "/a/b" into {"a","b"}; "/" gives one empty segment.  -1 if the
 * path does not start with '/' or has too many segments. */
static int split(const char *path, size_t len, span *segs, size_t *nseg) {
  if (len == 0 || path[0] != '/') return -1;
  size_t n = 0, i = 1, start = 1;
  for (;; i++) {
    if (i == len || path[i] == '/') {
      if (n == MAX_SEGMENTS) return -1;
      segs[n].p = path + start;
      segs[n].n = i - start;
      n++;
      start = i + 1;
      if (i == len) break;
    }
  }
  *nseg = n;
  return 0;
}

static int is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Literal segment text allowed in a pattern: visible ASCII, none of the
 * characters with a meaning in URLs or patterns. */
static int literal_ok(const span *s) {
  for (size_t i = 0; i < s->n; i++) {
    unsigned char c = (unsigned char)s->p[i];
    if (c <= 0x20 || c >= 0x7f || c == '{' || c == '}' || c == '?' || c == '#') return 0;
  }
  return 1;
}

static rnode *literal_child(const rnode *n, const char *p, size_t len) {
  for (size_t i = 0; i < n->nkids; i++)
    if (n->kids[i]->seglen == len && memcmp(n->kids[i]->seg, p, len) == 0) return n->kids[i];
  return NULL;
}

static rnode *add_literal(rnode *n, const span *s) {
  rnode *k = literal_child(n, s->p, s->n);
  if (k) return k;
  if (n->nkids == n->capkids) {
    size_t cap = n->capkids ? n->capkids * 2 : 4;
    rnode **kids = realloc(n->kids, cap * sizeof *kids);
    if (!kids) return NULL;
    n->kids = kids;
    n->capkids = cap;
  }
  k = calloc(1, sizeof *k);
  if (!k || !(k->seg = nd_strndup(s->p, s->n))) {
    free(k);
    return NULL;
  }
  k->seglen = s->n;
  n->kids[n->nkids++] = k;
  return k;
}

int nd_router_add(nd_router *r, const char *method, const char *pattern, notifd_http_handler h,
                  void *ud, uint32_t auth, uint64_t max_body, const char *owner) {
  if (!r || !method || !pattern || !h) return NOTIFD_EINVAL;
  int m = nd_method_index(method, strlen(method));
  if (m < 0) return NOTIFD_EINVAL;
  span segs[MAX_SEGMENTS];
  size_t nseg;
  if (split(pattern, strlen(pattern), segs, &nseg) < 0) return NOTIFD_EINVAL;

  route *rt = calloc(1, sizeof *rt);
  if (!rt) return NOTIFD_ENOMEM;
  /* Validate the whole pattern before touching the tree. */
  for (size_t i = 0; i < nseg; i++) {
    const span *s = &segs[i];
    if (s->n >= 2 && s->p[0] == '{' && s->p[s->n - 1] == '}') {
      if (s->n == 2 || rt->nparams == ND_ROUTE_MAX_PARAMS) goto invalid;
      for (size_t k = 1; k + 1 < s->n; k++)
        if (!is_name_char(s->p[k])) goto invalid;
      char *name = nd_strndup(s->p + 1, s->n - 2);
      if (!name) {
        route_free(rt);
        return NOTIFD_ENOMEM;
      }
      for (size_t k = 0; k < rt->nparams; k++)
        if (strcmp(rt->names[k], name) == 0) {
          free(name);
          goto invalid;
        }
      rt->param_seg[rt->nparams] = (unsigned short)i;
      rt->names[rt->nparams++] = name;
    } else if (!literal_ok(s) || (s->n == 0 && i + 1 < nseg)) {
      goto invalid; /* empty segments only as a trailing slash */
    }
  }
  rt->info.handler = h;
  rt->info.ud = ud;
  rt->info.auth = auth;
  rt->info.max_body = max_body;
  rt->info.pattern = strdup(pattern);
  rt->info.owner = strdup(owner ? owner : "host");
  if (!rt->info.pattern || !rt->info.owner) {
    route_free(rt);
    return NOTIFD_ENOMEM;
  }

  rnode *n = &r->root;
  size_t pi = 0;
  for (size_t i = 0; i < nseg; i++) {
    if (pi < rt->nparams && rt->param_seg[pi] == i) {
      pi++;
      if (!n->param && !(n->param = calloc(1, sizeof(rnode)))) goto oom;
      n = n->param;
    } else if (!(n = add_literal(n, &segs[i]))) {
      goto oom;
    }
  }
  if (n->routes[m]) {
    route_free(rt);
    return NOTIFD_EEXIST;
  }
  n->routes[m] = rt;
  r->count++;
  return 0;
invalid:
  route_free(rt);
  return NOTIFD_EINVAL;
oom:
  /* Nodes created on the way stay (empty) in the tree: harmless. */
  route_free(rt);
  return NOTIFD_ENOMEM;
}

static int has_any(const rnode *n) {
  for (int m = 0; m < ND_M_COUNT; m++)
    if (n->routes[m]) return 1;
  return 0;
}

static route *route_for(const rnode *n, int m) {
  if (n->routes[m]) return n->routes[m];
  if (m == ND_M_HEAD) return n->routes[ND_M_GET]; /* GET routes serve HEAD */
  return NULL;
}

/* Depth-first search, literals first.  `other` remembers the first node
 * (most literal) that matched the path for other methods, for 405. */
static route *search(const rnode *n, const span *segs, size_t nseg, size_t i, int m,
                     const rnode **other) {
  if (i == nseg) {
    route *rt = route_for(n, m);
    if (!rt && !*other && has_any(n)) *other = n;
    return rt;
  }
  const rnode *k = literal_child(n, segs[i].p, segs[i].n);
  if (k) {
    route *rt = search(k, segs, nseg, i + 1, m, other);
    if (rt) return rt;
  }
  if (n->param && segs[i].n > 0) return search(n->param, segs, nseg, i + 1, m, other);
  return NULL;
}

static void write_allow(const rnode *n, char *allow, size_t allowlen) {
  if (!allow || !allowlen) return;
  size_t o = 0;
  allow[0] = '\0';
  for (int m = 0; m < ND_M_COUNT; m++) {
    int present = n->routes[m] != NULL || (m == ND_M_HEAD && n->routes[ND_M_GET]);
    if (!present) continue;
    const char *name = nd_method_name(m);
    size_t need = strlen(name) + (o ? 2 : 0);
    if (o + need + 1 > allowlen) break;
    if (o) {
      memcpy(allow + o, ", ", 2);
      o += 2;
    }
    memcpy(allow + o, name, strlen(name));
    o += strlen(name);
    allow[o] = '\0';
  }
}

void nd_route_match_clear(nd_route_match *m) {
  if (!m) return;
  for (size_t i = 0; i < m->nparams; i++) free(m->values[i]);
  memset(m, 0, sizeof *m);
}

/* First node (literals first) with a route for any method. */
static const rnode *search_any(const rnode *n, const span *segs, size_t nseg, size_t i) {
  if (i == nseg) return has_any(n) ? n : NULL;
  const rnode *k = literal_child(n, segs[i].p, segs[i].n);
  const rnode *found = k ? search_any(k, segs, nseg, i + 1) : NULL;
  if (!found && n->param && segs[i].n > 0) found = search_any(n->param, segs, nseg, i + 1);
  return found;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes a path segment ('+' stays '+').  NULL on a malformed
 * escape, an encoded NUL, or OOM. */
static char *decode_segment(const char *p, size_t n) {
  char *out = malloc(n + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] != '%') {
      out[o++] = p[i];
      continue;
    }
    int hi = n - i >= 3 ? hexval(p[i + 1]) : -1;
    int lo = n - i >= 3 ? hexval(p[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
      free(out);
      return NULL;
    }
    out[o++] = (char)(hi * 16 + lo);
    i += 2;
  }
  out[o] = '\0';
  return out;
}

int nd_router_match(nd_router *r, const char *method, const char *path, nd_route_match *m,
                    char *allow, size_t allowlen) {
  if (m) memset(m, 0, sizeof *m);
  if (allow && allowlen) allow[0] = '\0';
  if (!r || !method || !path || !m) return 404;
  int mi = nd_method_index(method, strlen(method));
  span segs[MAX_SEGMENTS];
  size_t nseg;
  if (split(path, strlen(path), segs, &nseg) < 0) return 404;
  const rnode *other = NULL;
  route *rt = NULL;
  if (mi >= 0)
    rt = search(&r->root, segs, nseg, 0, mi, &other);
  else
    other = search_any(&r->root, segs, nseg, 0);
  if (!rt) {
    if (!other) return 404;
    write_allow(other, allow, allowlen);
    return 405;
  }
  m->route = &rt->info;
  for (size_t i = 0; i < rt->nparams; i++) {
    const span *s = &segs[rt->param_seg[i]];
    char *v = decode_segment(s->p, s->n);
    if (!v) {
      /* Undecodable: no such resource (and no errno-style detail to give). */
      nd_route_match_clear(m);
      return 404;
    }
    m->names[i] = rt->names[i];
    m->values[i] = v;
    m->nparams = i + 1;
  }
  return 0;
}
