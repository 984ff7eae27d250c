/* What jansson 2.14 accepts, and what this walker deliberately leaves to
 * it (see chat_jwalk.h): blanks are ' ', \t, \n, \r; strings take the
 * escapes \" \\ \/ \b \f \n \r \t (\u is left to jansson: surrogates and
 * \u0000 are where parsers differ), no byte below 0x20, and only valid
 * UTF-8 (no overlongs, surrogates or code points above U+10FFFF, as
 * chat_utf8_seq); integers have no leading zero and fit int64 (jansson
 * rejects bigger ones); true/false/null are followed by a delimiter. */
#include "chat_jwalk.h"

#include <stdlib.h>
#include <string.h>

#include "chat_json.h"

/* The byte an escape letter stands for, or -1 if it is no simple escape. */
static int esc_char(int e) {
  switch (e) {
  case '"': return '"';
  case '\\': return '\\';
  case '/': return '/';
  case 'b': return '\b';
  case 'f': return '\f';
  case 'n': return '\n';
  case 'r': return '\r';
  case 't': return '\t';
  default: return -1;
  }
}

/* The next byte of the text being read (through the string escapes when
 * nested), or -1 at its end.  A nested walker only ever reads contents
 * already checked at level 0, so an escape is whole and simple there. */
static int peek(const chat_jw *w) {
  if (w->p >= w->end) return -1;
  if (w->nested && *w->p == '\\') return esc_char(w->p[1]);
  return *w->p;
}

static void adv(chat_jw *w) { w->p += w->nested && *w->p == '\\' ? 2 : 1; }

