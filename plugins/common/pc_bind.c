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

/* Decodes one member value into field f.  Returns 0, or -1 for an error
 * that aborts decoding (text in err), or -2 on OOM. */
static int decode_field(decode_state *d, const pc_field *f, pc_fval *fv, pc_jval v,
                        pc_buf *err) {
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
      pc_buf s;
      pc_buf_init(&s);
      if (pc_json_unquote(v, &s) < 0 || !pc_buf_cstr(&s)) {
        pc_buf_free(&s);
        return -2;
      }
      free(fv->s);
      fv->s = pc_buf_steal(&s, &fv->slen);
      if (!fv->s) return -2;
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

int pc_bind_value(const pc_model_def *def, pc_jval v, pc_model *out, pc_buf *err) {
  memset(out, 0, sizeof *out);
  out->def = def;
  if (def->nfields > PC_MAX_FIELDS) return PC_BIND_NOMEM;
  decode_state d = {def, out, {0}, 0, 0};
  pc_buf_init(&d.saved);
  int rc = PC_BIND_OK;
  char c = v.n ? v.p[0] : 'n';
  if (c == '{') {
    pc_jobj_iter it;
    pc_jval key, val;
    pc_buf k;
    pc_buf_init(&k);
    pc_jobj_begin(&it, v);
    while (pc_jobj_next(&it, &key, &val)) {
      pc_buf_reset(&k);
      if (pc_json_unquote(key, &k) < 0) {
        rc = PC_BIND_NOMEM;
        break;
      }
      const pc_field *f = NULL;
      size_t idx = 0;
      for (size_t i = 0; i < def->nfields; i++) {
        if (pc_json_key_matches(k.data ? k.data : "", k.len, def->fields[i].json)) {
          f = &def->fields[i];
          idx = i;
          break;
        }
      }
      if (!f) continue; /* unknown fields are ignored */
      int r = decode_field(&d, f, &out->v[idx], val, err);
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

int pc_bind_body(const pc_model_def *def, const void *body, size_t len, pc_model *out,
                 pc_buf *err) {
  size_t s = 0, e = 0;
  const char *p = body ? body : "";
  if (pc_json_decoder_value(p, body ? len : 0, &s, &e, err) < 0) {
    memset(out, 0, sizeof *out);
    out->def = def;
    return err->oom ? PC_BIND_NOMEM : PC_BIND_INVALID;
  }
  pc_jval v = {p + s, e - s};
  return pc_bind_value(def, v, out, err);
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
