/* plugins/chat_common: stream_id (contract 2.6 vectors and the Go unit
 * tests), RFC 3339 times, Go-compatible JSON, request binding with gin
 * semantics, the extra checks, ObjectId-like ids and the Extended JSON /
 * Debezium key writers. */
#include <stdlib.h>
#include <string.h>

#include "nd_test.h"

/* The unit loop links libnotifd only; chat_common is plugin-side code. */
#include "pc_buf.h"
#include "pc_stream_id.h"
#include "chat_json.h"
#include "chat_time.h"
#include "chat_oid.h"
#include "chat_model.h"
#include "chat_extjson.h"
#include "chat_jwalk.h"
#include "chat_debezium.h"

/* ---- stream_id ---- */

static const char *sid(const char *a, const char *b) {
  static char out[PC_STREAM_ID_LEN + 1];
  ck_assert_int_eq(pc_stream_id(a, strlen(a), b, strlen(b), out), 0);
  return out;
}

START_TEST(stream_id_vectors) {
  static const char *const v[][3] = {
      {"user1", "user2", "4ce0f4c83959b08c"},    {"user1", "user3", "bbc11cb7c569f08e"},
      {"alice", "bob", "a83ab2505ace9a87"},      {"", "user1", "0a041b9462caa4a3"},
      {"user1", "user1", "f9777362314a88ba"},    {"Mr.A", "Mr.B", "6b79c4fda3031c04"},
      {"sender-a", " sender-b", "1a80ecedf209e276"}, {"sender-a", "receiver-b", "3216fea9031bf845"},
      {"user-1", "user-2", "aeaf33db80dab524"},  {"sender-1", "receiver-1", "8f479c7a805aae92"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    ck_assert_str_eq(sid(v[i][0], v[i][1]), v[i][2]);
    ck_assert_str_eq(sid(v[i][1], v[i][0]), v[i][2]); /* order-independent */
  }
}
END_TEST

/* The seven subtests of Go's TestComputeStreamID. */
START_TEST(stream_id_go_properties) {
  char a[17], b[17];
  strcpy(a, sid("user1", "user2"));
  ck_assert_str_eq(sid("user2", "user1"), a);
  ck_assert_str_ne(sid("user1", "user3"), a);
  strcpy(b, sid("alice", "bob"));
  ck_assert_str_eq(sid("alice", "bob"), b);
  ck_assert_str_eq(sid("bob", "alice"), b);
  ck_assert_uint_eq(strlen(a), 16);
  ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 16);
  strcpy(b, sid("", "user1"));
  ck_assert_str_eq(sid("user1", ""), b);
  ck_assert_uint_eq(strlen(sid("user1", "user1")), 16);
  /* Byte order, not locale order: "B" (0x42) sorts before "a" (0x61), and
   * a proper prefix sorts first. */
  strcpy(a, sid("a", "B"));
  ck_assert_str_eq(sid("B", "a"), a);
  strcpy(a, sid("ab", "abc"));
  ck_assert_str_eq(sid("abc", "ab"), a);
}
END_TEST

/* ---- time ---- */

