#include "pc_jenc.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_jscan.h"

static const char hexdig[] = "0123456789abcdef";

void pc_json_put_string(pc_buf *b, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  pc_buf_putc(b, '"');
  size_t start = 0, i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
        i++;
        continue;
      }
      pc_buf_put(b, s + start, i - start);
      switch (c) {
        case '"': pc_buf_puts(b, "\\\""); break;
        case '\\': pc_buf_puts(b, "\\\\"); break;
        case '\b': pc_buf_puts(b, "\\b"); break;
        case '\f': pc_buf_puts(b, "\\f"); break;
        case '\n': pc_buf_puts(b, "\\n"); break;
        case '\r': pc_buf_puts(b, "\\r"); break;
        case '\t': pc_buf_puts(b, "\\t"); break;
        default: {
          char u[6] = {'\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 0xF]};
          pc_buf_put(b, u, 6);
        }
      }
      start = ++i;
      continue;
    }
    size_t sz;
    unsigned cp = pc_utf8_decode(p + i, n - i, &sz);
    if (cp == 0xFFFD && sz == 1) {
      pc_buf_put(b, s + start, i - start);
      pc_buf_puts(b, "\\ufffd");
      start = ++i;
      continue;
    }
    if (cp == 0x2028 || cp == 0x2029) {
      pc_buf_put(b, s + start, i - start);
      pc_buf_puts(b, cp == 0x2028 ? "\\u2028" : "\\u2029");
      i += sz;
      start = i;
      continue;
    }
    i += sz;
  }
  pc_buf_put(b, s + start, n - start);
  pc_buf_putc(b, '"');
}

void pc_json_put_cstring(pc_buf *b, const char *s) { pc_json_put_string(b, s, strlen(s)); }

/* Shortest decimal digits that read back as v (v finite, > 0): digits in
 * `dig` (no dot), decimal exponent such that v = 0.d1d2... * 10^exp10. */
static int shortest_digits(double v, char dig[20], int *exp10) {
  char tmp[40];
  for (int prec = 0; prec < 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec, v);
    if (strtod(tmp, NULL) == v) break;
  }
  /* tmp is d[.ddd]e±XX */
  int nd = 0;
  const char *q = tmp;
  for (; *q && *q != 'e'; q++)
    if (*q >= '0' && *q <= '9') dig[nd++] = *q;
  int e = atoi(q + 1);
  while (nd > 1 && dig[nd - 1] == '0') nd--; /* %.*e never pads the shortest, but be safe */
  dig[nd] = '\0';
  *exp10 = e + 1;
  return nd;
}

int pc_go_float(double v, char out[32]) {
  if (isnan(v) || isinf(v)) return -1;
  char *o = out;
  if (signbit(v)) *o++ = '-';
  double a = fabs(v);
  if (a == 0) {
    strcpy(o, "0");
    return 0;
  }
  char dig[20];
  int e10;
  int nd = shortest_digits(a, dig, &e10);
  if (a < 1e-6 || a >= 1e21) {
    /* d[.ddd]e±X with at least two exponent digits, then Go trims "e-0X" */
    *o++ = dig[0];
    if (nd > 1) {
      *o++ = '.';
      memcpy(o, dig + 1, (size_t)nd - 1);
      o += nd - 1;
    }
    int x = e10 - 1;
    *o++ = 'e';
    *o++ = x < 0 ? '-' : '+';
    int ax = x < 0 ? -x : x;
    if (x < 0 && ax < 10) sprintf(o, "%d", ax);
    else sprintf(o, "%02d", ax);
    return 0;
  }
  if (e10 <= 0) {
    *o++ = '0';
    *o++ = '.';
    for (int k = 0; k < -e10; k++) *o++ = '0';
    memcpy(o, dig, (size_t)nd);
    o += nd;
  } else if (e10 >= nd) {
    memcpy(o, dig, (size_t)nd);
    o += nd;
    for (int k = nd; k < e10; k++) *o++ = '0';
  } else {
    memcpy(o, dig, (size_t)e10);
    o += e10;
    *o++ = '.';
    memcpy(o, dig + e10, (size_t)(nd - e10));
    o += nd - e10;
  }
  *o = '\0';
  return 0;
}

int pc_json_put_float(pc_buf *b, double v) {
  char t[32];
  if (pc_go_float(v, t) < 0) return -1;
  pc_buf_puts(b, t);
  return 0;
}

void pc_json_put_int(pc_buf *b, int64_t v) { pc_buf_printf(b, "%" PRId64, v); }
