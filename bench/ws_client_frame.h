/* Server websocket frames as the bench clients read them: unmasked, so a
 * frame is a 2-, 4- or 10-byte header and the payload. */
#ifndef NOTIFD_BENCH_WS_CLIENT_FRAME_H
#define NOTIFD_BENCH_WS_CLIENT_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

typedef struct bench_ws_frame {
  int opcode;
  size_t header_len;
  uint64_t payload_len;
} bench_ws_frame;

/* Consumes the upgrade answer at the head of `in`: -1 while its header is
 * incomplete, 1 for "101", 0 otherwise (status line start in status). */
static inline int bench_ws_read_upgrade(struct evbuffer *in, char status[16]) {
  struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
  if (end.pos < 0) return -1;
  memset(status, 0, 16);
  evbuffer_copyout(in, status, 12);
  evbuffer_drain(in, (size_t)end.pos + 4);
  return strncmp(status + 9, "101", 3) == 0;
}

/* Empty masked pong (client frames must be masked), the answer to a ping. */
static const unsigned char bench_ws_pong[6] = {0x8a, 0x80, 0, 0, 0, 0};

/* 1 with *f set when the header at the head of `in` is complete, 0 when
 * more bytes are needed.  The payload may still be incomplete. */
static inline int bench_ws_peek_header(struct evbuffer *in, bench_ws_frame *f) {
  size_t avail = evbuffer_get_length(in);
  if (avail < 2) return 0;
  unsigned char h[10];
  evbuffer_copyout(in, h, avail < 10 ? avail : 10);
  uint64_t len = h[1] & 0x7f;
  size_t hl = 2;
  if (len == 126) {
    if (avail < 4) return 0;
    len = ((uint64_t)h[2] << 8) | h[3];
    hl = 4;
  } else if (len == 127) {
    if (avail < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
    hl = 10;
  }
  f->opcode = h[0] & 0x0f;
  f->header_len = hl;
  f->payload_len = len;
  return 1;
}

#endif
