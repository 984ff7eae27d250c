#include "pc_models.h"

#include <string.h>

static const pc_field chat_fields[] = {
    {"message_id", "MessageID", NULL, PC_K_STRING, 0},
    {"content", "Content", NULL, PC_K_STRING, 1},
    {"created_at", "CreatedAt", NULL, PC_K_TIME, 0},
    {"stream_id", "StreamID", "ChatMetadata", PC_K_STRING, 1},
    {"sender_id", "SenderID", "ChatMetadata", PC_K_STRING, 1},
    {"receiver_id", "ReceiverID", "ChatMetadata", PC_K_STRING, 1},
};
const pc_model_def pc_chat_message_def = {"ChatMessage", "model.ChatMessage", chat_fields,
                                          sizeof chat_fields / sizeof chat_fields[0]};

static const pc_field purchase_fields[] = {
    {"order_id", "OrderID", NULL, PC_K_STRING, 1},
    {"buyer_id", "BuyerID", NULL, PC_K_STRING, 1},
    {"shop_owner_id", "ShopOwnerID", NULL, PC_K_STRING, 1},
    {"product_name", "ProductName", NULL, PC_K_STRING, 1},
    {"amount", "Amount", NULL, PC_K_FLOAT, 1},
    {"currency", "Currency", NULL, PC_K_STRING, 1},
    {"status", "Status", NULL, PC_K_STRING, 1},
    {"purchased_at", "PurchasedAt", NULL, PC_K_TIME, 0},
};
const pc_model_def pc_purchase_update_def = {"PurchaseUpdate", "model.PurchaseUpdate",
                                             purchase_fields,
                                             sizeof purchase_fields / sizeof purchase_fields[0]};

static const pc_field payment_fields[] = {
    {"order_id", "OrderID", NULL, PC_K_STRING, 1},
    {"amount", "Amount", NULL, PC_K_FLOAT, 1},
    {"currency", "Currency", NULL, PC_K_STRING, 1},
    {"due_date", "DueDate", NULL, PC_K_TIME, 1},
    {"days_overdue", "DaysOverdue", NULL, PC_K_INT, 0},
    {"message", "Message", NULL, PC_K_STRING, 0},
};
const pc_model_def pc_payment_reminder_def = {"PaymentReminder", "model.PaymentReminder",
                                              payment_fields,
                                              sizeof payment_fields / sizeof payment_fields[0]};

static const pc_field shipping_fields[] = {
    {"order_id", "OrderID", NULL, PC_K_STRING, 1},
    {"tracking_number", "TrackingNumber", NULL, PC_K_STRING, 0},
    {"status", "Status", NULL, PC_K_STRING, 1},
    {"location", "Location", NULL, PC_K_STRING, 0},
    {"estimated_delivery", "EstimatedDelivery", NULL, PC_K_TIME, 0},
    {"updated_at", "UpdatedAt", NULL, PC_K_TIME, 0},
};
const pc_model_def pc_shipping_update_def = {"ShippingUpdate", "model.ShippingUpdate",
                                             shipping_fields,
                                             sizeof shipping_fields / sizeof shipping_fields[0]};

const pc_notification_kind pc_notification_kinds[4] = {
    {"chat", "chat_notification", &pc_chat_message_def},
    {"purchase", "purchase_notification", &pc_purchase_update_def},
    {"payment-reminder", "payment_reminder_notification", &pc_payment_reminder_def},
    {"shipping-update", "shipping_update_notification", &pc_shipping_update_def},
};

static int eq(const char *s, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

const pc_notification_kind *pc_notification_kind_find(const char *s, size_t n) {
  for (size_t i = 0; i < PC_NOTIFICATION_KINDS; i++) {
    const pc_notification_kind *k = &pc_notification_kinds[i];
    if (eq(s, n, k->name) || eq(s, n, k->notification_type)) return k;
  }
  return NULL;
}
