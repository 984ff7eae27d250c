/* Binding is table-driven: each Go struct field has its JSON name, Go name,
 * validator namespace, kind and `required` flag.  Decoding follows
 * encoding/json: keys match case-insensitively (the last matching key
 * wins), null leaves the zero value, the first type mismatch is the error
 * and validation runs only after a clean decode. */
#include "email_gojson.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "email_util.h"

enum { K_STRING, K_FLOAT, K_TIME };

typedef struct go_field {
  const char *json;   /* JSON name */
  const char *go;     /* Go field name */
  const char *ns;     /* validator namespace */
  int kind;
  int required;
  size_t off;
} go_field;

typedef struct go_struct {
  const char *name;       /* "ChatMessage" */
  const char *type_name;  /* "model.ChatMessage" */
  const go_field *fields;
  size_t nfields;
} go_struct;

#define F(j, g, ns, k, r, T, m) {j, g, ns, k, r, offsetof(T, m)}

static const go_field chat_fields[] = {
    F("message_id", "MessageID", "ChatMessage.MessageID", K_STRING, 0, email_chat_msg, message_id),
    F("content", "Content", "ChatMessage.Content", K_STRING, 1, email_chat_msg, content),
    F("created_at", "CreatedAt", "ChatMessage.CreatedAt", K_TIME, 0, email_chat_msg, created_at),
    F("stream_id", "StreamID", "ChatMessage.ChatMetadata.StreamID", K_STRING, 1, email_chat_msg,
      stream_id),
    F("sender_id", "SenderID", "ChatMessage.ChatMetadata.SenderID", K_STRING, 1, email_chat_msg,
      sender_id),
    F("receiver_id", "ReceiverID", "ChatMessage.ChatMetadata.ReceiverID", K_STRING, 1,
      email_chat_msg, receiver_id),
};

static const go_field purchase_fields[] = {
    F("order_id", "OrderID", "PurchaseUpdate.OrderID", K_STRING, 1, email_purchase, order_id),
    F("buyer_id", "BuyerID", "PurchaseUpdate.BuyerID", K_STRING, 1, email_purchase, buyer_id),
    F("shop_owner_id", "ShopOwnerID", "PurchaseUpdate.ShopOwnerID", K_STRING, 1, email_purchase,
      shop_owner_id),
    F("product_name", "ProductName", "PurchaseUpdate.ProductName", K_STRING, 1, email_purchase,
      product_name),
    F("amount", "Amount", "PurchaseUpdate.Amount", K_FLOAT, 1, email_purchase, amount),
    F("currency", "Currency", "PurchaseUpdate.Currency", K_STRING, 1, email_purchase, currency),
    F("status", "Status", "PurchaseUpdate.Status", K_STRING, 1, email_purchase, status),
    F("purchased_at", "PurchasedAt", "PurchaseUpdate.PurchasedAt", K_TIME, 0, email_purchase,
      purchased_at),
};

static const go_struct chat_struct = {"ChatMessage", "model.ChatMessage", chat_fields,
                                      sizeof chat_fields / sizeof chat_fields[0]};
static const go_struct purchase_struct = {"PurchaseUpdate", "model.PurchaseUpdate",
                                          purchase_fields,
                                          sizeof purchase_fields / sizeof purchase_fields[0]};

static const char *json_kind(const json_t *v) {
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

/* Sets *err to a formatted message; returns -1 (or -2 on OOM). */
static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(err, fmt, ap);
  va_end(ap);
  if (n < 0) {
    *err = NULL;
    return -2;
  }
  return -1;
}

