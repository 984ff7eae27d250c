/* Writing an evbuffer's head to a socket with one sendmsg (no copy): the
 * HTTP connection and the websocket layer's direct writes. */
#ifndef ND_UTIL_EVBUF_SEND_H
#define ND_UTIL_EVBUF_SEND_H

#include <stddef.h>
#include <sys/types.h>

struct evbuffer;

/* sendmsg of up to `max_iov` (<= 64) chains at the head of `buf` with
 * `flags` (MSG_NOSIGNAL is added).  Returns what sendmsg returned (errno
 * set on -1); *offered is the number of bytes offered.  Drains nothing. */
ssize_t nd_evbuffer_sendmsg(struct evbuffer *buf, int fd, int flags, int max_iov,
                            size_t *offered);

#endif