START_TEST(time_format_and_parse) {
  char t[CHAT_TIME_TEXT_MAX];
  ck_assert_int_eq(chat_time_format(0, t), 0);
  ck_assert_str_eq(t, "1970-01-01T00:00:00Z");
  ck_assert_int_eq(chat_time_format(-1, t), 0);
  ck_assert_str_eq(t, "1969-12-31T23:59:59.999Z");
  ck_assert_int_eq(chat_time_format(CHAT_TIME_ZERO_MS, t), 0);
  ck_assert_str_eq(t, "0001-01-01T00:00:00Z");
  ck_assert_int_eq(chat_time_format(1783101585729LL, t), 0);
  ck_assert_str_eq(t, "2026-07-03T17:59:45.729Z");
  ck_assert_int_eq(chat_time_format(951782400000LL, t), 0); /* leap day 2000 */
  ck_assert_str_eq(t, "2000-02-29T00:00:00Z");
  ck_assert_int_eq(chat_time_format(1783101585720LL, t), 0);
  ck_assert_str_eq(t, "2026-07-03T17:59:45.72Z");
  ck_assert_int_eq(chat_time_format(1783101585700LL, t), 0);
  ck_assert_str_eq(t, "2026-07-03T17:59:45.7Z");
  ck_assert_int_eq(chat_time_format(1783101585009LL, t), 0);
  ck_assert_str_eq(t, "2026-07-03T17:59:45.009Z");
  ck_assert_int_eq(chat_time_format(CHAT_TIME_MAX_MS, t), 0);
  ck_assert_str_eq(t, "9999-12-31T23:59:59.999Z");
  ck_assert_int_eq(chat_time_format(CHAT_TIME_MIN_MS, t), 0);
  ck_assert_str_eq(t, "0000-01-01T00:00:00Z");
  ck_assert_int_eq(chat_time_format(CHAT_TIME_MAX_MS + 1, t), -1);
  ck_assert_int_eq(chat_time_format(CHAT_TIME_MIN_MS - 1, t), -1);
  ck_assert_int_eq(chat_time_format(INT64_MIN, t), -1);

  int64_t ms = 0;
  ck_assert_int_eq(chat_time_parse("2026-07-03T17:59:45.729Z", &ms), 0);
  ck_assert_int_eq(ms, 1783101585729LL);
  ck_assert_int_eq(chat_time_parse("2026-07-03T19:59:45.729+02:00", &ms), 0);
  ck_assert_int_eq(ms, 1783101585729LL);
  ck_assert_int_eq(chat_time_parse("2026-07-03T16:29:45.729123456-0130", &ms), 0);
  ck_assert_int_eq(ms, 1783101585729LL);
  ck_assert_int_eq(chat_time_parse("0001-01-01T00:00:00Z", &ms), 0);
  ck_assert_int_eq(ms, CHAT_TIME_ZERO_MS);
  ck_assert_int_eq(chat_time_parse("1969-12-31T23:59:59.5Z", &ms), 0);
  ck_assert_int_eq(ms, -500);
  static const char *const bad[] = {
      "", "2026-07-03", "2026-07-03T17:59:45", "2026-07-03 17:59:45Z", "2026-02-29T00:00:00Z",
      "2026-13-01T00:00:00Z", "2026-07-03T24:00:00Z", "2026-07-03T17:59:45.Z",
      "2026-07-03T17:59:45Zjunk", "2026-07-03T17:59:45+2:00", "x026-07-03T17:59:45Z",
      "2026-07-03T17:59:45.1234567890Z"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(chat_time_parse(bad[i], &ms) == -1, "accepted %s", bad[i]);
}
END_TEST

/* ---- JSON output ---- */

static char *jstr(const char *s, size_t n, int flavour) {
  pc_buf b;
  pc_buf_init(&b);
  chat_json_str(&b, s, n, flavour);
  return pc_buf_steal(&b, NULL);
}

START_TEST(json_escaping) {
  const char in[] = "<a href=\"x\">&</a>\\\n\t\x01\xe2\x80\xa8\xff\xc3\xa9";
  char *go = jstr(in, sizeof in - 1, CHAT_JSON_GO);
  ck_assert_str_eq(go, "\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u003c/a\\u003e\\\\\\n\\t\\u0001"
                       "\\u2028\\ufffd\xc3\xa9\"");
  free(go);
  const char in2[] = "<&>\"\x1f";
  char *plain = jstr(in2, sizeof in2 - 1, CHAT_JSON_PLAIN);
  ck_assert_str_eq(plain, "\"<&>\\\"\\u001f\"");
  free(plain);
  ck_assert_int_eq(chat_utf8_valid("\xc3\xa9\xf0\x9f\x8e\x89", 6), 1);
  ck_assert_int_eq(chat_utf8_valid("\xc0\xaf", 2), 0);          /* overlong */
  ck_assert_int_eq(chat_utf8_valid("\xed\xa0\x80", 3), 0);      /* surrogate */
  ck_assert_int_eq(chat_utf8_valid("\xf4\x90\x80\x80", 4), 0);  /* > U+10FFFF */
  ck_assert_int_eq(chat_utf8_valid("\xe2\x82", 2), 0);          /* truncated */
}
END_TEST

/* ---- binding ---- */

static int bind_text(const char *text, chat_message *m, char **err) {
  json_error_t je;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
  ck_assert_msg(j != NULL, "test JSON: %s", je.text);
  pc_buf e;
  pc_buf_init(&e);
  int rc = chat_message_bind(j, m, &e);
  json_decref(j);
  *err = pc_buf_steal(&e, NULL);
  return rc;
}

START_TEST(bind_valid_and_case_insensitive) {
  chat_message m;
  char *err;
  int rc = bind_text("{\"Content\":\"   \\t\\n   \",\"STREAM_ID\":\"4ce0f4c83959b08c\","
                     "\"sender_id\":\"user1\",\"receiver_id\":\"x\",\"receiver_id\":\"user2\","
                     "\"unknown\":[1,2],\"message_id\":null,"
                     "\"created_at\":\"2026-07-03T17:59:45.729Z\"}",
                     &m, &err);
  ck_assert_int_eq(rc, CHAT_BIND_OK);
  ck_assert_str_eq(err, "");
  ck_assert_str_eq(m.content, "   \t\n   "); /* whitespace passes `required` */
  ck_assert_str_eq(m.stream_id, "4ce0f4c83959b08c");
  ck_assert_str_eq(m.receiver_id, "user2"); /* last duplicate wins */
  ck_assert_str_eq(m.message_id, "");
  ck_assert_int_eq(m.created_at_ms, 1783101585729LL);
  chat_message_free(&m);
  free(err);
}
END_TEST

START_TEST(bind_required_errors_go_text) {
  chat_message m;
  char *err;
  ck_assert_int_eq(bind_text("{}", &m, &err), CHAT_BIND_INVALID);
  ck_assert_str_eq(err,
                   "Key: 'ChatMessage.Content' Error:Field validation for 'Content' failed on the "
                   "'required' tag\n"
                   "Key: 'ChatMessage.ChatMetadata.StreamID' Error:Field validation for 'StreamID' "
                   "failed on the 'required' tag\n"
                   "Key: 'ChatMessage.ChatMetadata.SenderID' Error:Field validation for 'SenderID' "
                   "failed on the 'required' tag\n"
                   "Key: 'ChatMessage.ChatMetadata.ReceiverID' Error:Field validation for "
                   "'ReceiverID' failed on the 'required' tag");
  free(err);
  ck_assert_int_eq(bind_text("{\"content\":\"\",\"stream_id\":\"s\",\"sender_id\":\"a\","
                             "\"receiver_id\":\"b\"}",
                             &m, &err),
                   CHAT_BIND_INVALID);
  ck_assert_str_eq(err, "Key: 'ChatMessage.Content' Error:Field validation for 'Content' failed "
                        "on the 'required' tag");
  free(err);
  ck_assert_int_eq(bind_text("null", &m, &err), CHAT_BIND_INVALID);
  ck_assert_ptr_nonnull(strstr(err, "'ReceiverID' failed"));
  free(err);
}
END_TEST

START_TEST(bind_type_errors) {
  chat_message m;
  char *err;
  ck_assert_int_eq(bind_text("[1]", &m, &err), CHAT_BIND_INVALID);
  ck_assert_str_eq(err, "json: cannot unmarshal array into Go value of type model.ChatMessage");
  free(err);
  ck_assert_int_eq(bind_text("{\"content\":3.5,\"stream_id\":\"s\",\"sender_id\":\"a\","
                             "\"receiver_id\":\"b\"}",
                             &m, &err),
                   CHAT_BIND_INVALID);
  ck_assert_str_eq(err, "json: cannot unmarshal number into Go struct field ChatMessage.content "
                        "of type string");
  free(err);
  ck_assert_int_eq(bind_text("{\"content\":\"x\",\"stream_id\":\"s\",\"sender_id\":\"a\","
                             "\"receiver_id\":\"b\",\"created_at\":\"yesterday\"}",
                             &m, &err),
                   CHAT_BIND_INVALID);
  ck_assert_ptr_nonnull(strstr(err, "created_at"));
  free(err);
  ck_assert_int_eq(bind_text("{\"content\":\"x\",\"stream_id\":\"s\",\"sender_id\":{},"
                             "\"receiver_id\":\"b\"}",
                             &m, &err),
                   CHAT_BIND_INVALID);
  ck_assert_ptr_nonnull(strstr(err, "object into Go struct field ChatMessage.sender_id"));
  free(err);
}
END_TEST

static chat_message make_msg(const char *id, const char *content, const char *stream,
                             const char *sender, const char *receiver) {
  chat_message m;
  chat_message_init(&m);
  m.message_id = strdup(id);
  m.content = strdup(content);
  chat_message_set_content_strlen(&m);
  m.stream_id = strdup(stream);
  m.sender_id = strdup(sender);
  m.receiver_id = strdup(receiver);
  return m;
}

static int check_msg(const chat_message *m, const chat_limits *l, char **err) {
  pc_buf e;
  pc_buf_init(&e);
  int rc = chat_message_check(m, l, &e);
  *err = pc_buf_steal(&e, NULL);
  return rc;
}

START_TEST(extra_checks) {
  chat_limits lim = {16, 64, 1};
  char *err;
  chat_message m = make_msg("", "hello", "3216fea9031bf845", "sender-a", "receiver-b");
  ck_assert_int_eq(check_msg(&m, &lim, &err), CHAT_BIND_OK);
  free(err);
  free(m.stream_id);
  m.stream_id = strdup("0000000000000000");
  ck_assert_int_eq(check_msg(&m, &lim, &err), CHAT_BIND_INVALID);
  ck_assert_str_eq(err, "stream_id: does not match sender_id and receiver_id (expected "
                        "3216fea9031bf845)");
  free(err);
  lim.verify_stream_id = 0;
  ck_assert_int_eq(check_msg(&m, &lim, &err), CHAT_BIND_OK);
  free(err);
  free(m.content);
  m.content = strdup("seventeen bytes!!");
  chat_message_set_content_strlen(&m);
  ck_assert_int_eq(check_msg(&m, &lim, &err), CHAT_BIND_INVALID);
  ck_assert_str_eq(err, "content: too long (17 bytes, limit 16)");
  free(err);
  free(m.content);
  m.content = strdup("bad \xff utf8");
  chat_message_set_content_strlen(&m);
  ck_assert_int_eq(check_msg(&m, &lim, &err), CHAT_BIND_INVALID);
  ck_assert_str_eq(err, "content: not valid UTF-8");
  free(err);
  free(m.content);
  m.content = strdup("ok");
  chat_message_set_content_strlen(&m);
  free(m.sender_id);
  m.sender_id = strdup("tab\there");
  ck_assert_int_eq(check_msg(&m, &lim, &err), CHAT_BIND_INVALID);
  ck_assert_str_eq(err, "sender_id: contains a control character");
  free(err);
  free(m.message_id);
  m.message_id = malloc(66);
  memset(m.message_id, 'x', 65);
  m.message_id[65] = '\0';
  ck_assert_int_eq(check_msg(&m, &lim, &err), CHAT_BIND_INVALID);
  ck_assert_str_eq(err, "message_id: too long (65 bytes, limit 64)");
  free(err);
  chat_message_free(&m);
}
END_TEST

START_TEST(go_json_output) {
  chat_message m = make_msg("message_id_0", "Hi <b>&</b> \"q\"", "1a80ecedf209e276", "sender-a",
                            " sender-b");
  pc_buf b;
  pc_buf_init(&b);
  ck_assert_int_eq(chat_message_gojson(&m, &b), 0);
  ck_assert_str_eq(b.data, "{\"message_id\":\"message_id_0\",\"content\":\"Hi \\u003cb\\u003e\\u0026"
                           "\\u003c/b\\u003e \\\"q\\\"\",\"created_at\":\"0001-01-01T00:00:00Z\","
                           "\"stream_id\":\"1a80ecedf209e276\",\"sender_id\":\"sender-a\","
                           "\"receiver_id\":\" sender-b\"}");
  /* The output is valid JSON that reads back to the same strings. */
  json_t *j = json_loads(b.data, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "content")), m.content);
  json_decref(j);
  pc_buf_free(&b);
  m.created_at_ms = CHAT_TIME_MAX_MS + 1;
  ck_assert_int_eq(chat_message_gojson(&m, &b), -1);
  pc_buf_free(&b);
  chat_message_free(&m);
}
END_TEST

