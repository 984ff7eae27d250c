/* HTTP/1.1 server on libevent (public and admin listeners), router, the
 * notifd_req object, and outgoing HTTP calls (libcurl multi or in-process).
 * Loop thread only. */
#ifndef ND_HTTP_H
#define ND_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <notifd/plugin.h>
#include "core/host.h"

struct bufferevent;

/* ---- router ------------------------------------------------------------ */
#define ND_ROUTE_MAX_PARAMS 8

typedef struct nd_route_info {
  notifd_http_handler handler;
  void *ud;
  uint32_t auth;            /* NOTIFD_AUTH_* */
  uint64_t max_body;        /* 0 = server default */
  const char *owner;        /* plugin name or "host" (borrowed, static-ish) */
  const char *pattern;      /* owned by the router */
  void *metric_ctx;         /* per-route metrics, managed by the server */
} nd_route_info;

typedef struct nd_route_match {
  const nd_route_info *route;
  size_t nparams;
  const char *names[ND_ROUTE_MAX_PARAMS];   /* borrowed from the route */
  char *values[ND_ROUTE_MAX_PARAMS];        /* malloc'd, percent-decoded */
} nd_route_match;

nd_router *nd_router_new(void);
void nd_router_free(nd_router *r);
/* NOTIFD_EEXIST for the same method + pattern shape; NOTIFD_EINVAL for a
 * malformed pattern. `owner` is copied. */
int nd_router_add(nd_router *r, const char *method, const char *pattern,
                  notifd_http_handler h, void *ud, uint32_t auth,
                  uint64_t max_body, const char *owner);
/* 0 = matched (free with nd_route_match_clear), 404 = no path,
 * 405 = path exists for other methods (allow list written to `allow`). */
int nd_router_match(nd_router *r, const char *method, const char *path,
                    nd_route_match *m, char *allow, size_t allowlen);
void nd_route_match_clear(nd_route_match *m);
/* Every route, for metrics/diagnostics. */
size_t nd_router_count(const nd_router *r);

/* ---- server ------------------------------------------------------------ */
/* `is_admin` servers skip websocket upgrades and static files. */
nd_http_server *nd_http_server_new(notifd_host *h, nd_router *router,
                                   int is_admin);
int nd_http_server_listen(nd_http_server *s, const char *addr, int port,
                          nd_errors *errs);
int nd_http_server_port(const nd_http_server *s);   /* -1 if not listening */
/* Stops accepting; idle keep-alive connections are closed, busy ones get
 * `Connection: close` on their current response. */
void nd_http_server_stop_accepting(nd_http_server *s);
/* Requests dispatched to handlers and not yet answered. */
size_t nd_http_server_inflight(const nd_http_server *s);
/* Open HTTP (not websocket) connections. */
size_t nd_http_server_connections(const nd_http_server *s);
void nd_http_server_free(nd_http_server *s);

/* ---- notifd_req accessors (the API table points at these) -------------- */
const char *nd_req_method(notifd_req *r);
const char *nd_req_path(notifd_req *r);
const char *nd_req_param(notifd_req *r, const char *name);
const char *nd_req_query(notifd_req *r, const char *name);
const char *nd_req_header(notifd_req *r, const char *name);
/* 1 when the request is an in-process local: call made with internal
 * auth (the internal policy trusts it without a configured token). */
int nd_req_is_internal_local(const notifd_req *r);
const void *nd_req_body(notifd_req *r, size_t *len);
json_t *nd_req_json_or_400(notifd_req *r);
const char *nd_req_auth_subject(notifd_req *r);
void nd_req_set_auth_subject(notifd_req *r, const char *sub); /* copies */
int nd_resp_header(notifd_req *r, const char *name, const char *value);
int nd_respond(notifd_req *r, int32_t status, const char *content_type,
               const void *body, size_t len);
int nd_respond_json(notifd_req *r, int32_t status, const json_t *body);
int nd_respond_error(notifd_req *r, int32_t status, const char *msg);
/* The client's address as text: the peer's, or for a peer listed in
 * http.trusted_proxies the last X-Forwarded-For entry when that is an IP
 * address.  0, or -1 when unknown (local calls, client gone). */
int nd_req_client_addr(notifd_req *r, char *buf, size_t len);
/* The hold on the peer address's connection count (util/ipcount.h), for
 * the websocket layer to take over on upgrade; NULL when untracked. */
struct nd_ipent *nd_req_peer(notifd_req *r);

/* ---- browser origins (limits.c) --------------------------------------- */
/* 1 when `origin` is in the NULL-terminated list (case-insensitive) or
 * the list holds "*". */
int nd_origin_listed(char *const *list, const char *origin);
/* 1 when the Origin's host[:port] equals the Host header
 * (case-insensitive): a page of this server. */
int nd_origin_same_host(const char *origin, const char *host);

/* ---- outgoing HTTP ----------------------------------------------------- */
nd_httpc *nd_httpc_new(notifd_host *h);
void nd_httpc_free(nd_httpc *c);   /* cancels calls without callbacks */
size_t nd_httpc_inflight(const nd_httpc *c);
int nd_http_call(notifd_host *h, const notifd_http_client_req *req,
                 notifd_http_client_cb cb, void *ud);
const void *nd_http_resp_body(notifd_http_resp *r, size_t *len);
const char *nd_http_resp_header(notifd_http_resp *r, const char *name);

#endif
