/* Unit tests of the plugin-side helpers: Go's JSON scanner errors and
 * string rules, encoding/json output, RFC 3339 parsing and writing, gin
 * binding and validator messages of the wire models, stream ids,
 * base64url. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pc_b64.h"
#include "pc_bind.h"
#include "pc_event.h"
#include "pc_jenc.h"
#include "pc_jscan.h"
#include "pc_models.h"
#include "pc_stream_id.h"
#include "pc_time.h"

/* ---- scanner ---------------------------------------------------------- */

/* Decoder result: "ok:<value>" or the error text. */
static char *decode(const char *in, size_t n) {
  pc_buf err;
  pc_buf_init(&err);
  size_t s, e;
  char *out;
  if (pc_json_decoder_value(in, n, &s, &e, &err) == 0) {
    out = malloc(e - s + 4);
    ck_assert_ptr_nonnull(out);
    memcpy(out, "ok:", 3);
    memcpy(out + 3, in + s, e - s);
    out[3 + e - s] = '\0';
  } else {
    out = strdup(pc_buf_cstr(&err));
  }
  pc_buf_free(&err);
  return out;
}

#define CK_DECODE(in, want)                   \
  do {                                        \
    char *got_ = decode((in), strlen(in));    \
    ck_assert_str_eq(got_, (want));           \
    free(got_);                               \
  } while (0)

START_TEST(scanner_decoder_errors) {
  CK_DECODE("", "EOF");
  CK_DECODE(" \n\t", "EOF");
  CK_DECODE("{", "unexpected EOF");
  CK_DECODE("{\"a\":", "unexpected EOF");
  CK_DECODE("tru", "unexpected EOF");
  CK_DECODE("-", "unexpected EOF");
  CK_DECODE("x", "invalid character 'x' looking for beginning of value");
  CK_DECODE("{\"a\":}", "invalid character '}' looking for beginning of value");
  CK_DECODE("{\"a\" 1}", "invalid character '1' after object key");
  CK_DECODE("{\"a\":1 \"b\":2}", "invalid character '\"' after object key:value pair");
  CK_DECODE("[1 2]", "invalid character '2' after array element");
  CK_DECODE("{1:2}", "invalid character '1' looking for beginning of object key string");
  CK_DECODE("{'a':1}", "invalid character '\\'' looking for beginning of object key string");
  CK_DECODE("\"a\nb\"", "invalid character '\\n' in string literal");
  CK_DECODE("\"\x01\"", "invalid character '\\x01' in string literal");
  CK_DECODE("\"\\x\"", "invalid character 'x' in string escape code");
  CK_DECODE("\"\\u12g4\"", "invalid character 'g' in \\u hexadecimal character escape");
  CK_DECODE("trx", "invalid character 'x' in literal true (expecting 'u')");
  CK_DECODE("nul1", "invalid character '1' in literal null (expecting 'l')");
  CK_DECODE("fals", "unexpected EOF");
  CK_DECODE("-a", "invalid character 'a' in numeric literal");
  CK_DECODE("1.e", "invalid character 'e' after decimal point in numeric literal");
  CK_DECODE("1ex", "invalid character 'x' in exponent of numeric literal");
  CK_DECODE("\xc3\xa9", "invalid character '\xc3\x83' looking for beginning of value");
  CK_DECODE("\x80", "invalid character '\\u0080' looking for beginning of value");
  /* The Decoder reads one value and ignores what follows. */
  CK_DECODE("  {\"a\":[1,{}]} trailing", "ok:{\"a\":[1,{}]}");
  CK_DECODE("01", "ok:0");
  CK_DECODE("12", "ok:12");
  CK_DECODE("null", "ok:null");
}
END_TEST

START_TEST(scanner_max_depth) {
  size_t n = 10001;
  char *deep = malloc(n);
  ck_assert_ptr_nonnull(deep);
  memset(deep, '[', n);
  char *got = decode(deep, n);
  ck_assert_str_eq(got, "invalid character '[' exceeded max depth");
  free(got);
  got = decode(deep, 10000); /* 10000 levels are allowed: just truncated */
  ck_assert_str_eq(got, "unexpected EOF");
  free(got);
  free(deep);
}
END_TEST

static char *check_doc(const char *in) {
  pc_buf err;
  pc_buf_init(&err);
  char *out = pc_json_check_document(in, strlen(in), &err) == 0 ? strdup("ok")
                                                                 : strdup(pc_buf_cstr(&err));
  pc_buf_free(&err);
  return out;
}

START_TEST(scanner_document) {
  char *g;
  ck_assert_str_eq(g = check_doc("{\"a\":1} "), "ok");
  free(g);
  ck_assert_str_eq(g = check_doc(""), "unexpected end of JSON input");
  free(g);
  ck_assert_str_eq(g = check_doc("{\"a\""), "unexpected end of JSON input");
  free(g);
  ck_assert_str_eq(g = check_doc("{} x"), "invalid character 'x' after top-level value");
  free(g);
  ck_assert_str_eq(g = check_doc("1 2"), "invalid character '2' after top-level value");
  free(g);
  ck_assert_str_eq(g = check_doc("12"), "ok");
  free(g);
}
END_TEST

static char *unquote(const char *lit) {
  pc_jval v = {lit, strlen(lit)};
  pc_buf b;
  pc_buf_init(&b);
  ck_assert_int_eq(pc_json_unquote(v, &b), 0);
  return pc_buf_steal(&b, NULL);
}

