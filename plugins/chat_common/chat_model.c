#include "chat_model.h"

#include <stdlib.h>
#include <string.h>

#include "chat_json.h"
#include "chat_jwalk.h"
#include "pc_stream_id.h"
#include "chat_time.h"

char *chat_strndup(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (!p) return NULL;
  if (n) memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void chat_message_init(chat_message *m) {
  memset(m, 0, sizeof *m);
  m->created_at_ms = CHAT_TIME_ZERO_MS;
}

void chat_message_free(chat_message *m) {
  free(m->message_id);
  free(m->content);
  free(m->stream_id);
  free(m->sender_id);
  free(m->receiver_id);
  chat_message_init(m);
}

static int fill1(char **s) {
  if (*s) return 0;
  *s = calloc(1, 1);
  return *s ? 0 : -1;
}

int chat_message_fill(chat_message *m) {
  int bad = fill1(&m->message_id);
  bad |= fill1(&m->content);
  bad |= fill1(&m->stream_id);
  bad |= fill1(&m->sender_id);
  bad |= fill1(&m->receiver_id);
  return bad ? -1 : 0;
}

static int dup1(char **dst, const char *src) {
  if (!src) return 0;
  *dst = strdup(src);
  return *dst ? 0 : -1;
}

void chat_message_set_content_strlen(chat_message *m) {
  m->content_len = m->content ? strlen(m->content) : 0;
}

int chat_message_copy(chat_message *dst, const chat_message *src) {
  chat_message_init(dst);
  dst->created_at_ms = src->created_at_ms;
  dst->id_is_oid = src->id_is_oid;
  if (src->content && !(dst->content = chat_strndup(src->content, src->content_len))) {
    chat_message_free(dst);
    return -1;
  }
  dst->content_len = src->content ? src->content_len : 0;
  if (dup1(&dst->message_id, src->message_id) ||
      dup1(&dst->stream_id, src->stream_id) || dup1(&dst->sender_id, src->sender_id) ||
      dup1(&dst->receiver_id, src->receiver_id)) {
    chat_message_free(dst);
    return -1;
  }
  return 0;
}

/* ---- binding ---- */

enum { F_MESSAGE_ID, F_CONTENT, F_CREATED_AT, F_STREAM_ID, F_SENDER_ID, F_RECEIVER_ID, F_COUNT };

typedef struct field_def {
  const char *json;     /* wire name */
  const char *go_path;  /* validator namespace */
  const char *go_name;  /* validator field name */
  int required;
} field_def;

static const field_def fields[F_COUNT] = {
    {"message_id", "ChatMessage.MessageID", "MessageID", 0},
    {"content", "ChatMessage.Content", "Content", 1},
    {"created_at", "ChatMessage.CreatedAt", "CreatedAt", 0},
    {"stream_id", "ChatMessage.ChatMetadata.StreamID", "StreamID", 1},
    {"sender_id", "ChatMessage.ChatMetadata.SenderID", "SenderID", 1},
    {"receiver_id", "ChatMessage.ChatMetadata.ReceiverID", "ReceiverID", 1},
};

static char **field_slot(chat_message *m, int f) {
  switch (f) {
  case F_MESSAGE_ID: return &m->message_id;
  case F_CONTENT: return &m->content;
  case F_STREAM_ID: return &m->stream_id;
  case F_SENDER_ID: return &m->sender_id;
  case F_RECEIVER_ID: return &m->receiver_id;
  default: return NULL;
  }
}

/* Go's `required` on a string: length 0 (content may start with a NUL). */
static int field_empty(const chat_message *m, int f) {
  if (f == F_CONTENT) return m->content_len == 0;
  char **slot = field_slot((chat_message *)m, f);
  return slot && !**slot;
}

/* Whether key[0..n) equals the NUL-terminated `name`, ignoring ASCII case. */
static int ascii_caseeq(const char *key, size_t n, const char *name) {
  size_t i = 0;
  for (; i < n && name[i]; i++) {
    unsigned a = (unsigned char)key[i], b = (unsigned char)name[i];
    if (a >= 'A' && a <= 'Z') a += 32;
    if (b >= 'A' && b <= 'Z') b += 32;
    if (a != b) return 0;
  }
  return i == n && !name[i];
}

/* Whether key[0..n) is exactly the wire name of field f. */
static int field_is(int f, const char *key, size_t n) {
  return strlen(fields[f].json) == n && memcmp(key, fields[f].json, n) == 0;
}

/* Go's exact match first, then a case-insensitive one. */
static int find_field(const char *key, size_t n) {
  for (int f = 0; f < F_COUNT; f++)
    if (field_is(f, key, n)) return f;
  for (int f = 0; f < F_COUNT; f++)
    if (ascii_caseeq(key, n, fields[f].json)) return f;
  return -1;
}

static const char *go_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER:
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "bool";
  default: return "null";
  }
}

