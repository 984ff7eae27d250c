/* The Go system's wire models (contract 2.5) as binding tables, and the
 * notification types of the general notifications service (contract 6). */
#ifndef PC_MODELS_H
#define PC_MODELS_H

#include "pc_bind.h"

/* model.ChatMessage (ChatMetadata embedded and flattened). */
extern const pc_model_def pc_chat_message_def;
enum {
  PC_CHAT_MESSAGE_ID, PC_CHAT_CONTENT, PC_CHAT_CREATED_AT,
  PC_CHAT_STREAM_ID, PC_CHAT_SENDER_ID, PC_CHAT_RECEIVER_ID
};

extern const pc_model_def pc_purchase_update_def;   /* model.PurchaseUpdate */
extern const pc_model_def pc_payment_reminder_def;  /* model.PaymentReminder */
extern const pc_model_def pc_shipping_update_def;   /* model.ShippingUpdate */

/* One notification kind: the HTTP path segment / bus record type, the
 * envelope's notification_type, and the payload model. */
typedef struct pc_notification_kind {
  const char *name;              /* "payment-reminder" */
  const char *notification_type; /* "payment_reminder_notification" */
  const pc_model_def *model;
} pc_notification_kind;

extern const pc_notification_kind pc_notification_kinds[4];
#define PC_NOTIFICATION_KINDS 4

/* By path name ("purchase") or by notification_type
 * ("purchase_notification"); NULL if unknown. */
const pc_notification_kind *pc_notification_kind_find(const char *s, size_t n);

#endif
