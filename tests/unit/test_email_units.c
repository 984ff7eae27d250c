/* Unit tests of the email plugin's pure parts (no host, no network):
 * times, Go binding and echoes, change records, templates, MIME. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "email_util.h"
#include "email_event.h"
#include "email_gojson.h"
#include "email_mime.h"
#include "email_template.h"
#include "email_time.h"

/* ---- time ---- */

START_TEST(time_roundtrip_go_style) {
  email_time t;
  char out[64];
  ck_assert_int_eq(email_time_parse_rfc3339("2024-03-05T10:20:30.500000000+02:00", &t), 0);
  email_time_format_rfc3339(&t, out, sizeof out);
  ck_assert_str_eq(out, "2024-03-05T10:20:30.5+02:00");
  email_time_format_plain(&t, out, sizeof out);
  ck_assert_str_eq(out, "2024-03-05 10:20:30");
  ck_assert_int_eq(t.unix_s, 1709626830);
  ck_assert_int_eq(email_time_parse_rfc3339("2024-01-01T00:00:00+00:00", &t), 0);
  email_time_format_rfc3339(&t, out, sizeof out);
  ck_assert_str_eq(out, "2024-01-01T00:00:00Z");
  ck_assert_int_eq(email_time_parse_rfc3339("2024-02-30T00:00:00Z", &t), -1);
  ck_assert_int_eq(email_time_parse_rfc3339("2024-01-01 00:00:00Z", &t), -1);
  ck_assert_int_eq(email_time_parse_rfc3339("2024-01-01T00:00:00", &t), -1);
  email_time zero = {0};
  email_time_format_rfc3339(&zero, out, sizeof out);
  ck_assert_str_eq(out, "0001-01-01T00:00:00Z");
  email_time_from_unix_ms(-62135596800000LL, &t);
  ck_assert_int_eq(t.set, 0);
  email_time_format_rfc5322(0, out, sizeof out);
  ck_assert_str_eq(out, "Thu, 01 Jan 1970 00:00:00 +0000");
  email_time_format_rfc5322(1709626830, out, sizeof out);
  ck_assert_str_eq(out, "Tue, 05 Mar 2024 08:20:30 +0000");
}
END_TEST

/* ---- Go binding ---- */

static json_t *js(const char *s) {
  json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
  ck_assert_ptr_nonnull(j);
  return j;
}

START_TEST(bind_chat_valid_and_echo) {
  json_t *b = js("{\"Content\":\"hi <b>&\",\"stream_id\":\"s1\",\"sender_id\":\"a\","
                 "\"receiver_id\":\"b\",\"created_at\":\"2024-01-02T03:04:05.120Z\",\"x\":1}");
  email_chat_msg m;
  char *err = NULL;
  ck_assert_int_eq(email_bind_chat(b, &m, &err), 0);
  size_t n;
  char *echo = email_echo_chat(&m, &n);
  ck_assert_str_eq(echo, "{\"message_id\":\"\",\"content\":\"hi \\u003cb\\u003e\\u0026\","
                         "\"created_at\":\"2024-01-02T03:04:05.12Z\",\"stream_id\":\"s1\","
                         "\"sender_id\":\"a\",\"receiver_id\":\"b\"}");
  ck_assert_uint_eq(n, strlen(echo));
  free(echo);
  email_chat_msg_free(&m);
  json_decref(b);
}
END_TEST

START_TEST(bind_chat_errors_like_gin) {
  json_t *b = js("{\"content\":\"\",\"sender_id\":\"a\"}");
  email_chat_msg m;
  char *err = NULL;
  ck_assert_int_eq(email_bind_chat(b, &m, &err), -1);
  ck_assert_str_eq(err,
                   "Key: 'ChatMessage.Content' Error:Field validation for 'Content' failed on the "
                   "'required' tag\n"
                   "Key: 'ChatMessage.ChatMetadata.StreamID' Error:Field validation for "
                   "'StreamID' failed on the 'required' tag\n"
                   "Key: 'ChatMessage.ChatMetadata.ReceiverID' Error:Field validation for "
                   "'ReceiverID' failed on the 'required' tag");
  free(err);
  json_decref(b);
  b = js("{\"content\":3,\"stream_id\":\"s\"}");
  ck_assert_int_eq(email_bind_chat(b, &m, &err), -1);
  ck_assert_str_eq(err, "json: cannot unmarshal number into Go struct field ChatMessage.content "
                        "of type string");
  free(err);
  json_decref(b);
  b = js("[1]");
  ck_assert_int_eq(email_bind_chat(b, &m, &err), -1);
  ck_assert_str_eq(err, "json: cannot unmarshal array into Go value of type model.ChatMessage");
  free(err);
  json_decref(b);
}
END_TEST

