#include "pc_bind.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pc_jenc.h"

static const char *go_type(uint8_t kind) {
  switch (kind) {
    case PC_K_STRING: return "string";
    case PC_K_FLOAT: return "float64";
    case PC_K_INT: return "int";
    default: return "time.Time";
  }
}

/* The JSON kind as UnmarshalTypeError names it; `lit` is the literal for
 * "number <lit>" (range and syntax failures of numbers). */
static const char *value_kind(pc_jval v) {
  switch (v.p[0]) {
    case '{': return "object";
    case '[': return "array";
    case '"': return "string";
    case 't':
    case 'f': return "bool";
    case 'n': return "null";
    default: return "number";
  }
}

typedef struct decode_state {
  const pc_model_def *def;
  pc_model *m;
  pc_buf saved; /* first saved UnmarshalTypeError, "" if none */
  int have_saved;
  int oom;
} decode_state;

static void save_field_error(decode_state *d, const pc_field *f, const char *what, pc_jval lit) {
  if (d->have_saved) return;
  d->have_saved = 1;
  pc_buf_printf(&d->saved, "json: cannot unmarshal %s", what);
  if (lit.n) {
    pc_buf_putc(&d->saved, ' ');
    pc_buf_put(&d->saved, lit.p, lit.n);
  }
  pc_buf_printf(&d->saved, " into Go struct field %s.", d->def->name);
  if (f->embed) pc_buf_printf(&d->saved, "%s.", f->embed);
  pc_buf_printf(&d->saved, "%s of type %s", f->json, go_type(f->kind));
}

/* Whether s[0..n) is valid UTF-8 as pc_json_unquote reads it (no byte
 * would become U+FFFD). */
static int utf8_valid(const char *s, size_t n) {
  size_t i = 0, sz;
  while (i < n) {
    if ((unsigned char)s[i] < 0x80) {
      i++;
      continue;
    }
    pc_utf8_decode((const unsigned char *)s + i, n - i, &sz);
    if (sz == 1) return 0;
    i += sz;
  }
  return 1;
}

/* A string value's contents (Go's unquoting) as a malloc'd C string, or
 * NULL on OOM.  Without escapes and with valid UTF-8 they are the bytes
 * between the quotes. */
static char *string_value(pc_jspan v, size_t *len) {
  const char *raw = v.p + 1;
  size_t n = v.n - 2;
  if (!(v.flags & PC_JS_ESC) && (!(v.flags & PC_JS_HIGH) || utf8_valid(raw, n))) {
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, raw, n);
    s[n] = '\0';
    *len = n;
    return s;
  }
  pc_buf b;
  pc_buf_init(&b);
  if (pc_json_unquote((pc_jval){v.p, v.n}, &b) < 0) {
    pc_buf_free(&b);
    return NULL;
  }
  return pc_buf_steal(&b, len);
}

/* Decodes one member value into field f.  Returns 0, or -1 for an error
 * that aborts decoding (text in err), or -2 on OOM. */
static int decode_field(decode_state *d, const pc_field *f, pc_fval *fv, pc_jspan sv,
                        pc_buf *err) {
  pc_jval v = {sv.p, sv.n};
  static const pc_jval none = {NULL, 0};
  char c = v.p[0];
  if (f->kind == PC_K_TIME) {
    if (c == 'n') return 0; /* Time.UnmarshalJSON("null") is a no-op */
    if (c != '"') {
      pc_buf_puts(err, "Time.UnmarshalJSON: input is not a JSON string");
      return -1;
    }
    /* Go parses the raw bytes between the quotes (escapes not decoded). */
    pc_time t;
    if (pc_time_parse_rfc3339(v.p + 1, v.n - 2, &t, err) < 0) return err->oom ? -2 : -1;
    fv->t = t;
    return 0;
  }
  if (c == 'n') return 0; /* null leaves primitives alone */
  switch (f->kind) {
    case PC_K_STRING: {
      if (c != '"') {
        save_field_error(d, f, value_kind(v), none);
        return 0;
      }
      size_t len = 0;
      char *s = string_value(sv, &len);
      if (!s) return -2;
      free(fv->s);
      fv->s = s;
      fv->slen = len;
      return 0;
    }
    case PC_K_FLOAT: {
      if (c != '-' && (c < '0' || c > '9')) {
        save_field_error(d, f, value_kind(v), none);
        return 0;
      }
      char tmp[400];
      char *heap = NULL, *num = tmp;
      if (v.n >= sizeof tmp) {
        if (!(heap = malloc(v.n + 1))) return -2;
        num = heap;
      }
      memcpy(num, v.p, v.n);
      num[v.n] = '\0';
      errno = 0;
      double x = strtod(num, NULL);
      free(heap);
      if (isinf(x)) { /* ParseFloat: out of range */
        save_field_error(d, f, "number", v);
        return 0;
      }
      fv->f = x;
      return 0;
    }
    default: { /* PC_K_INT: strconv.ParseInt(s, 10, 64) */
      if (c != '-' && (c < '0' || c > '9')) {
        save_field_error(d, f, value_kind(v), none);
        return 0;
      }
      size_t k = c == '-' ? 1 : 0;
      int ok = k < v.n;
      uint64_t acc = 0;
      const uint64_t limit = c == '-' ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
      for (; k < v.n && ok; k++) {
        if (v.p[k] < '0' || v.p[k] > '9') ok = 0;
        else if (acc > (limit - (uint64_t)(v.p[k] - '0')) / 10) ok = 0;
        else acc = acc * 10 + (uint64_t)(v.p[k] - '0');
      }
      if (!ok) {
        save_field_error(d, f, "number", v);
        return 0;
      }
      fv->i = c == '-' ? (int64_t)(0 - acc) : (int64_t)acc;
      return 0;
    }
  }
}