/* Decodes one value into a field; -1 with *err on a type mismatch. */
static int decode_field(const go_struct *st, const go_field *f, const json_t *v, void *obj,
                        char **err) {
  char *base = obj;
  if (json_is_null(v)) return 0;
  switch (f->kind) {
    case K_STRING: {
      if (!json_is_string(v))
        return fail(err, "json: cannot unmarshal %s into Go struct field %s.%s of type string",
                    json_kind(v), st->name, f->json);
      char **dst = (char **)(base + f->off);
      char *s = strndup(json_string_value(v), json_string_length(v));
      if (!s) return -2;
      free(*dst);
      *dst = s;
      return 0;
    }
    case K_FLOAT:
      if (!json_is_number(v))
        return fail(err, "json: cannot unmarshal %s into Go struct field %s.%s of type float64",
                    json_kind(v), st->name, f->json);
      *(double *)(base + f->off) = json_number_value(v);
      return 0;
    default: {
      if (!json_is_string(v)) return fail(err, "Time.UnmarshalJSON: input is not a JSON string");
      const char *s = json_string_value(v);
      if (email_time_parse_rfc3339(s, (email_time *)(base + f->off)) < 0)
        return fail(err, "parsing time \"\\\"%s\\\"\" as \"\\\"2006-01-02T15:04:05Z07:00\\\"\": "
                         "cannot parse \"%s\\\"\" as RFC 3339",
                    s, s);
      return 0;
    }
  }
}

static void free_strings(const go_struct *st, void *obj) {
  for (size_t i = 0; i < st->nfields; i++) {
    if (st->fields[i].kind != K_STRING) continue;
    char **p = (char **)((char *)obj + st->fields[i].off);
    free(*p);
    *p = NULL;
  }
}

static int bind(const go_struct *st, const json_t *body, void *obj, char **err) {
  *err = NULL;
  if (!json_is_object(body)) {
    if (json_is_null(body)) return 0 /* decodes to the zero struct; validated below */;
    return fail(err, "json: cannot unmarshal %s into Go value of type %s", json_kind(body),
                st->type_name);
  }
  const char *key;
  const json_t *v;
  int rc = 0;
  json_object_foreach((json_t *)body, key, v) {
    for (size_t i = 0; i < st->nfields; i++) {
      if (strcasecmp(key, st->fields[i].json) != 0) continue;
      /* The first error is the one reported (as Go's decoder does); a
       * later one is freed, not written over the first (that leaked it
       * and reported the last). */
      char *e = NULL;
      int r = decode_field(st, &st->fields[i], v, obj, &e);
      if (r < 0 && rc == 0) {
        rc = r;
        *err = e;
      } else {
        free(e);
      }
      break;
    }
    if (rc == -2) break;
  }
  return rc;
}

/* binding:"required": non-empty strings, non-zero numbers and times. */
static int validate(const go_struct *st, const void *obj, char **err) {
  pc_buf b;
  pc_buf_init(&b);
  const char *base = obj;
  for (size_t i = 0; i < st->nfields; i++) {
    const go_field *f = &st->fields[i];
    if (!f->required) continue;
    int zero;
    if (f->kind == K_STRING) {
      const char *s = *(char *const *)(base + f->off);
      zero = !s || !*s;
    } else if (f->kind == K_FLOAT) {
      zero = *(const double *)(base + f->off) == 0.0;
    } else {
      zero = !((const email_time *)(base + f->off))->set;
    }
    if (!zero) continue;
    if (b.len) pc_buf_putc(&b, '\n');
    pc_buf_printf(&b, "Key: '%s' Error:Field validation for '%s' failed on the 'required' tag",
                  f->ns, f->go);
  }
  if (b.oom) {
    pc_buf_free(&b);
    return -2;
  }
  if (!b.len) return 0;
  *err = pc_buf_steal(&b, NULL);
  return *err ? -1 : -2;
}

int email_bind_chat(const json_t *body, email_chat_msg *out, char **err) {
  memset(out, 0, sizeof *out);
  int rc = bind(&chat_struct, body, out, err);
  if (rc == 0) rc = validate(&chat_struct, out, err);
  if (rc < 0) free_strings(&chat_struct, out);
  return rc;
}

int email_bind_purchase(const json_t *body, email_purchase *out, char **err) {
  memset(out, 0, sizeof *out);
  int rc = bind(&purchase_struct, body, out, err);
  if (rc == 0) rc = validate(&purchase_struct, out, err);
  if (rc < 0) free_strings(&purchase_struct, out);
  return rc;
}

/* ---- encoding/json output ---- */

