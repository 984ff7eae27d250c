/* TLS on the public listener: see tls.h.
 *
 * Context: TLS 1.2 or 1.3 and up, OpenSSL's default ciphers at security
 * level 2, no renegotiation, ALPN http/1.1, buffers released while a
 * connection is idle (many idle websockets).  Every I/O call clears the
 * thread's OpenSSL error queue first (SSL_get_error depends on it, and the
 * JWT code shares it) and leaves nothing behind. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <notifd/plugin.h>

#include "http/tls.h"
#include "log/log.h"

/* ---- context ----------------------------------------------------------- */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char ours[] = "\x08http/1.1";
  unsigned char *sel = NULL;
  if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* e.g. only h2 offered: go on without ALPN */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* The first OpenSSL reason on the queue, the root cause ("no start
 * line" rather than the "PEM lib" reported above it); clears the queue. */
static const char *ssl_reason(char *buf, size_t len) {
  unsigned long e = ERR_peek_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  if (r)
    snprintf(buf, len, "%s", r);
  else if (e)
    ERR_error_string_n(e, buf, len);
  else
    snprintf(buf, len, "unknown error");
  ERR_clear_error();
  return buf;
}

static void key_error(nd_errors *errs, const nd_cfg_node *at, const char *key, const char *what,
                      const char *path, const char *why) {
  nd_errors_add(errs, at ? at->file : NULL, at ? at->line : 0, at ? at->col : 0,
                "key 'listen.tls.%s': cannot use %s '%s': %s", key, what, path, why);
}

/* fopen first: "No such file or directory" beats OpenSSL's "system lib". */
static int readable(nd_errors *errs, const nd_cfg_node *at, const char *key, const char *what,
                    const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    key_error(errs, at, key, what, path, strerror(errno));
    return 0;
  }
  fclose(f);
  return 1;
}

struct ssl_ctx_st *nd_tls_ctx_new(const nd_config *cfg, nd_errors *errs) {
  if (!cfg->tls_cert || !cfg->tls_key) return NULL;
  const char *cert = cfg->tls_cert, *key = cfg->tls_key;
  int ok_files = readable(errs, cfg->tls_cert_at, "cert", "certificate", cert);
  ok_files &= readable(errs, cfg->tls_key_at, "key", "private key", key);
  if (!ok_files) return NULL;
  ERR_clear_error();
  char why[256];
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    nd_errors_add(errs, NULL, 0, 0, "listen.tls: cannot create a TLS context: %s",
                  ssl_reason(why, sizeof why));
    return NULL;
  }
  SSL_CTX_set_security_level(ctx, 2);
  SSL_CTX_set_min_proto_version(ctx, cfg->tls_min_version == 13 ? TLS1_3_VERSION
                                                                : TLS1_2_VERSION);
  uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                  SSL_OP_NO_COMPRESSION;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  /* A TCP close without close_notify is an end of input like any other:
   * HTTP framing, not the TLS layer, tells a cut request. */
  opts |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
  SSL_CTX_set_options(ctx, opts);
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  /* One recv per record burst instead of header + body reads; the
   * connection code drains what this buffers (nd_tls_pending). */
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  static const unsigned char sid_ctx[] = "notifd";
  SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    key_error(errs, cfg->tls_cert_at, "cert", "certificate", cert, ssl_reason(why, sizeof why));
  } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    key_error(errs, cfg->tls_key_at, "key", "private key", key, ssl_reason(why, sizeof why));
  } else if (SSL_CTX_check_private_key(ctx) != 1) {
    key_error(errs, cfg->tls_key_at, "key", "private key", key, ssl_reason(why, sizeof why));
  } else {
    return ctx;
  }
  SSL_CTX_free(ctx);
  return NULL;
}

void nd_tls_ctx_free(struct ssl_ctx_st *ctx) { SSL_CTX_free(ctx); }

int nd_tls_check(const nd_config *cfg, nd_errors *errs) {
  if (!cfg->tls_cert || !cfg->tls_key) return 0;
  SSL_CTX *ctx = nd_tls_ctx_new(cfg, errs);
  if (!ctx) return -1;
  SSL_CTX_free(ctx);
  return 0;
}

/* ---- connections ------------------------------------------------------- */

