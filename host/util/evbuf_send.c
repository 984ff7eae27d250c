#include "util/evbuf_send.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>

#define MAX_IOV 64

ssize_t nd_evbuffer_sendmsg(struct evbuffer *buf, int fd, int flags, int max_iov,
                            size_t *offered) {
  struct evbuffer_iovec v[MAX_IOV];
  struct iovec iov[MAX_IOV];
  if (max_iov > MAX_IOV) max_iov = MAX_IOV;
  int n = evbuffer_peek(buf, -1, NULL, v, max_iov);
  if (n > max_iov) n = max_iov;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    iov[i].iov_base = v[i].iov_base;
    iov[i].iov_len = v[i].iov_len;
    total += v[i].iov_len;
  }
  *offered = total;
  struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
  return sendmsg(fd, &msg, flags | MSG_NOSIGNAL);
}
