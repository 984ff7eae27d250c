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
 * Parsing and the headers are plugins/common's pc_event (as for webpush).
 * Events are at-least-once, so the dedupe key is the event's identity,
 * "email:event:<id>:<user_id>", not the record's position. */
#include <stdio.h>
#include <string.h>

#include "email.h"
#include "email_util.h"
#include "pc_event.h"

static int type_of(const email_plugin *ep, const char *notification_type) {
  int t = email_type_from_notification_type(notification_type);
  for (int i = 0; t < 0 && i < ep->ndecl; i++)
    if (strcmp(ep->decl[i].notification_type, notification_type) == 0) t = EMAIL_TYPE_COUNT + i;
  return t;
}

static void skip_record(email_plugin *ep, notifd_bus_msg *m, int type, const char *reason) {
  email_count(ep, ep->m_suppressed, type, reason);
  ep->api->bus_ack(m);
}

static int drop(email_plugin *ep, notifd_bus_msg *m, const char *why) {
  email_count(ep, ep->m_failed, -1, "invalid_record");
  ep->api->log(ep->self, NOTIFD_LOG_WARN, "event %s[%d]@%lld dropped: %s", ep->api->msg_topic(m),
               (int)ep->api->msg_partition(m), (long long)ep->api->msg_offset(m), why);
  ep->api->bus_drop(m, why);
  return 0;
}

/* After pc_event_parse: what email needs besides.  NULL = usable. */
static const char *unusable(const pc_event *ev, const json_t *payload) {
  const char *u = ev->user_id.data;
  /* The id goes into kv keys and the directory lookup. */
  if (!email_utf8_printable(u, ev->user_id.len) || memchr(u, '\t', ev->user_id.len))
    return "user_id must be one line of text without tabs";
  if (!json_is_object(payload)) return "payload is not a JSON object";
  return NULL;
}

static int decode(email_plugin *ep, notifd_bus_msg *m, email_op *op, const pc_event *ev) {
  /* JSON_ALLOW_NUL: "\u0000" is valid JSON (Go writes it for a NUL byte in
   * a string); without it jansson refuses the payload and a valid event
   * was dead-lettered as "payload is not a JSON object". */
  json_t *payload =
      json_loadb(ev->payload_v.p, ev->payload_v.n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  const char *why = unusable(ev, payload);
  int type = type_of(ep, ev->type.data);
  const char *skip = why || type < 0 ? NULL : pc_event_skip_reason(ep->api, m, "email", 0);
  int rc = 1;
  if (why) {
    rc = drop(ep, m, why);
  } else if (type < 0) {
    skip_record(ep, m, type, "unsupported_type");
    rc = 0;
  } else if (type < EMAIL_TYPE_COUNT && !(ep->enabled & (1u << type))) {
    skip_record(ep, m, type, "disabled_type");
    rc = 0;
  } else if (skip) {
    skip_record(ep, m, type, strcmp(skip, "muted") == 0 ? "preferences" : skip);
    rc = 0;
  } else {
    const char *const *fields =
        type >= EMAIL_TYPE_COUNT ? email_template_fields(ep->tmpl[type]) : NULL;
    pc_buf key;
    pc_buf_init(&key);
    pc_buf_printf(&key, "email:event:%lld:%s", (long long)ev->id, ev->user_id.data);
    op->dedupe_key = pc_buf_steal(&key, NULL);
    if (!op->dedupe_key ||
        email_event_from_payload(&op->ev, type, fields, ev->user_id.data, payload) < 0)
      rc = -1;
  }
  json_decref(payload);
  return rc;
}

int email_stream_decode(email_plugin *ep, notifd_bus_msg *m, email_op *op) {
  size_t len = 0;
  const void *value = ep->api->msg_value(m, &len);
  pc_event ev;
  pc_event_init(&ev);
  const char *why = NULL;
  int rc;
  if (pc_event_parse(value, len, &ev, &why) < 0)
    rc = strcmp(why, "out of memory") == 0 ? -1 : drop(ep, m, why);
  else
    rc = decode(ep, m, op, &ev);
  pc_event_free(&ev);
  return rc;
}
