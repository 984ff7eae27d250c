/* TLS on the public listener (listen.tls): the server context, and the
 * non-blocking I/O an HTTP connection does through OpenSSL instead of
 * recv/sendmsg.  After a websocket upgrade the same SSL object moves into
 * a libevent bufferevent_openssl; the nd_tls_bev_* functions let the
 * websocket layer treat plain and TLS bufferevents alike. */
#ifndef ND_HTTP_TLS_H
#define ND_HTTP_TLS_H

#include <stddef.h>

#include <event2/util.h>

#include "config/config.h"

struct ssl_st;
struct ssl_ctx_st;
struct bufferevent;
struct event_base;

/* Results of the I/O calls below besides a byte count. */
enum {
  ND_TLS_WANT_READ = -1,  /* call again once the socket is readable */
  ND_TLS_WANT_WRITE = -2, /* call again once the socket is writable */
  ND_TLS_FAILED = -3,     /* protocol or socket error: just close */
  ND_TLS_NOT_TLS = -4,    /* handshake: the client spoke plain HTTP */
};

/* The server context from cfg->tls_* (NULL when TLS is off, or on error
 * with "file:line:col: key 'listen.tls.cert': ..." errors added). */
struct ssl_ctx_st *nd_tls_ctx_new(const nd_config *cfg, nd_errors *errs);
void nd_tls_ctx_free(struct ssl_ctx_st *ctx);
/* Loads the configured certificate and key and drops them (--check);
 * 0, or -1 with errors added. */
int nd_tls_check(const nd_config *cfg, nd_errors *errs);

/* A server-side connection on an accepted socket (NULL: out of memory). */
struct ssl_st *nd_tls_new(struct ssl_ctx_st *ctx, evutil_socket_t fd);
/* One handshake step: 0 done, ND_TLS_WANT_*, ND_TLS_FAILED or, before
 * anything was read, ND_TLS_NOT_TLS. */
int nd_tls_handshake(struct ssl_st *ssl);
/* Bytes read (> 0), 0 when the peer finished sending, or ND_TLS_WANT_*,
 * ND_TLS_FAILED. */
int nd_tls_read(struct ssl_st *ssl, void *buf, size_t len);
/* Bytes written (> 0) or ND_TLS_WANT_*, ND_TLS_FAILED.  After a WANT the
 * next call must pass at least the same bytes again (they may move). */
int nd_tls_write(struct ssl_st *ssl, const void *buf, size_t len);
/* 1 while OpenSSL holds received bytes not yet returned by nd_tls_read
 * (no readiness event will announce them). */
int nd_tls_pending(struct ssl_st *ssl);
/* Sends close_notify once, best effort, unless the connection failed. */
void nd_tls_shutdown(struct ssl_st *ssl);
/* nd_tls_shutdown, then frees (the socket stays open). */
void nd_tls_free(struct ssl_st *ssl);

/* A bufferevent on an established connection: the websocket hand-over.
 * It does not own ssl and fd; free it with nd_tls_bev_free, which
 * releases both. */
struct bufferevent *nd_tls_bev_new(struct event_base *base, evutil_socket_t fd,
                                   struct ssl_st *ssl);
/* 1 for a bufferevent_openssl, 0 for a socket bufferevent. */
int nd_tls_bev_is_tls(struct bufferevent *bev);
/* bufferevent_free, plus the SSL object and socket of a TLS one. */
void nd_tls_bev_free(struct bufferevent *bev);
/* Ends our sending side: close_notify (TLS) and shutdown(SHUT_WR). */
void nd_tls_bev_shut_write(struct bufferevent *bev);

#endif
