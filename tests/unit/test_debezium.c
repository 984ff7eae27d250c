/* plugins/chat_common: classifying change-topic records (Debezium MongoDB
 * envelope, schema wrapper, ExtractNewDocumentState, tombstones,
 * heartbeats) and reading Extended JSON documents, over every sample in
 * tests/unit/data/debezium (cut from Debezium's docs and blog; provenance
 * in its README.md), the contract's example, and malformed variants:
 * every input is forwarded, skipped, ignored or dropped with a reason,
 * never a crash (run it under ASan). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_test.h"

/* The unit loop links libnotifd only; chat_common is plugin-side code. */
#include "../../plugins/chat_common/chat_common_sources.inc"

#define SAMPLES ND_SOURCE_ROOT "/tests/unit/data/debezium/"

/* The value the Go integration test published (contract 4.1), verbatim. */
static const char CONTRACT_EXAMPLE[] =
    "{\"before\":null,\"after\":\"{\\\"_id\\\":\\\"message_id_0\\\",\\\"content\\\":\\\"Hello\\\","
    "\\\"created_at\\\":{\\\"$date\\\":{\\\"$numberLong\\\":\\\"-62135596800000\\\"}},"
    "\\\"stream_id\\\":\\\"1a80ecedf209e276\\\",\\\"sender_id\\\":\\\"sender-a\\\","
    "\\\"receiver_id\\\":\\\" sender-b\\\"}\",\"op\":\"c\",\"ts_ms\":0}";

static char *slurp(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof path, "%s%s", SAMPLES, name);
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  char *buf = malloc(1 << 16);
  ck_assert_ptr_nonnull(buf);
  *len = fread(buf, 1, (1 << 16) - 1, f);
  buf[*len] = '\0';
  fclose(f);
  return buf;
}

static chat_change parse_str(const char *v, int forward_reads) {
  chat_change_opts o = {forward_reads};
  chat_change c;
  chat_change_parse(v, v ? strlen(v) : 0, &o, &c);
  return c;
}

static void expect(const char *v, int kind, const char *op_or_what, const char *detail_part) {
  chat_change c = parse_str(v, 0);
  ck_assert_msg(c.kind == kind, "kind %d, want %d (detail '%s') for: %.200s", c.kind, kind,
                c.detail, v ? v : "(null)");
  if (op_or_what) {
    const char *got = kind == CHAT_CHANGE_IGNORE ? c.what : c.op;
    ck_assert_msg(strcmp(got, op_or_what) == 0, "got '%s', want '%s' for: %.200s", got,
                  op_or_what, v);
  }
  if (detail_part)
    ck_assert_msg(strstr(c.detail, detail_part) != NULL, "detail '%s' lacks '%s'", c.detail,
                  detail_part);
  if (kind == CHAT_CHANGE_DROP) ck_assert_msg(c.detail[0] != '\0', "drop without a reason");
  chat_change_free(&c);
}

/* ---- the sample files ---- */

static const struct {
  const char *file;
  int kind;          /* with forward_reads off */
  const char *label; /* op, or `what` for IGNORE */
} sample_expect[] = {
    {"01-key.schemas-enabled.docs-main.json", CHAT_CHANGE_DROP, NULL},
    {"02-key-objectid.schemas-disabled.docs-main.json", CHAT_CHANGE_DROP, NULL},
    {"03-value-read.schemas-enabled.docs-v1.0.0.Final.json", CHAT_CHANGE_SKIP, "r"},
    {"04-value-update-oplog-mode.payload.blog-1.8.0-SNAPSHOT.json", CHAT_CHANGE_SKIP, "u"},
    {"05-value-update-change_streams.payload.blog-1.8.0-SNAPSHOT.json", CHAT_CHANGE_SKIP, "u"},
    {"06-value-update-change_streams_update_full.payload.blog-1.8.0-SNAPSHOT.json",
     CHAT_CHANGE_SKIP, "u"},
    {"07-value-update-with-preimage.payload.docs-main.json", CHAT_CHANGE_SKIP, "u"},
    {"08-value-delete.payload.docs-main.json", CHAT_CHANGE_SKIP, "d"},
    /* A valid unwrapped document, but not a chat message: no content. */
    {"09-smt-ExtractNewDocumentState-output.flatten-struct.docs-main.json", CHAT_CHANGE_DROP,
     NULL},
    {"10-transaction-metadata-END.value.docs-main.json", CHAT_CHANGE_IGNORE, "transaction"},
};

