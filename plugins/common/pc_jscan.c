/* The syntax checker is a byte-at-a-time state machine with the same
 * states, transitions and error wording as Go's encoding/json scanner, so
 * the first bad byte and its message agree with the Go services. */
#include "pc_jscan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_DEPTH 10000 /* Go's maxNestingDepth */

enum {
  ST_BEGIN_VALUE_OR_EMPTY, ST_BEGIN_VALUE, ST_BEGIN_STRING_OR_EMPTY, ST_BEGIN_STRING,
  ST_END_VALUE, ST_END_TOP, ST_IN_STRING, ST_IN_STRING_ESC, ST_ESC_U, ST_ESC_U1, ST_ESC_U12,
  ST_ESC_U123, ST_NEG, ST_1, ST_0, ST_DOT, ST_DOT0, ST_E, ST_E_SIGN, ST_E0,
  ST_T, ST_TR, ST_TRU, ST_F, ST_FA, ST_FAL, ST_FALS, ST_N, ST_NU, ST_NUL, ST_ERROR
};

enum { PS_OBJECT_KEY, PS_OBJECT_VALUE, PS_ARRAY_VALUE };

enum { OP_CONTINUE, OP_SKIP_SPACE, OP_END, OP_END_OBJECT, OP_END_ARRAY, OP_ERROR };

typedef struct scanner {
  int state;
  int end_top;
  size_t depth;
  unsigned char *stack; /* parse states, grown on demand up to MAX_DEPTH+1 */
  size_t cap;
  int oom;
  int failed;          /* the first error: the byte and its context */
  unsigned err_c;
  const char *err_ctx;
} scanner;

