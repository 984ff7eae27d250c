/* RFC 6455 frame parsing and encoding (server side). */
#include "ws/ws_frame.h"

#include <stdlib.h>
#include <string.h>

#include "ws/ws_utf8.h"

void nd_ws_parser_init(nd_ws_parser *p, uint64_t max_message, int require_mask) {
  memset(p, 0, sizeof *p);
  p->max_message = max_message;
  p->require_mask = require_mask ? 1 : 0;
}

static void reset_message(nd_ws_parser *p) {
  free(p->msg);
  p->msg = NULL;
  p->msg_len = p->msg_cap = 0;
  p->msg_op = 0;
  p->utf8 = ND_UTF8_ACCEPT;
  p->delivered = 0;
}

void nd_ws_parser_free(nd_ws_parser *p) { reset_message(p); }

void nd_ws_parser_release(nd_ws_parser *p) {
  if (p->delivered) reset_message(p);
}

void nd_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t pos) {
  size_t i = 0;
  pos &= 3;
  /* Align to the mask so the bulk can go 8 bytes at a time. */
  while (i < n && pos != 0) {
    p[i++] ^= mask[pos];
    pos = (pos + 1) & 3;
  }
  uint8_t m8[8] = {mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]};
  uint64_t w8;
  memcpy(&w8, m8, 8);
  for (; n - i >= 8; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w ^= w8;
    memcpy(p + i, &w, 8);
  }
  for (size_t k = 0; i < n; i++, k++) p[i] ^= mask[k & 3];
}

static int fail(nd_ws_parser *p, nd_ws_event *ev, int code, const char *why) {
  p->failed = 1;
  ev->type = ND_WS_EV_ERROR;
  ev->code = code;
  ev->why = why;
  return 1;
}

static int is_control(int op) { return op >= 0x8; }