int chat_message_bind(const json_t *body, chat_message *out, pc_buf *err) {
  chat_message_init(out);
  if (json_is_null(body)) goto validate; /* Go: null into a struct is a no-op */
  if (!json_is_object(body)) {
    pc_buf_printf(err, "json: cannot unmarshal %s into Go value of type model.ChatMessage",
                  go_kind(body));
    return err->oom ? CHAT_BIND_NOMEM : CHAT_BIND_INVALID;
  }
  const char *key;
  json_t *v;
  int type_error = 0;
  json_object_foreach((json_t *)body, key, v) {
    int f = find_field(key, strlen(key));
    if (f < 0 || json_is_null(v)) continue;
    if (!json_is_string(v)) {
      if (!type_error) {
        if (f == F_CREATED_AT)
          pc_buf_puts(err, "Time.UnmarshalJSON: input is not a JSON string");
        else
          pc_buf_printf(err,
                        "json: cannot unmarshal %s into Go struct field ChatMessage.%s of type "
                        "string",
                        go_kind(v), fields[f].json);
      }
      type_error = 1;
      continue;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (f == F_CREATED_AT) {
      int64_t ms;
      if (n != strlen(s) || chat_time_parse(s, &ms) < 0) {
        if (!type_error)
          pc_buf_printf(err, "parsing time \"%s\" as RFC 3339: invalid created_at", s);
        type_error = 1;
      } else {
        out->created_at_ms = ms;
      }
      continue;
    }
    if (f != F_CONTENT && memchr(s, '\0', n)) { /* ids: chat_message_check's rule */
      if (!type_error) pc_buf_printf(err, "%s: contains a control character", fields[f].json);
      type_error = 1;
      continue;
    }
    char **slot = field_slot(out, f);
    char *copy = chat_strndup(s, n);
    if (!copy) {
      chat_message_free(out);
      return CHAT_BIND_NOMEM;
    }
    free(*slot);
    *slot = copy;
    if (f == F_CONTENT) out->content_len = n;
  }
  if (type_error) {
    chat_message_free(out);
    return err->oom ? CHAT_BIND_NOMEM : CHAT_BIND_INVALID;
  }
validate:
  if (chat_message_fill(out) < 0) {
    chat_message_free(out);
    return CHAT_BIND_NOMEM;
  }
  int first = 1;
  for (int f = 0; f < F_COUNT; f++) {
    if (!fields[f].required || !field_slot(out, f) || !field_empty(out, f)) continue;
    if (!first) pc_buf_putc(err, '\n');
    first = 0;
    pc_buf_printf(err, "Key: '%s' Error:Field validation for '%s' failed on the 'required' tag",
                  fields[f].go_path, fields[f].go_name);
  }
  if (!first) {
    chat_message_free(out);
    return err->oom ? CHAT_BIND_NOMEM : CHAT_BIND_INVALID;
  }
  return CHAT_BIND_OK;
}

/* ---- binding without jansson ----------------------------------------
 * The common body, read by walking its bytes (chat_jwalk.h): one object
 * whose keys are plain (no escape) and distinct, each either a field's
 * exact wire name or no field's name in any case; fields are null or
 * strings (created_at plain, parsed by chat_time_parse); other members
 * are scalars; the required strings are non-empty.  Anything else (an
 * error to report, a case variant, a duplicate key jansson would refuse,
 * a \u escape, a real number, a nested value, OOM) is left to the jansson
 * path, which is then the only one to answer. */

int chat_message_bind_fast(const void *body, size_t len, chat_message *out) {
  chat_message_init(out);
  chat_jw w;
  chat_jw_val k, v, other[CHAT_FAST_MAX_OTHER];
  size_t nother = 0;
  unsigned seen = 0;
  int r;
  chat_jw_open(&w, body, len);
  if (chat_jw_object(&w) < 0) return 0;
  while ((r = chat_jw_member(&w, &k, &v)) == 1) {
    const char *key = (const char *)k.cp;
    size_t kn = (size_t)(k.ce - k.cp);
    if (!k.plain) goto unsure;
    int f = find_field(key, kn);
    if (f < 0) { /* ignored, but jansson refuses a duplicate anywhere */
      if (v.type == '{' || v.type == '[' || nother == CHAT_FAST_MAX_OTHER) goto unsure;
      for (size_t i = 0; i < nother; i++)
        if (chat_jw_same(&other[i], &k)) goto unsure;
      other[nother++] = k;
      continue;
    }
    if (!field_is(f, key, kn) || (seen & 1u << f)) goto unsure;
    seen |= 1u << f;
    if (v.type == 'n') continue;
    if (v.type != '"') goto unsure;
    if (f == F_CREATED_AT) {
      char when[64];
      if (chat_jw_copy(&v, when, sizeof when) < 0 || chat_time_parse(when, &out->created_at_ms) < 0)
        goto unsure;
      continue;
    }
    char **slot = field_slot(out, f);
    if (!(*slot = chat_jw_strdup(&v))) goto unsure;
  }
  if (r < 0 || chat_jw_finish(&w) < 0 || chat_message_fill(out) < 0) goto unsure;
  chat_message_set_content_strlen(out); /* no \u escapes here, so no NUL */
  for (int f = 0; f < F_COUNT; f++) {
    if (fields[f].required && field_slot(out, f) && field_empty(out, f)) goto unsure;
  }
  return 1;
unsure:
  chat_message_free(out);
  return 0;
}

/* ---- extra checks ---- */

static int check_text(const char *name, const char *s, size_t n, size_t limit, pc_buf *err) {
  if (limit && n > limit) {
    pc_buf_printf(err, "%s: too long (%zu bytes, limit %zu)", name, n, limit);
    return -1;
  }
  if (!chat_utf8_valid(s, n)) {
    pc_buf_printf(err, "%s: not valid UTF-8", name);
    return -1;
  }
  return 0;
}

int chat_message_check(const chat_message *m, const chat_limits *lim, pc_buf *err) {
  const struct {
    const char *name, *val;
    size_t limit;
  } checks[] = {
      {"message_id", m->message_id, lim->max_id_bytes},
      {"content", m->content, lim->max_content_bytes},
      {"stream_id", m->stream_id, lim->max_id_bytes},
      {"sender_id", m->sender_id, lim->max_id_bytes},
      {"receiver_id", m->receiver_id, lim->max_id_bytes},
  };
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    const char *v = checks[i].val ? checks[i].val : "";
    /* content may hold NULs: its own length; ids cannot (bind refuses) */
    size_t n = checks[i].val && checks[i].val == m->content ? m->content_len : strlen(v);
    if (check_text(checks[i].name, v, n, checks[i].limit, err) < 0)
      return err->oom ? CHAT_BIND_NOMEM : CHAT_BIND_INVALID;
  }
  /* Ids are routing keys and path segments: no control characters. */
  const char *ids[] = {m->message_id, m->stream_id, m->sender_id, m->receiver_id};
  const char *names[] = {"message_id", "stream_id", "sender_id", "receiver_id"};
  for (size_t i = 0; i < 4; i++)
    for (const unsigned char *p = (const unsigned char *)(ids[i] ? ids[i] : ""); *p; p++)
      if (*p < 0x20 || *p == 0x7f) {
        pc_buf_printf(err, "%s: contains a control character", names[i]);
        return err->oom ? CHAT_BIND_NOMEM : CHAT_BIND_INVALID;
      }
  if (lim->verify_stream_id) {
    char want[PC_STREAM_ID_LEN + 1];
    if (pc_stream_id(m->sender_id, strlen(m->sender_id), m->receiver_id,
                     strlen(m->receiver_id), want) < 0)
      return CHAT_BIND_NOMEM;
    if (strcmp(want, m->stream_id) != 0) {
      pc_buf_printf(err, "stream_id: does not match sender_id and receiver_id (expected %s)",
                    want);
      return err->oom ? CHAT_BIND_NOMEM : CHAT_BIND_INVALID;
    }
  }
  return CHAT_BIND_OK;
}

/* ---- output ---- */

static void go_field_n(pc_buf *b, const char *name, const char *val, size_t n, int comma) {
  if (comma) pc_buf_putc(b, ',');
  chat_json_key(b, name);
  chat_json_str(b, val ? val : "", val ? n : 0, CHAT_JSON_GO);
}

static void go_field(pc_buf *b, const char *name, const char *val, int comma) {
  go_field_n(b, name, val, val ? strlen(val) : 0, comma);
}

int chat_message_gojson(const chat_message *m, pc_buf *b) {
  char when[CHAT_TIME_TEXT_MAX];
  if (chat_time_format(m->created_at_ms, when) < 0) return -1;
  pc_buf_putc(b, '{');
  go_field(b, "message_id", m->message_id, 0);
  go_field_n(b, "content", m->content, m->content_len, 1);
  go_field(b, "created_at", when, 1);
  go_field(b, "stream_id", m->stream_id, 1);
  go_field(b, "sender_id", m->sender_id, 1);
  go_field(b, "receiver_id", m->receiver_id, 1);
  pc_buf_putc(b, '}');
  return b->oom ? -1 : 0;
}
