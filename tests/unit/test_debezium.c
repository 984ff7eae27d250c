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
#include "pc_buf.h"
#include "pc_stream_id.h"
#include "chat_json.h"
#include "chat_time.h"
#include "chat_oid.h"
#include "chat_model.h"
#include "chat_extjson.h"
#include "chat_jwalk.h"
#include "chat_debezium.h"

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
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_puts(&b, "{\"before\":null,\"after\":");
  chat_json_str(&b, doc, strlen(doc), CHAT_JSON_PLAIN);
  pc_buf_printf(&b, ",\"op\":\"%s\",\"ts_ms\":1}", op);
  return pc_buf_steal(&b, NULL);
}

#define DOC_TAIL                                                                             \
  "\"content\":\"Hello\",\"stream_id\":\"1a80ecedf209e276\",\"sender_id\":\"sender-a\","     \
  "\"receiver_id\":\" sender-b\""

/* DOC_TAIL as it reads inside an `after` string. */
#define DOC_TAIL_ESC                                                                         \
  "\\\"content\\\":\\\"Hello\\\",\\\"stream_id\\\":\\\"1a80ecedf209e276\\\","                \
  "\\\"sender_id\\\":\\\"sender-a\\\",\\\"receiver_id\\\":\\\" sender-b\\\""

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
  /* An op this reader does not know is counted by its name, as Go did. */
  expect("{\"op\":\"zz-some-new-op\"}", CHAT_CHANGE_SKIP, "zz-some-new-op", NULL);
  expect("{\"op\":\"a b\"}", CHAT_CHANGE_SKIP, "other", NULL);
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