START_TEST(bind_purchase_and_floats) {
  json_t *b = js("{\"order_id\":\"ORD-001\",\"buyer_id\":\"b\",\"shop_owner_id\":\"o\","
                 "\"product_name\":\"Premium Coffee\",\"amount\":15.99,\"currency\":\"USD\","
                 "\"status\":\"confirmed\",\"purchased_at\":\"2024-05-06T07:08:09-05:00\"}");
  email_purchase p;
  char *err = NULL;
  ck_assert_int_eq(email_bind_purchase(b, &p, &err), 0);
  char *echo = email_echo_purchase(&p, NULL);
  ck_assert_ptr_nonnull(strstr(echo, "\"amount\":15.99,"));
  ck_assert_ptr_nonnull(strstr(echo, "\"purchased_at\":\"2024-05-06T07:08:09-05:00\"}"));
  free(echo);
  email_event ev;
  ck_assert_int_eq(email_event_from_purchase(&ev, &p), 0);
  ck_assert_str_eq(ev.recipient_id, "o");
  ck_assert_str_eq(email_event_get(&ev, "amount"), "15.99");
  ck_assert_str_eq(email_event_get(&ev, "purchased_at"), "2024-05-06 07:08:09");
  email_event_free(&ev);
  email_purchase_free(&p);
  json_decref(b);
  b = js("{\"order_id\":\"x\",\"amount\":0}");
  ck_assert_int_eq(email_bind_purchase(b, &p, &err), -1);
  ck_assert_ptr_nonnull(strstr(err, "'PurchaseUpdate.Amount'"));
  free(err);
  json_decref(b);
  char f[64];
  email_go_float(100, f, sizeof f);
  ck_assert_str_eq(f, "100");
  email_go_float(0.1, f, sizeof f);
  ck_assert_str_eq(f, "0.1");
  email_go_float(1e21, f, sizeof f);
  ck_assert_str_eq(f, "1e+21");
  email_go_float(1e-7, f, sizeof f);
  ck_assert_str_eq(f, "1e-7");
  email_go_float(123456789.125, f, sizeof f);
  ck_assert_str_eq(f, "123456789.125");
}
END_TEST

START_TEST(notification_records) {
  json_t *r = js("{\"type\":\"shipping-update\",\"user_id\":\"u9\",\"payload\":{\"order_id\":\"O1\","
                 "\"status\":\"shipped\",\"updated_at\":\"2024-06-01T12:00:00+09:00\"}}");
  email_event ev;
  int type;
  const char *why = NULL;
  ck_assert_int_eq(email_event_from_notification(&ev, r, &type, &why), 0);
  ck_assert_int_eq(type, EMAIL_SHIPPING_UPDATE);
  ck_assert_str_eq(ev.recipient_id, "u9");
  ck_assert_str_eq(email_event_get(&ev, "status"), "shipped");
  ck_assert_str_eq(email_event_get(&ev, "updated_at"), "2024-06-01 12:00:00");
  ck_assert_str_eq(email_event_get(&ev, "location"), "");
  email_event_free(&ev);
  json_decref(r);
  r = js("{\"type\":\"payment-reminder\",\"user_id\":\"u\",\"payload\":{\"amount\":12.5,"
         "\"days_overdue\":3}}");
  ck_assert_int_eq(email_event_from_notification(&ev, r, &type, &why), 0);
  ck_assert_str_eq(email_event_get(&ev, "amount"), "12.50");
  ck_assert_str_eq(email_event_get(&ev, "days_overdue"), "3");
  email_event_free(&ev);
  json_decref(r);
  r = js("{\"type\":\"chat\",\"user_id\":\"u\",\"payload\":{}}");
  ck_assert_int_eq(email_event_from_notification(&ev, r, &type, &why), 1);
  json_decref(r);
  r = js("{\"type\":\"purchase\",\"payload\":{}}");
  ck_assert_int_eq(email_event_from_notification(&ev, r, &type, &why), -1);
  json_decref(r);
}
END_TEST

