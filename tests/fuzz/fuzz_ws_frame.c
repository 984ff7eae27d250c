/* Websocket frames from a client (host/ws/ws_frame.c nd_ws_parse).  Input:
 * a flags byte (mask required or not, message limit, mode), a seed byte
 * for the piece lengths, then the bytes the peer sends.  The stream is
 * parsed all at once and in pieces (each piece in its own exact-size
 * buffer, freed once consumed, as the connection drains its input); both
 * runs must give the same events, and what they deliver must be valid:
 * text messages and close reasons UTF-8, close codes allowed on the wire,
 * sizes in bounds.  In the second mode (flag 8) the bytes are a payload
 * instead, framed by the encoders (nd_ws_frame_header, nd_ws_mask,
 * nd_ws_close_payload), which must parse back to what was sent. */
#include <string.h>

#include "fuzz.h"
#include "ws/ws_frame.h"
#include "ws/ws_utf8.h"

#define MAX_EVENTS 4096

typedef struct event_rec {
  int type, is_text, code;
  size_t len;
  uint64_t hash;
  const char *why;
} event_rec;

typedef struct run {
  event_rec ev[MAX_EVENTS];
  size_t n;
  int failed;
} run;

static void check_event(const nd_ws_event *ev, uint64_t max_message) {
  switch (ev->type) {
  case ND_WS_EV_MESSAGE:
    FUZZ_CHECK(ev->len <= max_message, "%zu-byte message over %llu", ev->len,
               (unsigned long long)max_message);
    if (ev->is_text)
      FUZZ_CHECK(nd_ws_utf8_feed(ND_UTF8_ACCEPT, ev->data, ev->len) == ND_UTF8_ACCEPT,
                 "text message is not UTF-8");
    break;
  case ND_WS_EV_PING:
  case ND_WS_EV_PONG:
    FUZZ_CHECK(ev->len <= 125, "%zu-byte control payload", ev->len);
    break;
  case ND_WS_EV_CLOSE:
    FUZZ_CHECK(ev->code == ND_WS_CLOSE_NO_STATUS || nd_ws_close_code_valid(ev->code),
               "close code %d", ev->code);
    FUZZ_CHECK(nd_ws_utf8_feed(ND_UTF8_ACCEPT, ev->data, ev->len) == ND_UTF8_ACCEPT,
               "close reason is not UTF-8");
    break;
  case ND_WS_EV_ERROR:
    FUZZ_CHECK(ev->why != NULL && ev->code >= 1000, "error %d without a reason", ev->code);
    break;
  default:
    FUZZ_CHECK(0, "event type %d", ev->type);
  }
}

/* Parses buf[0..n) until it is consumed or the connection failed. */
static void feed(nd_ws_parser *p, const uint8_t *buf, size_t n, run *r, uint64_t max_message) {
  size_t off = 0;
  while (off < n && !r->failed) {
    nd_ws_event ev;
    size_t used = nd_ws_parse(p, buf + off, n - off, &ev);
    FUZZ_CHECK(used <= n - off, "consumed %zu of %zu bytes", used, n - off);
    if (ev.type != ND_WS_EV_NONE) {
      check_event(&ev, max_message);
      FUZZ_CHECK(r->n < MAX_EVENTS, "too many events");
      event_rec *e = &r->ev[r->n++];
      e->type = ev.type;
      e->is_text = ev.is_text;
      e->code = ev.code;
      e->len = ev.len;
      e->hash = ev.len ? fuzz_hash(ev.data, ev.len) : 0;
      e->why = ev.why;
      if (ev.type == ND_WS_EV_ERROR) r->failed = 1;
    } else {
      FUZZ_CHECK(used == n - off, "stopped after %zu of %zu bytes without an event", used,
                 n - off);
    }
    nd_ws_parser_release(p);
    off += used;
  }
}

static run whole, pieces;

/* Appends one frame (masked when `mask` is set) to wire + *w. */
static void put_frame(uint8_t *wire, size_t *w, int op, int fin, const uint8_t *p, size_t n,
                      const uint8_t *mask) {
  *w += nd_ws_frame_header(wire + *w, op, fin, n, mask);
  if (n) memcpy(wire + *w, p, n);
  if (mask) nd_ws_mask(wire + *w, n, mask, 0);
  *w += n;
}

/* The payload as a message in two fragments with a ping between them,
 * then a close frame whose reason is the payload's first bytes, cut to
 * fit by nd_ws_close_payload: the parser gives back exactly that. */
