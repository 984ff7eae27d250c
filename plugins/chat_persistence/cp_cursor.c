/* History cursors (opaque base64url tokens) and the store's small
 * ownership helpers. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_b64.h"
#include "pc_buf.h"
#include "chat_extjson.h"
#include "chat_oid.h"
#include "chat_time.h"
#include "cp_store.h"

int cp_cursor_parse(const char *text, cp_cursor *out) {
  memset(out, 0, sizeof *out);
  int64_t ms;
  if (chat_time_parse(text, &ms) == 0) {
    out->kind = CP_CUR_TIME;
    out->ms = ms;
    return 0;
  }
  size_t tlen = strlen(text);
  char *raw = malloc(tlen / 4 * 3 + 3);
  if (!raw) return -1;
  long n = pc_b64url_decode(text, tlen, (unsigned char *)raw, tlen / 4 * 3 + 2);
  if (n < 0) {
    free(raw);
    return -1;
  }
  raw[n] = '\0';
  int rc = -1;
  char *c1 = strlen(raw) == (size_t)n ? strchr(raw, ':') : NULL;
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
  pc_buf tok;
  pc_buf_init(&tok);
  if (!b.oom) pc_b64url_put(&tok, b.data, b.len);
  else tok.oom = 1;
  pc_buf_free(&b);
  return pc_buf_steal(&tok, NULL);
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
