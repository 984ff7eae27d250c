/* RFC 6455 frame codec and incremental UTF-8 validator. */
#include <stdlib.h>
#include <string.h>

#include "nd_test.h"
#include "ws/ws_frame.h"
#include "ws/ws_utf8.h"

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends one client frame (masked unless `unmasked`) to out; returns its size. */
static size_t frame(uint8_t *out, int op, int fin, const void *payload, size_t len, int unmasked) {
  size_t h = nd_ws_frame_header(out, op, fin, len, unmasked ? NULL : MASK);
  if (len) memcpy(out + h, payload, len);
  if (!unmasked) nd_ws_mask(out + h, len, MASK, 0);
  return h + len;
}

/* Feeds `n` bytes in pieces of `step` (0 = all at once) and collects the
 * events; message payloads are copied out. */
typedef struct collected {
  int types[16];
  int codes[16];
  size_t lens[16];
  uint8_t *data[16];
  int is_text[16];
  int n;
} collected;

/* collect()'s step that feeds a frame's first 14 bytes (the longest
 * header and mask) one at a time and the rest at once: every header split
 * without a parse call per payload byte. */
#define STEP_HEADER_BYTES ((size_t)-1)

static void collect(nd_ws_parser *p, const uint8_t *in, size_t n, size_t step, collected *c) {
  size_t off = 0;
  while (off < n && c->n < 16) {
    size_t piece = step == STEP_HEADER_BYTES ? (off < 14 ? 1 : n - off)
                   : step                    ? (n - off < step ? n - off : step)
                                             : n - off;
    size_t used = 0;
    while (used < piece && c->n < 16) {
      nd_ws_event ev;
      size_t k = nd_ws_parse(p, in + off + used, piece - used, &ev);
      ck_assert_uint_le(k, piece - used);
      used += k;
      if (ev.type == ND_WS_EV_NONE) {
        ck_assert_uint_eq(used, piece);
        break;
      }
      c->types[c->n] = ev.type;
      c->codes[c->n] = ev.code;
      c->lens[c->n] = ev.len;
      c->is_text[c->n] = ev.is_text;
      c->data[c->n] = malloc(ev.len + 1);
      if (ev.len) memcpy(c->data[c->n], ev.data, ev.len);
      c->n++;
      if (ev.type == ND_WS_EV_ERROR) return;
    }
    off += piece;
  }
}

static void collected_free(collected *c) {
  for (int i = 0; i < c->n; i++) free(c->data[i]);
}

START_TEST(small_masked_text) {
  uint8_t buf[64];
  size_t n = frame(buf, ND_WS_OP_TEXT, 1, "Hello", 5, 0);
  ck_assert_uint_eq(n, 2 + 4 + 5);
  ck_assert_int_eq(buf[1] & 0x80, 0x80);
  ck_assert(memcmp(buf + 6, "Hello", 5) != 0); /* really masked */
  nd_ws_parser p;
  nd_ws_parser_init(&p, 1024, 1);
  collected c = {0};
  collect(&p, buf, n, 0, &c);
  ck_assert_int_eq(c.n, 1);
  ck_assert_int_eq(c.types[0], ND_WS_EV_MESSAGE);
  ck_assert_int_eq(c.is_text[0], 1);
  ck_assert_uint_eq(c.lens[0], 5);
  ck_assert(memcmp(c.data[0], "Hello", 5) == 0);
  collected_free(&c);
  nd_ws_parser_free(&p);
}
END_TEST

/* A delivered message's buffer can be released at once; the parser then
 * holds no message memory and goes on with the next frame. */
START_TEST(release_after_message) {
  uint8_t buf[64];
  size_t n = frame(buf, ND_WS_OP_TEXT, 1, "one", 3, 0);
  n += frame(buf + n, ND_WS_OP_TEXT, 1, "two", 3, 0);
  nd_ws_parser p;
  nd_ws_parser_init(&p, 1024, 1);
  nd_ws_event ev;
  size_t used = nd_ws_parse(&p, buf, n, &ev);
  ck_assert_int_eq(ev.type, ND_WS_EV_MESSAGE);
  ck_assert(memcmp(ev.data, "one", 3) == 0);
  nd_ws_parser_release(&p);
  ck_assert_ptr_null(p.msg);
  ck_assert_uint_eq(p.msg_cap, 0);
  nd_ws_parser_release(&p); /* harmless twice */
  ck_assert_uint_eq(nd_ws_parse(&p, buf + used, n - used, &ev), n - used);
  ck_assert_int_eq(ev.type, ND_WS_EV_MESSAGE);
  ck_assert(memcmp(ev.data, "two", 3) == 0);
  nd_ws_parser_free(&p);
}
END_TEST

