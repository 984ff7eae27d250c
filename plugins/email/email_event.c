/* Event types, their template fields, and builders from decoded inputs. */
#include "email_event.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email_gojson.h"

/* Every type also gets these (filled in by the send job after lookup). */
#define COMMON_FIELDS "recipient_id", "recipient_name", "recipient_email", "from_name"

static const char *const chat_fields[] = {
    "message_id", "content", "created_at", "stream_id", "sender_id",
    "sender_name", "receiver_id", "receiver_name", COMMON_FIELDS, NULL};
static const char *const purchase_fields[] = {
    "order_id", "buyer_id", "shop_owner_id", "product_name", "amount",
    "currency", "status", "purchased_at", COMMON_FIELDS, NULL};
static const char *const payment_fields[] = {
    "order_id", "amount", "currency", "due_date", "days_overdue", "message", COMMON_FIELDS, NULL};
static const char *const shipping_fields[] = {
    "order_id", "tracking_number", "status", "location", "estimated_delivery",
    "updated_at", COMMON_FIELDS, NULL};

static const char *const common_fields[] = {COMMON_FIELDS, NULL};

static const char *const type_names[EMAIL_TYPE_COUNT] = {"chat", "purchase", "payment-reminder",
                                                         "shipping-update"};
static const char *const notification_types[EMAIL_TYPE_COUNT] = {
    "chat_notification", "purchase_notification", "payment_reminder_notification",
    "shipping_update_notification"};
static const char *const *const type_fields[EMAIL_TYPE_COUNT] = {chat_fields, purchase_fields,
                                                                 payment_fields, shipping_fields};

const char *email_type_name(int type) {
  return type >= 0 && type < EMAIL_TYPE_COUNT ? type_names[type] : "other";
}

int email_type_from_name(const char *name) {
  for (int i = 0; name && i < EMAIL_TYPE_COUNT; i++)
    if (strcmp(name, type_names[i]) == 0) return i;
  return -1;
}

const char *email_type_notification_type(int type) {
  return type >= 0 && type < EMAIL_TYPE_COUNT ? notification_types[type] : NULL;
}

int email_type_from_notification_type(const char *notification_type) {
  for (int i = 0; notification_type && i < EMAIL_TYPE_COUNT; i++)
    if (strcmp(notification_type, notification_types[i]) == 0) return i;
  return -1;
}

const char *const *email_type_fields(int type) {
  return type >= 0 && type < EMAIL_TYPE_COUNT ? type_fields[type] : NULL;
}

const char *const *email_common_fields(void) { return common_fields; }

static int index_in(const char *const *f, const char *name) {
  for (int i = 0; f && f[i]; i++)
    if (strcmp(f[i], name) == 0) return i;
  return -1;
}

int email_field_index(int type, const char *name) {
  return index_in(email_type_fields(type), name);
}

void email_event_init_fields(email_event *ev, int type, const char *const *fields) {
  memset(ev, 0, sizeof *ev);
  ev->type = type;
  ev->fields = fields;
}

void email_event_init(email_event *ev, int type) {
  email_event_init_fields(ev, type, email_type_fields(type));
}

int email_event_set(email_event *ev, const char *name, const char *value) {
  int i = index_in(ev->fields, name);
  if (i < 0 || i >= EMAIL_MAX_FIELDS) return -1;
  char *v = strdup(value ? value : "");
  if (!v) return -1;
  free(ev->vals[i]);
  ev->vals[i] = v;
  return 0;
}

const char *email_event_get(const email_event *ev, const char *name) {
  int i = index_in(ev->fields, name);
  return i >= 0 && ev->vals[i] ? ev->vals[i] : "";
}

void email_event_free(email_event *ev) {
  free(ev->recipient_id);
  free(ev->sender_id);
  for (int i = 0; i < EMAIL_MAX_FIELDS; i++) free(ev->vals[i]);
  memset(ev, 0, sizeof *ev);
}