static int validate(const pc_model *m, pc_buf *err) {
  const pc_model_def *def = m->def;
  int bad = 0;
  for (size_t i = 0; i < def->nfields; i++) {
    const pc_field *f = &def->fields[i];
    if (!f->required) continue;
    const pc_fval *v = &m->v[i];
    int zero;
    switch (f->kind) {
      case PC_K_STRING: zero = v->slen == 0; break;
      case PC_K_FLOAT: zero = v->f == 0.0; break; /* -0.0 too (checked against Go) */
      case PC_K_INT: zero = v->i == 0; break;
      default: zero = pc_time_is_zero_value(&v->t); break;
    }
    if (!zero) continue;
    if (bad++) pc_buf_putc(err, '\n');
    pc_buf_printf(err, "Key: '%s.", def->name);
    if (f->embed) pc_buf_printf(err, "%s.", f->embed);
    pc_buf_printf(err, "%s' Error:Field validation for '%s' failed on the 'required' tag", f->go,
                  f->go);
  }
  if (err->oom) return PC_BIND_NOMEM;
  return bad ? PC_BIND_INVALID : PC_BIND_OK;
}

/* name (a C string) equals s[0..n), s holding no NUL. */
static int name_is(const char *name, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) /* stops at name's NUL at the latest */
    if (name[i] != s[i]) return 0;
  return name[n] == '\0';
}

/* The field a member key names: its index, -1 for none, -2 on OOM.  A
 * key without escapes is its own unquoting as far as foldName goes
 * (invalid UTF-8 folds to nothing either way), and an exact match is the
 * only fold match: a model's wire names (lowercase ASCII) differ even
 * after folding. */
static int find_field(const pc_model_def *def, pc_jspan key, pc_buf *k, size_t *hint) {
  const char *name_src;
  size_t len;
  if (!(key.flags & PC_JS_ESC)) {
    name_src = key.p + 1;
    len = key.n - 2;
    /* Members usually come in declaration order: start at the next one. */
    for (size_t j = 0, i = *hint; j < def->nfields; j++, i = i + 1 < def->nfields ? i + 1 : 0)
      if (name_is(def->fields[i].json, name_src, len)) {
        *hint = i + 1 < def->nfields ? i + 1 : 0;
        return (int)i;
      }
  } else {
    pc_buf_reset(k);
    if (pc_json_unquote((pc_jval){key.p, key.n}, k) < 0) return -2;
    name_src = k->data ? k->data : "";
    len = k->len;
  }
  for (size_t i = 0; i < def->nfields; i++)
    if (pc_json_key_matches(name_src, len, def->fields[i].json)) return (int)i;
  return -1;
}

/* A member found by scanning: its string flags, or "unknown" (every
 * string through the general unquoting) for the reference path. */
static pc_jspan span_of(pc_jval v, int reference) {
  pc_jspan s = {v.p, v.n, PC_JS_ANY};
  if (reference) return s;
  s.flags = 0;
  for (size_t i = 0; i < v.n; i++) {
    unsigned char c = (unsigned char)v.p[i];
    if (c == '\\') s.flags |= PC_JS_ESC;
    else if (c >= 0x80) s.flags |= PC_JS_HIGH;
  }
  return s;
}

/* pc_bind_value over the members noted by the fast check (`mem`), or
 * found by scanning `v` again when mem is NULL. */