/* Also replayed against both parse paths (differential test below). */
static const struct {
  const char *v;
  const char *detail;
} malformed[] = {
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
    /* a lone surrogate inside `after`, an `after` that is a NUL */
    {"{\"op\":\"c\",\"after\":\"{\\\"content\\\":\\\"\\\\ud800\\\"}\"}", "Extended JSON"},
    {"{\"op\":\"c\",\"after\":\"\\u0000\"}", "Extended JSON"},
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
START_TEST(malformed_values_dropped_with_reason) {
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
    expect(malformed[i].v, CHAT_CHANGE_DROP, NULL, malformed[i].detail);

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
      pc_buf b;
      pc_buf_init(&b);
      ck_assert_int_eq(chat_message_gojson(&c.msg, &b), 0);
      ck_assert(chat_utf8_valid(b.data, b.len));
      pc_buf_free(&b);
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
  chat_message_set_content_strlen(&m);
  m.stream_id = strdup("1a80ecedf209e276");
  m.sender_id = strdup("sender-a");
  m.receiver_id = strdup(" sender-b");
  m.created_at_ms = 1783101585729LL;
  pc_buf b;
  pc_buf_init(&b);
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
  pc_buf_free(&b);
  /* NUL bytes in content (Go stores "\u0000") survive the round trip,
   * and the forwarded body carries them as \u0000. */
  free(m.content);
  m.content = malloc(5);
  memcpy(m.content, "a\0b\0", 5);
  m.content_len = 4;
  pc_buf_init(&b);
  ck_assert_int_eq(chat_change_value(&m, 1783101585730LL, &b), 0);
  chat_change_parse(b.data, b.len, &o, &c);
  ck_assert_int_eq(c.kind, CHAT_CHANGE_FORWARD);
  ck_assert_uint_eq(c.msg.content_len, 4);
  ck_assert(memcmp(c.msg.content, "a\0b\0", 4) == 0);
  pc_buf_free(&b);
  pc_buf_init(&b);
  ck_assert_int_eq(chat_message_gojson(&c.msg, &b), 0);
  ck_assert_ptr_nonnull(strstr(b.data, "\"content\":\"a\\u0000b\\u0000\""));
  chat_change_free(&c);
  pc_buf_free(&b);
  chat_message_free(&m);
}
END_TEST

/* ---- the fast path against the jansson path ---- */

static int str_same(const char *a, const char *b) {
  return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Runs both paths over v[0..len); whenever the fast one answers, its
 * result must be the jansson one to the byte.  Returns whether it answered. */
static int fast_agrees(const char *v, size_t len, int forward_reads) {
  chat_change_opts o = {forward_reads};
  chat_change f, s;
  int answered = chat_change_parse_fast(v, len, &o, &f);
  chat_change_parse_slow(v, len, &o, &s);
  if (answered) {
    const char *what = "";
    if (f.kind != s.kind) what = "kind";
    else if (strcmp(f.op, s.op) != 0) what = "op";
    else if (strcmp(f.what, s.what) != 0) what = "what";
    else if (memcmp(f.detail, s.detail, sizeof f.detail) != 0) what = "detail";
    else if (!str_same(f.msg.message_id, s.msg.message_id)) what = "message_id";
    else if (f.msg.id_is_oid != s.msg.id_is_oid) what = "id_is_oid";
    else if (!str_same(f.msg.content, s.msg.content)) what = "content";
    else if (!str_same(f.msg.stream_id, s.msg.stream_id)) what = "stream_id";
    else if (!str_same(f.msg.sender_id, s.msg.sender_id)) what = "sender_id";
    else if (!str_same(f.msg.receiver_id, s.msg.receiver_id)) what = "receiver_id";
    else if (f.msg.created_at_ms != s.msg.created_at_ms) what = "created_at_ms";
    ck_assert_msg(!*what, "fast path differs in %s (kind %d/%d, detail '%s'/'%s') for: %.*s", what,
                  f.kind, s.kind, f.detail, s.detail, (int)(len > 300 ? 300 : len), v);
  } else {
    /* Unanswered: `f` is left empty, nothing to free. */
    ck_assert_int_eq(f.kind, 0);
    ck_assert_ptr_null(f.msg.content);
  }
  chat_change_free(&f);
  chat_change_free(&s);
  return answered;
}

static int fast_agrees_str(const char *v, int forward_reads) {
  return fast_agrees(v, strlen(v), forward_reads);
}

/* Assorted messages as the relay writes them (chat_change_value). */
static char *relay_record(int i, size_t *len) {
  static const char *const contents[] = {
      "Hello",
      "quote \" backslash \\ slash / newline \n tab \t cr \r",
      "emoji \xf0\x9f\x8e\x89 accents \xc3\xa9\xc3\xa0 cjk \xe4\xb8\xad\xe6\x96\x87 <&>",
      "\\\"\\\\ already-escaped looking text \\u0041 \\n",
      "{\"_id\":\"not me\",\"content\":\"nested json text\"}",
      "",
      "  spaced  ",
  };
  size_t nc = sizeof contents / sizeof contents[0];
  chat_message m;
  chat_message_init(&m);
  char id[32];
  int oid = i % 3 != 2;
  if (oid) snprintf(id, sizeof id, "%024x", (unsigned)(0x5f00a1 + i * 7919));
  else snprintf(id, sizeof id, "message_id_%d", i);
  m.message_id = strdup(id);
  m.id_is_oid = oid;
  if ((size_t)i % (nc + 1) == nc) { /* long content */
    size_t n = 5000 + (size_t)i;
    m.content = malloc(n + 1);
    ck_assert_ptr_nonnull(m.content);
    for (size_t k = 0; k < n; k++) m.content[k] = "ab\"\\c \xc3\xa9"[k % 8];
    m.content[n - 1] = 'z';
    m.content[n] = '\0';
    m.content_len = n;
  } else {
    m.content = strdup(contents[(size_t)i % (nc + 1)]);
    chat_message_set_content_strlen(&m);
  }
  m.stream_id = strdup("1a80ecedf209e276");
  m.sender_id = strdup(i % 2 ? "sender-a" : "s\xc3\xa9nder \"b\"");
  m.receiver_id = strdup(i % 4 ? " sender-b" : "r/\\x");
  static const int64_t dates[] = {1783101585729LL, CHAT_TIME_ZERO_MS, 0, -1, CHAT_TIME_MIN_MS,
                                  CHAT_TIME_MAX_MS};
  m.created_at_ms = dates[(size_t)i % (sizeof dates / sizeof dates[0])];
  pc_buf b;
  pc_buf_init(&b);
  ck_assert_int_eq(chat_change_value(&m, 1783101585730LL + i, &b), 0);
  chat_message_free(&m);
  return pc_buf_steal(&b, len);
}

#define N_RELAY 24

START_TEST(fast_path_matches_jansson) {
  /* The relay's own records: the fast path answers, and agrees. */
  for (int i = 0; i < N_RELAY; i++) {
    size_t len;
    char *v = relay_record(i, &len);
    ck_assert_msg(fast_agrees(v, len, 0), "fast path fell back on relay record %d: %s", i, v);
    ck_assert(fast_agrees(v, len, 1));
    free(v);
  }
  ck_assert(fast_agrees_str(CONTRACT_EXAMPLE, 0));
  /* Every sample file and malformed variant, both ways. */
  for (size_t i = 0; i < sizeof sample_expect / sizeof sample_expect[0]; i++) {
    size_t len;
    char *v = slurp(sample_expect[i].file, &len);
    fast_agrees(v, len, 0);
    fast_agrees(v, len, 1);
    free(v);
  }
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
    fast_agrees_str(malformed[i].v, 0);
    fast_agrees_str(malformed[i].v, 1);
  }
  /* Shapes at the edge of what the fast path reads. */
  static const struct {
    const char *v;
    int answered; /* 1: must answer, 0: must fall back, -1: either */
  } edge[] = {
      {"{\"op\":\"u\",\"after\":\"garbage\",\"ts_ms\":1}", 1},
      {"{\"op\":\"zz-some-new-op\"}", 1},
      {"{\"op\":\"c\",\"after\":\"{}\"}", 1}, /* document has no content */
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":\\\"m\\\"," DOC_TAIL_ESC "}\"}", 1},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":null,\\\"created_at\\\":null," DOC_TAIL_ESC "}\"}", 1},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":{\\\"$oid\\\":\\\"596E275826F08B2730779E1F\\\"},"
       "\\\"created_at\\\":{\\\"$date\\\":1783101585729}," DOC_TAIL_ESC "}\"}",
       1},
      /* blanks inside `after` written as escapes, and \/ */
      {"{\"op\":\"c\",\"after\":\"\\n{\\t\\\"_id\\\" :\\r\\\"a\\/b\\\" ," DOC_TAIL_ESC "}\\n\"}", 1},
      /* must fall back */
      {"{\"op\":\"c\",\"op\":\"u\",\"after\":\"{}\"}", 0},                 /* duplicate key */
      {"{\"op\":\"c\",\"after\":\"{\\\"content\\\":\\\"a\\\",\\\"content\\\":\\\"b\\\"}\"}", 0},
      {"{\"o\\u0070\":\"c\",\"after\":\"{}\"}", 0},                        /* \u in a key */
      {"{\"op\":\"c\",\"after\":\"{\\\"content\\\":\\\"\\\\u00e9\\\"}\"}", 0}, /* \u inside */
      {"{\"op\":\"c\",\"after\":\"{\\\"con\\\\ntent\\\":\\\"x\\\"}\"}", 0},   /* escaped key */
      {"{\"\\/op\":\"c\"}", 0},
      {"{\"schema\":null,\"op\":\"c\",\"after\":\"{}\"}", 0},
      {"{\"payload\":{\"op\":\"c\"},\"op\":\"c\"}", 0},
      {"{\"_id\":\"x\",\"content\":\"Hello\"}", 0}, /* unwrapped */
      {"{\"op\":\"c\",\"after\":\"{}\"} x", 0},
      {"{\"op\":\"c\",\"after\":\"{} x\"}", 0},
      {"{\"op\":\"c\",\"after\":\"{}\",\"ts_ms\":1.0}", 0},
      {"{\"op\":\"c\",\"after\":\"{}\",\"ts_ms\":1e3}", 0},
      {"{\"op\":\"c\",\"after\":\"{}\",\"ts_ms\":01}", 0},
      {"{\"op\":\"c\",\"after\":\"{}\",\"ts_ms\":-}", 0},
      {"{\"op\":\"c\",\"after\":\"{}\",\"ts_ms\":9223372036854775807}", 1},
      {"{\"op\":\"c\",\"after\":\"{}\",\"ts_ms\":-9223372036854775808}", 1},
      {"{\"op\":\"c\",\"after\":\"{}\",\"ts_ms\":9223372036854775808}", 0},
      {"{\"op\":\"c\",\"after\":\"{}\",\"ts_ms\":tru}", 0},
      {"{\"op\":\"c\",\"after\":\"{}\",\"x\":[true,false,null,{},[],\"\",-0]}", 1},
      {"{\"op\":\"c\",\"after\":\"{}\",\"x\":[1,]}", 0},
      {"{\"op\":\"c\",\"after\":\"{}\",}", 0},
      {"{\"op\":\"c\",\"after\":\"{\\b}\"}", 0},       /* control byte between tokens */
      {"{\"op\":\"c\",\"after\":\"{\\\"content\\\":\\\"\\t\\\"}\"}", 0}, /* raw tab inside */
      {"{\"op\":\"c\",\"after\":\"{\\\"content\\\":\\\"\xc3\\\"}\"}", 0}, /* cut UTF-8 */
      {"{\"op\":\"c\",\"before\":\"\xed\xa0\x80\",\"after\":\"{}\"}", 0}, /* surrogate */
      {"{\"op\":\"c\",\"before\":\"\xc0\xaf\",\"after\":\"{}\"}", 0},     /* overlong */
      {"{\"op\":\"c\",\"before\":\"\xf4\x90\x80\x80\",\"after\":\"{}\"}", 0},
      {"\xef\xbb\xbf{\"op\":\"c\",\"after\":\"{}\"}", 0}, /* BOM */
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":{\\\"$oid\\\":\\\"596e275826f08b2730779e1f\\\","
       "\\\"x\\\":1}}\"}",
       0},
      {"{\"op\":\"c\",\"after\":\"{\\\"_id\\\":7}\"}", 0},
      {"{\"op\":\"c\",\"after\":\"{\\\"created_at\\\":{\\\"$date\\\":\\\"2026-07-03T17:59:45Z\\\"}}\"}",
       0},
      {"{\"op\":\"c\",\"after\":\"{\\\"created_at\\\":{\\\"$date\\\":{\\\"$numberLong\\\":\\\"1\\\"},"
       "\\\"y\\\":2}}\"}",
       0},
      {"{\"op\":\"c\",\"after\":\"{\\\"created_at\\\":{\\\"$date\\\":253402300800000}}\"}", 0},
      {"{\"op\":\"C\",\"after\":\"{}\"}", 1}, /* exact match: "C" is no create */
      {"{\"OP\":\"c\",\"after\":\"{}\"}", 0},
      {"{\"op\":\"c\",\"After\":\"{}\"}", 0},
      {"{\"op\":\"c\",\"after\":\"{\\\"Content\\\":\\\"x\\\"}\"}", 1}, /* not `content` */
      {"{\"op\":\"12345678901234567\",\"after\":\"{}\"}", 0},
      {"{\"op\":\"1234567890123456\",\"after\":\"{}\"}", 1},
      {"{\"op\":\"\xc3\xa9\",\"after\":\"{}\"}", 1},
      {"{\"op\":\"r\",\"after\":\"{}\"}", 1},
  };
  for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
    for (int fr = 0; fr < 2; fr++) {
      int a = fast_agrees_str(edge[i].v, fr);
      if (edge[i].answered >= 0)
        ck_assert_msg(a == edge[i].answered, "edge %zu (forward_reads %d): answered %d for %s", i,
                      fr, a, edge[i].v);
    }
  /* Nesting: within the walker's depth, and beyond it. */
  char deep[256];
  for (int d = 30; d <= 34; d++) {
    int k = snprintf(deep, sizeof deep, "{\"op\":\"c\",\"after\":\"{}\",\"x\":");
    for (int j = 0; j < d; j++) deep[k++] = '[';
    for (int j = 0; j < d; j++) deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = '\0';
    ck_assert_int_eq(fast_agrees_str(deep, 0), d < CHAT_JW_MAX_DEPTH);
  }
}
END_TEST

