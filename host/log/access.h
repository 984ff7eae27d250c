/* The access log (logging.access): one line per HTTP request and per
 * websocket open and close, through the same sink and format as every
 * other log line (component "access", level info).  Query strings are
 * never passed here, so tokens given as ?token= never reach the log.
 * Callers check the host's logging.access themselves. */
#ifndef ND_LOG_ACCESS_H
#define ND_LOG_ACCESS_H

#include <stddef.h>
#include <stdint.h>

/* msg="request": method, path (no query), status, bytes (response bytes
 * queued: head and body), duration_ms, user (authenticated subject, or
 * omitted), remote (client address, or omitted).  method/path "-" when
 * the request line could not be read. */
void nd_access_request(const char *method, const char *path, int status, size_t bytes,
                       int64_t duration_ns, const char *user, const char *remote);

/* msg="ws open": channel (its path), key (the channel's key parameter),
 * user, remote, protocol (negotiated subprotocol, or omitted). */
void nd_access_ws_open(const char *channel, const char *key, const char *user,
                       const char *remote, const char *protocol);

/* msg="ws close": channel, key, user, duration_ms (open to close), code
 * (the close code the plugin's on_close gets: 1000 normal, 1001 going
 * away, 1006 dropped without a close frame, ...). */
void nd_access_ws_close(const char *channel, const char *key, const char *user,
                        int64_t duration_ms, int code);

#endif
