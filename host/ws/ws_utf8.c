/* Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF).
 *
 * States: 0 accept; 1..3 that many plain continuation bytes (80..BF) still
 * expected; 4..7 the second byte of a sequence whose lead restricts it:
 *   4 after E0: A0..BF, then 1     5 after ED: 80..9F, then 1
 *   6 after F0: 90..BF, then 2     7 after F4: 80..8F, then 2
 * 8 reject (sticky). */
#include "ws/ws_utf8.h"

#include <string.h>

static uint32_t lead_state(uint8_t c) {
  if (c < 0x80) return 0;
  if (c >= 0xC2 && c <= 0xDF) return 1;
  if (c == 0xE0) return 4;
  if (c == 0xED) return 5;
  if (c >= 0xE1 && c <= 0xEF) return 2;
  if (c == 0xF0) return 6;
  if (c >= 0xF1 && c <= 0xF3) return 3;
  if (c == 0xF4) return 7;
  return ND_UTF8_REJECT; /* 80..C1 (stray continuation, overlong lead), F5..FF */
}

static uint32_t continuation_state(uint32_t st, uint8_t c) {
  uint8_t lo = 0x80, hi = 0xBF;
  uint32_t next;
  switch (st) {
  case 1: next = 0; break;
  case 2: next = 1; break;
  case 3: next = 2; break;
  case 4: lo = 0xA0; next = 1; break;
  case 5: hi = 0x9F; next = 1; break;
  case 6: lo = 0x90; next = 2; break;
  case 7: hi = 0x8F; next = 2; break;
  default: return ND_UTF8_REJECT;
  }
  return (c >= lo && c <= hi) ? next : ND_UTF8_REJECT;
}

uint32_t nd_ws_utf8_feed(uint32_t st, const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (st == ND_UTF8_ACCEPT) {
      /* ASCII fast path, 8 bytes at a time. */
      while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & UINT64_C(0x8080808080808080)) break;
        i += 8;
      }
      if (i == n) break;
      st = lead_state(p[i++]);
    } else if (st == ND_UTF8_REJECT) {
      return st;
    } else {
      st = continuation_state(st, p[i++]);
    }
  }
  return st;
}