START_TEST(every_sample_file) {
  for (size_t i = 0; i < sizeof sample_expect / sizeof sample_expect[0]; i++) {
    size_t len;
    char *v = slurp(sample_expect[i].file, &len);
    expect(v, sample_expect[i].kind, sample_expect[i].label, NULL);
    free(v);
  }
}
END_TEST

START_TEST(sample_details) {
  size_t len;
  /* 09: the unwrapped document is read (integer _id becomes "1"), then
   * dropped because a chat message needs content. */
  char *v = slurp("09-smt-ExtractNewDocumentState-output.flatten-struct.docs-main.json", &len);
  expect(v, CHAT_CHANGE_DROP, NULL, "document has no content");
  json_t *doc = json_loads(v, 0, NULL);
  chat_message m;
  char reason[160];
  ck_assert_int_eq(chat_doc_from_json(doc, &m, reason, sizeof reason), CHAT_DOC_OK);
  ck_assert_str_eq(m.message_id, "1");
  ck_assert_int_eq(m.created_at_ms, CHAT_TIME_ZERO_MS);
  chat_message_free(&m);
  json_decref(doc);
  free(v);

  /* 03 with snapshot reads forwarded: its strict-mode `after` (spaces
   * around colons, $numberLong _id) parses; the customer is no chat doc. */
  v = slurp("03-value-read.schemas-enabled.docs-v1.0.0.Final.json", &len);
  chat_change c = parse_str(v, 1);
  ck_assert_int_eq(c.kind, CHAT_CHANGE_DROP);
  ck_assert_ptr_nonnull(strstr(c.detail, "document has no content"));
  chat_change_free(&c);
  free(v);

  /* The `after` strings of 06 and 07 ($binary fields, int64 beyond 2^53
   * elsewhere in the record) read as documents. */
  const char *files[] = {"06-value-update-change_streams_update_full.payload.blog-1.8.0-SNAPSHOT.json",
                         "07-value-update-with-preimage.payload.docs-main.json"};
  for (size_t i = 0; i < 2; i++) {
    v = slurp(files[i], &len);
    json_t *root = json_loads(v, 0, NULL);
    ck_assert_ptr_nonnull(root);
    json_t *after = json_object_get(root, "after");
    ck_assert_int_eq(chat_doc_from_extjson(json_string_value(after), json_string_length(after),
                                           &m, reason, sizeof reason),
                     CHAT_DOC_OK);
    ck_assert_str_eq(m.message_id, i == 0 ? "1005" : "1004");
    chat_message_free(&m);
    json_decref(root);
    free(v);
  }
}
END_TEST

START_TEST(sample_keys) {
  size_t len;
  const char *why = NULL;
  char *k = slurp("01-key.schemas-enabled.docs-main.json", &len);
  ck_assert_int_eq(chat_change_key_ok(k, len, 1024, &why), 0);
  free(k);
  k = slurp("02-key-objectid.schemas-disabled.docs-main.json", &len);
  ck_assert_int_eq(chat_change_key_ok(k, len, 1024, &why), 0);
  free(k);
  ck_assert_int_eq(chat_change_key_ok(NULL, 0, 1024, &why), -1);
  ck_assert_str_eq(why, "record has no key");
  ck_assert_int_eq(chat_change_key_ok("", 0, 1024, &why), -1);
  ck_assert_int_eq(chat_change_key_ok("a\0b", 3, 1024, &why), -1);
  ck_assert_str_eq(why, "record key contains a NUL byte");
  ck_assert_int_eq(chat_change_key_ok("abcd", 4, 3, &why), -1);
  ck_assert_str_eq(why, "record key too long");
}
END_TEST

/* ---- creates in every accepted shape ---- */

static void expect_forward(const char *v, const char *id, int is_oid, int64_t created) {
  chat_change c = parse_str(v, 0);
  ck_assert_msg(c.kind == CHAT_CHANGE_FORWARD, "kind %d (%s) for %s", c.kind, c.detail, v);
  ck_assert_str_eq(c.op, "c");
  ck_assert_str_eq(c.msg.message_id, id);
  ck_assert_int_eq(c.msg.id_is_oid, is_oid);
  ck_assert_int_eq(c.msg.created_at_ms, created);
  ck_assert_str_eq(c.msg.stream_id, "1a80ecedf209e276");
  ck_assert_str_eq(c.msg.sender_id, "sender-a");
  ck_assert_str_eq(c.msg.receiver_id, " sender-b");
  chat_change_free(&c);
}