/* ---- ids, Extended JSON and keys ---- */

START_TEST(oid_generator) {
  chat_oid_gen g;
  ck_assert_int_eq(chat_oid_gen_init(&g), 0);
  char a[25], b[25];
  chat_oid_next(&g, 1783101585729LL, a);
  chat_oid_next(&g, 1783101585729LL, b);
  ck_assert_int_eq(chat_oid_is_hex(a), 1);
  ck_assert_str_ne(a, b);
  ck_assert_int_eq(strncmp(a, "6a47f891", 8), 0); /* big-endian seconds 1783101585 */
  ck_assert_int_eq(strncmp(a, b, 18), 0);          /* same time and random part */
  ck_assert_int_eq(chat_oid_is_hex("596E275826F08B2730779E1F"), 1);
  ck_assert_int_eq(chat_oid_is_hex("596e275826f08b2730779e1"), 0);
  ck_assert_int_eq(chat_oid_is_hex("596e275826f08b2730779e1g"), 0);
}
END_TEST

START_TEST(extjson_and_key_writers) {
  chat_message m = make_msg("message_id_0", "Hello", "1a80ecedf209e276", "sender-a", " sender-b");
  pc_buf b;
  pc_buf_init(&b);
  ck_assert_int_eq(chat_doc_to_extjson(&m, &b), 0);
  /* Byte-for-byte the document of the contract's example (section 4.1). */
  ck_assert_str_eq(b.data, "{\"_id\":\"message_id_0\",\"content\":\"Hello\",\"created_at\":{\"$date\":"
                           "{\"$numberLong\":\"-62135596800000\"}},\"stream_id\":"
                           "\"1a80ecedf209e276\",\"sender_id\":\"sender-a\",\"receiver_id\":\" "
                           "sender-b\"}");
  pc_buf_free(&b);
  ck_assert_int_eq(chat_doc_key(&m, &b), 0);
  ck_assert_str_eq(b.data, "{\"id\":\"\\\"message_id_0\\\"\"}");
  pc_buf_free(&b);
  free(m.message_id);
  m.message_id = strdup("596e275826f08b2730779e1f");
  m.id_is_oid = 1;
  ck_assert_int_eq(chat_doc_key(&m, &b), 0);
  ck_assert_str_eq(b.data, "{\"id\":\"{\\\"$oid\\\": \\\"596e275826f08b2730779e1f\\\"}\"}");
  pc_buf_free(&b);
  m.created_at_ms = 1783101585729LL;
  ck_assert_int_eq(chat_change_value(&m, 42, &b), 0);
  ck_assert_str_eq(b.data, "{\"before\":null,\"after\":\"{\\\"_id\\\":{\\\"$oid\\\":"
                           "\\\"596e275826f08b2730779e1f\\\"},\\\"content\\\":\\\"Hello\\\","
                           "\\\"created_at\\\":{\\\"$date\\\":{\\\"$numberLong\\\":"
                           "\\\"1783101585729\\\"}},\\\"stream_id\\\":\\\"1a80ecedf209e276\\\","
                           "\\\"sender_id\\\":\\\"sender-a\\\",\\\"receiver_id\\\":\\\" "
                           "sender-b\\\"}\",\"op\":\"c\",\"ts_ms\":42}");
  pc_buf_free(&b);
  chat_message_free(&m);
}
END_TEST

