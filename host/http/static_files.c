/* Static files under http.static_dir for GET/HEAD requests no route
 * matched (the web client).  The decoded path may not contain dot segments
 * or hidden names, and the resolved file must stay under the directory's
 * real path (symlinks included).  Files are small web assets read on the
 * loop from the page cache; answers carry Cache-Control: no-cache with an
 * ETag so browsers revalidate cheaply (304). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/http_internal.h"
#include "log/log.h"

#define MAX_FILE (32u * 1024 * 1024)

struct nd_static {
  char *root;      /* realpath of the directory */
  size_t rootlen;
};

nd_static *nd_static_new(const char *dir) {
  char *root = realpath(dir, NULL);
  struct stat st;
  if (!root || stat(root, &st) < 0 || !S_ISDIR(st.st_mode)) {
    ND_WARN("http", "static_dir '%s' is not a readable directory: static files disabled", dir);
    free(root);
    return NULL;
  }
  nd_static *s = calloc(1, sizeof *s);
  if (!s) {
    free(root);
    return NULL;
  }
  s->root = root;
  s->rootlen = strlen(root);
  return s;
}

void nd_static_free(nd_static *s) {
  if (!s) return;
  free(s->root);
  free(s);
}

static const char *content_type(const char *path) {
  static const struct {
    const char *ext, *type;
  } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".png", "image/png"},
      {".svg", "image/svg+xml"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
      {".map", "application/json"},
      {".webmanifest", "application/manifest+json"},
  };
  const char *dot = strrchr(path, '.');
  const char *slash = strrchr(path, '/');
  if (dot && (!slash || dot > slash))
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
      if (strcasecmp(dot, types[i].ext) == 0) return types[i].type;
  return "application/octet-stream";
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes the URL path into out (NUL-terminated); -1 on bad escapes,
 * encoded NULs or overflow. */
static int decode_path(const char *p, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; p[i]; i++) {
    char c = p[i];
    if (c == '%') {
      int hi = hexval(p[i + 1]), lo = hi < 0 ? -1 : hexval(p[i + 2]);
      if (hi < 0 || lo < 0 || (hi | lo) == 0) return -1;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (o + 1 >= cap) return -1;
    out[o++] = c;
  }
  out[o] = '\0';
  return 0;
}

/* Dot segments ("." / "..") and hidden names are never served. */
static int path_safe(const char *p) {
  for (const char *seg = p; seg; seg = strchr(seg, '/')) {
    while (*seg == '/') seg++;
    if (*seg == '.') return 0;
  }
  return 1;
}

/* True when If-None-Match lists `etag` (weak comparison) or is "*". */
static int etag_matches(const char *inm, const char *etag) {
  while (*inm) {
    while (*inm == ' ' || *inm == '\t' || *inm == ',') inm++;
    const char *s = inm;
    while (*inm && *inm != ',') inm++;
    const char *e = inm;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (e - s == 1 && *s == '*') return 1;
    if (e - s > 2 && strncmp(s, "W/", 2) == 0) s += 2;
    if ((size_t)(e - s) == strlen(etag) && strncmp(s, etag, (size_t)(e - s)) == 0) return 1;
  }
  return 0;
}

/* The redirect's Location is the request's own path plus "/": a path
 * starting with "//" (or "/\\", which browsers read as "//") would make
 * it a network-path reference to another host, an open redirect.  Such
 * paths get no redirect (404): the client can ask with one slash. */
static int redirect_to_dir(notifd_req *r) {
  if (r->path[0] != '/' || r->path[1] == '/' || r->path[1] == '\\') return 0;
  size_t n = strlen(r->path) + 2 + (r->query ? strlen(r->query) + 1 : 0);
  char *loc = malloc(n);
  if (!loc) {
    nd_respond_error(r, 500, "out of memory");
    return 1;
  }
  snprintf(loc, n, "%s/%s%s", r->path, r->query ? "?" : "", r->query ? r->query : "");
  nd_resp_header(r, "Location", loc);
  free(loc);
  nd_respond_error(r, 301, "moved permanently");
  return 1;
}

int nd_static_serve(nd_static *s, notifd_req *r) {
  if (!s || (r->method != ND_M_GET && r->method != ND_M_HEAD)) return 0;
  char rel[PATH_MAX];
  if (decode_path(r->path, rel, sizeof rel - 16) < 0 || rel[0] != '/' || !path_safe(rel)) return 0;
  size_t rl = strlen(rel);
  int dir_url = rel[rl - 1] == '/';
  if (dir_url) memcpy(rel + rl, "index.html", sizeof "index.html");
  char full[PATH_MAX * 2];
  if ((size_t)snprintf(full, sizeof full, "%s%s", s->root, rel) >= sizeof full) return 0;
  char *real = realpath(full, NULL);
  if (!real) return 0;
  int inside = strncmp(real, s->root, s->rootlen) == 0 &&
               (real[s->rootlen] == '/' || real[s->rootlen] == '\0');
  struct stat st;
  if (!inside || stat(real, &st) < 0) {
    free(real);
    return 0;
  }
  if (S_ISDIR(st.st_mode)) {
    free(real);
    return dir_url ? 0 : redirect_to_dir(r);
  }
  if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
    free(real);
    return 0;
  }
  char etag[64], lastmod[40];
  snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
           (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
               (unsigned long long)st.st_mtim.tv_nsec);
  nd_http_date(st.st_mtim.tv_sec, lastmod);
  const char *ctype = content_type(real);
  nd_resp_header(r, "Cache-Control", "no-cache");
  nd_resp_header(r, "ETag", etag);
  nd_resp_header(r, "Last-Modified", lastmod);
  nd_resp_header(r, "X-Content-Type-Options", "nosniff");
  const char *inm = nd_req_header(r, "If-None-Match");
  if (inm && etag_matches(inm, etag)) {
    free(real);
    nd_respond(r, 304, NULL, NULL, 0);
    return 1;
  }
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  free(real);
  size_t size = (size_t)st.st_size;
  char *buf = fd >= 0 ? malloc(size + 1) : NULL;
  size_t got = 0;
  while (buf && got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  if (fd >= 0) close(fd);
  if (!buf || got != size) {
    free(buf);
    ND_WARN("http", "static file %s could not be read", r->path);
    nd_respond_error(r, 500, "file could not be read");
    return 1;
  }
  nd_respond_heap(r, 200, ctype, buf, size);
  return 1;
}