/* ---- templates ---- */

static char tmpdir[256];

static const char *write_tmpl(const char *name, const char *content) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  fputs(content, f);
  fclose(f);
  return path;
}

static void setup_tmp(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/email_units_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_tmp(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

START_TEST(template_render_and_escape) {
  const char *p = write_tmpl("chat.tmpl",
                             "# comment\r\nSubject: From {{ sender_name }}\r\n\r\n"
                             "Hi {{recipient_name}},\r\n{{content}}\r\n\r\n--- html ---\r\n"
                             "<p>{{content}}</p>\r\n\r\n");
  email_template *t;
  char err[512];
  ck_assert_msg(email_template_load(p, EMAIL_CHAT, &t, err, sizeof err) == 0, "%s", err);
  email_event ev;
  email_event_init(&ev, EMAIL_CHAT);
  email_event_set(&ev, "sender_name", "Eve\r\nBcc: x@y");
  email_event_set(&ev, "recipient_name", "Bob");
  email_event_set(&ev, "content", "a <b> & \"c\"\nline2");
  email_rendered r;
  ck_assert_int_eq(email_template_render(t, &ev, &r), 0);
  ck_assert_str_eq(r.subject, "From Eve  Bcc: x@y");
  ck_assert_str_eq(r.text, "Hi Bob,\na <b> & \"c\"\nline2");
  ck_assert_str_eq(r.html, "<p>a &lt;b&gt; &amp; &quot;c&quot;\nline2</p>");
  email_rendered_free(&r);
  email_event_free(&ev);
  email_template_free(t);
}
END_TEST

START_TEST(template_errors_name_file_and_line) {
  email_template *t;
  char err[512];
  const char *p = write_tmpl("a.tmpl", "Subject: x\n\nline\nHello {{bogus}}\n");
  ck_assert_int_eq(email_template_load(p, EMAIL_CHAT, &t, err, sizeof err), -1);
  char want[600];
  snprintf(want, sizeof want, "%s:4: unknown field {{bogus}} for chat templates", p);
  ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
  p = write_tmpl("b.tmpl", "Subject: {{order_id}\n\nbody\n");
  ck_assert_int_eq(email_template_load(p, EMAIL_PURCHASE, &t, err, sizeof err), -1);
  ck_assert_msg(strstr(err, ":1: unclosed '{{'") != NULL, "%s", err);
  p = write_tmpl("c.tmpl", "\nbody only\n");
  ck_assert_int_eq(email_template_load(p, EMAIL_PURCHASE, &t, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "missing 'Subject:'") != NULL, "%s", err);
  p = write_tmpl("d.tmpl", "Subject: s\nFrom: x\n\nbody\n");
  ck_assert_int_eq(email_template_load(p, EMAIL_PURCHASE, &t, err, sizeof err), -1);
  ck_assert_msg(strstr(err, ":2: unknown header 'From'") != NULL, "%s", err);
  p = write_tmpl("e.tmpl", "Subject: s\n\n\n--- html ---\n<p>x</p>\n");
  ck_assert_int_eq(email_template_load(p, EMAIL_PURCHASE, &t, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "empty text body") != NULL, "%s", err);
  snprintf(want, sizeof want, "%s/missing.tmpl", tmpdir);
  ck_assert_int_eq(email_template_load(want, EMAIL_CHAT, &t, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "missing.tmpl: cannot open template") != NULL, "%s", err);
}
END_TEST

START_TEST(declared_template_takes_payload_fields) {
  const char *p = write_tmpl("order-cancelled.tmpl",
                             "Subject: Order {{order_id}} cancelled\n\n"
                             "Hi {{recipient_name}}: {{reason}} n={{n}} x={{x}} ok={{ok}} "
                             "o={{obj}} z={{nothing}}|{{nul}}\n");
  email_template *t;
  char err[512];
  int type = EMAIL_TYPE_COUNT + 3;
  ck_assert_msg(email_template_load_declared(p, type, &t, err, sizeof err) == 0, "%s", err);
  const char *const *f = email_template_fields(t);
  ck_assert_str_eq(f[0], "recipient_id");
  ck_assert_str_eq(f[4], "order_id");
  json_t *payload = json_loads("{\"order_id\":\"O-1\",\"reason\":\"out of stock\",\"n\":42,"
                               "\"x\":0.1,\"ok\":true,\"obj\":{\"a\":[1,\"b\"]},\"nul\":null}",
                               0, NULL);
  email_event ev;
  ck_assert_int_eq(email_event_from_payload(&ev, type, f, "u1", payload), 0);
  ck_assert_str_eq(ev.recipient_id, "u1");
  email_event_set(&ev, "recipient_name", "Ann");
  email_rendered r;
  ck_assert_int_eq(email_template_render(t, &ev, &r), 0);
  ck_assert_str_eq(r.subject, "Order O-1 cancelled");
  ck_assert_str_eq(r.text,
                   "Hi Ann: out of stock n=42 x=0.1 ok=true o={\"a\":[1,\"b\"]} z=|");
  email_rendered_free(&r);
  email_event_free(&ev);
  json_decref(payload);
  email_template_free(t);
  /* Errors are reported as for built-ins; too many fields is one. */
  char body[2048] = "Subject: s\n\n";
  for (int i = 0; i < EMAIL_MAX_FIELDS; i++)
    snprintf(body + strlen(body), sizeof body - strlen(body), "{{f%d}}\n", i);
  p = write_tmpl("many.tmpl", body);
  ck_assert_int_eq(email_template_load_declared(p, type, &t, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "more than 32 different fields") != NULL, "%s", err);
  p = write_tmpl("bad.tmpl", "Subject: s\n\nline\n{{open\n");
  ck_assert_int_eq(email_template_load_declared(p, type, &t, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "bad.tmpl:4: unclosed '{{'") != NULL, "%s", err);
}
END_TEST

START_TEST(chat_event_from_payload) {
  json_t *payload = js("{\"message_id\":\"m1\",\"content\":\"hi\",\"created_at\":"
                       "\"2026-01-02T03:04:05Z\",\"stream_id\":\"s\",\"sender_id\":\"a\","
                       "\"receiver_id\":\"b\"}");
  email_event ev;
  ck_assert_int_eq(email_event_from_payload(&ev, EMAIL_CHAT, NULL, "b", payload), 0);
  /* The recipient is the event's user; the sender is named from the payload. */
  ck_assert(strcmp(ev.recipient_id, "b") == 0 && strcmp(ev.sender_id, "a") == 0);
  static const char *const want[][2] = {
      {"created_at", "2026-01-02 03:04:05"}, {"content", "hi"}, {"stream_id", "s"}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    ck_assert_str_eq(email_event_get(&ev, want[i][0]), want[i][1]);
  email_event_free(&ev);
  json_decref(payload);
  ck_assert_int_eq(email_type_from_notification_type("shipping_update_notification"),
                   EMAIL_SHIPPING_UPDATE);
  ck_assert_int_eq(email_type_from_notification_type("shipping-update"), -1);
}
END_TEST

START_TEST(shipped_templates_load) {
  for (int type = 0; type < EMAIL_TYPE_COUNT; type++) {
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/config/templates/%s.tmpl", EMAIL_SOURCE_ROOT,
             email_type_name(type));
    email_template *t;
    ck_assert_msg(email_template_load(path, type, &t, err, sizeof err) == 0, "%s", err);
    email_template_free(t);
  }
}
END_TEST

/* ---- MIME ---- */

static void assert_lines_short(const char *msg, size_t max) {
  const char *p = msg;
  while (*p) {
    const char *e = strstr(p, "\r\n");
    ck_assert_msg(e != NULL, "line without CRLF: %s", p);
    ck_assert_msg((size_t)(e - p) <= max, "line too long (%zu): %.*s", (size_t)(e - p),
                  (int)(e - p), p);
    for (const char *q = p; q < e; q++) ck_assert_msg(*q != '\n' && *q != '\r', "bare CR/LF");
    p = e + 2;
  }
}

START_TEST(mime_plain_message) {
  pc_buf b;
  pc_buf_init(&b);
  email_compose_in in = {.from_addr = "noreply@example.com", .from_name = "Shop \"Best\"",
                         .to_addr = "bob@example.com", .to_name = "Bob",
                         .subject = "New purchase order: Premium Coffee",
                         .text = "Order ID: 1\nAmount: USD 15.99\n.leading dot\nx=y ",
                         .html = NULL, .date_unix = 0};
  ck_assert_int_eq(email_compose(&in, &b), 0);
  ck_assert_ptr_nonnull(strstr(b.data, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "From: \"Shop \\\"Best\\\"\" <noreply@example.com>\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "To: \"Bob\" <bob@example.com>\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "Subject: New purchase order: Premium Coffee\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "@example.com>\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "MIME-Version: 1.0\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "Content-Type: text/plain; charset=UTF-8\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "\r\n\r\nOrder ID: 1\r\nAmount: USD 15.99\r\n.leading dot\r\nx=3Dy=20\r\n"));
  assert_lines_short(b.data, 78);
  pc_buf_free(&b);
}
END_TEST

START_TEST(mime_encoded_words_and_multipart) {
  pc_buf b;
  pc_buf_init(&b);
  char subject[400] = "Nouveau message de Zoë — ";
  for (int i = 0; i < 8; i++) strcat(subject, "ünïcödé ");
  email_compose_in in = {.from_addr = "a@example.org", .from_name = "Zoë",
                         .to_addr = "b@example.org", .to_name = "",
                         .subject = subject, .text = "café\n", .html = "<p>café</p>",
                         .date_unix = 1};
  ck_assert_int_eq(email_compose(&in, &b), 0);
  ck_assert_ptr_nonnull(strstr(b.data, "From: =?UTF-8?B?Wm/Dqw==?= <a@example.org>\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "To: <b@example.org>\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "Subject: =?UTF-8?B?"));
  ck_assert_ptr_nonnull(strstr(b.data, "?=\r\n =?UTF-8?B?")); /* folded */
  ck_assert_ptr_nonnull(strstr(b.data, "Content-Type: multipart/alternative; boundary=\"=_"));
  ck_assert_ptr_nonnull(strstr(b.data, "Content-Type: text/html; charset=UTF-8\r\n"));
  ck_assert_ptr_nonnull(strstr(b.data, "caf=C3=A9\r\n"));
  assert_lines_short(b.data, 76);
  pc_buf_free(&b);
}
END_TEST

START_TEST(mime_qp_soft_breaks) {
  pc_buf b;
  pc_buf_init(&b);
  char text[400];
  memset(text, 'a', 300);
  text[300] = '\0';
  email_mime_qp(&b, text);
  pc_buf_puts(&b, "\r\n"); /* the body's end is the caller's */
  assert_lines_short(b.data, 76);
  size_t count = 0;
  for (const char *p = b.data; *p; p++) count += *p == 'a';
  ck_assert_uint_eq(count, 300);
  ck_assert_ptr_nonnull(strstr(b.data, "=\r\n"));
  pc_buf_free(&b);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("email_units");
  TCase *tc = tcase_create("pure");
  tcase_add_checked_fixture(tc, setup_tmp, teardown_tmp);
  tcase_add_test(tc, time_roundtrip_go_style);
  tcase_add_test(tc, bind_chat_valid_and_echo);
  tcase_add_test(tc, bind_chat_errors_like_gin);
  tcase_add_test(tc, bind_purchase_and_floats);
  tcase_add_test(tc, notification_records);
  tcase_add_test(tc, template_render_and_escape);
  tcase_add_test(tc, template_errors_name_file_and_line);
  tcase_add_test(tc, declared_template_takes_payload_fields);
  tcase_add_test(tc, chat_event_from_payload);
  tcase_add_test(tc, shipped_templates_load);
  tcase_add_test(tc, mime_plain_message);
  tcase_add_test(tc, mime_encoded_words_and_multipart);
  tcase_add_test(tc, mime_qp_soft_breaks);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