START_TEST(int64_parsing) {
  int64_t v;
  ck_assert_int_eq(chat_parse_int64("9223372036854775807", &v), 0);
  ck_assert_int_eq(v, INT64_MAX);
  ck_assert_int_eq(chat_parse_int64("-9223372036854775808", &v), 0);
  ck_assert_int_eq(v, INT64_MIN);
  ck_assert_int_eq(chat_parse_int64("9223372036854775808", &v), -1);
  ck_assert_int_eq(chat_parse_int64("-9223372036854775809", &v), -1);
  ck_assert_int_eq(chat_parse_int64("99999999999999999999", &v), -1);
  ck_assert_int_eq(chat_parse_int64("", &v), -1);
  ck_assert_int_eq(chat_parse_int64("-", &v), -1);
  ck_assert_int_eq(chat_parse_int64("12a", &v), -1);
  ck_assert_int_eq(chat_parse_int64(" 1", &v), -1);
  ck_assert_int_eq(chat_parse_int64("+1", &v), -1);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("chat_model");
  TCase *tc = tcase_create("model");
  tcase_add_test(tc, stream_id_vectors);
  tcase_add_test(tc, stream_id_go_properties);
  tcase_add_test(tc, time_format_and_parse);
  tcase_add_test(tc, json_escaping);
  tcase_add_test(tc, bind_valid_and_case_insensitive);
  tcase_add_test(tc, bind_required_errors_go_text);
  tcase_add_test(tc, bind_type_errors);
  tcase_add_test(tc, extra_checks);
  tcase_add_test(tc, go_json_output);
  tcase_add_test(tc, oid_generator);
  tcase_add_test(tc, extjson_and_key_writers);
  tcase_add_test(tc, int64_parsing);
  suite_add_tcase(s, tc);
  return s;
}