static int is_space(unsigned c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static int is_digit(unsigned c) { return c >= '0' && c <= '9'; }
static int is_hex(unsigned c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* strconv.Quote of the one-rune string string(rune(c)), without its
 * quotes, as Go's quoteChar prints a byte. */
static void quote_char(pc_buf *b, unsigned c) {
  if (c == '\'') {
    pc_buf_puts(b, "'\\''");
    return;
  }
  if (c == '"') {
    pc_buf_puts(b, "'\"'");
    return;
  }
  pc_buf_putc(b, '\'');
  switch (c) {
    case '\a': pc_buf_puts(b, "\\a"); break;
    case '\b': pc_buf_puts(b, "\\b"); break;
    case '\f': pc_buf_puts(b, "\\f"); break;
    case '\n': pc_buf_puts(b, "\\n"); break;
    case '\r': pc_buf_puts(b, "\\r"); break;
    case '\t': pc_buf_puts(b, "\\t"); break;
    case '\v': pc_buf_puts(b, "\\v"); break;
    case '\\': pc_buf_puts(b, "\\\\"); break;
    default:
      if (c < 0x20 || c == 0x7f) {
        pc_buf_printf(b, "\\x%02x", c);
      } else if (c < 0x80) {
        pc_buf_putc(b, (char)c);
      } else if (c < 0xa0 || c == 0xad) {
        /* C1 controls, soft hyphen: not printable for strconv */
        pc_buf_printf(b, "\\u%04x", c);
      } else if (c == 0xa0) {
        pc_buf_puts(b, "\\u00a0");
      } else {
        pc_buf_putc(b, (char)(0xc0 | (c >> 6)));
        pc_buf_putc(b, (char)(0x80 | (c & 0x3f)));
      }
  }
  pc_buf_putc(b, '\'');
}

static int fail(scanner *s, unsigned c, const char *context) {
  s->state = ST_ERROR;
  if (!s->failed) {
    s->failed = 1;
    s->err_c = c;
    s->err_ctx = context;
  }
  return OP_ERROR;
}

/* Go's SyntaxError text for the recorded error. */
static void put_error(const scanner *s, pc_buf *err) {
  pc_buf_puts(err, "invalid character ");
  quote_char(err, s->err_c);
  pc_buf_putc(err, ' ');
  pc_buf_puts(err, s->err_ctx);
}

static int push(scanner *s, unsigned c, int ps) {
  if (s->depth + 1 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 32;
    if (cap > MAX_DEPTH + 1) cap = MAX_DEPTH + 1;
    if (s->depth + 1 > cap) return fail(s, c, "exceeded max depth");
    unsigned char *st = realloc(s->stack, cap);
    if (!st) {
      s->oom = 1;
      s->state = ST_ERROR;
      return OP_ERROR;
    }
    s->stack = st;
    s->cap = cap;
  }
  s->stack[s->depth++] = (unsigned char)ps;
  if (s->depth > MAX_DEPTH) return fail(s, c, "exceeded max depth");
  return OP_CONTINUE;
}

static int step(scanner *s, unsigned c);

static int end_top(scanner *s, unsigned c) {
  /* Go complains about the byte but still reports the end of the value:
   * a Decoder stops here, Unmarshal sees the error on its next step. */
  if (!is_space(c)) fail(s, c, "after top-level value");
  return OP_END;
}

static int pop(scanner *s) {
  s->depth--;
  if (s->depth == 0) {
    s->state = ST_END_TOP;
    s->end_top = 1;
  } else {
    s->state = ST_END_VALUE;
  }
  return 0;
}

static int end_value(scanner *s, unsigned c) {
  if (s->depth == 0) {
    s->state = ST_END_TOP;
    s->end_top = 1;
    return end_top(s, c);
  }
  if (is_space(c)) {
    s->state = ST_END_VALUE;
    return OP_SKIP_SPACE;
  }
  unsigned char *top = &s->stack[s->depth - 1];
  switch (*top) {
    case PS_OBJECT_KEY:
      if (c == ':') {
        *top = PS_OBJECT_VALUE;
        s->state = ST_BEGIN_VALUE;
        return OP_CONTINUE;
      }
      return fail(s, c, "after object key");
    case PS_OBJECT_VALUE:
      if (c == ',') {
        *top = PS_OBJECT_KEY;
        s->state = ST_BEGIN_STRING;
        return OP_CONTINUE;
      }
      if (c == '}') {
        pop(s);
        return OP_END_OBJECT;
      }
      return fail(s, c, "after object key:value pair");
    default:
      if (c == ',') {
        s->state = ST_BEGIN_VALUE;
        return OP_CONTINUE;
      }
      if (c == ']') {
        pop(s);
        return OP_END_ARRAY;
      }
      return fail(s, c, "after array element");
  }
}

static int begin_value(scanner *s, unsigned c) {
  if (is_space(c)) return OP_SKIP_SPACE;
  switch (c) {
    case '{': s->state = ST_BEGIN_STRING_OR_EMPTY; return push(s, c, PS_OBJECT_KEY);
    case '[': s->state = ST_BEGIN_VALUE_OR_EMPTY; return push(s, c, PS_ARRAY_VALUE);
    case '"': s->state = ST_IN_STRING; return OP_CONTINUE;
    case '-': s->state = ST_NEG; return OP_CONTINUE;
    case '0': s->state = ST_0; return OP_CONTINUE;
    case 't': s->state = ST_T; return OP_CONTINUE;
    case 'f': s->state = ST_F; return OP_CONTINUE;
    case 'n': s->state = ST_N; return OP_CONTINUE;
    default:
      if (c >= '1' && c <= '9') {
        s->state = ST_1;
        return OP_CONTINUE;
      }
      return fail(s, c, "looking for beginning of value");
  }
}

static int state_0(scanner *s, unsigned c) {
  if (c == '.') {
    s->state = ST_DOT;
    return OP_CONTINUE;
  }
  if (c == 'e' || c == 'E') {
    s->state = ST_E;
    return OP_CONTINUE;
  }
  return end_value(s, c);
}

static int e_sign(scanner *s, unsigned c) {
  if (is_digit(c)) {
    s->state = ST_E0;
    return OP_CONTINUE;
  }
  return fail(s, c, "in exponent of numeric literal");
}

/* One letter of true/false/null. */
static int literal(scanner *s, unsigned c, char want, int next, const char *context) {
  if (c == (unsigned char)want) {
    s->state = next;
    return OP_CONTINUE;
  }
  return fail(s, c, context);
}

static int step(scanner *s, unsigned c) {
  switch (s->state) {
    case ST_BEGIN_VALUE_OR_EMPTY:
      if (is_space(c)) return OP_SKIP_SPACE;
      if (c == ']') return end_value(s, c);
      return begin_value(s, c);
    case ST_BEGIN_VALUE: return begin_value(s, c);
    case ST_BEGIN_STRING_OR_EMPTY:
      if (is_space(c)) return OP_SKIP_SPACE;
      if (c == '}') {
        s->stack[s->depth - 1] = PS_OBJECT_VALUE;
        return end_value(s, c);
      }
      /* fall through */
    case ST_BEGIN_STRING:
      if (is_space(c)) return OP_SKIP_SPACE;
      if (c == '"') {
        s->state = ST_IN_STRING;
        return OP_CONTINUE;
      }
      return fail(s, c, "looking for beginning of object key string");
    case ST_END_VALUE: return end_value(s, c);
    case ST_END_TOP: return end_top(s, c);
    case ST_IN_STRING:
      if (c == '"') {
        s->state = ST_END_VALUE;
        return OP_CONTINUE;
      }
      if (c == '\\') {
        s->state = ST_IN_STRING_ESC;
        return OP_CONTINUE;
      }
      if (c < 0x20) return fail(s, c, "in string literal");
      return OP_CONTINUE;
    case ST_IN_STRING_ESC:
      switch (c) {
        case 'b': case 'f': case 'n': case 'r': case 't': case '\\': case '/': case '"':
          s->state = ST_IN_STRING;
          return OP_CONTINUE;
        case 'u': s->state = ST_ESC_U; return OP_CONTINUE;
        default: return fail(s, c, "in string escape code");
      }
    case ST_ESC_U:
    case ST_ESC_U1:
    case ST_ESC_U12:
    case ST_ESC_U123:
      if (!is_hex(c)) return fail(s, c, "in \\u hexadecimal character escape");
      s->state = s->state == ST_ESC_U123 ? ST_IN_STRING : s->state + 1;
      return OP_CONTINUE;
    case ST_NEG:
      if (c == '0') {
        s->state = ST_0;
        return OP_CONTINUE;
      }
      if (c >= '1' && c <= '9') {
        s->state = ST_1;
        return OP_CONTINUE;
      }
      return fail(s, c, "in numeric literal");
    case ST_1:
      if (is_digit(c)) return OP_CONTINUE;
      return state_0(s, c);
    case ST_0: return state_0(s, c);
    case ST_DOT:
      if (is_digit(c)) {
        s->state = ST_DOT0;
        return OP_CONTINUE;
      }
      return fail(s, c, "after decimal point in numeric literal");
    case ST_DOT0:
      if (is_digit(c)) return OP_CONTINUE;
      if (c == 'e' || c == 'E') {
        s->state = ST_E;
        return OP_CONTINUE;
      }
      return end_value(s, c);
    case ST_E:
      if (c == '+' || c == '-') {
        s->state = ST_E_SIGN;
        return OP_CONTINUE;
      }
      return e_sign(s, c);
    case ST_E_SIGN: return e_sign(s, c);
    case ST_E0:
      if (is_digit(c)) return OP_CONTINUE;
      return end_value(s, c);
    case ST_T: return literal(s, c, 'r', ST_TR, "in literal true (expecting 'r')");
    case ST_TR: return literal(s, c, 'u', ST_TRU, "in literal true (expecting 'u')");
    case ST_TRU: return literal(s, c, 'e', ST_END_VALUE, "in literal true (expecting 'e')");
    case ST_F: return literal(s, c, 'a', ST_FA, "in literal false (expecting 'a')");
    case ST_FA: return literal(s, c, 'l', ST_FAL, "in literal false (expecting 'l')");
    case ST_FAL: return literal(s, c, 's', ST_FALS, "in literal false (expecting 's')");
    case ST_FALS: return literal(s, c, 'e', ST_END_VALUE, "in literal false (expecting 'e')");
    case ST_N: return literal(s, c, 'u', ST_NU, "in literal null (expecting 'u')");
    case ST_NU: return literal(s, c, 'l', ST_NUL, "in literal null (expecting 'l')");
    case ST_NUL: return literal(s, c, 'l', ST_END_VALUE, "in literal null (expecting 'l')");
    default: return OP_ERROR;
  }
}

static void scanner_init(scanner *s) {
  memset(s, 0, sizeof *s);
  s->state = ST_BEGIN_VALUE;
}

/* Frees the scanner; on rc -1 writes the recorded syntax error (if any). */
static int scanner_done(scanner *s, int rc, pc_buf *err) {
  free(s->stack);
  if (s->oom) {
    err->oom = 1;
    return -1;
  }
  if (rc < 0 && s->failed) put_error(s, err);
  return rc;
}

int pc_json_decoder_scan(const char *p, size_t n, size_t *start, size_t *end, pc_buf *err) {
  scanner s;
  scanner_init(&s);
  size_t i;
  for (i = 0; i < n; i++) {
    switch (step(&s, (unsigned char)p[i])) {
      case OP_END: goto found; /* ends before this byte */
      case OP_END_OBJECT:
      case OP_END_ARRAY:
        /* Go invents a blank after the bracket to close the value now. */
        if (end_value(&s, ' ') == OP_END) {
          i++;
          goto found;
        }
        break;
      case OP_ERROR: return scanner_done(&s, -1, err);
      default: break;
    }
  }
  if (step(&s, ' ') == OP_END) goto found;
  {
    int blank = 1;
    for (size_t k = 0; k < n; k++)
      if (!is_space((unsigned char)p[k])) blank = 0;
    pc_buf_puts(err, blank ? "EOF" : "unexpected EOF");
    s.failed = 0; /* the text is io.EOF / io.ErrUnexpectedEOF, not the scanner's */
  }
  return scanner_done(&s, -1, err);
found:
  /* A complaint about the byte after a literal ("after top-level value")
   * does not concern the Decoder: the value is complete. */
  *start = pc_json_skip_ws(p, i, 0);
  *end = i;
  return scanner_done(&s, 0, err);
}

/* ---- the fast check ----------------------------------------------------
 * The same grammar as step(), over whole tokens.  It decides only the
 * clean case: on any doubt (bad byte, end of input) it answers 0 and the
 * scanner above runs from the start, so error texts have one source. */

#define ONES8 0x0101010101010101ULL
#define HIGH8 0x8080808080808080ULL

static uint64_t has_zero_byte(uint64_t v) { return (v - ONES8) & ~v & HIGH8; }

/* The string opening at p[i]: the index past its closing quote, or 0. */
static size_t fast_string(const unsigned char *p, size_t n, size_t i, unsigned *flags) {
  unsigned f = 0;
  i++;
  for (;;) {
#ifdef __SSE2__
    /* Sixteen bytes at a time up to the first '"', '\\' or byte below 0x20. */
    while (n - i >= 16) {
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
      __m128i quote = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
      __m128i bslash = _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'));
      __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x); /* x <= 0x1f */
      __m128i stop = _mm_or_si128(_mm_or_si128(quote, bslash), ctl);
      unsigned m = (unsigned)_mm_movemask_epi8(stop), high = (unsigned)_mm_movemask_epi8(x);
      if (m) {
        unsigned k = (unsigned)__builtin_ctz(m);
        if (high & ((1u << k) - 1)) f |= PC_JS_HIGH;
        i += k;
        break;
      }
      if (high) f |= PC_JS_HIGH;
      i += 16;
    }
#endif
    /* Eight bytes at a time while none is '"', '\\' or below 0x20. */
    while (n - i >= 8) {
      uint64_t x;
      memcpy(&x, p + i, 8);
      uint64_t stop = ((x - 0x20 * ONES8) & ~x & HIGH8) | has_zero_byte(x ^ (0x22 * ONES8)) |
                      has_zero_byte(x ^ (0x5c * ONES8));
      if (stop) break;
      if (x & HIGH8) f |= PC_JS_HIGH;
      i += 8;
    }
    if (i >= n) return 0;
    unsigned c = p[i];
    if (c == '"') {
      *flags = f;
      return i + 1;
    }
    if (c == '\\') {
      f |= PC_JS_ESC;
      if (n - i < 2) return 0;
      switch (p[i + 1]) {
        case 'b': case 'f': case 'n': case 'r': case 't': case '\\': case '/': case '"':
          i += 2;
          continue;
        case 'u':
          if (n - i < 6 || !is_hex(p[i + 2]) || !is_hex(p[i + 3]) || !is_hex(p[i + 4]) ||
              !is_hex(p[i + 5]))
            return 0;
          i += 6;
          continue;
        default: return 0;
      }
    }
    if (c < 0x20) return 0;
    if (c >= 0x80) f |= PC_JS_HIGH;
    i++;
  }
}

static size_t skip_digits(const unsigned char *p, size_t n, size_t i) {
  while (i < n && is_digit(p[i])) i++;
  return i;
}

/* The number starting at p[i] ('-' or a digit): the index past it, or 0. */
static size_t fast_number(const unsigned char *p, size_t n, size_t i) {
  if (p[i] == '-' && ++i >= n) return 0;
  if (p[i] == '0') i++;
  else if (p[i] >= '1' && p[i] <= '9') i = skip_digits(p, n, i + 1);
  else return 0;
  if (i < n && p[i] == '.') {
    if (++i >= n || !is_digit(p[i])) return 0;
    i = skip_digits(p, n, i);
  }
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    if (++i < n && (p[i] == '+' || p[i] == '-')) i++;
    if (i >= n || !is_digit(p[i])) return 0;
    i = skip_digits(p, n, i);
  }
  return i;
}