/* Validates a complete header and sets up the frame; 0 or error event. */
static int start_frame(nd_ws_parser *p, nd_ws_event *ev) {
  uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
  int op = b0 & 0x0F;
  p->fin = (b0 & 0x80) ? 1 : 0;
  p->opcode = (uint8_t)op;
  if (b0 & 0x70) return fail(p, ev, ND_WS_CLOSE_PROTOCOL, "reserved bits set without an extension");
  if (op != ND_WS_OP_CONT && op != ND_WS_OP_TEXT && op != ND_WS_OP_BINARY &&
      op != ND_WS_OP_CLOSE && op != ND_WS_OP_PING && op != ND_WS_OP_PONG)
    return fail(p, ev, ND_WS_CLOSE_PROTOCOL, "reserved opcode");
  int masked = (b1 & 0x80) != 0;
  if (p->require_mask && !masked) return fail(p, ev, ND_WS_CLOSE_PROTOCOL, "client frame not masked");
  uint64_t len = b1 & 0x7F;
  size_t at = 2;
  if (len == 126) {
    len = ((uint64_t)p->hdr[2] << 8) | p->hdr[3];
    at = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | p->hdr[2 + i];
    at = 10;
    if (len >> 63) return fail(p, ev, ND_WS_CLOSE_PROTOCOL, "payload length has its top bit set");
  }
  if (masked) memcpy(p->mask, p->hdr + at, 4);
  else memset(p->mask, 0, 4);
  p->mask_pos = 0;
  p->remaining = len;
  if (is_control(op)) {
    if (!p->fin) return fail(p, ev, ND_WS_CLOSE_PROTOCOL, "fragmented control frame");
    if (len > 125) return fail(p, ev, ND_WS_CLOSE_PROTOCOL, "control frame longer than 125 bytes");
    p->ctrl_len = 0;
    return 0;
  }
  if (op == ND_WS_OP_CONT) {
    if (!p->msg_op) return fail(p, ev, ND_WS_CLOSE_PROTOCOL, "continuation without a message");
  } else {
    if (p->msg_op) return fail(p, ev, ND_WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
    p->msg_op = (uint8_t)op;
    p->utf8 = ND_UTF8_ACCEPT;
  }
  if (p->max_message && (uint64_t)p->msg_len + len > p->max_message)
    return fail(p, ev, ND_WS_CLOSE_TOO_BIG, "message too big");
  if (len > SIZE_MAX - p->msg_len - 1) return fail(p, ev, ND_WS_CLOSE_TOO_BIG, "message too big");
  size_t need = p->msg_len + (size_t)len;
  if (need > p->msg_cap || !p->msg) {
    /* The whole frame is reserved at once (frames are bounded by
     * max_message); doubling keeps many small fragments linear. */
    size_t cap = p->msg_cap * 2 > need ? p->msg_cap * 2 : need;
    if (cap < 64) cap = 64;
    if (p->max_message && cap > p->max_message && need <= p->max_message)
      cap = (size_t)p->max_message;
    uint8_t *m = realloc(p->msg, cap);
    if (!m) return fail(p, ev, ND_WS_CLOSE_INTERNAL, "out of memory");
    p->msg = m;
    p->msg_cap = cap;
  }
  return 0;
}

static size_t header_need(const uint8_t *hdr) {
  size_t need = 2;
  uint8_t l = hdr[1] & 0x7F;
  if (l == 126) need += 2;
  else if (l == 127) need += 8;
  if (hdr[1] & 0x80) need += 4;
  return need;
}

/* A control frame's payload is complete. */
static void control_event(nd_ws_parser *p, nd_ws_event *ev) {
  nd_ws_mask(p->ctrl, p->ctrl_len, p->mask, 0);
  ev->data = p->ctrl;
  ev->len = p->ctrl_len;
  if (p->opcode == ND_WS_OP_PING) {
    ev->type = ND_WS_EV_PING;
    return;
  }
  if (p->opcode == ND_WS_OP_PONG) {
    ev->type = ND_WS_EV_PONG;
    return;
  }
  /* Close: empty, or a valid code plus a UTF-8 reason. */
  if (p->ctrl_len == 0) {
    ev->type = ND_WS_EV_CLOSE;
    ev->code = ND_WS_CLOSE_NO_STATUS;
    ev->data = p->ctrl;
    ev->len = 0;
    return;
  }
  if (p->ctrl_len == 1) {
    fail(p, ev, ND_WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
    return;
  }
  int code = (p->ctrl[0] << 8) | p->ctrl[1];
  if (!nd_ws_close_code_valid(code)) {
    fail(p, ev, ND_WS_CLOSE_PROTOCOL, "invalid close code");
    return;
  }
  if (nd_ws_utf8_feed(ND_UTF8_ACCEPT, p->ctrl + 2, p->ctrl_len - 2u) != ND_UTF8_ACCEPT) {
    fail(p, ev, ND_WS_CLOSE_BAD_DATA, "close reason is not UTF-8");
    return;
  }
  ev->type = ND_WS_EV_CLOSE;
  ev->code = code;
  ev->data = p->ctrl + 2;
  ev->len = p->ctrl_len - 2u;
}

/* A data frame's payload is complete; emits the message on FIN. */
static void data_frame_done(nd_ws_parser *p, nd_ws_event *ev) {
  if (!p->fin) return;
  if (p->msg_op == ND_WS_OP_TEXT && p->utf8 != ND_UTF8_ACCEPT) {
    fail(p, ev, ND_WS_CLOSE_BAD_DATA, "text message is not UTF-8");
    return;
  }
  ev->type = ND_WS_EV_MESSAGE;
  ev->is_text = p->msg_op == ND_WS_OP_TEXT;
  ev->data = p->msg;
  ev->len = p->msg_len;
  p->delivered = 1;
}

/* The current frame's payload is complete (possibly empty). */
static void frame_done(nd_ws_parser *p, nd_ws_event *ev) {
  p->in_payload = 0;
  p->hdr_have = 0;
  if (is_control(p->opcode)) control_event(p, ev);
  else data_frame_done(p, ev);
}

size_t nd_ws_parse(nd_ws_parser *p, const uint8_t *in, size_t n, nd_ws_event *ev) {
  memset(ev, 0, sizeof *ev);
  if (p->failed) {
    ev->type = ND_WS_EV_ERROR;
    ev->code = ND_WS_CLOSE_PROTOCOL;
    ev->why = "connection already failed";
    return n;
  }
  if (p->delivered) reset_message(p);
  size_t i = 0;
  while (i < n) {
    if (!p->in_payload) {
      if (p->hdr_have < 2) {
        p->hdr[p->hdr_have++] = in[i++];
        continue;
      }
      size_t need = header_need(p->hdr);
      if (p->hdr_have < need) {
        size_t take = need - p->hdr_have;
        if (take > n - i) take = n - i;
        memcpy(p->hdr + p->hdr_have, in + i, take);
        p->hdr_have = (uint8_t)(p->hdr_have + take);
        i += take;
        if (p->hdr_have < need) break;
      }
      if (start_frame(p, ev)) return n;
      p->in_payload = 1;
      if (p->remaining == 0) {
        frame_done(p, ev);
        if (ev->type == ND_WS_EV_ERROR) return n;
        if (ev->type != ND_WS_EV_NONE) return i;
      }
      continue;
    }
    size_t take = p->remaining < (uint64_t)(n - i) ? (size_t)p->remaining : n - i;
    if (is_control(p->opcode)) {
      memcpy(p->ctrl + p->ctrl_len, in + i, take);
      p->ctrl_len = (uint8_t)(p->ctrl_len + take);
    } else {
      uint8_t *dst = p->msg + p->msg_len;
      memcpy(dst, in + i, take);
      nd_ws_mask(dst, take, p->mask, p->mask_pos);
      p->mask_pos = (uint8_t)((p->mask_pos + take) & 3);
      p->msg_len += take;
      if (p->msg_op == ND_WS_OP_TEXT) {
        p->utf8 = nd_ws_utf8_feed(p->utf8, dst, take);
        if (p->utf8 == ND_UTF8_REJECT) {
          fail(p, ev, ND_WS_CLOSE_BAD_DATA, "text message is not UTF-8");
          return n;
        }
      }
    }
    i += take;
    p->remaining -= take;
    if (p->remaining == 0) {
      frame_done(p, ev);
      if (ev->type == ND_WS_EV_ERROR) return n;
      if (ev->type != ND_WS_EV_NONE) return i;
    }
  }
  /* A header can complete exactly at the end of input: handle it now so a
   * zero-length frame is not left waiting for bytes that never come. */
  if (!p->in_payload && p->hdr_have >= 2 && p->hdr_have == header_need(p->hdr)) {
    if (start_frame(p, ev)) return n;
    p->in_payload = 1;
    if (p->remaining == 0) {
      frame_done(p, ev);
      if (ev->type == ND_WS_EV_ERROR) return n;
    }
  }
  return i;
}

size_t nd_ws_frame_header(uint8_t out[14], int opcode, int fin, uint64_t len,
                          const uint8_t *mask) {
  size_t n = 0;
  out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
  uint8_t mbit = mask ? 0x80 : 0;
  if (len < 126) {
    out[n++] = (uint8_t)(mbit | len);
  } else if (len <= 0xFFFF) {
    out[n++] = (uint8_t)(mbit | 126);
    out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
  } else {
    out[n++] = (uint8_t)(mbit | 127);
    for (int s = 56; s >= 0; s -= 8) out[n++] = (uint8_t)(len >> s);
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

int nd_ws_close_code_valid(int code) {
  if (code >= 1000 && code <= 1003) return 1;
  if (code >= 1007 && code <= 1014) return 1;
  return code >= 3000 && code <= 4999;
}

size_t nd_ws_close_payload(uint8_t out[125], int code, const char *reason) {
  if (code == 0) return 0;
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  size_t n = reason ? strlen(reason) : 0;
  if (n > 123) {
    n = 123;
    /* Back off to a character boundary so the reason stays UTF-8. */
    while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80) n--;
  }
  if (n) memcpy(out + 2, reason, n);
  return 2 + n;
}
