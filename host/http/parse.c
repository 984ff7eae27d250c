/* Strict HTTP/1.x request parsing: the request head (parsed in place in
 * the request's own copy) and chunked request bodies (decoded straight from
 * the connection's input buffer).  RFC 9112 rules that matter for request
 * smuggling are enforced: no obs-fold, no whitespace before ':', one valid
 * Content-Length, never both Content-Length and Transfer-Encoding, chunked
 * as the only transfer coding. */
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "http/http_internal.h"

#define CHUNK_LINE_MAX 1024

static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field values: visible chars, SP, HTAB and obs-text; no other controls. */
static int value_ok(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
  }
  return 1;
}

static int parse_u64(const char *s, uint64_t *out) {
  if (!*s) return -1;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    if (v > (UINT64_MAX - 9) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return 0;
}

/* Case-insensitive comma-separated token list membership. */
static int list_has(const char *v, const char *token) {
  size_t tl = strlen(token);
  while (*v) {
    while (*v == ' ' || *v == '\t' || *v == ',') v++;
    const char *s = v;
    while (*v && *v != ',') v++;
    const char *e = v;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0) return 1;
  }
  return 0;
}

/* Next line of the head: returns its length (without CR LF) and sets
 * *next past the terminator; the line is NUL-terminated in place.  Lines
 * end with CR LF only: a bare LF, or a CR anywhere else, is how one
 * parser is made to see other lines than the next (request smuggling);
 * RFC 9112 section 2.2 lets a server refuse them, and we do (-1). */
static long next_line(char *p, char *end, char **next) {
  char *nl = memchr(p, '\n', (size_t)(end - p));
  if (!nl || nl == p || nl[-1] != '\r') return -1;
  char *e = nl - 1;
  if (memchr(p, '\r', (size_t)(e - p))) return -2;
  *e = '\0';
  *next = nl + 1;
  return (long)(e - p);
}

#define FAIL(st, msg) \
  do {                  \
    info->why = (msg);  \
    return (st);        \
  } while (0)

static int parse_request_line(char *line, size_t n, notifd_req *r, nd_head_info *info) {
  char *sp1 = memchr(line, ' ', n);
  if (!sp1 || sp1 == line) FAIL(400, "malformed request line");
  for (char *c = line; c < sp1; c++)
    if (!is_tchar((unsigned char)*c)) FAIL(400, "malformed request line");
  int m = nd_method_index(line, (size_t)(sp1 - line));
  char *target = sp1 + 1;
  char *sp2 = memchr(target, ' ', (size_t)(line + n - target));
  if (!sp2 || sp2 == target) FAIL(400, "malformed request line");
  char *version = sp2 + 1;
  size_t vl = (size_t)(line + n - version);
  if (vl != 8 || memcmp(version, "HTTP/", 5) != 0 || version[6] != '.' || version[5] < '0' ||
      version[5] > '9' || version[7] < '0' || version[7] > '9')
    FAIL(400, "malformed request line");
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
    FAIL(505, "HTTP version not supported");
  r->minor = version[7] - '0';
  if (m < 0) FAIL(501, "method not implemented"); /* well-formed, unknown */
  r->method = m;
  *sp2 = '\0';
  for (char *c = target; c < sp2; c++)
    if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
      FAIL(400, "invalid character in request target");

  char *path = target;
  if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
    /* absolute-form: the authority is ignored (Host decides nothing here) */
    char *auth = strstr(target, "//") + 2;
    char *slash = auth + strcspn(auth, "/?#");
    if (*slash != '/') {
      /* "http://host" or "http://host?q": path is "/" */
      r->path = "/";
      r->query = *slash == '?' ? slash + 1 : NULL;
      if (r->query) {
        char *frag = strchr(slash + 1, '#');
        if (frag) *frag = '\0';
      }
      return 0;
    }
    path = slash;
  } else if (*target != '/' && !(target[0] == '*' && target[1] == '\0' && m == ND_M_OPTIONS)) {
    FAIL(400, "invalid request target");
  }
  char *frag = strchr(path, '#');
  if (frag) *frag = '\0';
  char *q = strchr(path, '?');
  if (q) {
    *q = '\0';
    r->query = q + 1;
  }
  r->path = path;
  return 0;
}