static int set_time(email_event *ev, const char *name, const email_time *t) {
  char buf[48];
  email_time_format_plain(t, buf, sizeof buf);
  return email_event_set(ev, name, buf);
}

static int set_amount(email_event *ev, double amount) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.2f", amount);
  return email_event_set(ev, "amount", buf);
}

int email_event_from_chat(email_event *ev, const email_chat_msg *m) {
  email_event_init(ev, EMAIL_CHAT);
  ev->recipient_id = strdup(m->receiver_id ? m->receiver_id : "");
  ev->sender_id = strdup(m->sender_id ? m->sender_id : "");
  int bad = !ev->recipient_id || !ev->sender_id;
  bad |= email_event_set(ev, "message_id", m->message_id) < 0;
  bad |= email_event_set(ev, "content", m->content) < 0;
  bad |= set_time(ev, "created_at", &m->created_at) < 0;
  bad |= email_event_set(ev, "stream_id", m->stream_id) < 0;
  bad |= email_event_set(ev, "sender_id", m->sender_id) < 0;
  bad |= email_event_set(ev, "receiver_id", m->receiver_id) < 0;
  /* sender_name / receiver_name come from the directory lookup. */
  return bad ? -1 : 0;
}

int email_event_from_purchase(email_event *ev, const email_purchase *p) {
  email_event_init(ev, EMAIL_PURCHASE);
  /* The Go service mails the shop owner about the order. */
  ev->recipient_id = strdup(p->shop_owner_id ? p->shop_owner_id : "");
  int bad = !ev->recipient_id;
  bad |= email_event_set(ev, "order_id", p->order_id) < 0;
  bad |= email_event_set(ev, "buyer_id", p->buyer_id) < 0;
  bad |= email_event_set(ev, "shop_owner_id", p->shop_owner_id) < 0;
  bad |= email_event_set(ev, "product_name", p->product_name) < 0;
  bad |= set_amount(ev, p->amount) < 0;
  bad |= email_event_set(ev, "currency", p->currency) < 0;
  bad |= email_event_set(ev, "status", p->status) < 0;
  bad |= set_time(ev, "purchased_at", &p->purchased_at) < 0;
  return bad ? -1 : 0;
}

int email_event_set_n(email_event *ev, const char *name, const char *s, size_t n) {
  size_t nul = 0;
  for (size_t i = 0; i < n; i++) nul += s[i] == '\0';
  if (!nul) return email_event_set(ev, name, s);
  char *t = malloc(n + 2 * nul + 1), *o = t;
  if (!t) return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i]) {
      *o++ = s[i];
    } else {
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
    }
  }
  *o = '\0';
  int rc = email_event_set(ev, name, t);
  free(t);
  return rc;
}

/* A JSON string member as field text (it may carry "\u0000"). */
static int set_json_string(email_event *ev, const char *name, const json_t *v) {
  return email_event_set_n(ev, name, json_string_value(v), json_string_length(v));
}

/* Copies one payload member into a field, leniently: strings as they are,
 * numbers in their shortest form, RFC 3339 times for *_at / *date / *delivery
 * fields rendered like the purchase body; absent or null = "". */
static int set_from_payload(email_event *ev, const json_t *payload, const char *name,
                            int is_time) {
  const json_t *v = json_object_get(payload, name);
  char buf[64];
  const char *s = "";
  if (json_is_string(v)) {
    email_time t;
    if (!is_time || email_time_parse_rfc3339(json_string_value(v), &t) < 0)
      return set_json_string(ev, name, v);
    email_time_format_plain(&t, buf, sizeof buf);
    s = buf;
  } else if (json_is_integer(v)) {
    snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    s = buf;
  } else if (json_is_real(v)) {
    snprintf(buf, sizeof buf, "%.15g", json_real_value(v));
    s = buf;
  } else if (json_is_boolean(v)) {
    s = json_is_true(v) ? "true" : "false";
  }
  return email_event_set(ev, name, s);
}

