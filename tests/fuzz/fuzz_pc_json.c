/* The Go-compatible JSON reader of plugins/common (contract 0 and 2.3),
 * fast path against reference path:
 *  - pc_json_decoder_fast (one tight pass, members noted) against
 *    pc_json_decoder_scan (the byte-at-a-time port of Go's scanner):
 *    wherever the fast check answers, the same span, and its noted members
 *    are the ones pc_jobj_next walks; pc_json_decoder_value is the scanner's
 *    answer; json.Unmarshal's check (pc_json_check_document) accepts exactly
 *    the first values followed by blanks only;
 *  - pc_bind_body (PC_BIND_FAST) against PC_BIND_REFERENCE for every wire
 *    model: the same return code, error text and field values; and a bound
 *    model written as Go's json.Marshal would (pc_model_put_json) binds
 *    again to the same text.
 * Input: the request body. */
#include <string.h>

#include "fuzz.h"
#include "pc_bind.h"
#include "pc_jscan.h"
#include "pc_models.h"

/* The PC_JS_* flags of a string as written (quotes included). */
static unsigned span_flags(const char *p, size_t n) {
  unsigned f = memchr(p, '\\', n) ? PC_JS_ESC : 0;
  while (n--)
    if ((unsigned char)p[n] >= 0x80) return f | PC_JS_HIGH;
  return f;
}

static void check_members(const char *p, size_t s, size_t e, const pc_jmembers *mem) {
  pc_jval obj = {p + s, e - s}, k, v;
  pc_jobj_iter it;
  size_t count = 0;
  pc_jobj_begin(&it, obj);
  while (pc_jobj_next(&it, &k, &v)) {
    if (count < mem->n) {
      const pc_jspan *mk = &mem->key[count], *mv = &mem->val[count];
      FUZZ_CHECK(mk->p == k.p && mk->n == k.n, "member %zu: key span differs", count);
      FUZZ_CHECK(mk->flags == span_flags(k.p, k.n), "member %zu: key flags %u", count, mk->flags);
      FUZZ_CHECK(mv->p == v.p && mv->n == v.n, "member %zu: value span differs", count);
      FUZZ_CHECK(mv->flags == (v.p[0] == '"' ? span_flags(v.p, v.n) : 0u),
                 "member %zu: value flags %u", count, mv->flags);
    }
    count++;
  }
  if (mem->complete) FUZZ_CHECK(count == mem->n, "%zu members noted, %zu walked", mem->n, count);
  else FUZZ_CHECK(count > PC_JMEMBERS_MAX, "incomplete notes for %zu members", count);
}

static void check_decoder(const char *p, size_t n) {
  size_t s1 = 0, e1 = 0, s2 = 0, e2 = 0, s3 = 0, e3 = 0;
  pc_jmembers mem;
  pc_buf err2, err3, errd;
  pc_buf_init(&err2);
  pc_buf_init(&err3);
  pc_buf_init(&errd);
  int fast = pc_json_decoder_fast(p, n, &s1, &e1, &mem);
  int scan = pc_json_decoder_scan(p, n, &s2, &e2, &err2);
  int value = pc_json_decoder_value(p, n, &s3, &e3, &err3);
  FUZZ_CHECK(scan == value && err2.len == err3.len &&
                 (err2.len == 0 || memcmp(err2.data, err3.data, err2.len) == 0),
             "decoder_value %d differs from the scanner %d", value, scan);
  if (scan == 0) FUZZ_CHECK(s2 == s3 && e2 == e3, "decoder_value span differs");
  if (fast) {
    FUZZ_CHECK(scan == 0, "fast check accepts, scanner refuses: %.*s", (int)err2.len,
               err2.data ? err2.data : "");
    FUZZ_CHECK(s1 == s2 && e1 == e2, "spans [%zu,%zu) fast, [%zu,%zu) scanner", s1, e1, s2, e2);
    if (p[s1] == '{') check_members(p, s1, e1, &mem);
    else FUZZ_CHECK(!mem.complete, "members noted for a non-object");
  }
  int doc = pc_json_check_document(p, n, &errd);
  int only_value = scan == 0 && pc_json_skip_ws(p, n, e2) == n;
  FUZZ_CHECK((doc == 0) == only_value, "check_document %d, first value %d ending at %zu of %zu",
             doc, scan, e2, n);
  pc_buf_free(&err2);
  pc_buf_free(&err3);
  pc_buf_free(&errd);
}