/* FAILs unless the line was read. */
#define LINE(nn)                                                                   \
  do {                                                                             \
    if ((nn) == -1) FAIL(400, "bare LF in request head");                          \
    if ((nn) < 0) FAIL(400, "bare CR in request head");                            \
  } while (0)

int nd_http_parse_head(char *buf, size_t len, notifd_req *r, nd_header *hdrs, size_t maxh,
                       nd_head_info *info) {
  memset(info, 0, sizeof *info);
  char *end = buf + len, *p = buf, *next = end;
  long ln = next_line(p, end, &next);
  LINE(ln);
  size_t n = (size_t)ln;
  int rc = parse_request_line(p, n, r, info);
  if (rc) return rc;
  int seen_te = 0;
  size_t nh = 0;
  for (p = next; p < end; p = next) {
    ln = next_line(p, end, &next);
    LINE(ln);
    n = (size_t)ln;
    if (n == 0) break; /* the empty line ending the head */
    if (p[0] == ' ' || p[0] == '\t') FAIL(400, "obsolete header line folding");
    char *colon = memchr(p, ':', n);
    if (!colon || colon == p) FAIL(400, "malformed header line");
    for (char *c = p; c < colon; c++) /* includes "Name :" */
      if (!is_tchar((unsigned char)*c)) FAIL(400, "invalid header name");
    char *v = colon + 1, *ve = p + n;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    if (!value_ok(v, (size_t)(ve - v))) FAIL(400, "invalid character in header value");
    if (nh == maxh) FAIL(431, "too many header fields");
    *colon = '\0';
    *ve = '\0';
    hdrs[nh].name = p;
    hdrs[nh].value = v;
    nh++;

    size_t nl = (size_t)(colon - p);
    if (nl == 14 && strcasecmp(p, "Content-Length") == 0) {
      uint64_t cl;
      if (parse_u64(v, &cl) < 0) FAIL(400, "invalid Content-Length");
      if (info->has_cl && cl != info->cl) FAIL(400, "conflicting Content-Length headers");
      info->has_cl = 1;
      info->cl = cl;
    } else if (nl == 17 && strcasecmp(p, "Transfer-Encoding") == 0) {
      if (seen_te++) FAIL(400, "repeated Transfer-Encoding");
      if (strcasecmp(v, "chunked") != 0) {
        if (list_has(v, "chunked")) FAIL(400, "chunked must be the only transfer coding");
        FAIL(501, "transfer coding not implemented");
      }
      info->chunked = 1;
    } else if (nl == 10 && strcasecmp(p, "Connection") == 0) {
      if (list_has(v, "close")) info->conn_close = 1;
      if (list_has(v, "keep-alive")) info->conn_keepalive = 1;
    } else if (nl == 6 && strcasecmp(p, "Expect") == 0) {
      if (strcasecmp(v, "100-continue") != 0) FAIL(417, "expectation not supported");
      info->expect_continue = 1;
    } else if (nl == 4 && strcasecmp(p, "Host") == 0) {
      info->nhost++;
    }
  }
  r->hdrs = hdrs;
  r->nhdrs = nh;
  if (info->chunked && info->has_cl)
    FAIL(400, "both Content-Length and Transfer-Encoding");
  if (r->minor == 0) {
    if (info->chunked) FAIL(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (info->nhost > 1) FAIL(400, "repeated Host header");
    info->expect_continue = 0; /* MUST be ignored in HTTP/1.0 */
  } else if (info->nhost != 1) {
    FAIL(400, info->nhost ? "repeated Host header" : "missing Host header");
  }
  return 0;
}

/* ---- chunked bodies ---------------------------------------------------- */
enum { CH_SIZE = 0, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* "1a3f[ ;ext...]" -> size; -1 when malformed. */
static int parse_chunk_size(const char *line, size_t n, uint64_t *out) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < n && hexval(line[i]) >= 0; i++) {
    if (v >> 60) return -1;
    v = (v << 4) | (uint64_t)hexval(line[i]);
  }
  if (i == 0) return -1;
  while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
  if (i < n && line[i] != ';') return -1;
  for (; i < n; i++) /* extensions are ignored but must not hide controls */
    if ((unsigned char)line[i] < 0x20 && line[i] != '\t') return -1;
  *out = v;
  return 0;
}