/* Builds an envelope around a document body given as plain JSON. */
static char *envelope_of(const char *doc, const char *op) {
  chat_buf b;
  chat_buf_init(&b);
  chat_buf_puts(&b, "{\"before\":null,\"after\":");
  chat_json_str(&b, doc, strlen(doc), CHAT_JSON_PLAIN);
  chat_buf_printf(&b, ",\"op\":\"%s\",\"ts_ms\":1}", op);
  return chat_buf_steal(&b, NULL);
}

#define DOC_TAIL                                                                             \
  "\"content\":\"Hello\",\"stream_id\":\"1a80ecedf209e276\",\"sender_id\":\"sender-a\","     \
  "\"receiver_id\":\" sender-b\""

START_TEST(contract_example_and_variants) {
  expect_forward(CONTRACT_EXAMPLE, "message_id_0", 0, CHAT_TIME_ZERO_MS);
  chat_change c = parse_str(CONTRACT_EXAMPLE, 0);
  ck_assert_str_eq(c.msg.content, "Hello");
  chat_change_free(&c);

  /* Schema-wrapped (value.converter.schemas.enable=true). */
  char wrapped[2048];
  snprintf(wrapped, sizeof wrapped,
           "{\"schema\":{\"type\":\"struct\",\"name\":\"x.Envelope\"},\"payload\":%s}",
           CONTRACT_EXAMPLE);
  expect_forward(wrapped, "message_id_0", 0, CHAT_TIME_ZERO_MS);

  static const struct {
    const char *doc;
    const char *id;
    int oid;
    int64_t created;
  } docs[] = {
      /* legacy/strict mode: $date as an epoch-ms number, spaces after colons */
      {"{\"_id\": {\"$oid\": \"596E275826F08B2730779E1F\"},\"created_at\": {\"$date\": "
       "1783101585729}," DOC_TAIL "}",
       "596e275826f08b2730779e1f", 1, 1783101585729LL},
      /* relaxed v2: ISO string */
      {"{\"_id\":\"m1\",\"created_at\":{\"$date\":\"2026-07-03T17:59:45.729Z\"}," DOC_TAIL "}",
       "m1", 0, 1783101585729LL},
      /* ISO with an offset, no fraction */
      {"{\"_id\":\"m2\",\"created_at\":{\"$date\":\"2026-07-03T19:59:45+02:00\"}," DOC_TAIL "}",
       "m2", 0, 1783101585000LL},
      /* canonical v2, $numberLong _id */
      {"{\"_id\":{\"$numberLong\":\"1004\"},\"created_at\":{\"$date\":{\"$numberLong\":"
       "\"1783101585729\"}}," DOC_TAIL "}",
       "1004", 0, 1783101585729LL},
      /* int32 _id, $numberInt */
      {"{\"_id\":{\"$numberInt\":\"-7\"}," DOC_TAIL "}", "-7", 0, CHAT_TIME_ZERO_MS},
      /* plain integer _id, created_at null, extra fields ignored */
      {"{\"_id\":42,\"created_at\":null,\"_published\":true,\"n\":{\"$numberDecimal\":\"1.5\"},"
       DOC_TAIL "}",
       "42", 0, CHAT_TIME_ZERO_MS},
      /* relaxed date as a real with an integral value */
      {"{\"_id\":\"m3\",\"created_at\":{\"$date\":1.5e3}," DOC_TAIL "}", "m3", 0, 1500},
      /* no _id at all (Go forwarded message_id "") */
      {"{" DOC_TAIL "}", "", 0, CHAT_TIME_ZERO_MS},
  };
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    char *v = envelope_of(docs[i].doc, "c");
    expect_forward(v, docs[i].id, docs[i].oid, docs[i].created);
    free(v);
  }
}
END_TEST

START_TEST(extract_new_document_state) {
  /* ObjectId became a hex string, the date an epoch-ms number. */
  expect_forward("{\"_id\":\"596e275826f08b2730779e1f\",\"created_at\":1783101585729," DOC_TAIL "}",
                 "596e275826f08b2730779e1f", 0, 1783101585729LL);
  /* Schema-wrapped unwrapped output. */
  expect_forward("{\"schema\":{\"type\":\"struct\"},\"payload\":{\"_id\":\"x\"," DOC_TAIL "}}", "x",
                 0, CHAT_TIME_ZERO_MS);
  /* add.fields=op: __op honoured; rewrite mode: __deleted. */
  expect("{\"_id\":\"x\",\"__op\":\"c\"," DOC_TAIL "}", CHAT_CHANGE_FORWARD, "c", NULL);
  expect("{\"_id\":\"x\",\"__op\":\"r\"," DOC_TAIL "}", CHAT_CHANGE_SKIP, "r", NULL);
  expect("{\"_id\":\"x\",\"__op\":\"u\"," DOC_TAIL "}", CHAT_CHANGE_SKIP, "u", NULL);
  expect("{\"_id\":\"x\",\"__deleted\":\"true\"}", CHAT_CHANGE_SKIP, "d", NULL);
  expect("{\"_id\":\"x\",\"__deleted\":true}", CHAT_CHANGE_SKIP, "d", NULL);
  expect("{\"_id\":\"x\",\"__deleted\":\"false\"," DOC_TAIL "}", CHAT_CHANGE_FORWARD, "c", NULL);
}
END_TEST

