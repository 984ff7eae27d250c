/* UTF-8 validation: the host's incremental validator for websocket text
 * (host/ws/ws_utf8.c), fed at once and in pieces, against the two other
 * validators in the tree, chat_utf8_valid (plugins/chat_common/chat_json.c)
 * and Go's utf8.DecodeRune port pc_utf8_decode (plugins/common/pc_jscan.c).
 * All follow RFC 3629 (no overlongs, surrogates or code points above
 * U+10FFFF), so they must agree on every input.  Input: a seed byte for
 * the piece lengths, then the text. */
#include "chat_json.h"
#include "fuzz.h"
#include "pc_jscan.h"
#include "ws/ws_utf8.h"

/* 1 if pc_utf8_decode reads every sequence of p[0..n) without an error
 * (U+FFFD with size 1; a literal U+FFFD is 3 bytes). */
static int decode_rune_valid(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t sz;
    unsigned cp = pc_utf8_decode(p + i, n - i, &sz);
    if (cp == 0xFFFD && sz == 1) return 0;
    FUZZ_CHECK(sz >= 1 && sz <= 4 && sz <= n - i, "rune of %zu bytes at %zu", sz, i);
    FUZZ_CHECK(chat_utf8_seq(p + i, n - i) == sz, "sequence at %zu: %zu bytes or %zu", i, sz,
               chat_utf8_seq(p + i, n - i));
    i += sz;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  fuzz_split sp = {data[0]};
  data++, size--;
  char *text = fuzz_copy(data, size, 0);
  const uint8_t *u = (const uint8_t *)text;

  uint32_t whole = nd_ws_utf8_feed(ND_UTF8_ACCEPT, u, size);
  uint32_t st = ND_UTF8_ACCEPT;
  for (size_t off = 0; off < size;) {
    size_t n = fuzz_split_next(&sp, size - off);
    st = nd_ws_utf8_feed(st, u + off, n);
    off += n;
  }
  FUZZ_CHECK(st == whole, "state %u in pieces, %u at once", st, whole);

  int host = whole == ND_UTF8_ACCEPT;
  int chat = chat_utf8_valid(text, size);
  int rune = decode_rune_valid(u, size);
  FUZZ_CHECK(host == chat && chat == rune, "valid: ws_utf8 %d, chat_utf8_valid %d, pc_utf8_decode %d",
             host, chat, rune);
  free(text);
  return 0;
}
