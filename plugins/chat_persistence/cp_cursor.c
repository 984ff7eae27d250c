/* History cursors (opaque base64url tokens) and the store's small
 * ownership helpers. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_buf.h"
#include "chat_extjson.h"
#include "chat_oid.h"
#include "chat_time.h"
#include "cp_store.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_val(char c) {
  const char *p = c ? strchr(b64url, c) : NULL;
  return p ? (int)(p - b64url) : -1;
}

static char *b64_encode(const char *in, size_t n) {
  char *out = malloc((n + 2) / 3 * 4 + 1);
  if (!out) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)(unsigned char)in[i + 1] << 8;
    if (i + 2 < n) v |= (unsigned char)in[i + 2];
    out[o++] = b64url[v >> 18];
    out[o++] = b64url[(v >> 12) & 63];
    if (i + 1 < n) out[o++] = b64url[(v >> 6) & 63];
    if (i + 2 < n) out[o++] = b64url[v & 63];
  }
  out[o] = '\0';
  return out;
}

/* NULL if malformed or on OOM. */
static char *b64_decode(const char *in, size_t *outlen) {
  size_t n = strlen(in);
  if (n % 4 == 1) return NULL;
  char *out = malloc(n / 4 * 3 + 3);
  if (!out) return NULL;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_val(in[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xFF);
    }
  }
  out[o] = '\0';
  *outlen = o;
  return out;
}

int cp_cursor_parse(const char *text, cp_cursor *out) {
  memset(out, 0, sizeof *out);
  int64_t ms;
  if (chat_time_parse(text, &ms) == 0) {
    out->kind = CP_CUR_TIME;
    out->ms = ms;
    return 0;
  }
  size_t n = 0;
  char *raw = b64_decode(text, &n);
  if (!raw) return -1;
  int rc = -1;
  char *c1 = strlen(raw) == n ? strchr(raw, ':') : NULL;
  char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (c1 == raw + 1 && c2) {
    *c2 = '\0';
    const char *tie = c2 + 1;
    if (chat_parse_int64(c1 + 1, &out->ms) == 0) {
      switch (raw[0]) {
      case 's':
        if (chat_parse_int64(tie, &out->seq) == 0) {
          out->kind = CP_CUR_SEQ;
          rc = 0;
        }
        break;
      case 'o':
        if (!chat_oid_is_hex(tie)) break;
        /* fallthrough */
      case 'i':
        out->id = strdup(tie);
        if (out->id) {
          out->kind = raw[0] == 'o' ? CP_CUR_OID : CP_CUR_STR_ID;
          rc = 0;
        }
        break;
      default: break;
      }
    }
  }
  free(raw);
  return rc;
}

char *cp_cursor_format(const cp_cursor *c) {
  pc_buf b;
  pc_buf_init(&b);
  switch (c->kind) {
  case CP_CUR_SEQ: pc_buf_printf(&b, "s:%" PRId64 ":%" PRId64, c->ms, c->seq); break;
  case CP_CUR_OID: pc_buf_printf(&b, "o:%" PRId64 ":%s", c->ms, c->id ? c->id : ""); break;
  case CP_CUR_STR_ID: pc_buf_printf(&b, "i:%" PRId64 ":%s", c->ms, c->id ? c->id : ""); break;
  default: pc_buf_free(&b); return NULL;
  }
  size_t n = 0;
  char *raw = pc_buf_steal(&b, &n);
  if (!raw) return NULL;
  char *tok = b64_encode(raw, n);
  free(raw);
  return tok;
}

void cp_cursor_free(cp_cursor *c) {
  free(c->id);
  memset(c, 0, sizeof *c);
}

void cp_page_free(cp_page *p) {
  for (size_t i = 0; i < p->n; i++) chat_message_free(&p->msgs[i]);
  free(p->msgs);
  cp_cursor_free(&p->next);
  memset(p, 0, sizeof *p);
}

void cp_changes_free(cp_change *c, size_t n) {
  if (!c) return;
  for (size_t i = 0; i < n; i++) {
    free(c[i].doc_id);
    free(c[i].key);
    free(c[i].value);
  }
  free(c);
}

static void conv_free(cp_conv *c) {
  free(c->stream_id);
  free(c->peer_id);
  free(c->peer_read_id);
  chat_message_free(&c->last);
  memset(c, 0, sizeof *c);
}

int cp_conv_page_trim(cp_conv_page *p, size_t limit) {
  if (p->n <= limit || limit == 0) return 0;
  conv_free(&p->items[limit]);
  p->n = limit;
  p->next.kind = CP_CUR_STR_ID;
  p->next.ms = p->items[limit - 1].last_ms;
  p->next.id = strdup(p->items[limit - 1].stream_id);
  return p->next.id ? 0 : -1;
}

void cp_conv_page_free(cp_conv_page *p) {
  for (size_t i = 0; i < p->n; i++) conv_free(&p->items[i]);
  free(p->items);
  cp_cursor_free(&p->next);
  memset(p, 0, sizeof *p);
}