START_TEST(unmasked_client_frame_rejected) {
  uint8_t buf[64];
  size_t n = frame(buf, ND_WS_OP_TEXT, 1, "Hello", 5, 1);
  nd_ws_parser p;
  nd_ws_parser_init(&p, 1024, 1);
  collected c = {0};
  collect(&p, buf, n, 0, &c);
  ck_assert_int_eq(c.n, 1);
  ck_assert_int_eq(c.types[0], ND_WS_EV_ERROR);
  ck_assert_int_eq(c.codes[0], 1002);
  collected_free(&c);
  /* Sticky: later input reports the failure again and is swallowed. */
  nd_ws_event ev;
  ck_assert_uint_eq(nd_ws_parse(&p, buf, n, &ev), n);
  ck_assert_int_eq(ev.type, ND_WS_EV_ERROR);
  nd_ws_parser_free(&p);
}
END_TEST

/* Lengths at every encoding boundary, fed whole, byte by byte and in odd pieces. */
START_TEST(length_boundaries) {
  static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 100000};
  static const size_t hdr[] = {2, 2, 2, 4, 4, 4, 10, 10};
  /* Byte by byte only where the frame is short: a parse call per byte of
   * a 64 KiB payload is 10^5 calls, seconds under ASan on a loaded machine,
   * and tests nothing the header-byte split does not. */
  static const size_t steps[] = {0, 1, STEP_HEADER_BYTES, 7, 4093};
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    size_t len = lens[li];
    uint8_t *payload = malloc(len + 1), *buf = malloc(len + 14);
    ck_assert_ptr_nonnull(payload);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < len; i++) payload[i] = (uint8_t)(i * 31 + 7);
    uint8_t h[14];
    ck_assert_uint_eq(nd_ws_frame_header(h, ND_WS_OP_BINARY, 1, len, NULL), hdr[li]);
    size_t n = frame(buf, ND_WS_OP_BINARY, 1, payload, len, 0);
    ck_assert_uint_eq(n, hdr[li] + 4 + len);
    for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
      if (steps[si] == 1 && len > 127) continue;
      nd_ws_parser p;
      nd_ws_parser_init(&p, 1 << 20, 1);
      collected c = {0};
      collect(&p, buf, n, steps[si], &c);
      ck_assert_msg(c.n == 1 && c.types[0] == ND_WS_EV_MESSAGE, "len %zu step %zu: %d events",
                    len, steps[si], c.n);
      ck_assert_int_eq(c.is_text[0], 0);
      ck_assert_uint_eq(c.lens[0], len);
      ck_assert(len == 0 || memcmp(c.data[0], payload, len) == 0);
      collected_free(&c);
      nd_ws_parser_free(&p);
    }
    free(payload);
    free(buf);
  }
}
END_TEST

START_TEST(fragmented_with_interleaved_ping) {
  uint8_t buf[256];
  size_t n = 0;
  n += frame(buf + n, ND_WS_OP_TEXT, 0, "Hel", 3, 0);
  n += frame(buf + n, ND_WS_OP_PING, 1, "pi", 2, 0);
  n += frame(buf + n, ND_WS_OP_CONT, 0, "", 0, 0);
  n += frame(buf + n, ND_WS_OP_CONT, 1, "lo!", 3, 0);
  n += frame(buf + n, ND_WS_OP_BINARY, 1, "\x00\xff", 2, 0);
  for (size_t step = 0; step < 4; step++) {
    nd_ws_parser p;
    nd_ws_parser_init(&p, 1024, 1);
    collected c = {0};
    collect(&p, buf, n, step, &c);
    ck_assert_int_eq(c.n, 3);
    ck_assert_int_eq(c.types[0], ND_WS_EV_PING);
    ck_assert_uint_eq(c.lens[0], 2);
    ck_assert(memcmp(c.data[0], "pi", 2) == 0);
    ck_assert_int_eq(c.types[1], ND_WS_EV_MESSAGE);
    ck_assert_uint_eq(c.lens[1], 6);
    ck_assert(memcmp(c.data[1], "Hello!", 6) == 0);
    ck_assert_int_eq(c.is_text[1], 1);
    ck_assert_int_eq(c.types[2], ND_WS_EV_MESSAGE);
    ck_assert_int_eq(c.is_text[2], 0);
    ck_assert(memcmp(c.data[2], "\x00\xff", 2) == 0);
    collected_free(&c);
    nd_ws_parser_free(&p);
  }
}
END_TEST

