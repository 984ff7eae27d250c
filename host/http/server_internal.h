/* The HTTP server object and its connections (server.c owns listening and
 * the connection list; conn.c owns one connection's protocol state). */
#ifndef ND_HTTP_SERVER_INTERNAL_H
#define ND_HTTP_SERVER_INTERNAL_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <time.h>

#include "http/http_internal.h"

struct evconnlistener;
struct nd_ipcount;
struct sockaddr;
struct nd_ipent;
struct nd_ratelimit;
struct ssl_st;
struct ssl_ctx_st;
typedef struct nd_conn nd_conn;

enum {
  CONN_IDLE = 0,     /* between requests (idle timer) */
  CONN_HEAD,         /* reading a request head (request timer) */
  CONN_BODY_CL,      /* reading a Content-Length body */
  CONN_BODY_CHUNKED, /* reading a chunked body */
  CONN_HANDLING,     /* dispatched, waiting for the answer */
  CONN_CLOSING,      /* last response queued; close once written */
  CONN_LINGER,       /* write side shut; draining input before close */
  CONN_AUTH_WAIT     /* head read, token's signing key being fetched: not
                        reading, no timer of ours (the waiter's bounds it) */
};

typedef struct nd_auth_waiter nd_auth_waiter;

struct nd_conn {
  nd_http_server *srv;
  nd_conn *prev, *next;
  evutil_socket_t fd;
  struct event rev, wev, tev;
  struct evbuffer *in, *out;
  notifd_req *req;          /* being read or being handled */
  nd_chunked chunk;
  nd_buf cbody;             /* chunked body being assembled */
  uint64_t body_need;       /* Content-Length still expected */
  uint64_t body_limit;
  size_t scan_off;          /* head bytes already scanned for the end */
  size_t nlines;            /* lines seen in the head so far */
  /* CONN_AUTH_WAIT: what start_request goes on with once keys are in */
  nd_auth_waiter *auth_wait;
  nd_head_info auth_info;
  notifd_ws_channel *auth_ch; /* a websocket upgrade, or NULL for a route */
  struct nd_ipent *peer;    /* this address's connection count we hold */
  uint64_t body_held;       /* bytes counted in srv->pending_body */
  int64_t head_ms;          /* monotonic start of the current request */
  int state;
  int depth;                /* callbacks on the stack; free when 0 */
  unsigned reading : 1;     /* rev added */
  unsigned writing : 1;     /* wev added */
  unsigned keep_alive : 1;  /* current request allows keep-alive */
  unsigned must_close : 1;  /* unread request bytes: close (lingering) */
  unsigned close_after : 1; /* server stopping: close after this answer */
  unsigned head_only : 1;   /* current request is HEAD */
  unsigned peer_eof : 1;    /* the client finished sending */
  unsigned dead : 1;        /* closed; freed when depth drops to 0 */
  /* TLS (listen.tls): I/O goes through tls.h while ssl is set. */
  struct ssl_st *ssl;
  unsigned tls_hs : 1;      /* handshake running (state IDLE, its own timer) */
  unsigned tls_r_wants_w : 1; /* a read must wait for writability */
  unsigned tls_w_wants_r : 1; /* a write must wait for readability */
};

struct nd_http_server {
  notifd_host *host;
  struct event_base *base;
  nd_router *router;
  int is_admin;
  struct evconnlistener *lev;
  struct event *accept_retry;   /* re-enables accepting after EMFILE */
  int port;
  int stopping;
  nd_conn *conns;
  size_t nconns;
  notifd_req *inflight;         /* dispatched, unanswered */
  size_t ninflight;
  nd_http_metrics metrics;
  nd_static *statics;
  struct ssl_ctx_st *tls;       /* listen.tls on the public server, or NULL */

  /* limits, from host->cfg with defaults for zero values */
  uint64_t max_body;
  uint32_t max_header;
  uint32_t max_conns;
  const struct timeval *tv_keepalive, *tv_request, *tv_linger, *tv_tls_handshake;
  struct timeval keepalive_raw, request_raw, linger_raw, tls_handshake_raw;

  /* limits against anonymous clients (limits.c) */
  const struct timeval *tv_idle;
  struct timeval idle_raw;
  int64_t ws_handshake_ms;
  uint64_t max_pending_body;    /* 0 = no cap */
  uint64_t pending_body;        /* bytes of unfinished bodies held now */
  struct nd_ipcount *ipc;
  struct nd_ratelimit *rl;      /* NULL = no rate limit */

  /* Date header cache */
  time_t date_sec;
  char date[40];
};

/* conn.c; `peer` is a hold on the address's count, owned from here on */
void nd_conn_accept(nd_http_server *s, evutil_socket_t fd, struct nd_ipent *peer);
/* Closes now (or as soon as its callbacks unwind). */
void nd_conn_close(nd_conn *c);
/* Server is stopping: close when idle, else after the current answer. */
void nd_conn_stop(nd_conn *c);
/* One last non-blocking attempt to send queued responses. */
void nd_conn_flush_once(nd_conn *c);

/* limits.c: limits against anonymous clients, called by server.c and
 * conn.c at the points named. */
int nd_http_limits_init(nd_http_server *s);   /* server_new; -1 = ENOMEM */
void nd_http_limits_free(nd_http_server *s);  /* server_free, after conns */
/* on_accept: 0 with *peer (NULL when untracked), or -1: over the
 * per-address cap, refused. */
int nd_http_limits_accept(nd_http_server *s, const struct sockaddr *sa,
                          struct nd_ipent **peer);
/* The connection goes away: releases its body bytes and address count. */
void nd_http_limits_conn_gone(nd_conn *c);
/* find_head, once the request line is complete (line_len bytes at the
 * start of c->in): a GET to a websocket channel gets the handshake
 * deadline instead of the request deadline. */
void nd_http_limits_first_line(nd_conn *c, size_t line_len);
/* A body is still incomplete: counts the bytes held.  -1 when that
 * would pass http.max_pending_body_bytes (answered 503, must_close). */
int nd_http_body_account(nd_conn *c);
void nd_http_body_release(nd_conn *c);
/* After routing: CORS headers, and the answer to a preflight (1). */
int nd_http_cors(nd_http_server *s, notifd_req *r, int mrc, const char *allow);
/* After auth: 1 when the request was answered 429. */
int nd_http_rate_limited(nd_http_server *s, notifd_req *r);

/* server.c */
void nd_http_server_unlink_conn(nd_http_server *s, nd_conn *c);
const char *nd_http_server_date(nd_http_server *s);

#endif