START_TEST(ops_other_than_create) {
  char *v = envelope_of("{\"_id\":\"m\"," DOC_TAIL "}", "r");
  expect(v, CHAT_CHANGE_SKIP, "r", NULL);
  chat_change c = parse_str(v, 1); /* forward_reads on */
  ck_assert_int_eq(c.kind, CHAT_CHANGE_FORWARD);
  ck_assert_str_eq(c.op, "r");
  chat_change_free(&c);
  free(v);
  expect("{\"before\":null,\"after\":null,\"op\":\"u\",\"ts_ms\":1}", CHAT_CHANGE_SKIP, "u", NULL);
  expect("{\"op\":\"d\",\"ts_ms\":1}", CHAT_CHANGE_SKIP, "d", NULL);
  expect("{\"op\":\"t\"}", CHAT_CHANGE_SKIP, "t", NULL);
  /* Unknown ops are skipped like Go did, under a bounded metric label. */
  expect("{\"op\":\"zz-some-new-op\"}", CHAT_CHANGE_SKIP, "other", NULL);
  /* u/d with an `after` object or garbage are still just skipped. */
  expect("{\"op\":\"u\",\"after\":{\"x\":1},\"before\":42}", CHAT_CHANGE_SKIP, "u", NULL);
}
END_TEST

START_TEST(tombstones_and_heartbeats) {
  chat_change_opts o = {0};
  chat_change c;
  chat_change_parse(NULL, 0, &o, &c);
  ck_assert_int_eq(c.kind, CHAT_CHANGE_IGNORE);
  ck_assert_str_eq(c.what, "tombstone");
  chat_change_free(&c);
  chat_change_parse("", 0, &o, &c);
  ck_assert_int_eq(c.kind, CHAT_CHANGE_IGNORE);
  chat_change_free(&c);
  expect("null", CHAT_CHANGE_IGNORE, "tombstone", NULL);
  expect(" null \n", CHAT_CHANGE_IGNORE, "tombstone", NULL);
  expect("{\"schema\":null,\"payload\":null}", CHAT_CHANGE_IGNORE, "tombstone", NULL);
  expect("{\"ts_ms\":1565787098802}", CHAT_CHANGE_IGNORE, "heartbeat", NULL);
  expect("{\"schema\":{\"type\":\"struct\",\"name\":\"io.debezium.connector.common.Heartbeat\"},"
         "\"payload\":{\"ts_ms\":1565787098802}}",
         CHAT_CHANGE_IGNORE, "heartbeat", NULL);
  expect("{\"status\":\"BEGIN\",\"id\":\"1462833718356672513\",\"event_count\":null,"
         "\"data_collections\":null}",
         CHAT_CHANGE_IGNORE, "transaction", NULL);
}
END_TEST

/* ---- malformed input ---- */