static size_t fast_literal(const unsigned char *p, size_t n, size_t i, const char *lit,
                           size_t len) {
  return n - i >= len && memcmp(p + i, lit, len) == 0 ? i + len : 0;
}

int pc_json_decoder_fast(const char *text, size_t n, size_t *start, size_t *end,
                         pc_jmembers *mem) {
  const unsigned char *p = (const unsigned char *)text;
  uint64_t objects[(MAX_DEPTH + 63) / 64]; /* bit d: level d is an object */
  size_t depth = 0, i = pc_json_skip_ws(text, n, 0), b = i, v0 = 0, k0;
  unsigned sflags = 0, kflags;
  int obj, record = mem && i < n && p[i] == '{', overflow = 0;
  if (mem) {
    mem->complete = 0;
    mem->n = 0;
  }

value: /* a value starts at p[i] */
  if (i >= n) return 0;
  sflags = 0;
  switch (p[i]) {
    case '{':
    case '[':
      if (depth >= MAX_DEPTH) return 0;
      obj = p[i] == '{';
      if ((depth & 63) == 0) objects[depth >> 6] = 0;
      objects[depth >> 6] &= ~((uint64_t)1 << (depth & 63));
      objects[depth >> 6] |= (uint64_t)obj << (depth & 63);
      depth++;
      i = pc_json_skip_ws(text, n, i + 1);
      if (i >= n) return 0;
      if (p[i] == (obj ? '}' : ']')) {
        i++;
        depth--;
        goto after;
      }
      if (obj) goto key;
      goto value;
    case '"': i = fast_string(p, n, i, &sflags); break;
    case 't': i = fast_literal(p, n, i, "true", 4); break;
    case 'f': i = fast_literal(p, n, i, "false", 5); break;
    case 'n': i = fast_literal(p, n, i, "null", 4); break;
    default:
      if (p[i] != '-' && !is_digit(p[i])) return 0;
      i = fast_number(p, n, i);
      break;
  }
  if (!i) return 0;

after: /* a value ended just before p[i] */
  if (depth == 0) {
    *start = b;
    *end = i;
    if (record) mem->complete = !overflow;
    return 1;
  }
  if (record && depth == 1 && !overflow) {
    mem->val[mem->n - 1] = (pc_jspan){text + v0, i - v0, p[v0] == '"' ? sflags : 0};
  }
  i = pc_json_skip_ws(text, n, i);
  if (i >= n) return 0;
  obj = (int)(objects[(depth - 1) >> 6] >> ((depth - 1) & 63)) & 1;
  if (p[i] == ',') {
    i = pc_json_skip_ws(text, n, i + 1);
    if (obj) goto key;
    goto value;
  }
  if (p[i] != (obj ? '}' : ']')) return 0;
  i++;
  depth--;
  goto after;

key: /* an object key starts at p[i] */
  if (i >= n || p[i] != '"') return 0;
  k0 = i;
  if (!(i = fast_string(p, n, i, &kflags))) return 0;
  if (record && depth == 1 && !overflow) {
    if (mem->n == PC_JMEMBERS_MAX) overflow = 1;
    else mem->key[mem->n++] = (pc_jspan){text + k0, i - k0, kflags};
  }
  i = pc_json_skip_ws(text, n, i);
  if (i >= n || p[i] != ':') return 0;
  i = pc_json_skip_ws(text, n, i + 1);
  if (depth == 1) v0 = i;
  goto value;
}

