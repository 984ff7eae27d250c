/* Internal types shared by the HTTP server, the request object, the router
 * and the outgoing client.  Not part of any public or cross-area contract. */
#ifndef ND_HTTP_INTERNAL_H
#define ND_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>

#include "http/http.h"
#include "metrics/metrics.h"
#include "util/buf.h"

/* ---- methods ----------------------------------------------------------- */
enum {
  ND_M_GET = 0,
  ND_M_HEAD,
  ND_M_POST,
  ND_M_PUT,
  ND_M_PATCH,
  ND_M_DELETE,
  ND_M_OPTIONS,
  ND_M_COUNT
};
/* Index of a method token (exact, case-sensitive as RFC 9110 says), or -1. */
int nd_method_index(const char *s, size_t n);
const char *nd_method_name(int m);

/* ---- metrics ----------------------------------------------------------- */
typedef struct nd_http_metrics {
  nd_metric *requests;     /* notifd_http_requests_total{route,method,status} */
  nd_metric *duration;     /* notifd_http_request_duration_seconds{route,method} */
  nd_metric *connections;  /* notifd_http_connections (sum over listeners) */
  nd_metric *pending_body; /* notifd_http_pending_body_bytes (sum over listeners) */
} nd_http_metrics;

/* Registers (or finds) the HTTP families; every field stays NULL when `reg`
 * is NULL, which the nd_metric_* functions accept. */
void nd_http_metrics_init(nd_http_metrics *m, nd_metrics *reg);
/* Three-digit text of a status code ("200"). */
void nd_status_digits(int status, char out[4]);
const char *nd_status_reason(int status);
/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), locale-independent. */
void nd_http_date(time_t t, char out[40]);

/* ---- request ----------------------------------------------------------- */
typedef struct nd_header {
  const char *name;
  const char *value;
} nd_header;

/* What a request was answered with, handed to whoever reads the answer (a
 * connection or a local call).  `body_heap`, when set, is the malloc'd
 * buffer `body` points into; the sink may take it (set it to NULL). */
typedef struct nd_resp_view {
  int32_t status;
  const char *content_type;     /* NULL = none given */
  const char *extra;            /* "Name: value\r\n" lines, may be NULL */
  size_t extra_len;
  const void *body;
  size_t len;
  char *body_heap;
} nd_resp_view;

typedef void (*nd_req_deliver_fn)(void *sink, notifd_req *req, nd_resp_view *resp);

struct notifd_req {
  /* request line and head: pointers into `head` (NUL-terminated parts) */
  int method;                   /* ND_M_* */
  int minor;                    /* HTTP/1.<minor> */
  const char *path;             /* raw (not decoded), no query */
  const char *query;            /* raw, after '?', or NULL */
  nd_header *hdrs;
  size_t nhdrs;
  char *head;                   /* owned block (part of this allocation
                                   unless head_heap) */
  int head_heap;
  char *body;                   /* owned, NUL-terminated, or NULL */
  size_t body_len;

  /* routing */
  const nd_route_info *route;   /* NULL before routing / for 404, 405 */
  const char *route_label;      /* metrics label */
  nd_route_match match;

  /* lazily built */
  char *qbuf;                   /* decoded query: name\0value\0... */
  const char **qkv;             /* name, value pairs into qbuf */
  size_t nq;
  int q_parsed;
  json_t *json;
  int json_parsed;
  char *auth_subject;
  nd_buf resp_hdrs;             /* extra response header lines */

  /* state */
  int answered;                 /* respond* called */
  int internal_local;           /* a local: call that asked for internal
                                   auth: same process, trusted */
  int in_handler;               /* handler is on the stack: free after */
  int dispatched;               /* counted in the server's in-flight list */
  int64_t t0_ns;                /* monotonic start, for the histogram */

  /* where the answer goes; NULL once the client/caller is gone */
  nd_req_deliver_fn deliver;
  void *sink;
  notifd_host *host;
  const nd_http_metrics *metrics;  /* NULL once its owner is gone */

  /* the connection's per-address count (address, trusted peer); NULL
   * for local calls and once the connection is gone */
  struct nd_ipent *peer;

