/* Publishing to a key: the frame is encoded once into a refcounted chunk
 * and every connection's output buffer references it (no copy per
 * receiver); the last written copy frees it. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "util/buf.h"
#include "ws/ws_internal.h"

typedef struct chunk {
  uint32_t refs;
  uint32_t reserved;
  uint8_t frame[];
} chunk;

static chunk *chunk_of(uint8_t *frame) {
  return (chunk *)(void *)(frame - offsetof(chunk, frame));
}

uint8_t *nd_ws_chunk_new(int opcode, const void *data, size_t len, size_t *frame_len) {
  if (len > SIZE_MAX - sizeof(chunk) - 14) return NULL;
  uint8_t hdr[14];
  size_t h = nd_ws_frame_header(hdr, opcode, 1, len, NULL);
  chunk *k = malloc(sizeof *k + h + len);
  if (!k) return NULL;
  k->refs = 1;
  memcpy(k->frame, hdr, h);
  if (len) memcpy(k->frame + h, data, len);
  *frame_len = h + len;
  return k->frame;
}

/* Atomic: the main thread queues references, I/O threads drop them. */
void nd_ws_chunk_ref(uint8_t *frame) {
  __atomic_fetch_add(&chunk_of(frame)->refs, 1, __ATOMIC_RELAXED);
}

void nd_ws_chunk_unref(uint8_t *frame) {
  chunk *k = chunk_of(frame);
  if (__atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) == 0) free(k);
}

int nd_ws_publish(notifd_ws_channel *ch, const char *key, const void *data, size_t len,
                  uint32_t *delivered, uint32_t *failed) {
  return nd_ws_publish_where(ch, key, ND_WS_PROTO_ANY, data, len, delivered, failed);
}

int nd_ws_publish_proto(notifd_ws_channel *ch, const char *key, const char *subprotocol,
                        const void *data, size_t len, uint32_t *delivered, uint32_t *failed) {
  int want = 0;
  if (ch && subprotocol) {
    want = -2;
    for (size_t i = 0; ch->subprotocols && ch->subprotocols[i]; i++)
      if (strcmp(ch->subprotocols[i], subprotocol) == 0) want = (int)i + 1;
    if (want == -2) {
      if (delivered) *delivered = 0;
      if (failed) *failed = 0;
      return NOTIFD_EINVAL; /* not one of the channel's subprotocols */
    }
  }
  return nd_ws_publish_where(ch, key, want, data, len, delivered, failed);
}

int nd_ws_publish_where(notifd_ws_channel *ch, const char *key, int want, const void *data,
                        size_t len, uint32_t *delivered, uint32_t *failed) {
  if (delivered) *delivered = 0;
  if (failed) *failed = 0;
  if (!ch || !key || (!data && len)) return NOTIFD_EINVAL;
  /* Publish sends text frames, which must be UTF-8 for every client. */
  if (!nd_utf8_valid(data, len)) return NOTIFD_EINVAL;
  nd_ws_hub *hub = ch->hub;
  nd_ws_metric_add(hub->m_publishes, ch, 1);
  nd_ws_keyent *e = nd_ws_keymap_find(&ch->keys, key);
  if (!e) return 0;
  size_t flen = 0;
  uint8_t *frame = NULL; /* encoded for the first receiver */
  uint32_t d = 0, f = 0;
  /* A slow consumer closed here leaves the list (and the entry is freed
   * with its last connection), so the next pointer is taken first.  No
   * plugin code runs inside this loop (on_close is deferred). */
  for (notifd_ws_conn *c = e->head, *next; c; c = next) {
    next = c->knext;
    if (want != ND_WS_PROTO_ANY && c->proto != want) continue;
    if (!frame && !(frame = nd_ws_chunk_new(ND_WS_OP_TEXT, data, len, &flen))) return NOTIFD_ENOMEM;
    if (nd_ws_conn_queue(c, frame, flen) == 0) d++;
    else f++;
  }
  if (frame) nd_ws_chunk_unref(frame);
  nd_ws_metric_add(hub->m_deliveries, ch, d);
  nd_ws_metric_add(hub->m_failures, ch, f);
  nd_ws_metric_add(hub->m_frames, ch, d);
  nd_ws_metric_add(hub->m_bytes, ch, (double)d * (double)flen);
  if (delivered) *delivered = d;
  if (failed) *failed = f;
  return 0;
}

int nd_ws_close_key(notifd_ws_channel *ch, const char *key, int32_t code, const char *reason) {
  if (!ch || !key) return NOTIFD_EINVAL;
  if (!nd_ws_close_code_valid(code)) return NOTIFD_EINVAL;
  if (reason && !nd_utf8_valid(reason, strlen(reason))) return NOTIFD_EINVAL;
  nd_ws_keyent *e = nd_ws_keymap_find(&ch->keys, key);
  if (!e) return 0;
  int n = 0;
  for (notifd_ws_conn *c = e->head, *next; c; c = next) {
    next = c->knext;
    nd_ws_conn_close(c, code, reason);
    n++;
  }
  if (n) ND_INFO("ws", "closed %d connection(s) of %s key=%s with %d", n, ch->path, key, code);
  return n;
}

uint32_t nd_ws_key_count(notifd_ws_channel *ch, const char *key) {
  if (!ch || !key) return 0;
  nd_ws_keyent *e = nd_ws_keymap_find(&ch->keys, key);
  return e ? e->count : 0;
}
