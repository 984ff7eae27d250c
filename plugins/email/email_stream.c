/* The notification event stream (`events_topic`, docs/events.md): one JSON
 * object per notification stored in a user's inbox,
 *
 *   {"id":42,"user_id":"u1","notification_type":"purchase_notification",
 *    "timestamp":"...","payload":{...}}
 *
 * with the optional headers notifd-muted (channels the user's preferences
 * turn off for this type, comma-separated) and notifd-quiet ("1" in quiet
 * hours).  The recipient is user_id; the type comes from notification_type
 * (the built-ins, then the config-declared types; any other type is not
 * mailed: acked).  Muted or quiet: acked and counted, nothing written.
 * Events are at-least-once, so the dedupe key is the event's identity,
 * "email:event:<id>:<user_id>", not the record's position. */
#include <stdio.h>
#include <string.h>

#include "email.h"
#include "email_util.h"

/* 1 when the header's comma-separated list names `channel`. */
static int header_lists(email_plugin *ep, notifd_bus_msg *m, const char *name,
                        const char *channel) {
  size_t len = 0, cl = strlen(channel);
  const char *v = ep->api->msg_header(m, name, &len);
  while (v && len) {
    const char *comma = memchr(v, ',', len);
    size_t n = comma ? (size_t)(comma - v) : len;
    size_t a = 0, b = n;
    while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
    if (b - a == cl && memcmp(v + a, channel, cl) == 0) return 1;
    if (!comma) break;
    len -= n + 1;
    v = comma + 1;
  }
  return 0;
}

static int header_equals(email_plugin *ep, notifd_bus_msg *m, const char *name,
                         const char *want) {
  size_t len = 0;
  const char *v = ep->api->msg_header(m, name, &len);
  return v && len == strlen(want) && memcmp(v, want, len) == 0;
}

/* A string member that is non-empty, one line of UTF-8 without NUL or tab
 * (it goes into kv keys). */
static const char *text_member(const json_t *doc, const char *name) {
  const json_t *v = json_object_get(doc, name);
  const char *s = json_string_value(v);
  if (!s || !*s || strlen(s) != json_string_length(v) || !email_utf8_printable(s, strlen(s)) ||
      strchr(s, '\t'))
    return NULL;
  return s;
}

/* Why the event is unusable, or NULL. */
static const char *invalid(const json_t *doc) {
  if (!json_is_object(doc)) return "not a JSON object";
  const json_t *id = json_object_get(doc, "id");
  if (!json_is_integer(id) || json_integer_value(id) < 0) return "\"id\" is not a non-negative integer";
  if (!text_member(doc, "user_id")) return "\"user_id\" is not a non-empty string";
  if (!text_member(doc, "notification_type")) return "\"notification_type\" is not a non-empty string";
  if (!json_is_object(json_object_get(doc, "payload"))) return "\"payload\" is not an object";
  return NULL;
}

static int type_of(const email_plugin *ep, const char *notification_type) {
  int t = email_type_from_notification_type(notification_type);
  for (int i = 0; t < 0 && i < ep->ndecl; i++)
    if (strcmp(ep->decl[i].notification_type, notification_type) == 0) t = EMAIL_TYPE_COUNT + i;
  return t;
}

static void skip(email_plugin *ep, notifd_bus_msg *m, int type, const char *reason) {
  email_count(ep, ep->m_suppressed, type, reason);
  ep->api->bus_ack(m);
}

int email_stream_decode(email_plugin *ep, notifd_bus_msg *m, email_op *op) {
  size_t vlen = 0;
  const void *val = ep->api->msg_value(m, &vlen);
  json_t *doc = val && vlen ? json_loadb(val, vlen, 0, NULL) : NULL;
  const char *why = !val || !vlen ? "empty value" : !doc ? "not JSON" : invalid(doc);
  if (why) {
    char reason[128];
    snprintf(reason, sizeof reason, "invalid_event: %s", why);
    email_count(ep, ep->m_failed, -1, "invalid_record");
    ep->api->log(ep->self, NOTIFD_LOG_WARN, "event %s[%d]@%lld dropped: %s",
                 ep->api->msg_topic(m), (int)ep->api->msg_partition(m),
                 (long long)ep->api->msg_offset(m), why);
    ep->api->bus_drop(m, reason);
    json_decref(doc);
    return 0;
  }
  const char *user = text_member(doc, "user_id");
  int type = type_of(ep, text_member(doc, "notification_type"));
  int rc = 1;
  if (type < 0) {
    skip(ep, m, type, "unsupported_type");
    rc = 0;
  } else if (type < EMAIL_TYPE_COUNT && !(ep->enabled & (1u << type))) {
    skip(ep, m, type, "disabled_type");
    rc = 0;
  } else if (header_lists(ep, m, "notifd-muted", "email")) {
    skip(ep, m, type, "preferences");
    rc = 0;
  } else if (header_equals(ep, m, "notifd-quiet", "1")) {
    skip(ep, m, type, "quiet");
    rc = 0;
  } else {
    const char *const *fields =
        type >= EMAIL_TYPE_COUNT ? email_template_fields(ep->tmpl[type]) : NULL;
    pc_buf key;
    pc_buf_init(&key);
    pc_buf_printf(&key, "email:event:%lld:%s", (long long)json_integer_value(json_object_get(doc, "id")),
                  user);
    op->dedupe_key = pc_buf_steal(&key, NULL);
    if (!op->dedupe_key ||
        email_event_from_payload(&op->ev, type, fields, user, json_object_get(doc, "payload")) < 0)
      rc = -1;
  }
  json_decref(doc);
  return rc;
}
