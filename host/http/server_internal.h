/* The HTTP server object and its connections (server.c owns listening and
 * the connection list; conn.c owns one connection's protocol state). */
#ifndef ND_HTTP_SERVER_INTERNAL_H
#define ND_HTTP_SERVER_INTERNAL_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <time.h>

#include "http/http_internal.h"

struct evconnlistener;
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
  CONN_LINGER        /* write side shut; draining input before close */
};

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

  /* Date header cache */
  time_t date_sec;
  char date[40];
};

/* conn.c */
void nd_conn_accept(nd_http_server *s, evutil_socket_t fd);
/* Closes now (or as soon as its callbacks unwind). */
void nd_conn_close(nd_conn *c);
/* Server is stopping: close when idle, else after the current answer. */
void nd_conn_stop(nd_conn *c);
/* One last non-blocking attempt to send queued responses. */
void nd_conn_flush_once(nd_conn *c);

/* server.c */
void nd_http_server_unlink_conn(nd_http_server *s, nd_conn *c);
const char *nd_http_server_date(nd_http_server *s);

#endif