static int first_error(const uint8_t *buf, size_t n, uint64_t max) {
  nd_ws_parser p;
  nd_ws_parser_init(&p, max, 1);
  collected c = {0};
  collect(&p, buf, n, 0, &c);
  int code = 0;
  for (int i = 0; i < c.n; i++)
    if (c.types[i] == ND_WS_EV_ERROR) code = c.codes[i];
  collected_free(&c);
  nd_ws_parser_free(&p);
  return code;
}

START_TEST(protocol_violations) {
  uint8_t buf[512], big[200];
  memset(big, 'a', sizeof big);
  size_t n;
  for (int op = 3; op <= 0xF; op++) {
    if (op >= 8 && op <= 10) continue;
    n = frame(buf, op, 1, "x", 1, 0);
    ck_assert_msg(first_error(buf, n, 1024) == 1002, "opcode %d accepted", op);
  }
  for (int rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
    n = frame(buf, ND_WS_OP_TEXT, 1, "x", 1, 0);
    buf[0] |= (uint8_t)rsv;
    ck_assert_int_eq(first_error(buf, n, 1024), 1002);
  }
  n = frame(buf, ND_WS_OP_PING, 0, "x", 1, 0); /* fragmented control */
  ck_assert_int_eq(first_error(buf, n, 1024), 1002);
  n = frame(buf, ND_WS_OP_PING, 1, big, 126, 0); /* control > 125 */
  ck_assert_int_eq(first_error(buf, n, 1024), 1002);
  n = frame(buf, ND_WS_OP_PONG, 1, big, 125, 0); /* exactly 125 is fine */
  ck_assert_int_eq(first_error(buf, n, 1024), 0);
  n = frame(buf, ND_WS_OP_CONT, 1, "x", 1, 0); /* continuation out of nowhere */
  ck_assert_int_eq(first_error(buf, n, 1024), 1002);
  n = frame(buf, ND_WS_OP_TEXT, 0, "a", 1, 0);
  n += frame(buf + n, ND_WS_OP_TEXT, 1, "b", 1, 0); /* new message mid-fragment */
  ck_assert_int_eq(first_error(buf, n, 1024), 1002);
  /* 64-bit length with the top bit set */
  uint8_t h[14] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
  ck_assert_int_eq(first_error(h, sizeof h, 0), 1002);
}
END_TEST

START_TEST(message_size_limit) {
  uint8_t buf[512], big[200];
  memset(big, 'a', sizeof big);
  size_t n = frame(buf, ND_WS_OP_TEXT, 1, big, 101, 0);
  ck_assert_int_eq(first_error(buf, n, 100), 1009);
  n = frame(buf, ND_WS_OP_TEXT, 1, big, 100, 0);
  ck_assert_int_eq(first_error(buf, n, 100), 0);
  /* Over the limit only once the fragments add up. */
  n = frame(buf, ND_WS_OP_TEXT, 0, big, 60, 0);
  n += frame(buf + n, ND_WS_OP_CONT, 1, big, 60, 0);
  ck_assert_int_eq(first_error(buf, n, 100), 1009);
  /* The limit is enforced from the header alone: no payload needed. */
  uint8_t hdr[14];
  size_t hn = nd_ws_frame_header(hdr, ND_WS_OP_TEXT, 1, (uint64_t)1 << 40, MASK);
  ck_assert_int_eq(first_error(hdr, hn, 1 << 16), 1009);
}
END_TEST

