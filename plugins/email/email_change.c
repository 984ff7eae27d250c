/* Debezium envelope + Extended JSON (canonical and relaxed) for the chat
 * document fields: _id (string or $oid), content, stream_id, sender_id,
 * receiver_id (strings), created_at ($date as $numberLong, ISO string or
 * number).  Unknown fields are ignored; missing ones stay empty, as the Go
 * decoder left zero values. */
#include "email_change.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Text of a string-ish Extended JSON value: a plain string, {"$oid": hex},
 * or {"$numberLong"/"$numberInt": "..."}. */
static const char *ext_string(const json_t *v) {
  if (json_is_string(v)) return json_string_value(v);
  if (json_is_object(v)) {
    const char *s = json_string_value(json_object_get(v, "$oid"));
    if (!s) s = json_string_value(json_object_get(v, "$numberLong"));
    if (!s) s = json_string_value(json_object_get(v, "$numberInt"));
    return s;
  }
  return NULL;
}

static int parse_int64(const char *s, int64_t *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

/* {"$date": {"$numberLong": "ms"}} | {"$date": "ISO-8601"} | {"$date": ms} */
static int ext_date(const json_t *v, email_time *out) {
  const json_t *d = json_is_object(v) ? json_object_get(v, "$date") : NULL;
  if (!d) return -1;
  int64_t ms;
  if (json_is_integer(d)) {
    email_time_from_unix_ms(json_integer_value(d), out);
    return 0;
  }
  if (json_is_real(d)) {
    email_time_from_unix_ms((int64_t)json_real_value(d), out);
    return 0;
  }
  if (json_is_object(d) && parse_int64(json_string_value(json_object_get(d, "$numberLong")), &ms) == 0) {
    email_time_from_unix_ms(ms, out);
    return 0;
  }
  if (json_is_string(d) && email_time_parse_rfc3339(json_string_value(d), out) == 0) {
    out->offset_s = 0; /* the driver decodes dates to UTC */
    return 0;
  }
  return -1;
}

static int dup_field(const json_t *doc, const char *name, char **out) {
  const char *s = ext_string(json_object_get(doc, name));
  *out = strdup(s ? s : "");
  return *out ? 0 : -1;
}

int email_change_parse(const void *value, size_t len, email_chat_msg *out, const char **why) {
  memset(out, 0, sizeof *out);
  if (!value || !len) {
    *why = "tombstone (null value)";
    return -1;
  }
  json_t *env = json_loadb(value, len, 0, NULL);
  if (!json_is_object(env)) {
    json_decref(env);
    *why = "value is not a JSON object";
    return -1;
  }
  /* Connectors run with schemas enabled wrap the envelope in "payload". */
  json_t *root = env;
  if (json_is_object(json_object_get(env, "payload")) && json_object_get(env, "schema"))
    root = json_object_get(env, "payload");
  const char *op = json_string_value(json_object_get(root, "op"));
  const json_t *after = json_object_get(root, "after");
  const json_t *before = json_object_get(root, "before");
  int rc = -1;
  if (!op || !*op) {
    *why = "envelope has no \"op\"";
  } else if (before && !json_is_null(before) && !json_is_string(before)) {
    *why = "\"before\" is neither a string nor null";
  } else if (strcmp(op, "c") != 0) {
    rc = 0;
  } else if (!json_is_string(after)) {
    *why = "\"after\" is not an Extended JSON string";
  } else {
    json_t *doc = json_loadb(json_string_value(after), json_string_length(after), 0, NULL);
    if (!json_is_object(doc)) {
      *why = "\"after\" is not a JSON document";
    } else if (dup_field(doc, "_id", &out->message_id) < 0 ||
               dup_field(doc, "content", &out->content) < 0 ||
               dup_field(doc, "stream_id", &out->stream_id) < 0 ||
               dup_field(doc, "sender_id", &out->sender_id) < 0 ||
               dup_field(doc, "receiver_id", &out->receiver_id) < 0) {
      email_chat_msg_free(out);
      rc = -2;
    } else {
      const json_t *ca = json_object_get(doc, "created_at");
      if (ca && !json_is_null(ca) && ext_date(ca, &out->created_at) < 0) {
        *why = "\"created_at\" is not an Extended JSON date";
        email_chat_msg_free(out);
      } else {
        rc = 1;
      }
    }
    json_decref(doc);
  }
  json_decref(env);
  return rc;
}
