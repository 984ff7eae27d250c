/* HTTP/1.x request heads (host/http/parse.c nd_http_parse_head, then the
 * request's header lookup and query decoding).  Input: one byte capping
 * the header slots, then the bytes a client sends.  The head is cut as the
 * connection cuts it (conn.c find_head: leading empty lines skipped, every
 * line ending in CR LF, up to the first empty line), so the parser sees
 * exactly what it can see in production. */
#include <string.h>

#include "fuzz.h"
#include "http/http_internal.h"

/* Length of the head at p[0..n) and its line count, or 0 when the
 * connection would answer before parsing (bare LF) or wait for more. */
static size_t cut_head(const uint8_t *p, size_t n, size_t *lines) {
  size_t i = 0;
  *lines = 0;
  while (i < n) {
    const uint8_t *nl = memchr(p + i, '\n', n - i);
    if (!nl || nl == p + i || nl[-1] != '\r') return 0;
    size_t line_len = (size_t)(nl - 1 - (p + i));
    i = (size_t)(nl - p) + 1;
    ++*lines;
    if (line_len == 0) return i;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t cap = data[0];
  data++, size--;
  while (size >= 2 && data[0] == '\r' && data[1] == '\n') data += 2, size -= 2;
  size_t lines;
  size_t head_len = cut_head(data, size, &lines);
  if (head_len == 0 || lines < 2) return 0;
  size_t maxh = lines < cap ? lines : cap;
  notifd_req *r = nd_req_alloc(maxh, head_len);
  FUZZ_CHECK(r != NULL, "out of memory");
  memcpy(r->head, data, head_len);
  r->head[head_len] = '\0';
  nd_head_info info;
  int rc = nd_http_parse_head(r->head, head_len, r, r->hdrs, maxh, &info);
  if (rc != 0) {
    FUZZ_CHECK(rc == 400 || rc == 417 || rc == 431 || rc == 501 || rc == 505, "status %d", rc);
    FUZZ_CHECK(info.why != NULL, "status %d without a reason", rc);
  } else {
    FUZZ_CHECK(r->path && (r->path[0] == '/' || r->path[0] == '*'), "path '%s'", r->path);
    FUZZ_CHECK(r->method >= 0 && r->method < ND_M_COUNT, "method %d", r->method);
    FUZZ_CHECK(!(info.chunked && info.has_cl), "both Content-Length and chunked accepted");
    FUZZ_CHECK(r->nhdrs <= maxh, "%zu headers in %zu slots", r->nhdrs, maxh);
    for (size_t i = 0; i < r->nhdrs; i++) {
      const char *name = r->hdrs[i].name, *value = r->hdrs[i].value;
      FUZZ_CHECK(name[0] != '\0', "empty header name");
      FUZZ_CHECK(strpbrk(name, ": \t\r\n") == NULL, "header name '%s'", name);
      FUZZ_CHECK(strpbrk(value, "\r\n") == NULL, "header value with CR or LF");
      FUZZ_CHECK(nd_req_header(r, name) != NULL, "header '%s' not found", name);
    }
    /* Query decoding, lazily on the first lookup. */
    (void)nd_req_query(r, "a");
    (void)nd_req_query(r, "");
  }
  nd_req_free(r);
  return 0;
}
