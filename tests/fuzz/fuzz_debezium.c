/* Change-topic records (plugins/chat_common/chat_debezium.c), fast path
 * against reference path: chat_change_parse_fast (chat_jwalk.c, no
 * jansson) may answer only where chat_change_parse_slow (jansson, Extended
 * JSON through chat_extjson.c) gives the same result to the byte;
 * otherwise it leaves `out` empty (chat_change_parse, what the plugin
 * calls, is the one then the other).  The same bytes also go through the
 * record key check.  Input: a flags byte (forward snapshot reads or not),
 * then the record value. */
#include <string.h>

#include "chat_debezium.h"
#include "fuzz.h"
#include "fuzz_chat.h"

static const char *change_diff(const chat_change *f, const chat_change *s) {
  if (f->kind != s->kind) return "kind";
  if (!fuzz_str_same(f->op, s->op)) return "op";
  if (!fuzz_str_same(f->what, s->what)) return "what";
  if (strcmp(f->detail, s->detail) != 0) return "detail";
  return fuzz_chat_message_diff(&f->msg, &s->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  chat_change_opts opts = {.forward_reads = data[0] & 1};
  int null_if_empty = data[0] & 2;
  data++, size--;
  char *v = fuzz_copy(data, size, 0);
  /* An empty value is a tombstone either way; bit 1 passes it as NULL. */
  const char *value = size == 0 && null_if_empty ? NULL : v;
  chat_change f, s;
  int answered = chat_change_parse_fast(value, size, &opts, &f);
  chat_change_parse_slow(value, size, &opts, &s);
  FUZZ_CHECK(s.kind >= CHAT_CHANGE_FORWARD && s.kind <= CHAT_CHANGE_NOMEM, "kind %d", s.kind);
  if (answered) {
    const char *diff = change_diff(&f, &s);
    FUZZ_CHECK(diff == NULL, "fast path differs in %s (kind %d/%d, detail '%s'/'%s')", diff,
               f.kind, s.kind, f.detail, s.detail);
  } else {
    FUZZ_CHECK(f.kind == 0 && fuzz_chat_message_empty(&f.msg),
               "fast path declined but filled the result");
  }
  if (s.kind == CHAT_CHANGE_FORWARD)
    FUZZ_CHECK(s.msg.content && s.msg.stream_id && s.msg.sender_id && s.msg.receiver_id,
               "forwarded message with a missing field");
  if (s.kind == CHAT_CHANGE_DROP) FUZZ_CHECK(s.detail[0] != '\0', "drop without a reason");
  const char *why = NULL;
  if (chat_change_key_ok(v, size, 64, &why) == 0)
    FUZZ_CHECK(size > 0 && size <= 64 && !memchr(v, '\0', size), "bad key accepted");
  else
    FUZZ_CHECK(why != NULL, "key refused without a reason");
  chat_change_free(&f);
  chat_change_free(&s);
  free(v);
  return 0;
}
