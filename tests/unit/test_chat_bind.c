/* plugins/chat_common: chat_message_bind_fast, the POST body binding
 * without jansson, against today's path (the host's json_loadb with
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, as nd_req_json_or_400 calls
 * it, then chat_message_bind): wherever the fast path answers, the slow
 * one parses the body, binds it without error and gives the same message.
 * Typical bodies must be answered by the fast path; unusual ones (errors,
 * case variants, duplicates, \u escapes, ...) must be left to jansson.
 * Every input sits in a buffer of its exact size, so ASan catches any
 * over-read. */
#include <stdio.h>
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

/* The flags of host/http/request.c nd_req_json_or_400. */
#define HOST_JSON_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)

static char *exact_copy(const char *b, size_t n) {
  char *p = malloc(n ? n : 1);
  ck_assert_ptr_nonnull(p);
  if (n) memcpy(p, b, n);
  return p;
}

static int str_same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Runs both paths over b[0..n) (an exact-size buffer).  Returns 1 if the
 * fast path answered (then asserting the slow path's outcome is the
 * same), 0 if it left the body to the slow path (then asserting `out` was
 * left empty). */
static int fast_agrees(const char *b, size_t n) {
  chat_message f;
  int answered = chat_message_bind_fast(b, n, &f);
  if (!answered) {
    ck_assert(!f.message_id && !f.content && !f.stream_id && !f.sender_id && !f.receiver_id);
    ck_assert_int_eq(f.created_at_ms, CHAT_TIME_ZERO_MS);
    return 0;
  }
  ck_assert_int_eq(answered, 1);
  json_error_t je;
  json_t *j = json_loadb(n ? b : "", n, HOST_JSON_FLAGS, &je);
  ck_assert_msg(j != NULL, "fast path bound a body the host refuses (%s): %.*s", je.text, (int)n,
                b);
  chat_message s;
  pc_buf err;
  pc_buf_init(&err);
  int rc = chat_message_bind(j, &s, &err);
  json_decref(j);
  ck_assert_msg(rc == CHAT_BIND_OK, "fast path bound a body chat_message_bind refuses (%s): %.*s",
                err.data ? err.data : "", (int)n, b);
  pc_buf_free(&err);
  ck_assert_msg(str_same(f.message_id, s.message_id) && str_same(f.content, s.content) &&
                    str_same(f.stream_id, s.stream_id) && str_same(f.sender_id, s.sender_id) &&
                    str_same(f.receiver_id, s.receiver_id) &&
                    f.created_at_ms == s.created_at_ms && f.id_is_oid == s.id_is_oid,
                "fast and slow bind differ on %.*s", (int)n, b);
  chat_message_free(&s);
  chat_message_free(&f);
  return 1;
}

static int fast_agrees_str(const char *text) {
  size_t n = strlen(text);
  char *b = exact_copy(text, n);
  int a = fast_agrees(b, n);
  free(b);
  return a;
}

/* ---- typical bodies ---- */

#define TAIL                                                                                      \
  "\"stream_id\":\"3216fea9031bf845\",\"sender_id\":\"sender-a\",\"receiver_id\":\"receiver-b\""

static const char *const contents[] = {
    "hi",
    "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89 \xe2\x82\xac",
    "say \\\"hi\\\" \\\\ back\\nslash \\/ path \\t tab \\r\\b\\f",
    "   \\t\\n   ",
    "<b>&amp;</b> 'q' {\\\"not\\\":[\\\"json\\\"]}",
    "\xed\x9f\xbf \xee\x80\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf", /* around the surrogates, max */
};

static const char *const created[] = {
    NULL,
    "null",
    "\"2026-07-03T17:59:45.729Z\"",
    "\"2026-07-03T17:59:45Z\"",
    "\"2026-07-03T19:59:45.123456789+02:00\"",
    "\"0001-01-01T00:00:00Z\"",
    "\"9999-12-31T23:59:59.999Z\"",
};

static const char *const ids[] = {NULL, "null", "\"\"", "\"message_id_0\"",
                                  "\"596e275826f08b2730779e1f\"", "\"id \\\"quoted\\\"\""};