int pc_json_decoder_value(const char *p, size_t n, size_t *start, size_t *end, pc_buf *err) {
  if (pc_json_decoder_fast(p, n, start, end, NULL)) return 0;
  return pc_json_decoder_scan(p, n, start, end, err);
}

int pc_json_check_document(const char *p, size_t n, pc_buf *err) {
  scanner s;
  scanner_init(&s);
  for (size_t i = 0; i < n; i++)
    if (step(&s, (unsigned char)p[i]) == OP_ERROR) return scanner_done(&s, -1, err);
  if (s.failed) return scanner_done(&s, -1, err);
  if (s.end_top) return scanner_done(&s, 0, err);
  step(&s, ' ');
  if (s.end_top && !s.failed) return scanner_done(&s, 0, err);
  if (!s.failed) pc_buf_puts(err, "unexpected end of JSON input");
  return scanner_done(&s, -1, err);
}

/* ---- walking --------------------------------------------------------- */

size_t pc_json_skip_ws(const char *p, size_t n, size_t i) {
  while (i < n && is_space((unsigned char)p[i])) i++;
  return i;
}

static size_t skip_string(const char *p, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (p[i] == '\\') i++;
    else if (p[i] == '"') return i + 1;
  }
  return n;
}

size_t pc_json_value_at(const char *p, size_t n, size_t i, pc_jval *out) {
  i = pc_json_skip_ws(p, n, i);
  size_t b = i;
  if (i >= n) {
    out->p = p + n;
    out->n = 0;
    return n;
  }
  char c = p[i];
  if (c == '"') {
    i = skip_string(p, n, i);
  } else if (c == '{' || c == '[') {
    size_t depth = 0;
    while (i < n) {
      char d = p[i];
      if (d == '"') {
        i = skip_string(p, n, i);
        continue;
      }
      i++;
      if (d == '{' || d == '[') depth++;
      else if ((d == '}' || d == ']') && --depth == 0) break;
    }
  } else if (c == 't' || c == 'n') {
    i += 4;
  } else if (c == 'f') {
    i += 5;
  } else {
    while (i < n && (is_digit((unsigned char)p[i]) || p[i] == '-' || p[i] == '+' ||
                     p[i] == '.' || p[i] == 'e' || p[i] == 'E'))
      i++;
  }
  if (i > n) i = n;
  out->p = p + b;
  out->n = i - b;
  return i;
}