struct ssl_st *nd_tls_new(struct ssl_ctx_st *ctx, evutil_socket_t fd) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl) {
    ERR_clear_error();
    return NULL;
  }
  if (SSL_set_fd(ssl, (int)fd) != 1) { /* a BIO that does not close fd */
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

/* Maps a failed call's result; a failure also marks the connection so
 * that nd_tls_shutdown sends nothing (OpenSSL forbids it after errors). */
static int io_result(SSL *ssl, int r, const char *op) {
  int err = SSL_get_error(ssl, r);
  switch (err) {
  case SSL_ERROR_WANT_READ: return ND_TLS_WANT_READ;
  case SSL_ERROR_WANT_WRITE: return ND_TLS_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN: return 0;
  case SSL_ERROR_SYSCALL:
    if (errno == 0 && ERR_peek_error() == 0) {
      /* EOF without close_notify (OpenSSL 1.1; 3.x reports it as a
       * clean end with SSL_OP_IGNORE_UNEXPECTED_EOF). */
      SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
      return 0;
    }
    break;
  default: break;
  }
  if (nd_log_level() >= NOTIFD_LOG_DEBUG) {
    char why[256];
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
      snprintf(why, sizeof why, "%s", strerror(errno));
    else
      ssl_reason(why, sizeof why);
    ND_DEBUG("http", "TLS %s failed: %s", op, why);
  }
  ERR_clear_error();
  SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  return ND_TLS_FAILED;
}

int nd_tls_handshake(struct ssl_st *ssl) {
  if (SSL_in_before(ssl)) {
    /* First readable event: a ClientHello starts with byte 22; a plain
     * HTTP request with an upper-case method name. */
    unsigned char b = 0;
    if (recv(SSL_get_fd(ssl), &b, 1, MSG_PEEK) == 1 && b >= 'A' && b <= 'Z') return ND_TLS_NOT_TLS;
  }
  ERR_clear_error();
  int r = SSL_do_handshake(ssl);
  if (r == 1) return 0;
  r = io_result(ssl, r, "handshake");
  return r == 0 ? ND_TLS_FAILED : r; /* closed mid-handshake */
}

int nd_tls_read(struct ssl_st *ssl, void *buf, size_t len) {
  ERR_clear_error();
  int n = SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
  return n > 0 ? n : io_result(ssl, n, "read");
}

int nd_tls_write(struct ssl_st *ssl, const void *buf, size_t len) {
  ERR_clear_error();
  int n = SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
  if (n > 0) return n;
  n = io_result(ssl, n, "write");
  return n == 0 ? ND_TLS_FAILED : n;
}

int nd_tls_pending(struct ssl_st *ssl) { return SSL_has_pending(ssl); }

void nd_tls_shutdown(struct ssl_st *ssl) {
  if (!SSL_is_init_finished(ssl) || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN)) return;
  ERR_clear_error();
  SSL_shutdown(ssl); /* one non-blocking try: the alert or nothing */
  ERR_clear_error();
}

void nd_tls_free(struct ssl_st *ssl) {
  if (!ssl) return;
  nd_tls_shutdown(ssl);
  SSL_free(ssl);
}

/* ---- websocket hand-over ------------------------------------------------ */

struct bufferevent *nd_tls_bev_new(struct event_base *base, evutil_socket_t fd,
                                   struct ssl_st *ssl) {
  /* bufferevent_openssl reads on socket readiness and then only what
   * SSL_pending reports: records buffered ahead would wait for the next
   * packet.  The caller drained them; buffer no more. */
  SSL_set_read_ahead(ssl, 0);
  /* Not BEV_OPT_CLOSE_ON_FREE: a refused upgrade must get its socket and
   * SSL back; nd_tls_bev_free releases them otherwise. */
  struct bufferevent *bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_OPEN, 0);
  if (bev) bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  ERR_clear_error();
  return bev;
}

int nd_tls_bev_is_tls(struct bufferevent *bev) {
  return bufferevent_openssl_get_ssl(bev) != NULL;
}

void nd_tls_bev_free(struct bufferevent *bev) {
  SSL *ssl = bufferevent_openssl_get_ssl(bev); /* NULL for a socket bufferevent */
  evutil_socket_t fd = ssl ? bufferevent_getfd(bev) : -1;
  bufferevent_free(bev);
  if (!ssl) return;
  /* Its events are gone; only a deferred finalizer that touches neither
   * the SSL nor the socket (no CLOSE_ON_FREE) remains. */
  SSL_free(ssl);
  if (fd >= 0) evutil_closesocket(fd);
}

void nd_tls_bev_shut_write(struct bufferevent *bev) {
  SSL *ssl = bufferevent_openssl_get_ssl(bev);
  if (ssl) nd_tls_shutdown(ssl); /* output is empty: the alert goes out alone */
  evutil_socket_t fd = bufferevent_getfd(bev);
  if (fd >= 0) shutdown(fd, SHUT_WR);
}
