#include "chat_debezium.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat_extjson.h"
#include "chat_jwalk.h"
#include "chat_oid.h"
#include "chat_time.h"

static void set_drop(chat_change *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_drop(chat_change *c, const char *fmt, ...) {
  c->kind = CHAT_CHANGE_DROP;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->detail, sizeof c->detail, fmt, ap);
  va_end(ap);
}

/* The metric label of an op: the op itself (c, u, d, r, t, m or one a
 * newer Debezium adds), as Go counted it; "other" only for one that is not
 * a short token of letters, digits, '_', '-' or '.', which no connector
 * sends, so a broken producer cannot make labels of arbitrary bytes. */
static void set_op(chat_change *c, const char *op) {
  size_t n = strlen(op);
  int token = n > 0 && n < sizeof c->op;
  for (size_t i = 0; token && i < n; i++) {
    unsigned char ch = (unsigned char)op[i];
    token = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '_' || ch == '-' || ch == '.';
  }
  snprintf(c->op, sizeof c->op, "%s", token ? op : "other");
}

/* The chat_ws and notifications endpoints require these; a document
 * without them could never be delivered, so it is dropped, not retried. */
static int doc_complete(chat_change *c) {
  const chat_message *m = &c->msg;
  const char *missing = !m->content_len ? "content"
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
  set_op(c, json_string_value(op));
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
    set_op(c, "d");
    return;
  }
  const json_t *op = json_object_get(v, "__op");
  if (json_is_string(op) && strlen(json_string_value(op)) == json_string_length(op)) {
    set_op(c, json_string_value(op));
  } else {
    set_op(c, "c"); /* without add.fields=op a create cannot be told from a read */
  }
  if (strcmp(c->op, "c") != 0 && !(o && o->forward_reads && strcmp(c->op, "r") == 0)) {
    c->kind = CHAT_CHANGE_SKIP;
    return;
  }
  char reason[160] = "";
  int rc = chat_doc_from_json(v, &c->msg, reason, sizeof reason);
  take_doc(c, rc, reason);
}

static void change_init(chat_change *c) {
  memset(c, 0, sizeof *c);
  chat_message_init(&c->msg);
  c->what = "";
}