/* Typical body number i, malloc'd in an exact-size buffer. */
static char *typical(int i, size_t *len) {
  char buf[8192];
  size_t nc = sizeof contents / sizeof contents[0];
  size_t ncr = sizeof created / sizeof created[0], nid = sizeof ids / sizeof ids[0];
  const char *sp = i % 5 == 4 ? " \n\t" : ""; /* blanks between tokens */
  int k = snprintf(buf, sizeof buf, "%s{%s", i % 7 == 6 ? "\r\n " : "", sp);
  if (ids[(size_t)i % nid])
    k += snprintf(buf + k, sizeof buf - (size_t)k, "\"message_id\"%s:%s%s,%s", sp, sp,
                  ids[(size_t)i % nid], sp);
  if (i % 11 == 10) { /* long content */
    k += snprintf(buf + k, sizeof buf - (size_t)k, "\"content\":\"");
    for (int r = 0; r < 100; r++)
      k += snprintf(buf + k, sizeof buf - (size_t)k, "long \\\"%d\\\" ", r);
    k += snprintf(buf + k, sizeof buf - (size_t)k, "\",");
  } else {
    k += snprintf(buf + k, sizeof buf - (size_t)k, "\"content\"%s:%s\"%s\"%s,%s", sp, sp,
                  contents[(size_t)i % nc], sp, sp);
  }
  if (i % 3 == 1) /* members that bind ignores */
    k += snprintf(buf + k, sizeof buf - (size_t)k,
                  "\"extra\":1,\"flag\":true,\"off\":false,\"nothing\":null,\"neg\":-42,"
                  "\"note\":\"a \\\"b\\\" \xc3\xa9\",\"big\":-9223372036854775808,");
  k += snprintf(buf + k, sizeof buf - (size_t)k, "%s", TAIL);
  if (created[(size_t)i % ncr])
    k += snprintf(buf + k, sizeof buf - (size_t)k, ",%s\"created_at\"%s:%s%s", sp, sp, sp,
                  created[(size_t)i % ncr]);
  k += snprintf(buf + k, sizeof buf - (size_t)k, "%s}%s", sp, i % 2 ? "\n" : "");
  ck_assert_int_lt(k, (int)sizeof buf);
  *len = (size_t)k;
  return exact_copy(buf, (size_t)k);
}

#define N_TYPICAL 120

START_TEST(typical_bodies_fast_and_same) {
  for (int i = 0; i < N_TYPICAL; i++) {
    size_t len;
    char *b = typical(i, &len);
    ck_assert_msg(fast_agrees(b, len), "fast path fell back on typical body %d: %.*s", i, (int)len,
                  b);
    free(b);
  }
  /* The values, spelled out once. */
  static const char body[] =
      "{\"message_id\":\"m-1\",\"content\":\"a\\\"b\\\\c\\/d\\ne \xc3\xa9\"," TAIL
      ",\"created_at\":\"2026-07-03T17:59:45.729Z\"}";
  char *b = exact_copy(body, sizeof body - 1);
  chat_message m;
  ck_assert_int_eq(chat_message_bind_fast(b, sizeof body - 1, &m), 1);
  ck_assert_str_eq(m.message_id, "m-1");
  ck_assert_str_eq(m.content, "a\"b\\c/d\ne \xc3\xa9");
  ck_assert_str_eq(m.stream_id, "3216fea9031bf845");
  ck_assert_str_eq(m.sender_id, "sender-a");
  ck_assert_str_eq(m.receiver_id, "receiver-b");
  ck_assert_int_eq(m.created_at_ms, 1783101585729LL);
  ck_assert_int_eq(m.id_is_oid, 0);
  chat_message_free(&m);
  free(b);
  ck_assert_int_eq(fast_agrees_str("{\"content\":\"x\"," TAIL "}"), 1);
  ck_assert_int_eq(chat_message_bind_fast("{\"content\":\"x\"," TAIL "}",
                                          strlen("{\"content\":\"x\"," TAIL "}"), &m), 1);
  ck_assert_str_eq(m.message_id, ""); /* absent: "" as after chat_message_bind */
  ck_assert_int_eq(m.created_at_ms, CHAT_TIME_ZERO_MS);
  chat_message_free(&m);
}
END_TEST

/* ---- what the fast path must leave to jansson ---- */

