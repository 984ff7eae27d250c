#include "chat_debezium.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat_extjson.h"

static void set_drop(chat_change *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_drop(chat_change *c, const char *fmt, ...) {
  c->kind = CHAT_CHANGE_DROP;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->detail, sizeof c->detail, fmt, ap);
  va_end(ap);
}

static const char *op_label(const char *op) {
  static const char *const known[] = {"c", "u", "d", "r", "t", "m"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(op, known[i]) == 0) return known[i];
  return "other";
}

/* The chat_ws and notifications endpoints require these; a document
 * without them could never be delivered, so it is dropped, not retried. */
static int doc_complete(chat_change *c) {
  const chat_message *m = &c->msg;
  const char *missing = !*m->content     ? "content"
                        : !*m->stream_id ? "stream_id"
                        : !*m->sender_id ? "sender_id"
                        : !*m->receiver_id ? "receiver_id"
                                         : NULL;
  if (!missing) return 1;
  set_drop(c, "document has no %s", missing);
  chat_message_free(&c->msg);
  return 0;
}

static void take_doc(chat_change *c, int rc, const char *reason) {
  if (rc == CHAT_DOC_NOMEM) {
    c->kind = CHAT_CHANGE_NOMEM;
  } else if (rc != CHAT_DOC_OK) {
    set_drop(c, "after: %s", reason);
  } else if (doc_complete(c)) {
    c->kind = CHAT_CHANGE_FORWARD;
  }
}

static void envelope(const json_t *v, const chat_change_opts *o, chat_change *c) {
  const json_t *op = json_object_get(v, "op");
  if (!json_is_string(op) || json_string_length(op) == 0 || json_string_length(op) > 16 ||
      strlen(json_string_value(op)) != json_string_length(op)) {
    set_drop(c, "op: expected a non-empty short string");
    return;
  }
  c->op = op_label(json_string_value(op));
  int forward = strcmp(c->op, "c") == 0 || (o && o->forward_reads && strcmp(c->op, "r") == 0);
  if (!forward) {
    c->kind = CHAT_CHANGE_SKIP;
    return;
  }
  const json_t *after = json_object_get(v, "after");
  if (!after || json_is_null(after)) {
    set_drop(c, "after: missing in a '%s' event", c->op);
    return;
  }
  if (!json_is_string(after)) {
    set_drop(c, "after: expected an Extended JSON string, got %s",
             json_is_object(after) ? "an object" : "another type");
    return;
  }
  char reason[160] = "";
  int rc = chat_doc_from_extjson(json_string_value(after), json_string_length(after), &c->msg,
                                 reason, sizeof reason);
  take_doc(c, rc, reason);
}

static int is_true(const json_t *v) {
  return json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "true") == 0);
}

/* ExtractNewDocumentState output: the document itself. */
static void unwrapped(const json_t *v, const chat_change_opts *o, chat_change *c) {
  if (is_true(json_object_get(v, "__deleted"))) {
    c->kind = CHAT_CHANGE_SKIP;
    c->op = "d";
    return;
  }
  const json_t *op = json_object_get(v, "__op");
  if (json_is_string(op) && strlen(json_string_value(op)) == json_string_length(op)) {
    c->op = op_label(json_string_value(op));
  } else {
    c->op = "c"; /* without add.fields=op a create cannot be told from a read */
  }
  if (strcmp(c->op, "c") != 0 && !(o && o->forward_reads && strcmp(c->op, "r") == 0)) {
    c->kind = CHAT_CHANGE_SKIP;
    return;
  }
  char reason[160] = "";
  int rc = chat_doc_from_json(v, &c->msg, reason, sizeof reason);
  take_doc(c, rc, reason);
}

void chat_change_parse(const void *value, size_t len, const chat_change_opts *o,
                       chat_change *c) {
  memset(c, 0, sizeof *c);
  chat_message_init(&c->msg);
  c->op = "";
  c->what = "";
  if (!value || len == 0) {
    c->kind = CHAT_CHANGE_IGNORE;
    c->what = "tombstone";
    return;
  }
  json_error_t je;
  json_t *root = json_loadb(value, len, JSON_DECODE_ANY, &je);
  if (!root) {
    set_drop(c, "value is not JSON: %s at offset %d", je.text, je.position);
    return;
  }
  const json_t *v = root;
  /* JsonConverter with schemas.enable=true wraps everything. */
  if (json_is_object(v) && json_object_size(v) == 2 && json_object_get(v, "schema") &&
      json_object_get(v, "payload"))
    v = json_object_get(v, "payload");
  if (json_is_null(v)) {
    c->kind = CHAT_CHANGE_IGNORE;
    c->what = "tombstone";
  } else if (!json_is_object(v)) {
    set_drop(c, "value is not a JSON object");
  } else if (json_object_get(v, "op")) {
    envelope(v, o, c);
  } else if (json_object_get(v, "_id")) {
    unwrapped(v, o, c);
  } else if (json_object_size(v) == 1 && json_is_integer(json_object_get(v, "ts_ms"))) {
    c->kind = CHAT_CHANGE_IGNORE;
    c->what = "heartbeat";
  } else if (json_is_string(json_object_get(v, "status")) && json_object_get(v, "id") &&
             json_object_get(v, "event_count")) {
    c->kind = CHAT_CHANGE_IGNORE;
    c->what = "transaction";
  } else {
    set_drop(c, "value is neither a change event nor a document");
  }
  json_decref(root);
}

void chat_change_free(chat_change *c) { chat_message_free(&c->msg); }

int chat_change_key_ok(const void *key, size_t len, size_t max, const char **why) {
  if (!key || len == 0) {
    *why = "record has no key";
    return -1;
  }
  if (len > max) {
    *why = "record key too long";
    return -1;
  }
  if (memchr(key, '\0', len)) {
    *why = "record key contains a NUL byte";
    return -1;
  }
  return 0;
}
