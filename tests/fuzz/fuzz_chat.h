/* Comparing two ChatMessages field by field, for the chat harnesses. */
#ifndef ND_FUZZ_CHAT_H
#define ND_FUZZ_CHAT_H

#include <string.h>

#include "chat_model.h"
#include "chat_time.h"

static inline int fuzz_str_same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The first field in which a and b differ, or NULL. */
static inline const char *fuzz_chat_message_diff(const chat_message *a, const chat_message *b) {
  if (!fuzz_str_same(a->message_id, b->message_id)) return "message_id";
  if (a->id_is_oid != b->id_is_oid) return "id_is_oid";
  if (!fuzz_str_same(a->content, b->content)) return "content";
  if (!fuzz_str_same(a->stream_id, b->stream_id)) return "stream_id";
  if (!fuzz_str_same(a->sender_id, b->sender_id)) return "sender_id";
  if (!fuzz_str_same(a->receiver_id, b->receiver_id)) return "receiver_id";
  if (a->created_at_ms != b->created_at_ms) return "created_at_ms";
  return NULL;
}

/* 1 if m is as chat_message_init left it. */
static inline int fuzz_chat_message_empty(const chat_message *m) {
  return !m->message_id && !m->content && !m->stream_id && !m->sender_id && !m->receiver_id &&
         !m->id_is_oid && m->created_at_ms == CHAT_TIME_ZERO_MS;
}

#endif