void pc_jobj_begin(pc_jobj_iter *it, pc_jval obj) {
  it->p = obj.p;
  it->n = obj.n;
  it->i = 1; /* past '{' */
}

int pc_jobj_next(pc_jobj_iter *it, pc_jval *key, pc_jval *val) {
  size_t i = pc_json_skip_ws(it->p, it->n, it->i);
  if (i < it->n && it->p[i] == ',') i = pc_json_skip_ws(it->p, it->n, i + 1);
  if (i >= it->n || it->p[i] != '"') {
    it->i = it->n;
    return 0;
  }
  i = pc_json_value_at(it->p, it->n, i, key);
  i = pc_json_skip_ws(it->p, it->n, i);
  if (i < it->n && it->p[i] == ':') i++;
  it->i = pc_json_value_at(it->p, it->n, i, val);
  return 1;
}

/* ---- strings ---------------------------------------------------------- */

unsigned pc_utf8_decode(const unsigned char *s, size_t n, size_t *size) {
  *size = 1;
  if (n == 0) return 0xFFFD;
  unsigned c = s[0];
  if (c < 0x80) return c;
  unsigned lo = 0x80, hi = 0xBF, need, cp;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    cp = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    cp = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0xFFFD;
  }
  if (n < need + 1) return 0xFFFD;
  for (unsigned k = 1; k <= need; k++) {
    unsigned d = s[k];
    if (d < lo || d > hi) return 0xFFFD;
    lo = 0x80;
    hi = 0xBF;
    cp = (cp << 6) | (d & 0x3F);
  }
  *size = need + 1;
  return cp;
}