static int skip_ws(chat_jw *w) {
  for (;;) {
    int c = peek(w);
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return c;
    adv(w);
  }
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* At the opening quote. */
static int scan_string(chat_jw *w, chat_jw_val *v) {
  v->type = '"';
  adv(w);
  v->cp = w->p;
  if (!w->nested) {
    const unsigned char *p = w->p, *end = w->end;
    int plain = 1;
    for (;;) {
      if (p >= end) return -1;
      unsigned c = *p;
      if (c == '"') break;
      if (c == '\\') {
        if (end - p < 2 || esc_char(p[1]) < 0) return -1;
        plain = 0;
        p += 2;
      } else if (c < 0x20) {
        return -1;
      } else if (c < 0x80) {
        p++;
      } else {
        size_t l = chat_utf8_seq(p, (size_t)(end - p));
        if (!l) return -1;
        p += l;
      }
    }
    v->ce = p;
    v->plain = plain;
    w->p = p + 1;
    v->end = w->p;
    return 0;
  }
  /* Nested: the contents of a level-0 string, so no raw quote or control
   * byte, UTF-8 checked, and every backslash starts a whole simple escape.
   * Raw bytes other than a backslash are the nested text's own bytes. */
  const unsigned char *p = w->p, *end = w->end;
  int plain = 1;
  for (;;) {
    while (p < end && *p != '\\') p++;
    if (p >= end) return -1;
    int c = esc_char(p[1]);
    if (c == '"') break; /* the closing quote, written \" */
    plain = 0;
    p += 2;
    if (c == '\\') { /* an escape of the nested text: its letter follows */
      if (p >= end) return -1;
      int e = *p == '\\' ? esc_char(p[1]) : *p;
      if (esc_char(e) < 0) return -1; /* also \u, left to jansson */
      p += *p == '\\' ? 2 : 1;
    } else if (c < 0x20) {
      return -1; /* \b \f \n \r \t: a control byte in the nested string */
    }
  }
  v->ce = p;
  v->plain = plain;
  w->p = p + 2;
  v->end = w->p;
  return 0;
}

/* Digits are never escaped, so a number's raw bytes are its text. */
static int scan_number(chat_jw *w, chat_jw_val *v) {
  v->type = '0';
  int neg = peek(w) == '-';
  if (neg) adv(w);
  const unsigned char *d = w->p;
  int c = peek(w);
  if (!is_digit(c)) return -1;
  adv(w);
  if (c == '0') {
    if (is_digit(peek(w))) return -1;
  } else {
    while (is_digit(peek(w))) adv(w);
  }
  c = peek(w);
  if (c == '.' || c == 'e' || c == 'E') return -1;
  size_t nd = (size_t)(w->p - d);
  if (nd > 19 || (nd == 19 && memcmp(d, neg ? "9223372036854775808" : "9223372036854775807",
                                     19) > 0))
    return -1;
  v->end = w->p;
  return 0;
}

static int scan_literal(chat_jw *w, chat_jw_val *v, const char *lit) {
  v->type = lit[0];
  for (; *lit; lit++) {
    if (peek(w) != *lit) return -1;
    adv(w);
  }
  v->end = w->p;
  return 0;
}

static int scan_value(chat_jw *w, chat_jw_val *v, int depth);

/* At the opening bracket; `depth` counts it. */
static int scan_container(chat_jw *w, int open, int depth) {
  int close = open == '{' ? '}' : ']';
  adv(w);
  int c = skip_ws(w);
  if (c == close) {
    adv(w);
    return 0;
  }
  for (;;) {
    chat_jw_val k, v;
    if (open == '{') {
      if (c != '"' || scan_string(w, &k) < 0 || skip_ws(w) != ':') return -1;
      adv(w);
    }
    if (scan_value(w, &v, depth) < 0) return -1;
    c = skip_ws(w);
    if (c == close) {
      adv(w);
      return 0;
    }
    if (c != ',') return -1;
    adv(w);
    c = skip_ws(w);
  }
}

static int scan_value(chat_jw *w, chat_jw_val *v, int depth) {
  int c = skip_ws(w);
  memset(v, 0, sizeof *v);
  v->nested = w->nested;
  v->p = w->p;
  switch (c) {
  case '"': return scan_string(w, v);
  case '{':
  case '[':
    if (depth >= CHAT_JW_MAX_DEPTH || scan_container(w, c, depth + 1) < 0) return -1;
    v->type = (char)c;
    v->end = w->p;
    return 0;
  case 't': return scan_literal(w, v, "true");
  case 'f': return scan_literal(w, v, "false");
  case 'n': return scan_literal(w, v, "null");
  default: return c == '-' || is_digit(c) ? scan_number(w, v) : -1;
  }
}

void chat_jw_open(chat_jw *w, const void *p, size_t n) {
  w->p = p;
  w->end = w->p + n;
  w->nested = 0;
  w->first = 1;
}

void chat_jw_open_value(chat_jw *w, const chat_jw_val *v) {
  w->p = v->p;
  w->end = v->end;
  w->nested = v->nested;
  w->first = 1;
}

int chat_jw_open_string(chat_jw *w, const chat_jw_val *s) {
  if (s->type != '"' || s->nested) return -1;
  w->p = s->cp;
  w->end = s->ce;
  w->nested = 1;
  w->first = 1;
  return 0;
}

int chat_jw_object(chat_jw *w) {
  if (skip_ws(w) != '{') return -1;
  adv(w);
  w->first = 1;
  return 0;
}

int chat_jw_member(chat_jw *w, chat_jw_val *key, chat_jw_val *val) {
  int c = skip_ws(w);
  if (c == '}') {
    adv(w);
    return 0;
  }
  if (!w->first) {
    if (c != ',') return -1;
    adv(w);
    c = skip_ws(w);
  }
  w->first = 0;
  memset(key, 0, sizeof *key);
  key->nested = w->nested;
  key->p = w->p;
  if (c != '"' || scan_string(w, key) < 0 || skip_ws(w) != ':') return -1;
  adv(w);
  return scan_value(w, val, 1) < 0 ? -1 : 1;
}

int chat_jw_finish(chat_jw *w) {
  skip_ws(w);
  return w->p == w->end ? 0 : -1;
}

int chat_jw_is(const chat_jw_val *v, const char *s) {
  size_t n = strlen(s);
  return v->type == '"' && v->plain && (size_t)(v->ce - v->cp) == n && memcmp(v->cp, s, n) == 0;
}

int chat_jw_same(const chat_jw_val *a, const chat_jw_val *b) {
  size_t n = (size_t)(a->ce - a->cp);
  return (size_t)(b->ce - b->cp) == n && memcmp(a->cp, b->cp, n) == 0;
}

int chat_jw_copy(const chat_jw_val *v, char *buf, size_t cap) {
  size_t n = (size_t)(v->ce - v->cp);
  if (v->type != '"' || !v->plain || n >= cap) return -1;
  memcpy(buf, v->cp, n);
  buf[n] = '\0';
  return 0;
}

int chat_jw_int64(const chat_jw_val *v, int64_t *out) {
  if (v->type != '0') return -1;
  const unsigned char *p = v->p;
  int neg = *p == '-';
  uint64_t u = 0;
  for (p += neg; p < v->end; p++) u = u * 10 + (uint64_t)(*p - '0');
  *out = neg ? (int64_t)(0 - u) : (int64_t)u; /* in range: checked by scan_number */
  return 0;
}

char *chat_jw_strdup(const chat_jw_val *s) {
  size_t n = (size_t)(s->ce - s->cp);
  char *out = malloc(n + 1);
  if (!out) return NULL;
  if (s->plain) {
    memcpy(out, s->cp, n);
    out[n] = '\0';
    return out;
  }
  chat_jw r = {s->cp, s->ce, s->nested, 0};
  size_t k = 0;
  while (r.p < r.end) {
    int c = peek(&r);
    adv(&r);
    if (c == '\\') {
      c = esc_char(peek(&r));
      adv(&r);
    }
    out[k++] = (char)c;
  }
  out[k] = '\0';
  return out;
}