START_TEST(unusual_bodies_fall_back) {
  static const struct {
    const char *v;
    int answered; /* 1: must answer, 0: must fall back */
  } cases[] = {
      /* case variants of known names (bind matches them; left to it) */
      {"{\"Content\":\"x\"," TAIL "}", 0},
      {"{\"content\":\"x\",\"STREAM_ID\":\"s\",\"sender_id\":\"a\",\"receiver_id\":\"b\"}", 0},
      {"{\"content\":\"x\",\"Content\":\"y\"," TAIL "}", 0},
      {"{\"content\":\"x\"," TAIL ",\"Created_At\":null}", 0},
      {"{\"content\":\"x\"," TAIL ",\"Message_ID\":\"m\"}", 0},
      /* duplicates: the host refuses them */
      {"{\"content\":\"x\",\"content\":\"y\"," TAIL "}", 0},
      {"{\"content\":\"x\"," TAIL ",\"sender_id\":\"c\"}", 0},
      {"{\"content\":\"x\"," TAIL ",\"created_at\":null,\"created_at\":null}", 0},
      {"{\"content\":\"x\",\"z\":1," TAIL ",\"z\":1}", 0},
      {"{\"content\":\"x\",\"z\":1," TAIL ",\"Z\":1}", 1}, /* distinct unknown keys */
      {"{\"content\":\"x\",\"z\":1," TAIL ",\"zz\":1}", 1},
      /* nulls and missing or empty required fields: bind errors */
      {"{\"content\":null," TAIL "}", 0},
      {"{" TAIL "}", 0},
      {"{\"content\":\"\"," TAIL "}", 0},
      {"{\"content\":\"x\",\"stream_id\":\"s\",\"sender_id\":\"a\"}", 0},
      {"{\"content\":\"x\",\"stream_id\":\"s\",\"sender_id\":\"\",\"receiver_id\":\"b\"}", 0},
      {"{}", 0},
      {"null", 0},
      /* wrong types */
      {"{\"content\":3," TAIL "}", 0},
      {"{\"content\":3.5," TAIL "}", 0},
      {"{\"content\":true," TAIL "}", 0},
      {"{\"content\":{}," TAIL "}", 0},
      {"{\"content\":[\"x\"]," TAIL "}", 0},
      {"{\"content\":\"x\"," TAIL ",\"message_id\":7}", 0},
      {"{\"content\":\"x\"," TAIL ",\"created_at\":1783101585729}", 0},
      {"{\"content\":\"x\"," TAIL ",\"created_at\":\"yesterday\"}", 0},
      {"{\"content\":\"x\"," TAIL ",\"created_at\":\"2026-07-03T17:59:45.729\"}", 0},
      {"{\"content\":\"x\"," TAIL ",\"created_at\":\"2026-07-03T17:59:45\\u002e729Z\"}", 0},
      {"{\"content\":\"x\"," TAIL ",\"created_at\":\"2026-07-03T17:59:45.729Z\\n\"}", 0},
      {"{\"content\":\"x\"," TAIL ",\"created_at\":\"2026-07-03T17:59:45."
       "0000000000000000000000000000000000000000000000000000000000000Z\"}",
       0}, /* too long for the fast path's buffer */
      /* top level other than an object, empty, trailing bytes */
      {"[]", 0},
      {"\"x\"", 0},
      {"1", 0},
      {"", 0},
      {" \n", 0},
      {"{\"content\":\"x\"," TAIL "} x", 0},
      {"{\"content\":\"x\"," TAIL "}{}", 0},
      {"{\"content\":\"x\"," TAIL ",}", 0},
      {"{\"content\":\"x\"," TAIL "", 0},
      {"\xef\xbb\xbf{\"content\":\"x\"," TAIL "}", 0}, /* BOM */
      /* escapes */
      {"{\"content\":\"\\u00e9\"," TAIL "}", 0},
      {"{\"content\":\"\\ud83c\\udf89\"," TAIL "}", 0},
      {"{\"content\":\"\\u0000\"," TAIL "}", 0},
      {"{\"con\\u0074ent\":\"x\"," TAIL "}", 0},
      {"{\"cont\\/ent\":\"x\"," TAIL "}", 0},
      {"{\"content\":\"x\\q\"," TAIL "}", 0},
      /* bytes jansson refuses in strings */
      {"{\"content\":\"x\ty\"," TAIL "}", 0},
      {"{\"content\":\"\xc3\"," TAIL "}", 0},
      {"{\"content\":\"\xed\xa0\x80\"," TAIL "}", 0},
      {"{\"content\":\"\xc0\xaf\"," TAIL "}", 0},
      {"{\"content\":\"\xf4\x90\x80\x80\"," TAIL "}", 0},
      {"{\"content\":\"\xff\"," TAIL "}", 0},
      /* unknown members the fast path does not read */
      {"{\"content\":\"x\"," TAIL ",\"n\":1.5}", 0},
      {"{\"content\":\"x\"," TAIL ",\"n\":1e3}", 0},
      {"{\"content\":\"x\"," TAIL ",\"n\":01}", 0},
      {"{\"content\":\"x\"," TAIL ",\"n\":9223372036854775808}", 0},
      {"{\"content\":\"x\"," TAIL ",\"n\":9223372036854775807}", 1},
      {"{\"content\":\"x\"," TAIL ",\"n\":-0}", 1},
      {"{\"content\":\"x\"," TAIL ",\"o\":{}}", 0},
      {"{\"content\":\"x\"," TAIL ",\"o\":{\"a\":1,\"a\":2}}", 0},
      {"{\"content\":\"x\"," TAIL ",\"a\":[]}", 0},
      {"{\"content\":\"x\"," TAIL ",\"s\":\"\\u0041\"}", 0},
      {"{\"content\":\"x\"," TAIL ",\"t\":tru}", 0},
      {"{\"content\":\"x\"," TAIL ",\"t\":nul}", 0},
      {"{\"content\":\"x\"," TAIL ",\"\":1}", 1},
      {"{\"content\":\"x\"," TAIL ",\"\xc3\xa9\":1}", 1},
      {"{\"content\":\"x\"," TAIL ",\"k\\u0065y\":1}", 0},
      {"{\"content\":\"x\"," TAIL ",\"stream_ids\":1}", 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int a = fast_agrees_str(cases[i].v);
    ck_assert_msg(a == cases[i].answered, "case %zu: answered %d for %s", i, a, cases[i].v);
  }
  /* Many unknown members: up to the fast path's bound, then jansson's. */
  char buf[1024];
  for (int extra = 0; extra <= CHAT_FAST_MAX_OTHER + 1; extra++) {
    int k = snprintf(buf, sizeof buf, "{\"content\":\"x\"");
    for (int e = 0; e < extra; e++)
      k += snprintf(buf + k, sizeof buf - (size_t)k, ",\"u%d\":%d", e, e);
    k += snprintf(buf + k, sizeof buf - (size_t)k, "," TAIL "}");
    ck_assert_int_eq(fast_agrees_str(buf), extra <= CHAT_FAST_MAX_OTHER);
  }
}
END_TEST

/* Bodies that are no JSON at all: the host answers 400, so the fast path
 * must not answer (checked by fast_agrees, which requires the host's
 * parse to succeed whenever it answers). */
START_TEST(malformed_json_never_answered) {
#define WITH_LEN(s) {s, sizeof s - 1}
  static const struct {
    const char *v;
    size_t n;
  } bad[] = {
      WITH_LEN("{"), WITH_LEN("}"), WITH_LEN("{\"content\"}"), WITH_LEN("{\"content\":}"),
      WITH_LEN("{\"content\" \"x\"}"), WITH_LEN("{content:\"x\"}"), WITH_LEN("{'content':'x'}"),
      WITH_LEN("{\"content\":\"x\"" TAIL "}"), WITH_LEN("{\"content\":\"x\",," TAIL "}"),
      WITH_LEN("{\"content\":\"x\n\"," TAIL "}"), WITH_LEN("\x00{}"),
      WITH_LEN("{\"content\":\"x\"," TAIL "}\x00"),
      WITH_LEN("{\"content\":\"x\x00\"," TAIL "}"),
  };
#undef WITH_LEN
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n = bad[i].n;
    char *b = exact_copy(bad[i].v, n);
    json_error_t je;
    json_t *j = json_loadb(b, n, HOST_JSON_FLAGS, &je);
    ck_assert_msg(j == NULL, "case %zu parses", i);
    ck_assert_int_eq(fast_agrees(b, n), 0);
    free(b);
  }
}
END_TEST