static void go_string(pc_buf *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  pc_buf_putc(b, '"');
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  for (; *p; p++) {
    unsigned c = *p;
    if (c == '"' || c == '\\') {
      pc_buf_putc(b, '\\');
      pc_buf_putc(b, (char)c);
    } else if (c == '\n') {
      pc_buf_puts(b, "\\n");
    } else if (c == '\r') {
      pc_buf_puts(b, "\\r");
    } else if (c == '\t') {
      pc_buf_puts(b, "\\t");
    } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
      char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
      pc_buf_puts(b, u);
    } else if (c == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
      pc_buf_puts(b, p[2] == 0xA8 ? "\\u2028" : "\\u2029");
      p += 2;
    } else {
      pc_buf_putc(b, (char)c);
    }
  }
  pc_buf_putc(b, '"');
}

void email_go_float(double v, char *out, size_t n) {
  if (!isfinite(v)) {
    snprintf(out, n, "null");
    return;
  }
  if (v == 0) {
    snprintf(out, n, "0");
    return;
  }
  /* Shortest round-tripping digits, then Go's choice of notation. */
  char e[40];
  int prec;
  for (prec = 1; prec <= 17; prec++) {
    snprintf(e, sizeof e, "%.*e", prec - 1, v);
    if (strtod(e, NULL) == v) break;
  }
  double a = fabs(v);
  if (a < 1e-6 || a >= 1e21) {
    /* strconv writes at least two exponent digits; encoding/json then
     * trims "e-07" to "e-7" (but keeps "e+21"). */
    char *ep = strchr(e, 'e');
    int ex = atoi(ep + 1);
    *ep = '\0';
    if (ex < 0)
      snprintf(out, n, "%se-%d", e, -ex);
    else
      snprintf(out, n, "%se+%02d", e, ex);
    return;
  }
  char *ep = strchr(e, 'e');
  int ex = atoi(ep + 1);
  int decimals = (prec - 1) - ex;
  snprintf(out, n, "%.*f", decimals > 0 ? decimals : 0, v);
}

static void go_time(pc_buf *b, const email_time *t) {
  char s[48];
  email_time_format_rfc3339(t, s, sizeof s);
  go_string(b, s);
}

static void go_key(pc_buf *b, const char *k, int first) {
  if (!first) pc_buf_putc(b, ',');
  go_string(b, k);
  pc_buf_putc(b, ':');
}

char *email_echo_chat(const email_chat_msg *m, size_t *len) {
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_putc(&b, '{');
  go_key(&b, "message_id", 1);
  go_string(&b, m->message_id);
  go_key(&b, "content", 0);
  go_string(&b, m->content);
  go_key(&b, "created_at", 0);
  go_time(&b, &m->created_at);
  go_key(&b, "stream_id", 0);
  go_string(&b, m->stream_id);
  go_key(&b, "sender_id", 0);
  go_string(&b, m->sender_id);
  go_key(&b, "receiver_id", 0);
  go_string(&b, m->receiver_id);
  pc_buf_putc(&b, '}');
  return pc_buf_steal(&b, len);
}

char *email_echo_purchase(const email_purchase *p, size_t *len) {
  pc_buf b;
  pc_buf_init(&b);
  char num[64];
  pc_buf_putc(&b, '{');
  go_key(&b, "order_id", 1);
  go_string(&b, p->order_id);
  go_key(&b, "buyer_id", 0);
  go_string(&b, p->buyer_id);
  go_key(&b, "shop_owner_id", 0);
  go_string(&b, p->shop_owner_id);
  go_key(&b, "product_name", 0);
  go_string(&b, p->product_name);
  go_key(&b, "amount", 0);
  email_go_float(p->amount, num, sizeof num);
  pc_buf_puts(&b, num);
  go_key(&b, "currency", 0);
  go_string(&b, p->currency);
  go_key(&b, "status", 0);
  go_string(&b, p->status);
  go_key(&b, "purchased_at", 0);
  go_time(&b, &p->purchased_at);
  pc_buf_putc(&b, '}');
  return pc_buf_steal(&b, len);
}