void chat_change_parse_slow(const void *value, size_t len, const chat_change_opts *o,
                            chat_change *c) {
  change_init(c);
  if (!value || len == 0) {
    c->kind = CHAT_CHANGE_IGNORE;
    c->what = "tombstone";
    return;
  }
  json_error_t je;
  /* NUL allowed: "\u0000" is valid JSON, and Go stores it in content
   * (other strings are checked for it where they are read). */
  json_t *root = json_loadb(value, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
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

/* ---- the fast path ------------------------------------------------------
 * The common record, an envelope whose `after` is a document of plain
 * fields, read by walking the bytes (chat_jwalk.h) with no allocation but
 * the message's strings.  It answers only where the jansson path above
 * certainly gives the same result; anything else (schema wrapper,
 * unwrapped documents, duplicate or escaped keys, other _id and created_at
 * shapes, wrong types, drops other than an incomplete document, OOM) is
 * left to it. */

#define FAST_MAX_KEYS 16

/* The members of an object, every key plain and distinct (as a lookup by
 * name in jansson then finds the one member).  0, or -1 (unsure). */
typedef struct fast_obj {
  chat_jw_val key[FAST_MAX_KEYS], val[FAST_MAX_KEYS];
  size_t n;
} fast_obj;

static int fast_members(chat_jw *w, fast_obj *ob) {
  ob->n = 0;
  if (chat_jw_object(w) < 0) return -1;
  for (;;) {
    if (ob->n == FAST_MAX_KEYS) return -1;
    chat_jw_val *k = &ob->key[ob->n], *v = &ob->val[ob->n];
    int r = chat_jw_member(w, k, v);
    if (r <= 0) return r;
    if (!k->plain) return -1;
    for (size_t i = 0; i < ob->n; i++)
      if (chat_jw_same(&ob->key[i], k)) return -1;
    ob->n++;
  }
}

static const chat_jw_val *fast_get(const fast_obj *ob, const char *name) {
  for (size_t i = 0; i < ob->n; i++)
    if (chat_jw_is(&ob->key[i], name)) return &ob->val[i];
  return NULL;
}

/* A value that is an object of exactly one member named `name`: its value. */
static const chat_jw_val *fast_only(const chat_jw_val *v, const char *name, chat_jw_val *out) {
  chat_jw w;
  chat_jw_val k;
  if (v->type != '{') return NULL;
  chat_jw_open_value(&w, v);
  if (chat_jw_object(&w) < 0 || chat_jw_member(&w, &k, out) != 1 || !chat_jw_is(&k, name) ||
      chat_jw_member(&w, &k, out + 1) != 0)
    return NULL;
  return out;
}

/* read_id for a missing/null _id, a string, or {"$oid": 24 hex}. */
static int fast_id(const chat_jw_val *v, chat_message *m) {
  chat_jw_val sub[2];
  char hex[CHAT_OID_HEX_LEN + 1];
  if (!v || v->type == 'n') {
    m->message_id = strdup("");
  } else if (v->type == '"') {
    m->message_id = chat_jw_strdup(v);
  } else if (fast_only(v, "$oid", sub) && chat_jw_copy(sub, hex, sizeof hex) == 0 &&
             chat_oid_is_hex(hex)) {
    for (char *p = hex; *p; p++)
      if (*p >= 'A' && *p <= 'F') *p = (char)(*p + 32);
    m->message_id = strdup(hex);
    m->id_is_oid = 1;
  } else {
    return -1;
  }
  return m->message_id ? 0 : -1;
}

/* read_str for a missing/null field or a string. */
static int fast_str(const chat_jw_val *v, char **slot) {
  if (!v || v->type == 'n') *slot = strdup("");
  else if (v->type == '"') *slot = chat_jw_strdup(v);
  else return -1;
  return *slot ? 0 : -1;
}

/* read_date for a missing/null created_at, {"$date": integer} or
 * {"$date": {"$numberLong": "…"}}, within years 0000..9999. */
static int fast_date(const chat_jw_val *v, chat_message *m) {
  chat_jw_val d[2], n[2];
  char num[32];
  int64_t ms;
  if (!v || v->type == 'n') return 0; /* CHAT_TIME_ZERO_MS from chat_message_init */
  if (!fast_only(v, "$date", d)) return -1;
  if (chat_jw_int64(d, &ms) < 0 &&
      (!fast_only(d, "$numberLong", n) || chat_jw_copy(n, num, sizeof num) < 0 ||
       chat_parse_int64(num, &ms) < 0))
    return -1;
  if (ms < CHAT_TIME_MIN_MS || ms > CHAT_TIME_MAX_MS) return -1;
  m->created_at_ms = ms;
  return 0;
}

/* chat_doc_from_extjson + take_doc for an `after` string. */
static int fast_doc(const chat_jw_val *after, chat_change *c) {
  chat_jw w;
  fast_obj ob;
  if (chat_jw_open_string(&w, after) < 0 || fast_members(&w, &ob) < 0 || chat_jw_finish(&w) < 0)
    return 0;
  chat_message m;
  chat_message_init(&m);
  if (fast_id(fast_get(&ob, "_id"), &m) < 0 ||
      fast_str(fast_get(&ob, "content"), &m.content) < 0 ||
      fast_str(fast_get(&ob, "stream_id"), &m.stream_id) < 0 ||
      fast_str(fast_get(&ob, "sender_id"), &m.sender_id) < 0 ||
      fast_str(fast_get(&ob, "receiver_id"), &m.receiver_id) < 0 ||
      fast_date(fast_get(&ob, "created_at"), &m) < 0) {
    chat_message_free(&m);
    return 0;
  }
  chat_message_set_content_strlen(&m); /* the walker meets no \u escape */
  c->msg = m;
  take_doc(c, CHAT_DOC_OK, NULL);
  return 1;
}

int chat_change_parse_fast(const void *value, size_t len, const chat_change_opts *o,
                           chat_change *c) {
  change_init(c);
  if (!value || len == 0) return 0;
  chat_jw w;
  fast_obj ob;
  chat_jw_open(&w, value, len);
  if (fast_members(&w, &ob) < 0 || chat_jw_finish(&w) < 0 || fast_get(&ob, "schema") ||
      fast_get(&ob, "payload"))
    return 0;
  const chat_jw_val *op = fast_get(&ob, "op"), *after = fast_get(&ob, "after");
  char opbuf[17];
  if (!op || chat_jw_copy(op, opbuf, sizeof opbuf) < 0 || !opbuf[0]) return 0;
  set_op(c, opbuf);
  int forward = strcmp(c->op, "c") == 0 || (o && o->forward_reads && strcmp(c->op, "r") == 0);
  if (forward && !(after && after->type == '"')) {
    change_init(c);
    return 0;
  }
  if (!forward) {
    c->kind = CHAT_CHANGE_SKIP;
    return 1;
  }
  if (fast_doc(after, c)) return 1;
  change_init(c);
  return 0;
}

void chat_change_parse(const void *value, size_t len, const chat_change_opts *o,
                       chat_change *c) {
  if (!chat_change_parse_fast(value, len, o, c)) chat_change_parse_slow(value, len, o, c);
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