/* Every truncation of a typical body, and single-byte mutations of the
 * typical bodies (fixed seed): wherever the fast path still answers, the
 * host's parse and chat_message_bind give the same message. */
START_TEST(mutations_agree) {
  size_t len;
  char *base = typical(1, &len);
  for (size_t cut = 0; cut < len; cut++) {
    char *b = exact_copy(base, cut);
    fast_agrees(b, cut);
    free(b);
  }
  free(base);
  static const char alphabet[] =
      "{}[]\":,\\/0123456789-+.eEZT \t\n\r\x00\x01\x7f\xff\xc3\xa9\xed\xa0ntrufalsubCSM";
  unsigned seed = 20240607;
  int answered = 0;
  for (int iter = 0; iter < 20000; iter++) {
    char *b = typical(iter % N_TYPICAL, &len);
    size_t pos = (size_t)rand_r(&seed) % len;
    switch (rand_r(&seed) % 4) {
    case 0: len = pos; break; /* truncate */
    case 1: b[pos] = (char)(rand_r(&seed) & 0xff); break;
    default: b[pos] = alphabet[(size_t)rand_r(&seed) % (sizeof alphabet - 1)]; break;
    }
    char *exact = exact_copy(b, len);
    answered += fast_agrees(exact, len);
    free(exact);
    free(b);
  }
  /* A changed content byte keeps a body the fast path reads; a broken
   * token, a cut body or an emptied field leaves it to jansson. */
  ck_assert_int_gt(answered, 3000);
  ck_assert_int_lt(answered, 19000);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("chat_bind");
  TCase *tc = tcase_create("bind");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, typical_bodies_fast_and_same);
  tcase_add_test(tc, unusual_bodies_fall_back);
  tcase_add_test(tc, malformed_json_never_answered);
  tcase_add_test(tc, mutations_agree);
  suite_add_tcase(s, tc);
  return s;
}