/* Single-byte mutations and truncations of records the fast path reads:
 * wherever it still answers, it agrees with jansson. */
START_TEST(fast_path_mutations_agree) {
  enum { NB = 6 };
  char *base[NB];
  size_t lens[NB];
  for (int i = 0; i < NB - 1; i++) base[i] = relay_record(i, &lens[i]);
  base[NB - 1] = strdup(CONTRACT_EXAMPLE);
  ck_assert_ptr_nonnull(base[NB - 1]);
  lens[NB - 1] = strlen(CONTRACT_EXAMPLE);
  static const char alphabet[] = "{}[]\":,\\/0123456789-+.eE$ \t\n\x00\x01\xff\xc3\xa9ntrufalscbu";
  unsigned seed = 424242;
  int answered = 0, forwarded = 0;
  for (int iter = 0; iter < 20000; iter++) {
    int which = iter % NB;
    size_t len = lens[which];
    char *buf = malloc(len + 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, base[which], len + 1);
    size_t pos = (size_t)rand_r(&seed) % len;
    switch (rand_r(&seed) % 4) {
    case 0: len = pos; break; /* truncate */
    case 1: buf[pos] = (char)(rand_r(&seed) & 0xff); break;
    default: buf[pos] = alphabet[(size_t)rand_r(&seed) % (sizeof alphabet - 1)]; break;
    }
    /* Exact length, no NUL after the text: ASan catches any overread. */
    char *exact = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(exact);
    memcpy(exact, buf, len);
    if (fast_agrees(exact, len, iter & 1)) {
      answered++;
      chat_change_opts o = {iter & 1};
      chat_change c;
      chat_change_parse(exact, len, &o, &c);
      forwarded += c.kind == CHAT_CHANGE_FORWARD;
      chat_change_free(&c);
    }
    free(exact);
    free(buf);
  }
  /* Many mutations leave a record the fast path still reads (a changed
   * content byte, say); many others it must leave to jansson. */
  ck_assert_int_gt(answered, 2000);
  ck_assert_int_lt(answered, 19000);
  ck_assert_int_gt(forwarded, 1000);
  for (int i = 0; i < NB; i++) free(base[i]);
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
  tcase_add_test(tc, fast_path_matches_jansson);
  tcase_add_test(tc, fast_path_mutations_agree);
  suite_add_tcase(s, tc);
  return s;
}
