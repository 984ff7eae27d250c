/* What one email is about: its type, who receives it, and the named text
 * fields its template may use ({{field}}).  The field names of each type are
 * fixed here so that templates can be checked at startup. */
#ifndef EMAIL_EVENT_H
#define EMAIL_EVENT_H

#include <jansson.h>

#include "email_time.h"

enum {
  EMAIL_CHAT = 0,
  EMAIL_PURCHASE,
  EMAIL_PAYMENT_REMINDER,
  EMAIL_SHIPPING_UPDATE,
  EMAIL_TYPE_COUNT
};

/* Config-declared types (`types:`) are numbered from EMAIL_TYPE_COUNT. */
#define EMAIL_MAX_DECLARED 32
#define EMAIL_MAX_TYPES (EMAIL_TYPE_COUNT + EMAIL_MAX_DECLARED)
#define EMAIL_MAX_FIELDS 32

typedef struct email_event {
  int type;              /* EMAIL_*, or EMAIL_TYPE_COUNT + i for the i-th declared type */
  const char *const *fields; /* names of vals, NULL-terminated: email_type_fields(type)
                                or a declared type's template fields (borrowed) */
  char *recipient_id;    /* user_email.user_id of the recipient */
  char *sender_id;       /* chat: looked up for {{sender_name}}; else NULL */
  char *vals[EMAIL_MAX_FIELDS]; /* by index in fields */
} email_event;

/* A chat message (contract 2.5, ChatMessage). */
typedef struct email_chat_msg {
  char *message_id, *content, *stream_id, *sender_id, *receiver_id;
  email_time created_at;
} email_chat_msg;

/* A purchase update (contract 2.5, PurchaseUpdate). */
typedef struct email_purchase {
  char *order_id, *buyer_id, *shop_owner_id, *product_name, *currency, *status;
  double amount;
  email_time purchased_at;
} email_purchase;

/* "chat", "purchase", "payment-reminder", "shipping-update" ("other" for
 * any other number: declared types are named by the plugin). */
const char *email_type_name(int type);
int email_type_from_name(const char *name); /* -1 when unknown */
/* The event stream's notification_type of a built-in type
 * ("chat_notification", ...), and back (-1 when not a built-in). */
const char *email_type_notification_type(int type);
int email_type_from_notification_type(const char *notification_type);
/* NULL-terminated field names of a built-in type (static), NULL otherwise. */
const char *const *email_type_fields(int type);
/* The fields every type has (recipient_id, recipient_name, recipient_email,
 * from_name; static, NULL-terminated). */
const char *const *email_common_fields(void);
int email_field_index(int type, const char *name); /* -1 when unknown */

/* Built-in types get email_type_fields(type); declared types pass theirs. */
void email_event_init(email_event *ev, int type);
void email_event_init_fields(email_event *ev, int type, const char *const *fields);
/* Copies `value` (NULL = empty) into the named field: 0, or -1 on OOM or
 * when the type has no such field. */
int email_event_set(email_event *ev, const char *name, const char *value);
/* The same for n bytes that may hold NULs (Go strings can: "\u0000"): a
 * mail cannot carry them and a C string would end there, so each NUL
 * becomes U+FFFD and the rest of the value is kept. */
int email_event_set_n(email_event *ev, const char *name, const char *value, size_t n);
const char *email_event_get(const email_event *ev, const char *name); /* "" if unset */
void email_event_free(email_event *ev);

/* Builders: 0, or -1 on OOM. */
int email_event_from_chat(email_event *ev, const email_chat_msg *m);
int email_event_from_purchase(email_event *ev, const email_purchase *p);
/* An event for `user` from a notification payload object: a built-in type
 * (fields == NULL) takes its fields leniently (amount with two decimals,
 * RFC 3339 times as "YYYY-MM-DD HH:MM:SS"; chat also names the sender); a
 * declared type (its fields given) takes each top-level member by name:
 * strings verbatim, numbers and booleans as JSON text, objects and arrays
 * as compact JSON, null or absent as "".  0, or -2 on OOM. */
int email_event_from_payload(email_event *ev, int type, const char *const *fields,
                             const char *user, const json_t *payload);
/* A notifications-topic record body {"type","user_id","payload"}.
 * Returns 0 ok, 1 for a type this plugin does not email (*type_out = -1
 * or EMAIL_CHAT), -1 invalid (reason in *why, static), -2 OOM. */
int email_event_from_notification(email_event *ev, const json_t *record, int *type_out,
                                  const char **why);

void email_chat_msg_free(email_chat_msg *m);
void email_purchase_free(email_purchase *p);

#endif