static void round_trip(const uint8_t *payload, size_t n, int require_mask, uint64_t max_message) {
  static const uint8_t mask[4] = {0x5a, 0x00, 0xff, 0x13};
  const uint8_t *m = require_mask ? mask : NULL;
  if (n > max_message) n = (size_t)max_message;
  int text = nd_ws_utf8_feed(ND_UTF8_ACCEPT, payload, n) == ND_UTF8_ACCEPT;
  char reason[200];
  size_t rn = text ? strnlen((const char *)payload, n < sizeof reason - 1 ? n : sizeof reason - 1)
                   : 0;
  memcpy(reason, payload, rn);
  reason[rn] = '\0';
  uint8_t close[125];
  size_t cn = nd_ws_close_payload(close, ND_WS_CLOSE_NORMAL, reason);
  uint8_t *wire = malloc(4 * 14 + n + sizeof close);
  FUZZ_CHECK(wire != NULL, "out of memory");
  size_t w = 0, half = n / 2;
  put_frame(wire, &w, text ? ND_WS_OP_TEXT : ND_WS_OP_BINARY, 0, payload, half, m);
  put_frame(wire, &w, ND_WS_OP_PING, 1, NULL, 0, m);
  put_frame(wire, &w, ND_WS_OP_CONT, 1, payload + half, n - half, m);
  put_frame(wire, &w, ND_WS_OP_CLOSE, 1, close, cn, m);
  nd_ws_parser p;
  nd_ws_parser_init(&p, max_message, require_mask);
  memset(&whole, 0, sizeof whole);
  feed(&p, wire, w, &whole, max_message);
  nd_ws_parser_free(&p);
  free(wire);
  FUZZ_CHECK(whole.n == 3 && whole.ev[0].type == ND_WS_EV_PING &&
                 whole.ev[1].type == ND_WS_EV_MESSAGE && whole.ev[2].type == ND_WS_EV_CLOSE,
             "%zu events, the first %d (%s)", whole.n, whole.ev[0].type,
             whole.ev[0].why ? whole.ev[0].why : "");
  FUZZ_CHECK(whole.ev[1].is_text == text && whole.ev[1].len == n &&
                 whole.ev[1].hash == (n ? fuzz_hash(payload, n) : 0),
             "message of %zu bytes came back as %zu", n, whole.ev[1].len);
  FUZZ_CHECK(whole.ev[2].code == ND_WS_CLOSE_NORMAL && whole.ev[2].len == cn - 2 &&
                 whole.ev[2].hash == (cn > 2 ? fuzz_hash(close + 2, cn - 2) : 0),
             "close reason of %zu bytes came back as %zu", cn - 2, whole.ev[2].len);
  FUZZ_CHECK(cn - 2 <= 123 && cn - 2 <= rn && memcmp(close + 2, reason, cn - 2) == 0,
             "reason of %zu bytes sent as %zu", rn, cn - 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  static const uint64_t limits[4] = {125, 1024, 65536, 1u << 20};
  int require_mask = data[0] & 1;
  uint64_t max_message = limits[(data[0] >> 1) & 3];
  fuzz_split sp = {data[1]};
  data += 2, size -= 2;
  if (data[-2] & 8) {
    round_trip(data, size, require_mask, max_message);
    return 0;
  }

  nd_ws_parser p;
  memset(&whole, 0, sizeof whole);
  nd_ws_parser_init(&p, max_message, require_mask);
  uint8_t *all = (uint8_t *)fuzz_copy(data, size, 0);
  feed(&p, all, size, &whole, max_message);
  free(all);
  nd_ws_parser_free(&p);

  memset(&pieces, 0, sizeof pieces);
  nd_ws_parser_init(&p, max_message, require_mask);
  for (size_t off = 0; off < size && !pieces.failed;) {
    size_t n = fuzz_split_next(&sp, size - off);
    uint8_t *piece = (uint8_t *)fuzz_copy(data + off, n, 0);
    feed(&p, piece, n, &pieces, max_message);
    free(piece);
    off += n;
  }
  nd_ws_parser_free(&p);

  FUZZ_CHECK(whole.n == pieces.n, "%zu events at once, %zu in pieces", whole.n, pieces.n);
  for (size_t i = 0; i < whole.n; i++) {
    const event_rec *a = &whole.ev[i], *b = &pieces.ev[i];
    FUZZ_CHECK(a->type == b->type && a->is_text == b->is_text && a->code == b->code &&
                   a->len == b->len && a->hash == b->hash &&
                   (a->why == b->why || (a->why && b->why && strcmp(a->why, b->why) == 0)),
               "event %zu differs: type %d/%d len %zu/%zu code %d/%d (%s / %s)", i, a->type,
               b->type, a->len, b->len, a->code, b->code, a->why ? a->why : "",
               b->why ? b->why : "");
  }
  return 0;
}