START_TEST(utf8_across_fragments) {
  /* "κόσμε" split inside a 2-byte sequence, and U+1F600 split 1|3. */
  const char *s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf0\x9f\x98\x80";
  size_t sl = strlen(s);
  uint8_t buf[256];
  size_t n = frame(buf, ND_WS_OP_TEXT, 0, s, 1, 0);
  n += frame(buf + n, ND_WS_OP_CONT, 0, s + 1, sl - 4, 0);
  n += frame(buf + n, ND_WS_OP_CONT, 1, s + sl - 3, 3, 0);
  for (size_t step = 0; step < 3; step++) {
    nd_ws_parser p;
    nd_ws_parser_init(&p, 1024, 1);
    collected c = {0};
    collect(&p, buf, n, step, &c);
    ck_assert_int_eq(c.n, 1);
    ck_assert_int_eq(c.types[0], ND_WS_EV_MESSAGE);
    ck_assert_uint_eq(c.lens[0], sl);
    ck_assert(memcmp(c.data[0], s, sl) == 0);
    collected_free(&c);
    nd_ws_parser_free(&p);
  }
  /* Truncated sequence at the end of the message. */
  n = frame(buf, ND_WS_OP_TEXT, 0, "ok", 2, 0);
  n += frame(buf + n, ND_WS_OP_CONT, 1, "\xce", 1, 0);
  ck_assert_int_eq(first_error(buf, n, 1024), 1007);
  /* Fail fast: the bad byte is reported before the message's end arrives. */
  n = frame(buf, ND_WS_OP_TEXT, 0, "a\xff", 2, 0);
  ck_assert_int_eq(first_error(buf, n, 1024), 1007);
  /* Binary messages are not validated. */
  n = frame(buf, ND_WS_OP_BINARY, 1, "\xff\xfe", 2, 0);
  ck_assert_int_eq(first_error(buf, n, 1024), 0);
}
END_TEST

START_TEST(utf8_validator) {
  static const struct { const char *s; int ok; } cases[] = {
      {"plain ascii that is longer than eight bytes", 1},
      {"\xf4\x8f\xbf\xbf", 1},      /* U+10FFFF */
      {"\xef\xbf\xbf", 1},          /* U+FFFF */
      {"\xed\x9f\xbf", 1},          /* U+D7FF */
      {"\xed\xa0\x80", 0},          /* surrogate D800 */
      {"\xc0\x80", 0},              /* overlong NUL */
      {"\xe0\x9f\xbf", 0},          /* overlong 3-byte */
      {"\xf0\x8f\xbf\xbf", 0},      /* overlong 4-byte */
      {"\xf4\x90\x80\x80", 0},      /* above U+10FFFF */
      {"\x80", 0},                  /* stray continuation */
      {"\xf8\x88\x80\x80\x80", 0},  /* 5-byte form */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const uint8_t *p = (const uint8_t *)cases[i].s;
    size_t n = strlen(cases[i].s);
    uint32_t whole = nd_ws_utf8_feed(ND_UTF8_ACCEPT, p, n);
    ck_assert_msg((whole == ND_UTF8_ACCEPT) == cases[i].ok, "case %zu", i);
    uint32_t st = ND_UTF8_ACCEPT; /* byte by byte gives the same verdict */
    for (size_t k = 0; k < n; k++) st = nd_ws_utf8_feed(st, p + k, 1);
    ck_assert_uint_eq(st == ND_UTF8_ACCEPT, (unsigned)cases[i].ok);
  }
  ck_assert_uint_ne(nd_ws_utf8_feed(ND_UTF8_ACCEPT, (const uint8_t *)"\xe2\x82", 2),
                    ND_UTF8_ACCEPT); /* incomplete, not yet rejected */
  ck_assert_uint_ne(nd_ws_utf8_feed(ND_UTF8_ACCEPT, (const uint8_t *)"\xe2\x82", 2),
                    ND_UTF8_REJECT);
}
END_TEST