  /* server in-flight list (dispatched, unanswered) */
  nd_http_server *srv;
  notifd_req *iprev, *inext;
};

/* Allocates a zeroed request with room for `maxh` headers (r->hdrs) and,
 * when headlen > 0, a head block of headlen + 1 bytes (r->head), all in
 * one allocation. */
notifd_req *nd_req_alloc(size_t maxh, size_t headlen);
void nd_req_free(notifd_req *r);
/* Runs the route's auth policy: 1 = allowed, 0 = refused with *why set
 * (the caller answers 401). */
int nd_req_auth_ok(notifd_req *r, const char **why);
/* Calls the route handler.  A request answered during the handler is freed
 * when the handler returns; otherwise it stays alive until answered. */
void nd_req_run_handler(notifd_req *r);
/* nd_respond taking ownership of a malloc'd `body` in every case. */
int nd_respond_heap(notifd_req *r, int32_t status, const char *content_type, char *body,
                    size_t len);
/* Answers {"error": msg} with Allow set for 405 (allow may be NULL). */
int nd_req_answer_routing(notifd_req *r, int status, const char *allow);
/* Detaches from its sink (the client went away): a later answer is only
 * recorded in metrics and freed. */
static inline void nd_req_detach(notifd_req *r) {
  r->deliver = NULL;
  r->sink = NULL;
  r->peer = NULL;
}

/* Server hooks used by request.c */
void nd_http_server_req_done(nd_http_server *s, notifd_req *r);
void nd_http_server_req_dispatched(nd_http_server *s, notifd_req *r);

/* ---- head parser (parse.c) --------------------------------------------- */
typedef struct nd_head_info {
  int has_cl;
  uint64_t cl;
  int chunked;
  int conn_close;
  int conn_keepalive;
  int expect_continue;
  int nhost;
  const char *why;     /* static reason when parsing failed */
} nd_head_info;

/* Parses a complete request head held in `buf` (len bytes, ending with the
 * empty line), in place, into r->method/minor/path/query and `hdrs` (room
 * for `maxh`).  Returns 0, or the HTTP status to answer (400, 417, 431,
 * 501, 505) with info->why set. */
int nd_http_parse_head(char *buf, size_t len, notifd_req *r, nd_header *hdrs, size_t maxh,
                       nd_head_info *info);

/* Incremental chunked-body decoder over a byte source. */
typedef struct nd_chunked {
  int state;
  uint64_t remaining;
  size_t trailer_bytes;
  const char *why;   /* static reason for a 400, when more precise */
} nd_chunked;

struct evbuffer;
/* Moves decoded body bytes from `in` to `out`.  Returns 1 when the body and
 * trailers are complete, 0 for more input, or an HTTP status (400, 413;
 * 413 as soon as the declared sizes exceed `limit`).  Lines end with CR LF
 * only (a bare LF or CR is a 400 with c->why set). */
int nd_chunked_feed(nd_chunked *c, struct evbuffer *in, nd_buf *out, uint64_t limit,
                    size_t max_trailer);

/* ---- static files (static_files.c) ------------------------------------- */
typedef struct nd_static nd_static;
nd_static *nd_static_new(const char *dir);   /* NULL if unusable (logged) */
void nd_static_free(nd_static *s);
/* Serves a GET/HEAD request from the directory; answers it and returns 1,
 * or returns 0 when no file matches (caller answers 404). */
int nd_static_serve(nd_static *s, notifd_req *r);

/* ---- response headers (shared by server and client) ------------------- */
/* Finds `name` (case-insensitive) in a "name\0value\0"... block. */
const char *nd_hdr_block_find(const char *block, size_t len, const char *name);
/* Appends "name\0value\0" for a "Name: value" line (CR/LF stripped);
 * returns -1 when the line is not a header. */
int nd_hdr_block_add_line(nd_buf *b, const char *line, size_t n);

/* ---- client internals --------------------------------------------------- */
struct notifd_http_resp {
  int32_t status;
  const char *body;
  size_t len;
  const char *hdrs;     /* "name\0value\0"... */
  size_t hdrs_len;
};

#endif