static int bind_walk(const pc_model_def *def, pc_jval v, const pc_jmembers *mem, int reference,
                     pc_model *out, pc_buf *err) {
  memset(out, 0, sizeof *out);
  out->def = def;
  if (def->nfields > PC_MAX_FIELDS) return PC_BIND_NOMEM;
  decode_state d = {def, out, {0}, 0, 0};
  pc_buf_init(&d.saved);
  int rc = PC_BIND_OK;
  char c = v.n ? v.p[0] : 'n';
  if (c == '{') {
    pc_jobj_iter it;
    pc_jval kv, vv;
    pc_jspan key, val;
    size_t next = 0, hint = 0;
    pc_buf k;
    pc_buf_init(&k);
    if (!mem) pc_jobj_begin(&it, v);
    for (;;) {
      if (mem) {
        if (next == mem->n) break;
        key = mem->key[next];
        val = mem->val[next];
        next++;
      } else {
        if (!pc_jobj_next(&it, &kv, &vv)) break;
        key = span_of(kv, reference);
        val = span_of(vv, reference);
      }
      int idx = find_field(def, key, &k, &hint);
      if (idx == -2) {
        rc = PC_BIND_NOMEM;
        break;
      }
      if (idx < 0) continue; /* unknown fields are ignored */
      int r = decode_field(&d, &def->fields[idx], &out->v[idx], val, err);
      if (r == -2) {
        rc = PC_BIND_NOMEM;
        break;
      }
      if (r < 0) {
        rc = PC_BIND_INVALID;
        break;
      }
    }
    pc_buf_free(&k);
  } else if (c != 'n') {
    /* A non-object top-level value: Go names the whole struct type. */
    d.have_saved = 1;
    pc_buf_printf(&d.saved, "json: cannot unmarshal %s into Go value of type %s", value_kind(v),
                  def->type_name);
  }
  if (rc == PC_BIND_OK && d.have_saved) {
    if (d.saved.oom) rc = PC_BIND_NOMEM;
    else {
      pc_buf_put(err, d.saved.data, d.saved.len);
      rc = PC_BIND_INVALID;
    }
  }
  pc_buf_free(&d.saved);
  if (rc == PC_BIND_OK) rc = validate(out, err);
  if (rc == PC_BIND_OK && err->oom) rc = PC_BIND_NOMEM;
  if (rc != PC_BIND_OK) pc_model_free(out);
  return rc;
}

int pc_bind_value(const pc_model_def *def, pc_jval v, pc_model *out, pc_buf *err) {
  return bind_walk(def, v, NULL, 0, out, err);
}

int pc_bind_body_mode(const pc_model_def *def, const void *body, size_t len, pc_model *out,
                      pc_buf *err, int mode, int *fast) {
  size_t s = 0, e = 0;
  const char *p = body ? body : "";
  size_t n = body ? len : 0;
  pc_jmembers mem;
  int quick = mode == PC_BIND_FAST && pc_json_decoder_fast(p, n, &s, &e, &mem);
  if (fast) *fast = quick;
  if (!quick && pc_json_decoder_scan(p, n, &s, &e, err) < 0) {
    memset(out, 0, sizeof *out);
    out->def = def;
    return err->oom ? PC_BIND_NOMEM : PC_BIND_INVALID;
  }
  pc_jval v = {p + s, e - s};
  return bind_walk(def, v, quick && mem.complete ? &mem : NULL, mode == PC_BIND_REFERENCE, out,
                   err);
}

int pc_bind_body(const pc_model_def *def, const void *body, size_t len, pc_model *out,
                 pc_buf *err) {
  return pc_bind_body_mode(def, body, len, out, err, PC_BIND_FAST, NULL);
}

void pc_model_free(pc_model *m) {
  for (size_t i = 0; i < PC_MAX_FIELDS; i++) {
    free(m->v[i].s);
    m->v[i].s = NULL;
    m->v[i].slen = 0;
  }
}

const char *pc_model_str(const pc_model *m, size_t field, size_t *len) {
  const pc_fval *v = &m->v[field];
  if (len) *len = v->s ? v->slen : 0;
  return v->s ? v->s : "";
}

int pc_model_put_json(pc_buf *b, const pc_model *m) {
  const pc_model_def *def = m->def;
  pc_buf_putc(b, '{');
  for (size_t i = 0; i < def->nfields; i++) {
    const pc_field *f = &def->fields[i];
    const pc_fval *v = &m->v[i];
    if (i) pc_buf_putc(b, ',');
    pc_json_put_cstring(b, f->json);
    pc_buf_putc(b, ':');
    switch (f->kind) {
      case PC_K_STRING: pc_json_put_string(b, v->s ? v->s : "", v->s ? v->slen : 0); break;
      case PC_K_FLOAT:
        if (pc_json_put_float(b, v->f) < 0) return -1;
        break;
      case PC_K_INT: pc_json_put_int(b, v->i); break;
      default:
        if (pc_time_put_json(b, &v->t) < 0) return -1;
        break;
    }
  }
  pc_buf_putc(b, '}');
  return 0;
}