START_TEST(close_frames) {
  uint8_t buf[256], pl[125];
  size_t pn = nd_ws_close_payload(pl, 1000, "bye");
  size_t n = frame(buf, ND_WS_OP_CLOSE, 1, pl, pn, 0);
  nd_ws_parser p;
  nd_ws_parser_init(&p, 1024, 1);
  collected c = {0};
  collect(&p, buf, n, 1, &c);
  ck_assert_int_eq(c.n, 1);
  ck_assert_int_eq(c.types[0], ND_WS_EV_CLOSE);
  ck_assert_int_eq(c.codes[0], 1000);
  ck_assert_uint_eq(c.lens[0], 3);
  ck_assert(memcmp(c.data[0], "bye", 3) == 0);
  collected_free(&c);
  nd_ws_parser_free(&p);

  nd_ws_parser_init(&p, 1024, 1);
  memset(&c, 0, sizeof c);
  n = frame(buf, ND_WS_OP_CLOSE, 1, "", 0, 0);
  collect(&p, buf, n, 0, &c);
  ck_assert_int_eq(c.types[0], ND_WS_EV_CLOSE);
  ck_assert_int_eq(c.codes[0], 1005);
  collected_free(&c);
  nd_ws_parser_free(&p);

  n = frame(buf, ND_WS_OP_CLOSE, 1, "\x03", 1, 0);
  ck_assert_int_eq(first_error(buf, n, 1024), 1002);
  static const int bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t raw[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
    n = frame(buf, ND_WS_OP_CLOSE, 1, raw, 2, 0);
    ck_assert_msg(first_error(buf, n, 1024) == 1002, "code %d accepted", bad[i]);
  }
  static const int good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ck_assert_msg(nd_ws_close_code_valid(good[i]), "code %d", good[i]);
  pn = nd_ws_close_payload(pl, 1000, "\xce\xba\xff");
  n = frame(buf, ND_WS_OP_CLOSE, 1, pl, pn, 0);
  ck_assert_int_eq(first_error(buf, n, 1024), 1007);
}
END_TEST

START_TEST(close_reason_truncated_on_char_boundary) {
  char reason[200];
  /* 'a' then 2-byte characters: byte 123 would split a character. */
  reason[0] = 'a';
  size_t k = 1;
  while (k + 2 < sizeof reason) {
    reason[k++] = (char)0xce;
    reason[k++] = (char)0xba;
  }
  reason[k] = '\0';
  uint8_t pl[125];
  size_t n = nd_ws_close_payload(pl, 1001, reason);
  ck_assert_uint_le(n, 125);
  ck_assert_uint_eq(n, 2 + 123);
  ck_assert_uint_eq(nd_ws_utf8_feed(ND_UTF8_ACCEPT, pl + 2, n - 2), ND_UTF8_ACCEPT);
  ck_assert_uint_eq(pl[0], 1001 >> 8);
  ck_assert_uint_eq(pl[1], 1001 & 0xff);
  ck_assert_uint_eq(nd_ws_close_payload(pl, 0, "x"), 0);
}
END_TEST

START_TEST(mask_any_offset) {
  uint8_t a[37], b[37];
  for (size_t i = 0; i < sizeof a; i++) a[i] = b[i] = (uint8_t)i;
  for (size_t i = 0; i < sizeof a; i++) a[i] ^= MASK[i & 3];
  /* The same result masked in uneven pieces with a running position. */
  size_t cuts[] = {0, 3, 4, 13, 30, 37};
  for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++)
    nd_ws_mask(b + cuts[i], cuts[i + 1] - cuts[i], MASK, cuts[i] & 3);
  ck_assert(memcmp(a, b, sizeof a) == 0);
}
END_TEST

/* Deterministic xorshift, so a failure is reproducible. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint32_t rnd(uint32_t n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state % n);
}

/* Random binary messages, randomly fragmented with pings in between,
 * fed in random pieces: every message comes out whole and in order. */
