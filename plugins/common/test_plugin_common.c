/* Unit tests of the plugin-side helpers: Go's JSON scanner errors and
 * string rules, encoding/json output, RFC 3339 parsing and writing, gin
 * binding and validator messages of the wire models, stream ids. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "pc_bind.h"
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

static Suite *suite(void) {
  Suite *s = suite_create("plugin_common");
  TCase *t = tcase_create("all");
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
  tcase_add_test(t, stream_id_vectors);
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
