/* Websocket layer: channels, connection registry keyed by a query
 * parameter, RFC 6455 framing, heartbeat, limits.  Every function here is
 * for the host's loop thread (sockets may live on websocket.io_threads
 * I/O threads: ws_loop.c). */
#ifndef ND_WS_H
#define ND_WS_H

#include <stddef.h>
#include <stdint.h>
#include <notifd/plugin.h>
#include "core/host.h"

struct bufferevent;

nd_ws_hub *nd_ws_hub_new(notifd_host *h);
void nd_ws_hub_free(nd_ws_hub *hub);    /* drops every connection */

int nd_ws_channel_add(nd_ws_hub *hub, notifd_plugin *owner,
                      const notifd_ws_channel_opts *opts,
                      notifd_ws_channel **out);
/* Channel registered for `path`, or NULL. */
notifd_ws_channel *nd_ws_channel_find(nd_ws_hub *hub, const char *path);
/* The channel's auth policy (NOTIFD_AUTH_*). */
uint32_t nd_ws_channel_auth(const notifd_ws_channel *ch);

/* Called by the HTTP server for a GET on a channel's path.  Validates the
 * handshake, params, origin, auth, limits and the plugin's on_upgrade.
 * On success writes the 101 response, takes ownership of `bev` (its input
 * may hold bytes after the request; when the connection goes to an I/O
 * thread its socket and buffers move there and `bev` is freed) and returns 0; `req` is not answered
 * and the HTTP layer frees it.  On refusal returns the HTTP status to
 * answer with, `*msg` (static or owned by `req`) as the error text, and
 * touches nothing. */
int nd_ws_upgrade(notifd_ws_channel *ch, notifd_req *req,
                  struct bufferevent *bev, const char **msg);

/* Graceful shutdown: close every connection with `code`. */
void nd_ws_hub_close_all(nd_ws_hub *hub, int32_t code, const char *reason);
size_t nd_ws_hub_count(const nd_ws_hub *hub);

/* API table functions */
int nd_ws_publish(notifd_ws_channel *ch, const char *key, const void *data,
                  size_t len, uint32_t *delivered, uint32_t *failed);
int nd_ws_close_key(notifd_ws_channel *ch, const char *key, int32_t code,
                    const char *reason);
int nd_ws_send(notifd_ws_conn *c, const void *data, size_t len,
               int32_t is_text);
int nd_ws_close(notifd_ws_conn *c, int32_t code, const char *reason);
const char *nd_ws_conn_key(notifd_ws_conn *c);
const char *nd_ws_conn_param(notifd_ws_conn *c, const char *name);
void nd_ws_conn_set_data(notifd_ws_conn *c, void *data);
void *nd_ws_conn_data(notifd_ws_conn *c);
uint32_t nd_ws_key_count(notifd_ws_channel *ch, const char *key);
const char *nd_ws_conn_subprotocol(notifd_ws_conn *c);
const char *nd_ws_conn_subject(notifd_ws_conn *c);
int nd_ws_publish_proto(notifd_ws_channel *ch, const char *key, const char *subprotocol,
                        const void *data, size_t len, uint32_t *delivered, uint32_t *failed);
int nd_ws_conn_pause(notifd_ws_conn *c);
int nd_ws_conn_resume(notifd_ws_conn *c);

#endif
