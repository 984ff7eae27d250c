#include "chat_json.h"

#include <string.h>

size_t chat_utf8_seq(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

int chat_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    size_t l = chat_utf8_seq(p + i, n - i);
    if (!l) return 0;
    i += l;
  }
  return 1;
}

static const char json_hex_digits[] = "0123456789abcdef";

static int put_u(pc_buf *b, unsigned v) {
  const char *h = json_hex_digits;
  char e[6] = {'\\', 'u', h[(v >> 12) & 15], h[(v >> 8) & 15], h[(v >> 4) & 15], h[v & 15]};
  pc_buf_put(b, e, sizeof e);
  return b->oom ? -1 : 0;
}

/* 1 for bytes that need a look in chat_json_str: '"', '\\', controls, and
 * non-ASCII (UTF-8 checks); 2 for the HTML characters only Go escapes. */
static const unsigned char attention[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1,
    ['<'] = 2,        ['>'] = 2, ['&'] = 2,
};

int chat_json_str(pc_buf *b, const char *s, size_t n, int flavour) {
  const unsigned char *p = (const unsigned char *)s;
  const unsigned char stop = flavour == CHAT_JSON_GO ? 3 : 1; /* mask of kinds to look at */
  pc_buf_putc(b, '"');
  size_t run = 0; /* start of the pending run of bytes copied verbatim */
  size_t i = 0;
  while (i < n) {
    /* Runs of plain ASCII, the bulk of any message, in a tight loop. */
    while (i < n && !(attention[p[i]] & stop)) i++;
    if (i == n) break;
    unsigned c = p[i];
    const char *esc = NULL;
    int u = -1;
    size_t adv = 1;
    if (c < 0x80) {
      if (c == '"') esc = "\\\"";
      else if (c == '\\') esc = "\\\\";
      else if (c == '\n') esc = "\\n";
      else if (c == '\r') esc = "\\r";
      else if (c == '\t') esc = "\\t";
      else if (c < 0x20) u = (int)c;
      else if (flavour == CHAT_JSON_GO && (c == '<' || c == '>' || c == '&')) u = (int)c;
    } else {
      adv = chat_utf8_seq(p + i, n - i);
      if (adv == 0) {
        adv = 1;
        if (flavour == CHAT_JSON_GO) u = 0xFFFD; /* as Go does for bad bytes */
      } else if (flavour == CHAT_JSON_GO && adv == 3 && c == 0xE2 && p[i + 1] == 0x80 &&
                 (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
        u = p[i + 2] == 0xA8 ? 0x2028 : 0x2029;
      }
    }
    if (esc || u >= 0) {
      pc_buf_put(b, s + run, i - run);
      if (esc) pc_buf_puts(b, esc);
      else put_u(b, (unsigned)u);
      run = i + adv;
    }
    i += adv;
  }
  pc_buf_put(b, s + run, n - run);
  pc_buf_putc(b, '"');
  return b->oom ? -1 : 0;
}

int chat_json_key(pc_buf *b, const char *key) {
  chat_json_str(b, key, strlen(key), CHAT_JSON_PLAIN);
  pc_buf_putc(b, ':');
  return b->oom ? -1 : 0;
}