START_TEST(malformed_values_dropped_with_reason) {
  static const struct {
    const char *v;
    const char *detail;
  } cases[] = {
      {"{\"before\":null,\"after\":", "not JSON"},
      {"{\"op\":\"c\",\"after\":{\"_id\":\"m\",\"content\":\"x\"}}", "got an object"},
      {"{\"op\":\"c\",\"after\":17}", "another type"},
      {"{\"op\":\"c\"}", "after: missing"},
      {"{\"op\":\"c\",\"after\":null}", "after: missing"},
      {"{\"op\":5,\"after\":\"{}\"}", "op:"},
      {"{\"op\":\"\",\"after\":\"{}\"}", "op:"},
      {"{\"op\":null}", "op:"},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":\"}", "Extended JSON"},
      {"{\"op\":\"c\",\"after\":\"[1,2]\"}", "not an object"},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":[1],\\\"content\\\":\\\"x\\\"}\"}", "_id"},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":{\\\"$oid\\\":\\\"xyz\\\"}}\"}", "$oid"},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":1.5}\"}", "_id"},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":\\\"m\\\",\\\"content\\\":7}\"}", "content"},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":\\\"m\\\",\\\"stream_id\\\":{}}\"}", "stream_id"},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":\\\"m\\\",\\\"created_at\\\":true}\"}", "created_at"},
      {"{\"op\":\"c\",\"after\":\"{\\\"created_at\\\":{\\\"$date\\\":{\\\"$numberLong\\\":"
       "\\\"99999999999999999999\\\"}}}\"}",
       "created_at"},
      {"{\"op\":\"c\",\"after\":\"{\\\"created_at\\\":{\\\"$date\\\":{\\\"$numberLong\\\":"
       "\\\"12a\\\"}}}\"}",
       "created_at"},
      {"{\"op\":\"c\",\"after\":\"{\\\"created_at\\\":{\\\"$date\\\":\\\"yesterday\\\"}}\"}",
       "created_at"},
      /* year 10000 cannot be written back as RFC 3339 */
      {"{\"op\":\"c\",\"after\":\"{\\\"created_at\\\":{\\\"$date\\\":253402300800000}}\"}",
       "outside years"},
      {"{\"op\":\"c\",\"after\":\"{\\\"created_at\\\":{\\\"$date\\\":1.5}}\"}", "created_at"},
      /* huge integers: in the envelope and inside the document */
      {"{\"op\":\"c\",\"ts_ms\":99999999999999999999,\"after\":\"{}\"}", "not JSON"},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":99999999999999999999}\"}", "Extended JSON"},
      /* a NUL and a lone surrogate inside `after` */
      {"{\"op\":\"c\",\"after\":\"{\\\"content\\\":\\\"a\\\\u0000b\\\"}\"}", "Extended JSON"},
      {"{\"op\":\"c\",\"after\":\"{\\\"content\\\":\\\"\\\\ud800\\\"}\"}", "Extended JSON"},
      {"{\"op\":\"c\",\"after\":\"\\u0000\"}", "not JSON"},
      /* complete JSON, incomplete chat documents */
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":\\\"m\\\"}\"}", "document has no content"},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":\\\"m\\\",\\\"content\\\":\\\"x\\\",\\\"stream_id\\\":"
       "\\\"s\\\",\\\"sender_id\\\":\\\"a\\\"}\"}",
       "document has no receiver_id"},
      {"[1,2,3]", "not a JSON object"},
      {"\"a string\"", "not a JSON object"},
      {"42", "not a JSON object"},
      {"{\"hello\":\"world\"}", "neither"},
      {"{\"schema\":{},\"payload\":7}", "not a JSON object"},
      {"{} trailing", "not JSON"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect(cases[i].v, CHAT_CHANGE_DROP, NULL, cases[i].detail);

  /* Raw invalid UTF-8 bytes in the value. */
  const char bad_utf8[] = "{\"op\":\"c\",\"after\":\"{\\\"content\\\":\\\"\xff\xfe\\\"}\"}";
  expect(bad_utf8, CHAT_CHANGE_DROP, NULL, "not JSON");

  /* Nesting far beyond the parser's depth limit. */
  size_t depth = 100000;
  char *deep = malloc(depth * 2 + 1);
  ck_assert_ptr_nonnull(deep);
  memset(deep, '[', depth);
  memset(deep + depth, ']', depth);
  deep[depth * 2] = '\0';
  expect(deep, CHAT_CHANGE_DROP, NULL, NULL);
  free(deep);
}
END_TEST

START_TEST(every_truncation_of_the_example) {
  size_t n = strlen(CONTRACT_EXAMPLE);
  chat_change_opts o = {0};
  for (size_t len = 0; len < n; len++) {
    chat_change c;
    chat_change_parse(CONTRACT_EXAMPLE, len, &o, &c);
    int want = len == 0 ? CHAT_CHANGE_IGNORE : CHAT_CHANGE_DROP;
    ck_assert_msg(c.kind == want, "prefix %zu: kind %d", len, c.kind);
    chat_change_free(&c);
  }
}
END_TEST

/* Byte mutations of every sample and of the example: anything may come
 * out, but every result is a valid classification and nothing crashes. */
