#include "chat_extjson.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_json.h"
#include "chat_oid.h"
#include "chat_time.h"

static int doc_fail(char *reason, size_t rlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int doc_fail(char *reason, size_t rlen, const char *fmt, ...) {
  if (reason && rlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, rlen, fmt, ap);
    va_end(ap);
  }
  return CHAT_DOC_INVALID;
}

int chat_parse_int64(const char *s, int64_t *out) {
  const char *p = s;
  int neg = *p == '-';
  if (neg) p++;
  if (!*p) return -1;
  uint64_t v = 0;
  size_t nd = 0;
  for (; *p; p++, nd++) {
    if (*p < '0' || *p > '9' || nd >= 19) return -1;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* {"$numberLong": "…"} / {"$numberInt": "…"} -> int64. 1 = matched,
 * 0 = not that shape, -1 = that shape but malformed. */
static int ext_number(const json_t *v, int64_t *out) {
  if (!json_is_object(v)) return 0;
  const json_t *n = json_object_get(v, "$numberLong");
  if (!n) n = json_object_get(v, "$numberInt");
  if (!n) return 0;
  if (!json_is_string(n) || chat_parse_int64(json_string_value(n), out) < 0) return -1;
  return 1;
}

static int read_id(const json_t *v, chat_message *m, char *reason, size_t rlen) {
  char num[24];
  int64_t iv;
  if (!v || json_is_null(v)) {
    m->message_id = strdup("");
  } else if (json_is_string(v)) {
    if (strlen(json_string_value(v)) != json_string_length(v))
      return doc_fail(reason, rlen, "_id: contains a NUL character");
    m->message_id = strdup(json_string_value(v));
  } else if (json_is_integer(v)) {
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    m->message_id = strdup(num);
  } else if (json_is_object(v) && json_object_get(v, "$oid")) {
    const json_t *o = json_object_get(v, "$oid");
    if (!json_is_string(o) || !chat_oid_is_hex(json_string_value(o)))
      return doc_fail(reason, rlen, "_id: $oid is not 24 hex digits");
    char *h = strdup(json_string_value(o));
    if (!h) return CHAT_DOC_NOMEM;
    for (char *p = h; *p; p++)
      if (*p >= 'A' && *p <= 'F') *p = (char)(*p + 32);
    m->message_id = h;
    m->id_is_oid = 1;
  } else {
    int r = ext_number(v, &iv);
    if (r <= 0)
      return doc_fail(reason, rlen, "_id: unsupported type (want a string, $oid or integer)");
    snprintf(num, sizeof num, "%" PRId64, iv);
    m->message_id = strdup(num);
  }
  return m->message_id ? CHAT_DOC_OK : CHAT_DOC_NOMEM;
}

static int read_str(const json_t *doc, const char *name, char **slot, char *reason,
                    size_t rlen) {
  const json_t *v = json_object_get(doc, name);
  if (!v || json_is_null(v)) {
    *slot = strdup("");
  } else if (json_is_string(v)) {
    if (strlen(json_string_value(v)) != json_string_length(v))
      return doc_fail(reason, rlen, "%s: contains a NUL character", name);
    *slot = strdup(json_string_value(v));
  } else {
    return doc_fail(reason, rlen, "%s: expected a string", name);
  }
  return *slot ? CHAT_DOC_OK : CHAT_DOC_NOMEM;
}

/* content, which may hold NUL bytes (Go stores them): its length too. */
static int read_content(const json_t *doc, chat_message *m, char *reason, size_t rlen) {
  const json_t *v = json_object_get(doc, "content");
  if (v && !json_is_null(v) && !json_is_string(v))
    return doc_fail(reason, rlen, "content: expected a string");
  const char *s = json_is_string(v) ? json_string_value(v) : "";
  m->content_len = json_is_string(v) ? json_string_length(v) : 0;
  m->content = chat_strndup(s, m->content_len);
  return m->content ? CHAT_DOC_OK : CHAT_DOC_NOMEM;
}

/* An integral JSON number as milliseconds (a real only when exact). */
static int number_ms(const json_t *v, int64_t *ms) {
  if (json_is_integer(v)) {
    *ms = json_integer_value(v);
    return 0;
  }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d) {
      *ms = (int64_t)d;
      return 0;
    }
  }
  return -1;
}

