/* Reading JSON the way Go's encoding/json does (contract 0 and 2.3), so
 * that a body is accepted, rejected and described exactly as the Go
 * services did:
 *  - syntax errors carry the scanner's text ("invalid character 'x'
 *    looking for beginning of value", "unexpected EOF", "EOF", ...);
 *  - json.Decoder.Decode reads only the first value (trailing bytes are
 *    ignored), json.Unmarshal wants exactly one;
 *  - strings are unquoted with Go's rules (invalid UTF-8 and lone
 *    surrogates become U+FFFD);
 *  - object keys match field names case-insensitively (Go's foldName).
 * The walker functions assume a span already checked by one of the two
 * validators. */
#ifndef PC_JSCAN_H
#define PC_JSCAN_H

#include <stddef.h>

#include "pc_buf.h"

/* json.Decoder.Decode: finds the first value of `p[0..n)`.  0 with the
 * value's span [*start, *end) (leading blanks skipped), or -1 with Go's
 * error text in `err` ("EOF" for an empty body, "unexpected EOF" for a
 * truncated one, or a syntax error). */
int pc_json_decoder_value(const char *p, size_t n, size_t *start, size_t *end, pc_buf *err);

/* ---- the two halves of pc_json_decoder_value (binder, tests) --------- */

/* String flags found while checking: */
#define PC_JS_ESC  1 /* has a backslash escape */
#define PC_JS_HIGH 2 /* has a byte >= 0x80 */
#define PC_JS_ANY  (PC_JS_ESC | PC_JS_HIGH) /* unknown: assume both */

#define PC_JMEMBERS_MAX 24

typedef struct pc_jspan { /* a pc_jval and, for strings, its PC_JS_* flags */
  const char *p;
  size_t n;
  unsigned flags;
} pc_jspan;

/* The members of a top-level object, noted by the fast check so that the
 * binder need not scan them again.  `complete` is 0 when the value is not
 * an object or has more than PC_JMEMBERS_MAX members. */
typedef struct pc_jmembers {
  int complete;
  size_t n;
  pc_jspan key[PC_JMEMBERS_MAX], val[PC_JMEMBERS_MAX];
} pc_jmembers;

/* A tight recursive-descent check of exactly the grammar Go's scanner
 * accepts.  1: the first value is valid, with the span
 * pc_json_decoder_value gives (members noted in `mem` if not NULL); 0:
 * not decided (a syntax error, or the end of the input): the caller asks
 * pc_json_decoder_scan, which has Go's error text. */
int pc_json_decoder_fast(const char *p, size_t n, size_t *start, size_t *end, pc_jmembers *mem);

/* The byte-at-a-time port of Go's scanner alone. */
int pc_json_decoder_scan(const char *p, size_t n, size_t *start, size_t *end, pc_buf *err);

/* json.Unmarshal's validity check of a whole document: 0, or -1 with the
 * text ("unexpected end of JSON input", "invalid character ... after
 * top-level value", ...). */
int pc_json_check_document(const char *p, size_t n, pc_buf *err);

/* ---- walking a checked value ------------------------------------------ */

typedef struct pc_jval {
  const char *p; /* first byte of the value ('{', '[', '"', '-', digit, t, f, n) */
  size_t n;      /* its length */
} pc_jval;

/* Index of the first non-blank byte at or after i. */
size_t pc_json_skip_ws(const char *p, size_t n, size_t i);
/* The value starting at p[i] (after blanks): its span, and the index
 * just past it. */
size_t pc_json_value_at(const char *p, size_t n, size_t i, pc_jval *out);

/* Member iteration over an object value `obj` (obj.p[0] == '{'). */
typedef struct pc_jobj_iter {
  const char *p;
  size_t n, i;
} pc_jobj_iter;
void pc_jobj_begin(pc_jobj_iter *it, pc_jval obj);
/* 1 with the next member (key is the quoted string as written), or 0. */
int pc_jobj_next(pc_jobj_iter *it, pc_jval *key, pc_jval *val);

/* Appends the unquoted contents of a string value (quotes included in
 * `s`) with Go's replacement rules.  Returns 0, or -1 on OOM. */
int pc_json_unquote(pc_jval s, pc_buf *out);

/* Go's foldName equality between an unquoted key and an ASCII lowercase
 * field name ("ſ", "K" and "ı" fold to s, k and i as in Go). */
int pc_json_key_matches(const char *key, size_t keylen, const char *name);

/* Decodes one UTF-8 sequence as Go's utf8.DecodeRune: returns the code
 * point and sets *size; invalid input gives U+FFFD with *size 1. */
unsigned pc_utf8_decode(const unsigned char *s, size_t n, size_t *size);

#endif