static void put_utf8(pc_buf *b, unsigned cp) {
  char o[4];
  size_t k;
  if (cp < 0x80) {
    o[0] = (char)cp;
    k = 1;
  } else if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    k = 2;
  } else if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    k = 3;
  } else {
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    k = 4;
  }
  pc_buf_put(b, o, k);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* \uXXXX at s[0..n): the code unit, or -1. */
static long get_u4(const char *s, size_t n) {
  if (n < 6 || s[0] != '\\' || s[1] != 'u') return -1;
  long r = 0;
  for (int k = 2; k < 6; k++) {
    int h = hexval(s[k]);
    if (h < 0) return -1;
    r = r * 16 + h;
  }
  return r;
}

int pc_json_unquote(pc_jval s, pc_buf *out) {
  if (s.n < 2) return 0;
  const char *p = s.p + 1;
  size_t n = s.n - 2, i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)p[i];
    if (c == '\\' && i + 1 < n) {
      char e = p[i + 1];
      const char *simple = NULL;
      switch (e) {
        case '"': simple = "\""; break;
        case '\\': simple = "\\"; break;
        case '/': simple = "/"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'n': simple = "\n"; break;
        case 'r': simple = "\r"; break;
        case 't': simple = "\t"; break;
        default: break;
      }
      if (simple) {
        pc_buf_putc(out, simple[0]);
        i += 2;
        continue;
      }
      long r = get_u4(p + i, n - i);
      if (r < 0) { /* cannot happen in checked input */
        pc_buf_putc(out, (char)c);
        i++;
        continue;
      }
      i += 6;
      if (r >= 0xD800 && r <= 0xDFFF) {
        long r2 = get_u4(p + i, n - i);
        if (r <= 0xDBFF && r2 >= 0xDC00 && r2 <= 0xDFFF) {
          put_utf8(out, 0x10000 + (((unsigned)r - 0xD800) << 10) + ((unsigned)r2 - 0xDC00));
          i += 6;
          continue;
        }
        r = 0xFFFD;
      }
      put_utf8(out, (unsigned)r);
      continue;
    }
    if (c < 0x80) {
      pc_buf_putc(out, (char)c);
      i++;
      continue;
    }
    size_t sz;
    unsigned cp = pc_utf8_decode((const unsigned char *)p + i, n - i, &sz);
    if (cp == 0xFFFD && sz == 1) put_utf8(out, 0xFFFD);
    else pc_buf_put(out, p + i, sz);
    i += sz;
  }
  return out->oom ? -1 : 0;
}

/* The ASCII letter Go's foldName maps a rune to, or 0 if none. */
static int fold_rune(unsigned cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? (int)(cp - 32) : (int)cp;
  if (cp == 0x17F) return 'S';  /* LATIN SMALL LETTER LONG S */
  if (cp == 0x212A) return 'K'; /* KELVIN SIGN */
  if (cp == 0x131) return 'I';  /* LATIN SMALL LETTER DOTLESS I */
  return 0;
}

int pc_json_key_matches(const char *key, size_t keylen, const char *name) {
  size_t i = 0;
  for (; *name; name++) {
    if (i >= keylen) return 0;
    size_t sz;
    unsigned cp = pc_utf8_decode((const unsigned char *)key + i, keylen - i, &sz);
    int f = fold_rune(cp);
    int want = fold_rune((unsigned char)*name);
    if (!f || f != want) return 0;
    i += sz;
  }
  return i == keylen;
}
