#include "chat_oid.h"

#include <string.h>
#include <sys/random.h>

int chat_oid_gen_init(chat_oid_gen *g) {
  unsigned char seed[8];
  size_t got = 0;
  while (got < sizeof seed) {
    ssize_t n = getrandom(seed + got, sizeof seed - got, 0);
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  memcpy(g->random, seed, sizeof g->random);
  g->counter = (uint32_t)seed[5] << 16 | (uint32_t)seed[6] << 8 | seed[7];
  return 0;
}

void chat_oid_next(chat_oid_gen *g, int64_t now_ms, char out[CHAT_OID_HEX_LEN + 1]) {
  static const char hexd[] = "0123456789abcdef";
  uint32_t secs = (uint32_t)(now_ms / 1000);
  uint32_t c = g->counter++ & 0xFFFFFF;
  unsigned char raw[12] = {
      (unsigned char)(secs >> 24), (unsigned char)(secs >> 16), (unsigned char)(secs >> 8),
      (unsigned char)secs,         g->random[0],                g->random[1],
      g->random[2],                g->random[3],                g->random[4],
      (unsigned char)(c >> 16),    (unsigned char)(c >> 8),     (unsigned char)c};
  for (int i = 0; i < 12; i++) {
    out[2 * i] = hexd[raw[i] >> 4];
    out[2 * i + 1] = hexd[raw[i] & 15];
  }
  out[CHAT_OID_HEX_LEN] = '\0';
}

int chat_oid_is_hex(const char *s) {
  size_t n = 0;
  for (; s[n]; n++) {
    char c = s[n];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return 0;
  }
  return n == CHAT_OID_HEX_LEN;
}