START_TEST(mutation_fuzz_never_crashes) {
  const char *inputs[sizeof sample_expect / sizeof sample_expect[0] + 1];
  char *owned[sizeof sample_expect / sizeof sample_expect[0]];
  size_t lens[sizeof sample_expect / sizeof sample_expect[0] + 1];
  size_t ns = sizeof sample_expect / sizeof sample_expect[0];
  for (size_t i = 0; i < ns; i++) {
    owned[i] = slurp(sample_expect[i].file, &lens[i]);
    inputs[i] = owned[i];
  }
  inputs[ns] = CONTRACT_EXAMPLE;
  lens[ns] = strlen(CONTRACT_EXAMPLE);
  static const char alphabet[] = "{}[]\":,\\0123456789-+.eE$ \x00\xff\xc3ntrufalsc";
  unsigned seed = 12345;
  int forwarded = 0;
  for (int iter = 0; iter < 20000; iter++) {
    size_t which = (size_t)iter % (ns + 1);
    size_t len = lens[which];
    char *buf = malloc(len + 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, inputs[which], len + 1);
    int edits = 1 + (int)(rand_r(&seed) % 4);
    for (int e = 0; e < edits && len; e++) {
      size_t pos = (size_t)rand_r(&seed) % len;
      switch (rand_r(&seed) % 3) {
      case 0: buf[pos] = alphabet[(size_t)rand_r(&seed) % (sizeof alphabet - 1)]; break;
      case 1: len = pos; break; /* truncate */
      default: buf[pos] = (char)(rand_r(&seed) & 0xff); break;
      }
    }
    chat_change_opts o = {iter & 1};
    chat_change c;
    chat_change_parse(buf, len, &o, &c);
    ck_assert_msg(c.kind >= CHAT_CHANGE_FORWARD && c.kind <= CHAT_CHANGE_DROP, "kind %d", c.kind);
    if (c.kind == CHAT_CHANGE_DROP) ck_assert(c.detail[0] != '\0');
    if (c.kind == CHAT_CHANGE_FORWARD) {
      forwarded++;
      /* Whatever is forwarded can be serialised for the HTTP calls. */
      chat_buf b;
      chat_buf_init(&b);
      ck_assert_int_eq(chat_message_gojson(&c.msg, &b), 0);
      ck_assert(chat_utf8_valid(b.data, b.len));
      chat_buf_free(&b);
    }
    chat_change_free(&c);
    free(buf);
  }
  ck_assert_int_gt(forwarded, 0); /* some mutations keep the example valid */
  for (size_t i = 0; i < ns; i++) free(owned[i]);
}
END_TEST

/* What the relay writes, the handler reads back unchanged. */
START_TEST(relay_output_round_trips) {
  chat_message m;
  chat_message_init(&m);
  m.message_id = strdup("596e275826f08b2730779e1f");
  m.id_is_oid = 1;
  m.content = strdup("quote \" backslash \\ newline \n emoji \xf0\x9f\x8e\x89 <&>");
  m.stream_id = strdup("1a80ecedf209e276");
  m.sender_id = strdup("sender-a");
  m.receiver_id = strdup(" sender-b");
  m.created_at_ms = 1783101585729LL;
  chat_buf b;
  chat_buf_init(&b);
  ck_assert_int_eq(chat_change_value(&m, 1783101585730LL, &b), 0);
  chat_change_opts o = {0};
  chat_change c;
  chat_change_parse(b.data, b.len, &o, &c);
  ck_assert_int_eq(c.kind, CHAT_CHANGE_FORWARD);
  ck_assert_str_eq(c.msg.message_id, m.message_id);
  ck_assert_int_eq(c.msg.id_is_oid, 1);
  ck_assert_str_eq(c.msg.content, m.content);
  ck_assert_int_eq(c.msg.created_at_ms, m.created_at_ms);
  ck_assert_str_eq(c.msg.receiver_id, m.receiver_id);
  chat_change_free(&c);
  chat_buf_free(&b);
  chat_message_free(&m);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("debezium");
  TCase *tc = tcase_create("parse");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, every_sample_file);
  tcase_add_test(tc, sample_details);
  tcase_add_test(tc, sample_keys);
  tcase_add_test(tc, contract_example_and_variants);
  tcase_add_test(tc, extract_new_document_state);
  tcase_add_test(tc, ops_other_than_create);
  tcase_add_test(tc, tombstones_and_heartbeats);
  tcase_add_test(tc, malformed_values_dropped_with_reason);
  tcase_add_test(tc, every_truncation_of_the_example);
  tcase_add_test(tc, mutation_fuzz_never_crashes);
  tcase_add_test(tc, relay_output_round_trips);
  suite_add_tcase(s, tc);
  return s;
}
