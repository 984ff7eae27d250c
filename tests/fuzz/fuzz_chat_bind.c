/* The chat POST body binding of plugins/chat_common, fast path against
 * reference path: chat_message_bind_fast (chat_model.c over chat_jwalk.c,
 * no jansson) may answer only where the host's reading of the body
 * (json_loadb with JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, as
 * nd_req_json_or_400) followed by chat_message_bind gives CHAT_BIND_OK and
 * the same message; otherwise it must leave `out` empty.  A bound message
 * also goes through chat_message_check and chat_message_gojson, and the Go
 * rendering binds again to the same message.  Input: the request body. */
#include <jansson.h>

#include "chat_time.h"
#include "fuzz.h"
#include "fuzz_chat.h"

#define HOST_JSON_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

/* The host's path: jansson, then chat_message_bind.  CHAT_BIND_* or 1
 * when jansson refuses the body (the host answers 400 itself). */
static int bind_slow(const char *p, size_t n, chat_message *out) {
  chat_message_init(out);
  json_t *j = json_loadb(p, n, HOST_JSON_FLAGS, NULL);
  if (!j) return 1;
  pc_buf err;
  pc_buf_init(&err);
  int rc = chat_message_bind(j, out, &err);
  FUZZ_CHECK(rc == CHAT_BIND_OK || err.len > 0, "bind failed (%d) without a message", rc);
  json_decref(j);
  pc_buf_free(&err);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *p = fuzz_copy(data, size, 0);
  chat_message f, s;
  int answered = chat_message_bind_fast(p, size, &f);
  int rc = bind_slow(p, size, &s);
  if (answered) {
    FUZZ_CHECK(answered == 1, "fast path returned %d", answered);
    FUZZ_CHECK(rc == CHAT_BIND_OK, "fast path bound a body the host path refuses (%d)", rc);
    const char *diff = fuzz_chat_message_diff(&f, &s);
    FUZZ_CHECK(diff == NULL, "fast and slow bind differ in %s", diff);
  } else {
    FUZZ_CHECK(fuzz_chat_message_empty(&f), "fast path declined but filled the message");
  }
  if (rc == CHAT_BIND_OK) {
    chat_limits lim = {.max_content_bytes = 64, .max_id_bytes = 64, .verify_stream_id = 1};
    pc_buf err, go;
    pc_buf_init(&err);
    pc_buf_init(&go);
    (void)chat_message_check(&s, &lim, &err);
    if (chat_message_gojson(&s, &go) == 0) {
      chat_message again;
      int rc2 = bind_slow(go.data, go.len, &again);
      FUZZ_CHECK(rc2 == CHAT_BIND_OK, "own Go rendering refused (%d): %.*s", rc2, (int)go.len,
                 go.data);
      const char *diff = fuzz_chat_message_diff(&s, &again);
      FUZZ_CHECK(diff == NULL || strcmp(diff, "id_is_oid") == 0,
                 "%s changes when the Go rendering is bound again", diff);
      chat_message_free(&again);
    }
    pc_buf_free(&err);
    pc_buf_free(&go);
  }
  chat_message_free(&f);
  chat_message_free(&s);
  free(p);
  return 0;
}