START_TEST(random_fragmentation_roundtrip) {
  enum { MSGS = 60 };
  size_t cap = 1 << 20, n = 0;
  uint8_t *stream = malloc(cap);
  uint8_t *msgs[MSGS];
  size_t lens[MSGS];
  int pings = 0;
  for (int m = 0; m < MSGS; m++) {
    size_t len = rnd(4) == 0 ? rnd(70000) : rnd(300);
    lens[m] = len;
    msgs[m] = malloc(len + 1);
    for (size_t i = 0; i < len; i++) msgs[m][i] = (uint8_t)rnd(256);
    size_t off = 0;
    int first = 1;
    do {
      size_t part = len - off;
      if (part > 1 && rnd(2)) part = rnd((uint32_t)part);
      int fin = off + part == len;
      ck_assert_uint_lt(n + part + 14 + 200, cap);
      n += frame(stream + n, first ? ND_WS_OP_BINARY : ND_WS_OP_CONT, fin, msgs[m] + off, part, 0);
      off += part;
      first = 0;
      if (!fin && rnd(3) == 0) {
        n += frame(stream + n, ND_WS_OP_PING, 1, "x", 1, 0);
        pings++;
      }
    } while (off < len);
  }
  nd_ws_parser p;
  nd_ws_parser_init(&p, 1 << 20, 1);
  int got = 0, got_pings = 0;
  size_t off = 0;
  while (off < n) {
    size_t piece = 1 + rnd(3000);
    if (piece > n - off) piece = n - off;
    size_t used = 0;
    while (used < piece) {
      nd_ws_event ev;
      size_t k = nd_ws_parse(&p, stream + off + used, piece - used, &ev);
      used += k;
      if (ev.type == ND_WS_EV_NONE) break;
      ck_assert_int_ne(ev.type, ND_WS_EV_ERROR);
      if (ev.type == ND_WS_EV_PING) {
        got_pings++;
        continue;
      }
      ck_assert_int_eq(ev.type, ND_WS_EV_MESSAGE);
      ck_assert_int_lt(got, MSGS);
      ck_assert_uint_eq(ev.len, lens[got]);
      ck_assert(ev.len == 0 || memcmp(ev.data, msgs[got], ev.len) == 0);
      got++;
    }
    off += piece;
  }
  ck_assert_int_eq(got, MSGS);
  ck_assert_int_eq(got_pings, pings);
  nd_ws_parser_free(&p);
  for (int m = 0; m < MSGS; m++) free(msgs[m]);
  free(stream);
}
END_TEST

/* Arbitrary bytes never crash the parser, never make it consume more
 * than it was given, and end in NONE, events or a sticky error. */
START_TEST(garbage_input) {
  uint8_t buf[512];
  for (int round = 0; round < 3000; round++) {
    size_t n = 1 + rnd(sizeof buf);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rnd(256);
    if (rnd(2)) buf[1] |= 0x80; /* masked more often than not */
    nd_ws_parser p;
    nd_ws_parser_init(&p, 4096, 1);
    size_t off = 0;
    int errors = 0;
    while (off < n) {
      nd_ws_event ev;
      size_t k = nd_ws_parse(&p, buf + off, n - off, &ev);
      ck_assert_uint_le(k, n - off);
      if (ev.type == ND_WS_EV_ERROR) {
        errors++;
        ck_assert_uint_eq(k, n - off);
        ck_assert(ev.code == 1002 || ev.code == 1007 || ev.code == 1009);
      }
      if (ev.type == ND_WS_EV_NONE) ck_assert_uint_eq(k, n - off);
      if (k == 0 && ev.type == ND_WS_EV_NONE) break;
      off += k;
    }
    ck_assert_int_le(errors, 1);
    nd_ws_parser_free(&p);
  }
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("ws_frame");
  TCase *tc = tcase_create("codec");
  tcase_add_test(tc, small_masked_text);
  tcase_add_test(tc, release_after_message);
  tcase_add_test(tc, unmasked_client_frame_rejected);
  tcase_add_test(tc, length_boundaries);
  tcase_add_test(tc, fragmented_with_interleaved_ping);
  tcase_add_test(tc, protocol_violations);
  tcase_add_test(tc, message_size_limit);
  tcase_add_test(tc, utf8_across_fragments);
  tcase_add_test(tc, utf8_validator);
  tcase_add_test(tc, close_frames);
  tcase_add_test(tc, close_reason_truncated_on_char_boundary);
  tcase_add_test(tc, mask_any_offset);
  tcase_add_test(tc, random_fragmentation_roundtrip);
  tcase_add_test(tc, garbage_input);
  suite_add_tcase(s, tc);
  return s;
}