static int bare(nd_chunked *c, const char *why) {
  c->why = why;
  return 400;
}

int nd_chunked_feed(nd_chunked *c, struct evbuffer *in, nd_buf *out, uint64_t limit,
                    size_t max_trailer) {
  for (;;) {
    switch (c->state) {
    case CH_SIZE:
    case CH_TRAILER: {
      size_t eol_len = 0;
      struct evbuffer_ptr e = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
      if (e.pos < 0) {
        size_t have = evbuffer_get_length(in);
        if (c->state == CH_SIZE && have > CHUNK_LINE_MAX) return 400;
        if (c->state == CH_TRAILER && c->trailer_bytes + have > max_trailer) return 431;
        return 0;
      }
      size_t n = (size_t)e.pos;
      /* The trailer limit first: had the line arrived in pieces, its first
       * n + eol_len - 1 bytes would already have been refused above, and
       * the answer must not depend on how the bytes were split. */
      if (c->state == CH_TRAILER && c->trailer_bytes + n + eol_len - 1 > max_trailer) return 431;
      if (eol_len != 2) return bare(c, "bare LF in chunked body");
      if (evbuffer_search_range(in, "\r", 1, NULL, &e).pos >= 0)
        return bare(c, "bare CR in chunked body");
      if (c->state == CH_TRAILER) {
        evbuffer_drain(in, n + eol_len);
        if (n == 0) {
          c->state = CH_DONE;
          return 1;
        }
        c->trailer_bytes += n + eol_len;
        if (c->trailer_bytes > max_trailer) return 431;
        continue;
      }
      if (n > CHUNK_LINE_MAX) return 400;
      char line[CHUNK_LINE_MAX + 1];
      evbuffer_remove(in, line, n);
      evbuffer_drain(in, eol_len);
      line[n] = '\0';
      uint64_t size;
      if (parse_chunk_size(line, n, &size) < 0) return 400;
      if (size == 0) {
        c->state = CH_TRAILER;
        continue;
      }
      if ((uint64_t)out->len > limit || size > limit - (uint64_t)out->len) return 413;
      if (nd_buf_reserve(out, (size_t)size) < 0) return 503;
      c->remaining = size;
      c->state = CH_DATA;
      continue;
    }
    case CH_DATA: {
      size_t have = evbuffer_get_length(in);
      if (have == 0) return 0;
      size_t take = have < c->remaining ? have : (size_t)c->remaining;
      if (nd_buf_reserve(out, take) < 0) return 503;
      evbuffer_remove(in, out->data + out->len, take);
      out->len += take;
      out->data[out->len] = '\0';
      c->remaining -= take;
      if (c->remaining) return 0;
      c->state = CH_DATA_END;
      continue;
    }
    case CH_DATA_END: {
      unsigned char two[2];
      ev_ssize_t got = evbuffer_copyout(in, two, 2);
      if (got < 1) return 0;
      if (two[0] != '\r') return bare(c, two[0] == '\n' ? "bare LF in chunked body" : NULL);
      if (got < 2) return 0;
      if (two[1] != '\n') return bare(c, "bare CR in chunked body");
      evbuffer_drain(in, 2);
      c->state = CH_SIZE;
      continue;
    }
    default:
      return 1;
    }
  }
}