static int read_date(const json_t *doc, chat_message *m, char *reason, size_t rlen) {
  const json_t *v = json_object_get(doc, "created_at");
  int64_t ms = CHAT_TIME_ZERO_MS;
  if (!v || json_is_null(v)) {
    m->created_at_ms = ms;
    return CHAT_DOC_OK;
  }
  const json_t *d = json_is_object(v) ? json_object_get(v, "$date") : NULL;
  const json_t *x = d ? d : v; /* $date's operand, or the bare value */
  int ok;
  if (json_is_string(x)) {
    ok = strlen(json_string_value(x)) == json_string_length(x) &&
         chat_time_parse(json_string_value(x), &ms) == 0;
  } else if (json_is_number(x)) {
    ok = number_ms(x, &ms) == 0;
  } else {
    ok = ext_number(x, &ms) == 1;
  }
  if (!ok) return doc_fail(reason, rlen, "created_at: not a date");
  if (ms < CHAT_TIME_MIN_MS || ms > CHAT_TIME_MAX_MS)
    return doc_fail(reason, rlen, "created_at: outside years 0000..9999");
  m->created_at_ms = ms;
  return CHAT_DOC_OK;
}

int chat_doc_from_json(const json_t *doc, chat_message *out, char *reason, size_t rlen) {
  chat_message_init(out);
  if (!json_is_object(doc)) return doc_fail(reason, rlen, "document is not an object");
  int rc = read_id(json_object_get(doc, "_id"), out, reason, rlen);
  if (rc == CHAT_DOC_OK) rc = read_content(doc, out, reason, rlen);
  if (rc == CHAT_DOC_OK) rc = read_str(doc, "stream_id", &out->stream_id, reason, rlen);
  if (rc == CHAT_DOC_OK) rc = read_str(doc, "sender_id", &out->sender_id, reason, rlen);
  if (rc == CHAT_DOC_OK) rc = read_str(doc, "receiver_id", &out->receiver_id, reason, rlen);
  if (rc == CHAT_DOC_OK) rc = read_date(doc, out, reason, rlen);
  if (rc != CHAT_DOC_OK) chat_message_free(out);
  return rc;
}

int chat_doc_from_extjson(const char *text, size_t len, chat_message *out, char *reason,
                          size_t rlen) {
  chat_message_init(out);
  json_error_t je;
  json_t *doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
  if (!doc) return doc_fail(reason, rlen, "Extended JSON: %s at offset %d", je.text, je.position);
  int rc = chat_doc_from_json(doc, out, reason, rlen);
  json_decref(doc);
  return rc;
}

/* ---- writing ---- */

static void put_str(pc_buf *b, const char *s) {
  s = s ? s : "";
  chat_json_str(b, s, strlen(s), CHAT_JSON_PLAIN);
}

int chat_doc_to_extjson(const chat_message *m, pc_buf *b) {
  pc_buf_puts(b, "{\"_id\":");
  if (m->id_is_oid) {
    pc_buf_puts(b, "{\"$oid\":");
    put_str(b, m->message_id);
    pc_buf_putc(b, '}');
  } else {
    put_str(b, m->message_id);
  }
  pc_buf_puts(b, ",\"content\":");
  chat_json_str(b, m->content ? m->content : "", m->content ? m->content_len : 0,
                CHAT_JSON_PLAIN);
  pc_buf_printf(b, ",\"created_at\":{\"$date\":{\"$numberLong\":\"%" PRId64 "\"}}",
                m->created_at_ms);
  pc_buf_puts(b, ",\"stream_id\":");
  put_str(b, m->stream_id);
  pc_buf_puts(b, ",\"sender_id\":");
  put_str(b, m->sender_id);
  pc_buf_puts(b, ",\"receiver_id\":");
  put_str(b, m->receiver_id);
  pc_buf_putc(b, '}');
  return b->oom ? -1 : 0;
}

int chat_doc_key(const chat_message *m, pc_buf *b) {
  pc_buf inner;
  pc_buf_init(&inner);
  if (m->id_is_oid) {
    pc_buf_puts(&inner, "{\"$oid\": ");
    put_str(&inner, m->message_id);
    pc_buf_putc(&inner, '}');
  } else {
    put_str(&inner, m->message_id);
  }
  int rc = inner.oom ? -1 : 0;
  pc_buf_puts(b, "{\"id\":");
  if (rc == 0) chat_json_str(b, inner.data, inner.len, CHAT_JSON_PLAIN);
  pc_buf_putc(b, '}');
  pc_buf_free(&inner);
  return rc < 0 || b->oom ? -1 : 0;
}

int chat_change_value(const chat_message *m, int64_t ts_ms, pc_buf *b) {
  pc_buf doc;
  pc_buf_init(&doc);
  if (chat_doc_to_extjson(m, &doc) < 0) {
    pc_buf_free(&doc);
    b->oom = 1;
    return -1;
  }
  pc_buf_puts(b, "{\"before\":null,\"after\":");
  chat_json_str(b, doc.data, doc.len, CHAT_JSON_PLAIN);
  pc_buf_printf(b, ",\"op\":\"c\",\"ts_ms\":%" PRId64 "}", ts_ms);
  pc_buf_free(&doc);
  return b->oom ? -1 : 0;
}