START_TEST(unquote_rules) {
  char *g = unquote("\"a\\u00e9\\ud83d\\ude00\\ud800x\\/\\n\"");
  ck_assert_str_eq(g, "a\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx/\n");
  free(g);
  g = unquote("\"\xff\xc3(\xed\xa0\x80\"");
  ck_assert_str_eq(g, "\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  free(g);
  g = unquote("\"\\udc00\\ud800\\u0041\"");
  ck_assert_str_eq(g, "\xef\xbf\xbd\xef\xbf\xbd" "A");
  free(g);
}
END_TEST

START_TEST(key_folding) {
  ck_assert(pc_json_key_matches("content", 7, "content"));
  ck_assert(pc_json_key_matches("CoNtEnT", 7, "content"));
  ck_assert(pc_json_key_matches("\xc5\xbftatus", 7, "status"));       /* long s */
  ck_assert(pc_json_key_matches("trac\xe2\x84\xaaing_number", 17, "tracking_number"));
  ck_assert(!pc_json_key_matches("content ", 8, "content"));
  ck_assert(!pc_json_key_matches("conten", 6, "content"));
  ck_assert(!pc_json_key_matches("c\xc3\xb6ntent", 8, "content"));
}
END_TEST

/* ---- encoder ---------------------------------------------------------- */

static char *enc_string(const char *s, size_t n) {
  pc_buf b;
  pc_buf_init(&b);
  pc_json_put_string(&b, s, n);
  return pc_buf_steal(&b, NULL);
}

START_TEST(encode_strings) {
  static const char in[] = "<a&b>\xe2\x80\xa8\xe2\x80\xa9\"\\\n\r\t\x01\x7f\b\f\xff\xc3\xa9";
  char *g = enc_string(in, sizeof in - 1);
  ck_assert_str_eq(g, "\"\\u003ca\\u0026b\\u003e\\u2028\\u2029\\\"\\\\\\n\\r\\t\\u0001\x7f\\b\\f"
                      "\\ufffd\xc3\xa9\"");
  free(g);
  g = enc_string("a\0b", 3);
  ck_assert_str_eq(g, "\"a\\u0000b\"");
  free(g);
}
END_TEST

START_TEST(encode_floats) {
  static const struct {
    double v;
    const char *want;
  } cases[] = {
      {15.99, "15.99"}, {999.99, "999.99"}, {100, "100"}, {12.5, "12.5"}, {29.99, "29.99"},
      {0.1, "0.1"}, {0, "0"}, {-0.5, "-0.5"}, {1e21, "1e+21"}, {1e20, "100000000000000000000"},
      {1e-7, "1e-7"}, {0.000001, "0.000001"}, {1.5e-7, "1.5e-7"}, {123456789.123, "123456789.123"},
      {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
      {-1e21, "-1e+21"}, {1e-10, "1e-10"}, {0.1 + 0.2, "0.30000000000000004"},
      {123456789012345678.0, "123456789012345680"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[32];
    ck_assert_int_eq(pc_go_float(cases[i].v, out), 0);
    ck_assert_msg(strcmp(out, cases[i].want) == 0, "%.17g: got %s want %s", cases[i].v, out,
                  cases[i].want);
  }
  char out[32];
  ck_assert_int_eq(pc_go_float(1.0 / 0.0, out), -1);
}
END_TEST

/* ---- time ------------------------------------------------------------- */

static char *time_roundtrip(const char *s) {
  pc_time t;
  pc_buf b;
  pc_buf_init(&b);
  if (pc_time_parse_rfc3339(s, strlen(s), &t, &b) == 0) {
    pc_buf_reset(&b);
    if (pc_time_put_json(&b, &t) < 0) pc_buf_puts(&b, "MARSHAL-ERROR");
  }
  return pc_buf_steal(&b, NULL);
}

#define CK_TIME(in, want)             \
  do {                                \
    char *got_ = time_roundtrip(in);  \
    ck_assert_str_eq(got_, (want));   \
    free(got_);                       \
  } while (0)

START_TEST(time_parse_and_write) {
  CK_TIME("2024-01-02T03:04:05Z", "\"2024-01-02T03:04:05Z\"");
  CK_TIME("2024-01-02T03:04:05.123456789+07:00", "\"2024-01-02T03:04:05.123456789+07:00\"");
  CK_TIME("2024-01-02T03:04:05.120-05:30", "\"2024-01-02T03:04:05.12-05:30\"");
  CK_TIME("2024-01-02T03:04:05.000Z", "\"2024-01-02T03:04:05Z\"");
  CK_TIME("2024-01-02T03:04:05,5+00:00", "\"2024-01-02T03:04:05.5Z\"");
  CK_TIME("2024-01-02T3:04:05Z", "\"2024-01-02T03:04:05Z\"");
  CK_TIME("2024-01-02T03:04:05.1234567891Z", "\"2024-01-02T03:04:05.123456789Z\"");
  CK_TIME("2024-02-29T00:00:00Z", "\"2024-02-29T00:00:00Z\"");
  CK_TIME("0999-12-31T23:59:59.000000001-00:01", "\"0999-12-31T23:59:59.000000001-00:01\"");
  CK_TIME("9999-09-09T09:09:09.9+23:59", "\"9999-09-09T09:09:09.9+23:59\"");
  CK_TIME("0001-01-01T00:00:00Z", "\"0001-01-01T00:00:00Z\"");
  CK_TIME("2024-01-02T03:04:05+24:00", "MARSHAL-ERROR");
  CK_TIME("2024-01-02T03:04:05-23:60", "MARSHAL-ERROR");
  CK_TIME("abc",
          "parsing time \"abc\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"abc\" as "
          "\"2006\"");
  CK_TIME("2024-01-02 03:04:05Z",
          "parsing time \"2024-01-02 03:04:05Z\" as \"2006-01-02T15:04:05Z07:00\": cannot parse "
          "\" 03:04:05Z\" as \"T\"");
  CK_TIME("2024-01-02T03:04:05",
          "parsing time \"2024-01-02T03:04:05\" as \"2006-01-02T15:04:05Z07:00\": cannot parse "
          "\"\" as \"Z07:00\"");
  CK_TIME("2024-1-02T03:04:05Z",
          "parsing time \"2024-1-02T03:04:05Z\" as \"2006-01-02T15:04:05Z07:00\": cannot parse "
          "\"1-02T03:04:05Z\" as \"01\"");
  CK_TIME("2024-13-01T00:00:00Z", "parsing time \"2024-13-01T00:00:00Z\": month out of range");
  CK_TIME("2023-02-29T00:00:00Z", "parsing time \"2023-02-29T00:00:00Z\": day out of range");
  CK_TIME("2024-01-02T24:00:00Z", "parsing time \"2024-01-02T24:00:00Z\": hour out of range");
  CK_TIME("2024-01-02T03:04:05+25:0x",
          "parsing time \"2024-01-02T03:04:05+25:0x\": time zone offset hour out of range");
  CK_TIME("2024-01-02T03:04:05+25:00",
          "parsing time \"2024-01-02T03:04:05+25:00\": time zone offset hour out of range");
  CK_TIME("2024-01-02T03:04:05Zjunk",
          "parsing time \"2024-01-02T03:04:05Zjunk\": extra text: \"junk\"");
  CK_TIME("2024-01-02T03:04:05\xc3\xa9",
          "parsing time \"2024-01-02T03:04:05\\xc3\\xa9\" as \"2006-01-02T15:04:05Z07:00\": "
          "cannot parse \"\\xc3\\xa9\" as \"Z07:00\"");
}
END_TEST

START_TEST(time_zero_value) {
  pc_time t;
  pc_buf e;
  pc_buf_init(&e);
  memset(&t, 0, sizeof t);
  ck_assert(pc_time_is_zero_value(&t));
  ck_assert_int_eq(pc_time_parse_rfc3339("0001-01-01T00:00:00Z", 20, &t, &e), 0);
  ck_assert(pc_time_is_zero_value(&t));
  /* A numeric offset gives Go a *Location: not reflect-zero. */
  ck_assert_int_eq(pc_time_parse_rfc3339("0001-01-01T00:00:00+00:00", 25, &t, &e), 0);
  ck_assert(!pc_time_is_zero_value(&t));
  ck_assert_int_eq(pc_time_parse_rfc3339("1970-01-01T01:00:00+01:00", 25, &t, &e), 0);
  ck_assert_int_eq(pc_time_abs_seconds(&t), 62135596800LL);
  pc_buf_free(&e);
}
END_TEST

/* ---- binding ---------------------------------------------------------- */

/* "ok:<json>" or "err:<text>". */
static char *bind(const pc_model_def *def, const char *body) {
  pc_model m;
  pc_buf err, out;
  pc_buf_init(&err);
  pc_buf_init(&out);
  int rc = pc_bind_body(def, body, strlen(body), &m, &err);
  ck_assert_int_ne(rc, PC_BIND_NOMEM);
  if (rc == PC_BIND_OK) {
    pc_buf_puts(&out, "ok:");
    if (pc_model_put_json(&out, &m) < 0) {
      pc_buf_reset(&out);
      pc_buf_puts(&out, "ok:MARSHAL-ERROR");
    }
    pc_model_free(&m);
  } else {
    pc_buf_puts(&out, "err:");
    pc_buf_put(&out, err.data, err.len);
  }
  pc_buf_free(&err);
  return pc_buf_steal(&out, NULL);
}

#define CK_BIND(def, body, want)        \
  do {                                  \
    char *got_ = bind(&(def), (body));  \
    ck_assert_str_eq(got_, (want));     \
    free(got_);                         \
  } while (0)

START_TEST(bind_chat_message) {
  CK_BIND(pc_chat_message_def,
          "{\"message_id\":\"message_id_0\",\"content\":\"Hello\",\"created_at\":"
          "\"0001-01-01T00:00:00Z\",\"stream_id\":\"6b79c4fda3031c04\",\"sender_id\":\"Mr.A\","
          "\"receiver_id\":\"Mr.B\"}",
          "ok:{\"message_id\":\"message_id_0\",\"content\":\"Hello\",\"created_at\":"
          "\"0001-01-01T00:00:00Z\",\"stream_id\":\"6b79c4fda3031c04\",\"sender_id\":\"Mr.A\","
          "\"receiver_id\":\"Mr.B\"}");
  /* absent fields are written as zero values; unknown keys dropped; keys
   * fold; the last duplicate wins; null leaves the value */
  CK_BIND(pc_chat_message_def,
          "{\"CONTENT\":\"a<b\",\"content\":\"x&y\",\"Stream_Id\":\"s\",\"sender_id\":\"a\","
          "\"receiver_id\":\"b\",\"receiver_id\":null,\"extra\":[1,{\"q\":2}]}",
          "ok:{\"message_id\":\"\",\"content\":\"x\\u0026y\",\"created_at\":"
          "\"0001-01-01T00:00:00Z\",\"stream_id\":\"s\",\"sender_id\":\"a\",\"receiver_id\":"
          "\"b\"}");
  CK_BIND(pc_chat_message_def, "", "err:EOF");
  CK_BIND(pc_chat_message_def, "{\"content\":", "err:unexpected EOF");
  CK_BIND(pc_chat_message_def, "[]",
          "err:json: cannot unmarshal array into Go value of type model.ChatMessage");
  CK_BIND(pc_chat_message_def, "{}",
          "err:Key: 'ChatMessage.Content' Error:Field validation for 'Content' failed on the "
          "'required' tag\n"
          "Key: 'ChatMessage.ChatMetadata.StreamID' Error:Field validation for 'StreamID' failed "
          "on the 'required' tag\n"
          "Key: 'ChatMessage.ChatMetadata.SenderID' Error:Field validation for 'SenderID' failed "
          "on the 'required' tag\n"
          "Key: 'ChatMessage.ChatMetadata.ReceiverID' Error:Field validation for 'ReceiverID' "
          "failed on the 'required' tag");
  CK_BIND(pc_chat_message_def,
          "{\"content\":\"x\",\"stream_id\":\"\",\"sender_id\":\"a\",\"receiver_id\":\"b\"}",
          "err:Key: 'ChatMessage.ChatMetadata.StreamID' Error:Field validation for 'StreamID' "
          "failed on the 'required' tag");
  CK_BIND(pc_chat_message_def, "null",
          "err:Key: 'ChatMessage.Content' Error:Field validation for 'Content' failed on the "
          "'required' tag\n"
          "Key: 'ChatMessage.ChatMetadata.StreamID' Error:Field validation for 'StreamID' failed "
          "on the 'required' tag\n"
          "Key: 'ChatMessage.ChatMetadata.SenderID' Error:Field validation for 'SenderID' failed "
          "on the 'required' tag\n"
          "Key: 'ChatMessage.ChatMetadata.ReceiverID' Error:Field validation for 'ReceiverID' "
          "failed on the 'required' tag");
  /* the first type error is reported, after the whole value was read */
  CK_BIND(pc_chat_message_def, "{\"content\":5,\"stream_id\":true}",
          "err:json: cannot unmarshal number into Go struct field ChatMessage.content of type "
          "string");
  CK_BIND(pc_chat_message_def, "{\"stream_id\":{\"a\":1},\"content\":5}",
          "err:json: cannot unmarshal object into Go struct field "
          "ChatMessage.ChatMetadata.stream_id of type string");
  /* a bad time aborts at once and wins over a saved type error */
  CK_BIND(pc_chat_message_def, "{\"content\":5,\"created_at\":12}",
          "err:Time.UnmarshalJSON: input is not a JSON string");
  CK_BIND(pc_chat_message_def, "{\"created_at\":\"yesterday\"}",
          "err:parsing time \"yesterday\" as \"2006-01-02T15:04:05Z07:00\": cannot parse "
          "\"yesterday\" as \"2006\"");
  /* whitespace-only content passes `required` */
  CK_BIND(pc_chat_message_def,
          "{\"content\":\"   \\t\\n   \",\"stream_id\":\"s\",\"sender_id\":\"a\","
          "\"receiver_id\":\"b\",\"created_at\":\"2024-05-06T07:08:09.5+07:00\"}",
          "ok:{\"message_id\":\"\",\"content\":\"   \\t\\n   \",\"created_at\":"
          "\"2024-05-06T07:08:09.5+07:00\",\"stream_id\":\"s\",\"sender_id\":\"a\","
          "\"receiver_id\":\"b\"}");
}
END_TEST

START_TEST(bind_notification_models) {
  CK_BIND(pc_purchase_update_def,
          "{\"order_id\":\"ORD-001\",\"buyer_id\":\"b\",\"shop_owner_id\":\"s\",\"product_name\":"
          "\"Premium Coffee\",\"amount\":15.99,\"currency\":\"USD\",\"status\":\"confirmed\","
          "\"purchased_at\":\"2025-01-02T03:04:05.678+07:00\"}",
          "ok:{\"order_id\":\"ORD-001\",\"buyer_id\":\"b\",\"shop_owner_id\":\"s\","
          "\"product_name\":\"Premium Coffee\",\"amount\":15.99,\"currency\":\"USD\",\"status\":"
          "\"confirmed\",\"purchased_at\":\"2025-01-02T03:04:05.678+07:00\"}");
  CK_BIND(pc_purchase_update_def,
          "{\"order_id\":\"o\",\"buyer_id\":\"b\",\"shop_owner_id\":\"s\",\"product_name\":\"p\","
          "\"amount\":0,\"currency\":\"USD\",\"status\":\"x\"}",
          "err:Key: 'PurchaseUpdate.Amount' Error:Field validation for 'Amount' failed on the "
          "'required' tag");
  /* validator's `required` treats -0.0 as zero, like 0 */
  CK_BIND(pc_payment_reminder_def,
          "{\"order_id\":\"o\",\"amount\":-0.0,\"currency\":\"USD\",\"due_date\":"
          "\"2025-01-09T00:00:00Z\"}",
          "err:Key: 'PaymentReminder.Amount' Error:Field validation for 'Amount' failed on the "
          "'required' tag");
  CK_BIND(pc_purchase_update_def, "{\"amount\":\"12\"}",
          "err:json: cannot unmarshal string into Go struct field PurchaseUpdate.amount of type "
          "float64");
  CK_BIND(pc_purchase_update_def, "{\"amount\":1e400}",
          "err:json: cannot unmarshal number 1e400 into Go struct field PurchaseUpdate.amount of "
          "type float64");
  CK_BIND(pc_payment_reminder_def,
          "{\"order_id\":\"ORD-002\",\"amount\":29.99,\"currency\":\"USD\",\"due_date\":"
          "\"2025-01-09T00:00:00Z\",\"days_overdue\":3,\"message\":\"Payment overdue by 3 days\"}",
          "ok:{\"order_id\":\"ORD-002\",\"amount\":29.99,\"currency\":\"USD\",\"due_date\":"
          "\"2025-01-09T00:00:00Z\",\"days_overdue\":3,\"message\":\"Payment overdue by 3 days\"}");
  CK_BIND(pc_payment_reminder_def,
          "{\"order_id\":\"o\",\"amount\":1,\"currency\":\"USD\",\"days_overdue\":3.5}",
          "err:json: cannot unmarshal number 3.5 into Go struct field PaymentReminder.days_overdue "
          "of type int");
  CK_BIND(pc_payment_reminder_def,
          "{\"order_id\":\"o\",\"amount\":1,\"currency\":\"USD\",\"days_overdue\":"
          "9223372036854775808}",
          "err:json: cannot unmarshal number 9223372036854775808 into Go struct field "
          "PaymentReminder.days_overdue of type int");
  CK_BIND(pc_payment_reminder_def,
          "{\"order_id\":\"o\",\"amount\":-1,\"currency\":\"USD\",\"days_overdue\":"
          "-9223372036854775808,\"due_date\":\"0001-01-01T00:00:00Z\"}",
          "err:Key: 'PaymentReminder.DueDate' Error:Field validation for 'DueDate' failed on the "
          "'required' tag");
  CK_BIND(pc_shipping_update_def, "{\"order_id\":\"o\",\"status\":\"in_transit\"}",
          "ok:{\"order_id\":\"o\",\"tracking_number\":\"\",\"status\":\"in_transit\","
          "\"location\":\"\",\"estimated_delivery\":\"0001-01-01T00:00:00Z\",\"updated_at\":"
          "\"0001-01-01T00:00:00Z\"}");
  CK_BIND(pc_shipping_update_def,
          "{\"order_id\":\"o\",\"status\":\"s\",\"updated_at\":\"2025-01-01T00:00:00+24:00\"}",
          "ok:MARSHAL-ERROR");
}
END_TEST

START_TEST(notification_kinds) {
  const pc_notification_kind *k = pc_notification_kind_find("payment-reminder", 16);
  ck_assert_ptr_nonnull(k);
  ck_assert_str_eq(k->notification_type, "payment_reminder_notification");
  ck_assert_ptr_eq(pc_notification_kind_find("shipping_update_notification", 28),
                   &pc_notification_kinds[3]);
  ck_assert_ptr_null(pc_notification_kind_find("shipping", 8));
}
END_TEST

/* ---- fast path against the reference ------------------------------------
 * pc_bind_body (fast check + noted members + memcpy strings) must give
 * exactly what the original path gives (PC_BIND_REFERENCE: Go's scanner
 * byte by byte, members scanned again, general unquoting): the same
 * return code, error text and field values.  Every body is copied into
 * a buffer of its exact size so that ASan sees any over-read. */

static unsigned scan_flags(const char *p, size_t n) {
  unsigned f = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\\') f |= PC_JS_ESC;
    else if ((unsigned char)p[i] >= 0x80) f |= PC_JS_HIGH;
  }
  return f;
}

/* The fast check agrees with the scanner wherever it answers, its noted
 * members are the ones pc_jobj_next finds, and pc_json_decoder_value
 * gives the scanner's answer.  Returns whether the fast check answered. */
static int ck_decoder_same(const char *p, size_t n) {
  size_t s1 = 7, e1 = 7, s2 = 7, e2 = 7, s3 = 7, e3 = 7;
  pc_jmembers mem;
  pc_buf err2, err3;
  pc_buf_init(&err2);
  pc_buf_init(&err3);
  int fast = pc_json_decoder_fast(p, n, &s1, &e1, &mem);
  int r2 = pc_json_decoder_scan(p, n, &s2, &e2, &err2);
  int r3 = pc_json_decoder_value(p, n, &s3, &e3, &err3);
  ck_assert_int_eq(r2, r3);
  ck_assert_uint_eq(err2.len, err3.len);
  if (err2.len) ck_assert_mem_eq(err2.data, err3.data, err2.len);
  if (fast) {
    ck_assert_int_eq(r2, 0);
    ck_assert_uint_eq(s1, s2);
    ck_assert_uint_eq(e1, e2);
  }
  if (r2 == 0) {
    ck_assert_uint_eq(s2, s3);
    ck_assert_uint_eq(e2, e3);
  }
  if (fast && p[s1] == '{') {
    pc_jval v = {p + s1, e1 - s1}, k, val;
    pc_jobj_iter it;
    size_t count = 0;
    pc_jobj_begin(&it, v);
    while (pc_jobj_next(&it, &k, &val)) {
      if (mem.complete || count < mem.n) {
        ck_assert_uint_lt(count, mem.n);
        ck_assert_ptr_eq(mem.key[count].p, k.p);
        ck_assert_uint_eq(mem.key[count].n, k.n);
        ck_assert_uint_eq(mem.key[count].flags, scan_flags(k.p, k.n));
        ck_assert_ptr_eq(mem.val[count].p, val.p);
        ck_assert_uint_eq(mem.val[count].n, val.n);
        ck_assert_uint_eq(mem.val[count].flags, val.p[0] == '"' ? scan_flags(val.p, val.n) : 0);
      }
      count++;
    }
    if (mem.complete) ck_assert_uint_eq(count, mem.n);
    else ck_assert_uint_gt(count, PC_JMEMBERS_MAX);
  } else if (fast) {
    ck_assert_int_eq(mem.complete, 0);
  }
  pc_buf_free(&err2);
  pc_buf_free(&err3);
  return fast;
}

/* rc, error text and every field value, binary-safe. */
static void bind_outcome(const pc_model_def *def, const char *body, size_t len, int mode,
                         int *fast, pc_buf *out) {
  pc_model m;
  pc_buf err;
  pc_buf_init(&err);
  int rc = pc_bind_body_mode(def, body, len, &m, &err, mode, fast);
  pc_buf_printf(out, "rc=%d err=", rc);
  pc_buf_put(out, err.data, err.len);
  if (rc == PC_BIND_OK) {
    for (size_t i = 0; i < def->nfields; i++) {
      const pc_fval *v = &m.v[i];
      size_t sl;
      const char *str;
      switch (def->fields[i].kind) {
        case PC_K_STRING:
          str = pc_model_str(&m, i, &sl);
          pc_buf_printf(out, "|s%zu:", sl);
          pc_buf_put(out, str, sl);
          break;
        case PC_K_FLOAT: pc_buf_printf(out, "|f%a", v->f); break;
        case PC_K_INT: pc_buf_printf(out, "|i%lld", (long long)v->i); break;
        default:
          pc_buf_printf(out, "|t%d-%d-%d %d:%d:%d.%d %d %d %d", v->t.year, v->t.month, v->t.day,
                        v->t.hour, v->t.min, v->t.sec, v->t.nsec, v->t.offset_s, v->t.set,
                        v->t.has_loc);
          break;
      }
    }
    pc_model_free(&m);
  }
  for (size_t i = 0; i < PC_MAX_FIELDS; i++) ck_assert_ptr_null(m.v[i].s); /* freed */
  pc_buf_free(&err);
  ck_assert(!out->oom);
}

/* Both paths on body[0..len) in an exact-size copy; returns whether the
 * fast check answered. */
static int ck_same_n(const pc_model_def *def, const char *body, size_t len) {
  char *copy = malloc(len ? len : 1);
  ck_assert_ptr_nonnull(copy);
  if (len) memcpy(copy, body, len);
  int fast = -1, ref = -1;
  pc_buf a, b;
  pc_buf_init(&a);
  pc_buf_init(&b);
  bind_outcome(def, copy, len, PC_BIND_FAST, &fast, &a);
  bind_outcome(def, copy, len, PC_BIND_REFERENCE, &ref, &b);
  ck_assert_int_eq(ref, 0);
  if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
    ck_abort_msg("fast and reference differ on [%.*s] (%zu bytes):\n fast: %.300s\n ref:  %.300s",
                 (int)(len < 300 ? len : 300), body, len, a.data, b.data);
  int dfast = ck_decoder_same(copy, len);
  ck_assert_int_eq(dfast, fast);
  pc_buf_free(&a);
  pc_buf_free(&b);
  free(copy);
  return fast;
}

static int ck_same(const pc_model_def *def, const char *body) {
  return ck_same_n(def, body, strlen(body));
}

#define CHAT_TYPICAL                                                                         \
  "{\"message_id\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\",\"content\":\"b:123:1718000000:" \
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"created_at\":"                   \
  "\"2024-06-10T12:34:56.123456789Z\",\"stream_id\":\"6b79c4fda3031c04\",\"sender_id\":"   \
  "\"bench-sender-0001\",\"receiver_id\":\"bench-receiver-0001\"}"
#define PURCHASE_TYPICAL                                                                      \
  "{\"order_id\":\"ORD-2024-000123\",\"buyer_id\":\"buyer-0001\",\"shop_owner_id\":"          \
  "\"owner-0042\",\"product_name\":\"Premium Coffee Beans 1kg\",\"amount\":15.99,\"currency\":" \
  "\"USD\",\"status\":\"confirmed\",\"purchased_at\":\"2025-01-02T03:04:05.678+07:00\"}"
#define PAYMENT_TYPICAL                                                                   \
  "{\"order_id\":\"ORD-002\",\"amount\":29.99,\"currency\":\"USD\",\"due_date\":"         \
  "\"2025-01-09T00:00:00Z\",\"days_overdue\":3,\"message\":\"Payment overdue by 3 days\"}"
#define SHIPPING_TYPICAL                                                                     \
  "{\"order_id\":\"ORD-003\",\"tracking_number\":\"1Z999AA10123456784\",\"status\":"         \
  "\"in_transit\",\"location\":\"Lyon, FR\",\"estimated_delivery\":\"2025-01-05T00:00:00Z\"," \
  "\"updated_at\":\"2025-01-03T10:00:00+01:00\"}"

START_TEST(fast_bind_typical) {
  /* the fast check must answer for the bodies the services see */
  ck_assert_int_eq(ck_same(&pc_chat_message_def, CHAT_TYPICAL), 1);
  ck_assert_int_eq(ck_same(&pc_purchase_update_def, PURCHASE_TYPICAL), 1);
  ck_assert_int_eq(ck_same(&pc_payment_reminder_def, PAYMENT_TYPICAL), 1);
  ck_assert_int_eq(ck_same(&pc_shipping_update_def, SHIPPING_TYPICAL), 1);
  ck_assert_int_eq(ck_same(&pc_chat_message_def,
                           "{\"content\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \\n\\\"q\\\" \\\\ \\/ "
                           "\\u00e9 \\ud83d\\ude00\",\"stream_id\":\"s\",\"sender_id\":\"a\","
                           "\"receiver_id\":\"b\"}"),
                   1);
  ck_assert_int_eq(ck_same(&pc_chat_message_def,
                           " \r\n\t{ \"content\" :\t\"x\" ,\n\"stream_id\": \"s\" , \"sender_id\""
                           ":\"a\",\"receiver_id\":\"b\" }\n"),
                   1);
}
END_TEST

START_TEST(fast_bind_cases) {
  static const struct {
    const pc_model_def *def;
    const char *body;
  } cases[] = {
      /* the bodies of bind_chat_message / bind_notification_models */
      {&pc_chat_message_def,
       "{\"CONTENT\":\"a<b\",\"content\":\"x&y\",\"Stream_Id\":\"s\",\"sender_id\":\"a\","
       "\"receiver_id\":\"b\",\"receiver_id\":null,\"extra\":[1,{\"q\":2}]}"},
      {&pc_chat_message_def, ""},
      {&pc_chat_message_def, " \n\t"},
      {&pc_chat_message_def, "{\"content\":"},
      {&pc_chat_message_def, "[]"},
      {&pc_chat_message_def, "{}"},
      {&pc_chat_message_def, "null"},
      {&pc_chat_message_def, "\"str\""},
      {&pc_chat_message_def, "true"},
      {&pc_chat_message_def, "12"},
      {&pc_chat_message_def, "{\"content\":5,\"stream_id\":true}"},
      {&pc_chat_message_def, "{\"stream_id\":{\"a\":1},\"content\":5}"},
      {&pc_chat_message_def, "{\"content\":5,\"created_at\":12}"},
      {&pc_chat_message_def, "{\"created_at\":\"yesterday\"}"},
      {&pc_chat_message_def, "{\"created_at\":{}}"},
      {&pc_chat_message_def, "{\"created_at\":\"2024-01-02T03:04:05\\u005a\"}"},
      {&pc_chat_message_def,
       "{\"content\":\"   \\t\\n   \",\"stream_id\":\"s\",\"sender_id\":\"a\","
       "\"receiver_id\":\"b\",\"created_at\":\"2024-05-06T07:08:09.5+07:00\"}"},
      /* unicode, escapes, lone surrogates, invalid UTF-8 */
      {&pc_chat_message_def,
       "{\"content\":\"\\ud800 \\udc00 \\ud800\\u0041 \\ud83d\",\"stream_id\":\"s\","
       "\"sender_id\":\"a\",\"receiver_id\":\"b\"}"},
      {&pc_chat_message_def,
       "{\"content\":\"\xff\xc3(\xed\xa0\x80 \xf4\x90\x80\x80 \xe0\x80\xaf \xc0\xaf\","
       "\"stream_id\":\"s\xc3\",\"sender_id\":\"\xef\xbf\xbd\",\"receiver_id\":\"b\"}"},
      {&pc_chat_message_def,
       "{\"content\":\"\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\",\"stream_id\":\"s\","
       "\"sender_id\":\"a\",\"receiver_id\":\"b\"}"},
      {&pc_chat_message_def, "{\"content\":\"\\x\"}"},
      {&pc_chat_message_def, "{\"content\":\"\\u12g4\"}"},
      {&pc_chat_message_def, "{\"content\":\"a\nb\"}"},
      {&pc_chat_message_def, "{\"content\":\"a\x7f\x1f\"}"},
      {&pc_chat_message_def, "{\"content\":\"abc"},
      {&pc_chat_message_def, "{\"content\":\"abc\\"},
      {&pc_chat_message_def, "{\"content\":\"abc\\u12"},
      /* case variants, escaped and folded keys, duplicates, nulls */
      {&pc_chat_message_def,
       "{\"Content\":\"1\",\"CONTENT\":\"2\",\"\\u0063ontent\":\"3\",\"stream_id\":\"s\","
       "\"sender_id\":\"a\",\"receiver_id\":\"b\",\"sender_id\":null}"},
      {&pc_chat_message_def,
       "{\"content\":\"x\",\"\xc5\xbftream_id\":\"long s\",\"sender_\\u0069d\":\"a\","
       "\"receiver_\xc4\xb1\x64\":\"dotless\",\"content \":\"no\",\"conten\":\"no\"}"},
      {&pc_shipping_update_def,
       "{\"order_id\":\"o\",\"status\":\"s\",\"trac\xe2\x84\xaaing_number\":\"kelvin\","
       "\"TRACKING_NUMBER\":null}"},
      {&pc_chat_message_def, "{\"c\\u00f6ntent\":\"x\",\"\":\"empty key\",\"content\\u0000\":1}"},
      /* wrong types */
      {&pc_chat_message_def, "{\"content\":[\"a\"],\"stream_id\":false}"},
      {&pc_purchase_update_def, "{\"amount\":\"12\",\"order_id\":3}"},
      {&pc_purchase_update_def, "{\"amount\":true}"},
      {&pc_payment_reminder_def, "{\"days_overdue\":[1]}"},
      {&pc_payment_reminder_def, "{\"days_overdue\":\"3\",\"due_date\":5}"},
      /* numbers of every shape */
      {&pc_purchase_update_def, "{\"amount\":-0}"},
      {&pc_purchase_update_def, "{\"amount\":-0.0e0}"},
      {&pc_purchase_update_def, "{\"amount\":1e400}"},
      {&pc_purchase_update_def, "{\"amount\":-1e400}"},
      {&pc_purchase_update_def, "{\"amount\":1e-400}"},
      {&pc_purchase_update_def, "{\"amount\":1.5e-7}"},
      {&pc_purchase_update_def, "{\"amount\":1E+5,\"order_id\":\"o\"}"},
      {&pc_purchase_update_def, "{\"amount\":01}"},
      {&pc_purchase_update_def, "{\"amount\":1.}"},
      {&pc_purchase_update_def, "{\"amount\":.5}"},
      {&pc_purchase_update_def, "{\"amount\":-}"},
      {&pc_purchase_update_def, "{\"amount\":1e}"},
      {&pc_purchase_update_def, "{\"amount\":1e+}"},
      {&pc_purchase_update_def, "{\"amount\":+1}"},
      {&pc_purchase_update_def, "{\"amount\":0x10}"},
      {&pc_purchase_update_def, "{\"amount\":1.5.5}"},
      {&pc_purchase_update_def,
       "{\"amount\":123456789012345678901234567890.123456789e-10,\"currency\":\"EUR\"}"},
      {&pc_payment_reminder_def, "{\"days_overdue\":-0}"},
      {&pc_payment_reminder_def, "{\"days_overdue\":9223372036854775807}"},
      {&pc_payment_reminder_def, "{\"days_overdue\":9223372036854775808}"},
      {&pc_payment_reminder_def, "{\"days_overdue\":-9223372036854775808}"},
      {&pc_payment_reminder_def, "{\"days_overdue\":-9223372036854775809}"},
      {&pc_payment_reminder_def, "{\"days_overdue\":1e2}"},
      {&pc_payment_reminder_def, "{\"days_overdue\":3.0}"},
      /* the Decoder ignores what follows the first value */
      {&pc_chat_message_def,
       "{\"content\":\"x\",\"stream_id\":\"s\",\"sender_id\":\"a\",\"receiver_id\":\"b\"} junk"},
      {&pc_chat_message_def, "{\"content\":\"x\"}{\"content\":"},
      {&pc_chat_message_def, "nullx"},
      {&pc_chat_message_def, "truex"},
      {&pc_chat_message_def, "\"s\"tail"},
      {&pc_chat_message_def, "12abc"},
      {&pc_chat_message_def, "01"},
      {&pc_chat_message_def, "-0.5e+3]"},
      {&pc_chat_message_def, "tru"},
      {&pc_chat_message_def, "nul"},
      {&pc_chat_message_def, "fals"},
      {&pc_chat_message_def, "-"},
      {&pc_chat_message_def, "x"},
      /* structure errors */
      {&pc_chat_message_def, "{\"a\" 1}"},
      {&pc_chat_message_def, "{\"a\":1 \"b\":2}"},
      {&pc_chat_message_def, "{\"a\":1,}"},
      {&pc_chat_message_def, "{\"a\":[1,]}"},
      {&pc_chat_message_def, "{\"a\":[1 2]}"},
      {&pc_chat_message_def, "{1:2}"},
      {&pc_chat_message_def, "{,}"},
      {&pc_chat_message_def, "{\"a\":}"},
      {&pc_chat_message_def, "{\"a\":[}"},
      {&pc_chat_message_def, "{\"a\":{]}"},
      {&pc_chat_message_def, "{\"a\":tRue}"},
      {&pc_chat_message_def, "{\"a\":nul}"},
      {&pc_chat_message_def, "{\"a\":[[],{},[{}],{\"b\":[]}],\"content\":\"c\"} "},
      {&pc_chat_message_def, "[1,{\"a\":\"\\u00e9\"},null,true,false,-1.5e3]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) ck_same(cases[i].def, cases[i].body);
}
END_TEST

/* Long strings, many members, deep nesting (Go's limit is 10000). */
START_TEST(fast_bind_sizes) {
  pc_buf b;
  pc_buf_init(&b);
  /* long content: ASCII, then with UTF-8 and an escape near the end */
  for (int variant = 0; variant < 3; variant++) {
    pc_buf_reset(&b);
    pc_buf_puts(&b, "{\"content\":\"");
    for (int i = 0; i < 5000; i++) pc_buf_putc(&b, (char)('a' + i % 26));
    if (variant >= 1) pc_buf_puts(&b, "\xc3\xa9\xe2\x82\xac");
    if (variant == 2) pc_buf_puts(&b, "\\n");
    pc_buf_puts(&b, "\",\"stream_id\":\"s\",\"sender_id\":\"a\",\"receiver_id\":\"b\"}");
    ck_assert_int_eq(ck_same_n(&pc_chat_message_def, b.data, b.len), 1);
  }
  /* more members than the fast check notes: bound by scanning again */
  for (int members = PC_JMEMBERS_MAX - 1; members <= PC_JMEMBERS_MAX + 2; members++) {
    pc_buf_reset(&b);
    pc_buf_putc(&b, '{');
    for (int i = 0; i < members - 1; i++) pc_buf_printf(&b, "\"x%d\":[%d],", i, i);
    pc_buf_puts(&b, "\"content\":\"last\"}");
    ck_assert_int_eq(ck_same_n(&pc_chat_message_def, b.data, b.len), 1);
  }
  /* nesting inside an unknown field: 9999 + 1 levels pass, 10001 fail */
  for (int levels = 9998; levels <= 10001; levels++) {
    pc_buf_reset(&b);
    pc_buf_puts(&b, "{\"extra\":");
    for (int i = 1; i < levels; i++) pc_buf_puts(&b, i % 2 ? "[" : "{\"k\":");
    pc_buf_puts(&b, "0");
    for (int i = levels - 1; i >= 1; i--) pc_buf_putc(&b, i % 2 ? ']' : '}');
    pc_buf_puts(&b, ",\"content\":\"c\"}");
    ck_assert_int_eq(ck_same_n(&pc_chat_message_def, b.data, b.len), levels <= 10000);
    /* truncated just after the deepest opening */
    ck_same_n(&pc_chat_message_def, b.data, b.len / 2);
  }
  ck_assert(!b.oom);
  pc_buf_free(&b);
}
END_TEST

/* Deterministic mutations of typical bodies: replaced, inserted and
 * deleted bytes, truncations; 30 000 bodies, fixed seed. */
static uint32_t rng_next(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

START_TEST(fast_bind_mutations) {
  static const struct {
    const pc_model_def *def;
    const char *body;
  } bases[] = {
      {&pc_chat_message_def, CHAT_TYPICAL},
      {&pc_purchase_update_def, PURCHASE_TYPICAL},
      {&pc_payment_reminder_def, PAYMENT_TYPICAL},
      {&pc_shipping_update_def, SHIPPING_TYPICAL},
      {&pc_chat_message_def,
       "{\"content\":\"h\xc3\xa9 \\u00e9\\ud83d\\ude00\\n\\\"\",\"Stream_ID\":\"s\",\"extra\":"
       "[1,-0.5e3,{\"k\":[true,false,null]}],\"sender_id\":\"a\",\"receiver_id\":\"b\","
       "\"created_at\":\"2024-05-06T07:08:09Z\"}"},
  };
  static const char interesting[] = "{}[]:,\"\\u0123456789-+.eEtfnrl \t\r\n\x01\x1f\x7f";
  uint32_t seed = 0x9e3779b9u;
  char buf[512];
  int answered = 0;
  for (int iter = 0; iter < 30000; iter++) {
    size_t bi = rng_next(&seed) % (sizeof bases / sizeof bases[0]);
    size_t n = strlen(bases[bi].body);
    memcpy(buf, bases[bi].body, n);
    int edits = 1 + (int)(rng_next(&seed) % 3 == 0);
    for (int e = 0; e < edits; e++) {
      size_t pos = n ? rng_next(&seed) % n : 0;
      uint32_t r = rng_next(&seed);
      char c = (r >> 8) % 4 == 0 ? (char)(r >> 16)
                                 : interesting[(r >> 16) % (sizeof interesting - 1)];
      switch (r % 4) {
        case 0: if (n) buf[pos] = c; break;
        case 1:
          if (n < sizeof buf) {
            memmove(buf + pos + 1, buf + pos, n - pos);
            buf[pos] = c;
            n++;
          }
          break;
        case 2:
          if (n) {
            memmove(buf + pos, buf + pos + 1, n - pos - 1);
            n--;
          }
          break;
        default: n = pos; break;
      }
    }
    answered += ck_same_n(bases[bi].def, buf, n);
  }
  ck_assert_int_gt(answered, 0);
}
END_TEST

/* ---- stream id -------------------------------------------------------- */

START_TEST(stream_id_vectors) {
  static const char *const v[][3] = {
      {"user1", "user2", "4ce0f4c83959b08c"},        {"user2", "user1", "4ce0f4c83959b08c"},
      {"user1", "user3", "bbc11cb7c569f08e"},        {"alice", "bob", "a83ab2505ace9a87"},
      {"", "user1", "0a041b9462caa4a3"},             {"user1", "", "0a041b9462caa4a3"},
      {"user1", "user1", "f9777362314a88ba"},        {"Mr.A", "Mr.B", "6b79c4fda3031c04"},
      {"sender-a", " sender-b", "1a80ecedf209e276"}, {"sender-a", "receiver-b", "3216fea9031bf845"},
      {"user-1", "user-2", "aeaf33db80dab524"},      {"sender-1", "receiver-1", "8f479c7a805aae92"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char out[PC_STREAM_ID_LEN + 1];
    ck_assert_int_eq(pc_stream_id(v[i][0], strlen(v[i][0]), v[i][1], strlen(v[i][1]), out), 0);
    ck_assert_str_eq(out, v[i][2]);
  }
}
END_TEST

/* ---- base64url -------------------------------------------------------- */

START_TEST(b64url_round_trip) {
  /* RFC 4648 section 10 vectors, in the url alphabet and unpadded. */
  static const char *const v[][2] = {
      {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"},
      {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff\xbf", "-_-_"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    pc_buf b;
    pc_buf_init(&b);
    pc_b64url_put(&b, v[i][0], strlen(v[i][0]));
    ck_assert_str_eq(pc_buf_cstr(&b), v[i][1]);
    pc_buf_free(&b);
    unsigned char out[8];
    long n = pc_b64url_decode(v[i][1], strlen(v[i][1]), out, sizeof out);
    ck_assert_int_eq(n, (long)strlen(v[i][0]));
    ck_assert(memcmp(out, v[i][0], (size_t)n) == 0);
  }
  unsigned char out[4];
  ck_assert_int_eq(pc_b64url_decode("Zm9vYg==", 8, out, sizeof out), 4); /* padding tolerated */
  ck_assert_int_eq(pc_b64url_decode("Zm9vY", 5, out, sizeof out), -1);   /* dangling sextet */
  ck_assert_int_eq(pc_b64url_decode("Zh", 2, out, sizeof out), -1);      /* unused bits set */
  ck_assert_int_eq(pc_b64url_decode("Zm+v", 4, out, sizeof out), -1);    /* standard alphabet */
  ck_assert_int_eq(pc_b64url_decode("Zm9vYmFy", 8, out, sizeof out), -1); /* over cap */
}
END_TEST

/* ---- the notification event stream (pc_event) ---- */

START_TEST(event_parse_keeps_the_bytes) {
  const char *v = "{\"id\":42,\"user_id\":\"u\\u00e91\",\"notification_type\":\"purchase_notification\","
                  "\"timestamp\":\"2026-12-07T21:00:00.5Z\",\"payload\":{\"a\":1e+21,\"b\":\"\\u00e9\"}}";
  pc_event ev;
  pc_event_init(&ev);
  const char *why = NULL;
  ck_assert_int_eq(pc_event_parse(v, strlen(v), &ev, &why), 0);
  ck_assert_int_eq(ev.id, 42);
  ck_assert_str_eq(pc_buf_cstr(&ev.user_id), "u\xc3\xa9" "1");
  ck_assert_str_eq(pc_buf_cstr(&ev.type), "purchase_notification");
  pc_buf out;
  pc_buf_init(&out);
  pc_event_put_notification(&ev, &out);
  ck_assert_str_eq(pc_buf_cstr(&out),
                   "{\"id\":42,\"notification_type\":\"purchase_notification\","
                   "\"timestamp\":\"2026-12-07T21:00:00.5Z\",\"payload\":{\"a\":1e+21,\"b\":\"\\u00e9\"}}");
  pc_buf_free(&out);
  pc_event_free(&ev);
}
END_TEST

START_TEST(event_parse_refusals) {
  static const struct {
    const char *value, *reason;
  } cases[] = {
      {"", "not a JSON object"},
      {"{\"id\":1", "not a JSON object"},
      {"[1]", "not a JSON object"},
      {"{\"id\":1} x", "not a JSON object"},
      {"{\"user_id\":\"u\",\"notification_type\":\"t\",\"timestamp\":\"x\",\"payload\":1}", "id"},
      {"{\"id\":0,\"user_id\":\"u\",\"notification_type\":\"t\",\"timestamp\":\"x\",\"payload\":1}", "id"},
      {"{\"id\":-3,\"user_id\":\"u\",\"notification_type\":\"t\",\"timestamp\":\"x\",\"payload\":1}", "id"},
      {"{\"id\":1e3,\"user_id\":\"u\",\"notification_type\":\"t\",\"timestamp\":\"x\",\"payload\":1}", "id"},
      {"{\"id\":1234567890123456789,\"user_id\":\"u\",\"notification_type\":\"t\",\"timestamp\":\"x\","
       "\"payload\":1}", "id"},
      {"{\"id\":1,\"user_id\":7,\"notification_type\":\"t\",\"timestamp\":\"x\",\"payload\":1}", "user_id"},
      {"{\"id\":1,\"user_id\":\"\",\"notification_type\":\"t\",\"timestamp\":\"x\",\"payload\":1}", "user_id"},
      {"{\"id\":1,\"user_id\":\"a\\u0000b\",\"notification_type\":\"t\",\"timestamp\":\"x\",\"payload\":1}",
       "user_id"},
      {"{\"id\":1,\"user_id\":\"u\",\"notification_type\":\"\",\"timestamp\":\"x\",\"payload\":1}",
       "notification_type"},
      {"{\"id\":1,\"user_id\":\"u\",\"notification_type\":\"t\",\"timestamp\":5,\"payload\":1}", "timestamp"},
      {"{\"id\":1,\"user_id\":\"u\",\"notification_type\":\"t\",\"timestamp\":\"x\"}", "payload"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pc_event ev;
    pc_event_init(&ev);
    const char *why = NULL;
    ck_assert_msg(pc_event_parse(cases[i].value, strlen(cases[i].value), &ev, &why) < 0, "%s",
                  cases[i].value);
    ck_assert_msg(why && strstr(why, cases[i].reason), "%s: %s", cases[i].value, why);
    pc_event_free(&ev);
  }
}
END_TEST

/* A record with fixed headers, for pc_event_skip_reason. */
static const char *const *test_headers;
static const void *test_msg_header(notifd_bus_msg *m, const char *name, size_t *len) {
  (void)m;
  for (size_t i = 0; test_headers[i]; i += 2)
    if (strcmp(test_headers[i], name) == 0) {
      *len = strlen(test_headers[i + 1]);
      return test_headers[i + 1];
    }
  *len = 0;
  return NULL;
}

START_TEST(event_skip_reasons) {
  notifd_api api;
  memset(&api, 0, sizeof api);
  api.msg_header = test_msg_header;
  static const struct {
    const char *h[7];
    const char *push, *email; /* reasons for push (undelivered only) and email */
  } cases[] = {
      {{NULL}, NULL, NULL},
      {{"notifd-delivered", "0", NULL}, NULL, NULL},
      {{"notifd-delivered", "2", NULL}, "delivered", NULL},
      {{"notifd-delivered", "00", NULL}, NULL, NULL},
      {{"notifd-delivered", "x1", NULL}, NULL, NULL}, /* not a number: unknown */
      {{"notifd-muted", "push", NULL}, "muted", NULL},
      {{"notifd-muted", " email , push ", NULL}, "muted", "muted"},
      {{"notifd-muted", "pushy,emails", NULL}, NULL, NULL},
      {{"notifd-muted", "", NULL}, NULL, NULL},
      {{"notifd-quiet", "1", "notifd-delivered", "5", NULL}, "quiet", "quiet"},
      {{"notifd-quiet", "0", NULL}, NULL, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    test_headers = cases[i].h;
    const char *p = pc_event_skip_reason(&api, NULL, "push", 1);
    const char *e = pc_event_skip_reason(&api, NULL, "email", 0);
    ck_assert_msg((p == NULL) == (cases[i].push == NULL) && (!p || !strcmp(p, cases[i].push)),
                  "case %zu push: %s", i, p ? p : "(fire)");
    ck_assert_msg((e == NULL) == (cases[i].email == NULL) && (!e || !strcmp(e, cases[i].email)),
                  "case %zu email: %s", i, e ? e : "(fire)");
  }
}
END_TEST

/* The civil-date arithmetic against glibc's gmtime_r / timegm (an
 * independent implementation), over years 1..9999 and around the epoch. */
START_TEST(civil_dates_match_libc) {
  const int64_t lo = -62135596800LL, hi = 253402300799LL; /* 0001-01-01 .. 9999-12-31 */
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 5000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int64_t t = i < 1000 ? (int64_t)i * 86399 - 43200000 : lo + (int64_t)(x % (uint64_t)(hi - lo + 1));
    time_t tt = (time_t)t;
    struct tm tm;
    ck_assert_ptr_nonnull(gmtime_r(&tt, &tm));
    pc_civil c;
    pc_civil_from_unix(t, &c);
    ck_assert_msg(c.year == tm.tm_year + 1900 && c.month == tm.tm_mon + 1 && c.day == tm.tm_mday &&
                      c.hour == tm.tm_hour && c.min == tm.tm_min && c.sec == tm.tm_sec &&
                      c.wday == tm.tm_wday,
                  "t=%lld", (long long)t);
    ck_assert_int_eq(pc_days_from_civil(c.year, c.month, c.day) * 86400 + c.hour * 3600 +
                         c.min * 60 + c.sec,
                     (int64_t)timegm(&tm));
    ck_assert_int_eq(pc_days_in_month(c.year, 2), pc_is_leap_year(c.year) ? 29 : 28);
  }
}
END_TEST

START_TEST(rfc3339_scan_forms) {
  pc_rfc3339 t;
  ck_assert_int_eq(pc_rfc3339_scan("1970-01-01T00:00:00Z", &t), 0);
  ck_assert_int_eq(t.unix_s, 0);
  ck_assert_int_eq(pc_rfc3339_scan("2026-12-08T02:03:04.5+01:30", &t), 0);
  ck_assert_int_eq(t.unix_s, 1796695384 - 5400);
  ck_assert_int_eq(t.nsec, 500000000);
  ck_assert_int_eq(t.offset_s, 5400);
  /* ',' fraction, lower-case separators, +hhmm, nine digits */
  ck_assert_int_eq(pc_rfc3339_scan("2026-12-08t02:03:04,123456789-0030", &t), 0);
  ck_assert_int_eq(t.unix_s, 1796695384 + 1800);
  ck_assert_int_eq(t.nsec, 123456789);
  ck_assert_int_eq(t.offset_s, -1800);
  ck_assert_int_eq(pc_rfc3339_scan("0001-01-01T00:00:00z", &t), 0);
  ck_assert_int_eq(t.unix_s, -62135596800LL);
  const char *bad[] = {
      "", "2026-12-08", "2026-12-08T02:03:04", "2026-12-08T02:03:04.Z",
      "2026-12-08T02:03:04.1234567890Z", "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
      "2026-12-08T24:00:00Z", "2026-12-08T02:60:00Z", "2026-12-08T02:03:60Z",
      "2026-12-08T02:03:04+24:00", "2026-12-08T02:03:04+01", "2026-12-08T02:03:04Zx",
      "2026-12-08 02:03:04Z", "2O26-12-08T02:03:04Z",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(pc_rfc3339_scan(bad[i], &t) == -1, "accepted %s", bad[i]);
  ck_assert_int_eq(pc_rfc3339_scan("2024-02-29T00:00:00Z", &t), 0);
}
END_TEST

START_TEST(recent_window) {
  pc_recent *r = pc_recent_new(3, 1000);
  ck_assert_ptr_nonnull(r);
  ck_assert_int_eq(pc_recent_claim(r, "a", 1, 0), 0);
  ck_assert_int_eq(pc_recent_claim(r, "a", 1, 10), 1);
  ck_assert_int_eq(pc_recent_claim(r, "b", 1, 10), 0); /* another user */
  ck_assert_int_eq(pc_recent_claim(r, "a", 2, 10), 0);
  /* Full (3): the oldest, (a,1), goes first. */
  ck_assert_int_eq(pc_recent_claim(r, "c", 9, 20), 0);
  ck_assert_int_eq(pc_recent_claim(r, "a", 2, 20), 1);
  ck_assert_int_eq(pc_recent_claim(r, "a", 1, 20), 0); /* back in, (b,1) out */
  ck_assert_int_eq(pc_recent_claim(r, "c", 9, 20), 1);
  /* Forgotten: claimed again. */
  pc_recent_forget(r, "c", 9);
  pc_recent_forget(r, "x", 1); /* unknown: nothing */
  ck_assert_int_eq(pc_recent_claim(r, "c", 9, 30), 0);
  /* Too old: claimed again. */
  ck_assert_int_eq(pc_recent_claim(r, "c", 9, 1030), 1);
  ck_assert_int_eq(pc_recent_claim(r, "c", 9, 1031), 0);
  ck_assert_int_eq(pc_recent_claim(r, "c", 9, 1032), 1);
  pc_recent_free(r);
  /* Many entries through a small window: never more than it holds. */
  r = pc_recent_new(100, 1000000);
  for (int64_t i = 1; i <= 10000; i++) ck_assert_int_eq(pc_recent_claim(r, "u", i, i), 0);
  for (int64_t i = 9901; i <= 10000; i++) ck_assert_int_eq(pc_recent_claim(r, "u", i, 10001), 1);
  ck_assert_int_eq(pc_recent_claim(r, "u", 9900, 10001), 0);
  pc_recent_free(r);
  ck_assert_ptr_null(pc_recent_new(0, 1));
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("plugin_common");
  TCase *t = tcase_create("all");
  /* Check's 4 s default is short for the 30 000 mutations under ASan on
   * a busy machine; meson's 60 s limit still applies. */
  tcase_set_timeout(t, 55);
  tcase_add_test(t, scanner_decoder_errors);
  tcase_add_test(t, scanner_max_depth);
  tcase_add_test(t, scanner_document);
  tcase_add_test(t, unquote_rules);
  tcase_add_test(t, key_folding);
  tcase_add_test(t, encode_strings);
  tcase_add_test(t, encode_floats);
  tcase_add_test(t, time_parse_and_write);
  tcase_add_test(t, time_zero_value);
  tcase_add_test(t, bind_chat_message);
  tcase_add_test(t, bind_notification_models);
  tcase_add_test(t, notification_kinds);
  tcase_add_test(t, fast_bind_typical);
  tcase_add_test(t, fast_bind_cases);
  tcase_add_test(t, fast_bind_sizes);
  tcase_add_test(t, fast_bind_mutations);
  tcase_add_test(t, stream_id_vectors);
  tcase_add_test(t, b64url_round_trip);
  tcase_add_test(t, event_parse_keeps_the_bytes);
  tcase_add_test(t, event_parse_refusals);
  tcase_add_test(t, event_skip_reasons);
  tcase_add_test(t, recent_window);
  tcase_add_test(t, civil_dates_match_libc);
  tcase_add_test(t, rfc3339_scan_forms);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
