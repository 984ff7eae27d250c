/* ChatMessage, the one record the chat plugins move around (contract 2.5):
 * request binding with Go gin/validator semantics, the extra checks the
 * Go service lacked, and Go encoding/json output. */
#ifndef CHAT_MODEL_H
#define CHAT_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"

typedef struct chat_message {
  /* Owned, NUL-terminated; "" when absent (never NULL after a successful
   * bind, parse or chat_message_fill). */
  char *message_id;
  char *content;         /* may hold NUL bytes (Go strings do): */
  size_t content_len;    /* its length, always set with it */
  char *stream_id;
  char *sender_id;
  char *receiver_id;
  int64_t created_at_ms; /* CHAT_TIME_ZERO_MS when absent */
  int id_is_oid;         /* the stored _id is an ObjectId (24 lowercase hex) */
} chat_message;

/* strdup of n bytes (NUL-terminated); NULL on OOM. */
char *chat_strndup(const char *s, size_t n);

void chat_message_init(chat_message *m);
void chat_message_free(chat_message *m);
/* content_len = strlen(content), for content read where no NUL can be. */
void chat_message_set_content_strlen(chat_message *m);
/* Replaces NULL strings with "": 0, or -1 on OOM. */
int chat_message_fill(chat_message *m);
/* Deep copy into an initialised dst: 0, or -1 on OOM (dst left freed). */
int chat_message_copy(chat_message *dst, const chat_message *src);

#define CHAT_BIND_OK      0
#define CHAT_BIND_INVALID (-1) /* 400; `err` holds the text */
#define CHAT_BIND_NOMEM   (-2)

/* gin ShouldBindJSON + binding:"required" over a parsed body: field names
 * match case-insensitively (ASCII), unknown fields are ignored, null leaves
 * a field empty, the last duplicate wins, a wrong type is an error, and
 * the required strings must be non-empty.  Error texts follow Go's. */
int chat_message_bind(const json_t *body, chat_message *out, pc_buf *err);

/* The same binding straight from the raw request body, without jansson,
 * for the common body only.  It answers (1, `out` bound, the required
 * fields non-empty) only where the host's reading of the body (jansson
 * json_loadb with JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, as
 * req_json_or_400) followed by chat_message_bind certainly gives
 * CHAT_BIND_OK and the same message.  Otherwise (malformed or unusual
 * JSON, any bind error, OOM) it returns 0 with `out` empty, and the caller
 * takes that path.  Members beyond the known ones: at most
 * CHAT_FAST_MAX_OTHER (scalars) on the fast path. */
#define CHAT_FAST_MAX_OTHER 16
int chat_message_bind_fast(const void *body, size_t len, chat_message *out);

typedef struct chat_limits {
  size_t max_content_bytes; /* 0 = unlimited */
  size_t max_id_bytes;      /* message_id, stream_id, sender_id, receiver_id */
  int verify_stream_id;     /* stream_id must be pc_stream_id(sender, receiver) */
} chat_limits;

/* Checks the Go service never made; run after a successful bind.  Returns
 * CHAT_BIND_OK, CHAT_BIND_INVALID with a message naming the field, or
 * CHAT_BIND_NOMEM. */
int chat_message_check(const chat_message *m, const chat_limits *lim, pc_buf *err);

/* {"message_id","content","created_at","stream_id","sender_id","receiver_id"}
 * exactly as Go encoding/json writes the struct (HTML-escaped strings).
 * Returns 0, or -1 when created_at is outside years 0000..9999 (Go's
 * marshaller refuses those too) or on OOM. */
int chat_message_gojson(const chat_message *m, pc_buf *out);

#endif