static int is_common(const char *name) { return index_in(common_fields, name) >= 0; }

static int fill_builtin(email_event *ev, const json_t *payload) {
  const char *const *f = ev->fields;
  int bad = 0;
  for (int i = 0; f[i] && !bad; i++) {
    if (is_common(f[i])) continue;
    if (strcmp(f[i], "amount") == 0) {
      const json_t *a = json_object_get(payload, "amount");
      bad |= json_is_number(a) ? set_amount(ev, json_number_value(a)) < 0
                               : set_from_payload(ev, payload, "amount", 0) < 0;
      continue;
    }
    size_t l = strlen(f[i]);
    int is_time = (l > 3 && strcmp(f[i] + l - 3, "_at") == 0) || strcmp(f[i], "due_date") == 0 ||
                  strcmp(f[i], "estimated_delivery") == 0;
    bad |= set_from_payload(ev, payload, f[i], is_time) < 0;
  }
  if (!bad && ev->type == EMAIL_CHAT) {
    ev->sender_id = strdup(email_event_get(ev, "sender_id"));
    bad = !ev->sender_id;
  }
  return bad ? -1 : 0;
}

/* A declared type's member as text: JSON text for anything but strings. */
static int set_as_json_text(email_event *ev, const char *name, const json_t *v) {
  if (!v || json_is_null(v)) return email_event_set(ev, name, "");
  if (json_is_string(v)) return set_json_string(ev, name, v);
  char buf[64];
  if (json_is_real(v)) {
    email_go_float(json_real_value(v), buf, sizeof buf);
    return email_event_set(ev, name, buf);
  }
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!text) return -1;
  int rc = email_event_set(ev, name, text);
  free(text);
  return rc;
}

int email_event_from_payload(email_event *ev, int type, const char *const *fields,
                             const char *user, const json_t *payload) {
  email_event_init_fields(ev, type, fields ? fields : email_type_fields(type));
  ev->recipient_id = strdup(user);
  int bad = !ev->recipient_id || !ev->fields;
  if (!bad && fields) {
    for (int i = 0; fields[i] && !bad; i++)
      if (!is_common(fields[i]))
        bad |= set_as_json_text(ev, fields[i], json_object_get(payload, fields[i])) < 0;
  } else if (!bad) {
    bad = fill_builtin(ev, payload) < 0;
  }
  if (bad) {
    email_event_free(ev);
    return -2;
  }
  return 0;
}

int email_event_from_notification(email_event *ev, const json_t *record, int *type_out,
                                  const char **why) {
  *type_out = -1;
  email_event_init(ev, -1);
  if (!json_is_object(record)) {
    *why = "record is not a JSON object";
    return -1;
  }
  const char *tname = json_string_value(json_object_get(record, "type"));
  const char *user = json_string_value(json_object_get(record, "user_id"));
  const json_t *payload = json_object_get(record, "payload");
  if (!tname) {
    *why = "record has no string \"type\"";
    return -1;
  }
  int type = email_type_from_name(tname);
  *type_out = type;
  if (type < 0 || type == EMAIL_CHAT) return 1; /* chat mails come from the chat topic */
  if (!user || !*user) {
    *why = "record has no \"user_id\"";
    return -1;
  }
  if (!json_is_object(payload)) {
    *why = "record has no object \"payload\"";
    return -1;
  }
  return email_event_from_payload(ev, type, NULL, user, payload);
}

void email_chat_msg_free(email_chat_msg *m) {
  free(m->message_id);
  free(m->content);
  free(m->stream_id);
  free(m->sender_id);
  free(m->receiver_id);
  memset(m, 0, sizeof *m);
}

void email_purchase_free(email_purchase *p) {
  free(p->order_id);
  free(p->buyer_id);
  free(p->shop_owner_id);
  free(p->product_name);
  free(p->currency);
  free(p->status);
  memset(p, 0, sizeof *p);
}
