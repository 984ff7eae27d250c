/* The C side of the differential test (run.sh): the same input and output
 * format as main.go, through plugins/common's binder and encoder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_bind.h"
#include "pc_models.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t unbase64(const char *s, unsigned char *out, size_t cap) {
  size_t n = 0;
  unsigned v = 0;
  int bits = 0;
  for (; *s && *s != '\n' && *s != '='; s++) {
    const char *p = strchr(b64, *s);
    if (!p) continue;
    v = (v << 6) | (unsigned)(p - b64);
    bits += 6;
    if (bits >= 8 && n < cap) {
      bits -= 8;
      out[n++] = (unsigned char)(v >> bits);
    }
  }
  return n;
}

static void put_base64(const unsigned char *d, size_t n) {
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) |
                 (i + 2 < n ? d[i + 2] : 0);
    putchar(b64[v >> 18]);
    putchar(b64[(v >> 12) & 63]);
    putchar(i + 1 < n ? b64[(v >> 6) & 63] : '=');
    putchar(i + 2 < n ? b64[v & 63] : '=');
  }
  putchar('\n');
}

static const pc_model_def *model_named(const char *name) {
  if (!strcmp(name, "chat")) return &pc_chat_message_def;
  if (!strcmp(name, "purchase")) return &pc_purchase_update_def;
  if (!strcmp(name, "payment")) return &pc_payment_reminder_def;
  return &pc_shipping_update_def;
}

int main(void) {
  static char line[1 << 21];
  static unsigned char body[1 << 20];
  while (fgets(line, sizeof line, stdin)) {
    char *tab = strchr(line, '\t');
    if (!tab) continue;
    *tab = '\0';
    size_t n = unbase64(tab + 1, body, sizeof body);
    pc_model m;
    pc_buf err, out;
    pc_buf_init(&err);
    pc_buf_init(&out);
    int rc = pc_bind_body(model_named(line), body, n, &m, &err);
    if (rc == PC_BIND_OK) {
      pc_buf_puts(&out, "ok:");
      if (pc_model_put_json(&out, &m) < 0) {
        pc_buf_reset(&out);
        pc_buf_puts(&out, "ok:MARSHAL-ERROR");
      }
      pc_model_free(&m);
    } else if (rc == PC_BIND_NOMEM) {
      pc_buf_puts(&out, "oom");
    } else {
      pc_buf_puts(&out, "err:");
      pc_buf_put(&out, err.data, err.len);
    }
    if (out.oom) return 2;
    put_base64((const unsigned char *)out.data, out.len);
    pc_buf_free(&err);
    pc_buf_free(&out);
  }
  return 0;
}