/* Everything a bind gives, binary-safe: rc, error text, each field. */
static void bind_outcome(const pc_model_def *def, const char *p, size_t n, int mode, pc_buf *out,
                         pc_model *m) {
  pc_buf err;
  pc_buf_init(&err);
  int rc = pc_bind_body_mode(def, p, n, m, &err, mode, NULL);
  pc_buf_printf(out, "rc=%d err=", rc);
  pc_buf_put(out, err.data, err.len);
  pc_buf_free(&err);
  if (rc != PC_BIND_OK) return;
  for (size_t i = 0; i < def->nfields; i++) {
    const pc_fval *v = &m->v[i];
    size_t sl;
    const char *s = pc_model_str(m, i, &sl);
    pc_buf_printf(out, "|%zu:", sl);
    pc_buf_put(out, s, sl);
    pc_buf_printf(out, "|%a|%lld|%d-%d-%dT%d:%d:%d.%d%+d/%d%d", v->f, (long long)v->i,
                  v->t.year, v->t.month, v->t.day, v->t.hour, v->t.min, v->t.sec, v->t.nsec,
                  v->t.offset_s, v->t.set, v->t.has_loc);
  }
}

static int same(const pc_buf *a, const pc_buf *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Binds in both modes; 1 with the Go rendering in `json` when bound. */
static int check_bind(const pc_model_def *def, const char *p, size_t n, pc_buf *json) {
  pc_buf a, b;
  pc_buf_init(&a);
  pc_buf_init(&b);
  pc_model ma, mb;
  memset(&ma, 0, sizeof ma);
  memset(&mb, 0, sizeof mb);
  bind_outcome(def, p, n, PC_BIND_FAST, &a, &ma);
  bind_outcome(def, p, n, PC_BIND_REFERENCE, &b, &mb);
  FUZZ_CHECK(!a.oom && !b.oom, "out of memory");
  FUZZ_CHECK(same(&a, &b), "%s: fast and reference differ:\n fast: %.300s\n ref:  %.300s",
             def->name, a.data, b.data);
  int bound = strncmp(a.data, "rc=0 ", 5) == 0;
  if (bound && pc_model_put_json(json, &ma) < 0) bound = 0;
  pc_model_free(&ma);
  pc_model_free(&mb);
  pc_buf_free(&a);
  pc_buf_free(&b);
  return bound;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *p = fuzz_copy(data, size, 0);
  check_decoder(p, size);
  static const pc_model_def *const defs[] = {&pc_chat_message_def, &pc_purchase_update_def,
                                             &pc_payment_reminder_def, &pc_shipping_update_def};
  for (size_t d = 0; d < sizeof defs / sizeof defs[0]; d++) {
    pc_buf json, again;
    pc_buf_init(&json);
    pc_buf_init(&again);
    if (check_bind(defs[d], p, size, &json)) {
      char *j = fuzz_copy((const uint8_t *)json.data, json.len, 0);
      FUZZ_CHECK(check_bind(defs[d], j, json.len, &again), "%s: own output refused: %.*s",
                 defs[d]->name, (int)json.len, json.data);
      FUZZ_CHECK(same(&json, &again), "%s: output changes when bound again:\n %.*s\n %.*s",
                 defs[d]->name, (int)json.len, json.data, (int)again.len, again.data);
      free(j);
    }
    pc_buf_free(&json);
    pc_buf_free(&again);
  }
  free(p);
  return 0;
}
