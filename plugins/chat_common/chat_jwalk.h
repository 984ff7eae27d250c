/* A strict, allocation-free JSON walker for the change-record fast path
 * (chat_debezium.c).  It accepts a subset of what jansson's json_loadb
 * accepts, and on that subset reads every value exactly as jansson does;
 * whatever it is not sure of is "unsure" (-1), and the caller falls back to
 * jansson.  Unsure: any syntax error, a \u escape, invalid UTF-8, a control
 * character in a string, a number with a fraction or exponent or beyond
 * int64, nesting deeper than CHAT_JW_MAX_DEPTH, an empty text.
 *
 * It reads either a text (level 0) or the contents of a JSON string value
 * of that text through the string's escapes (level 1: Debezium's `after`,
 * Extended JSON inside a string), without unescaping it first. */
#ifndef CHAT_JWALK_H
#define CHAT_JWALK_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_JW_MAX_DEPTH 32

typedef struct chat_jw {
  const unsigned char *p, *end; /* raw bytes still to read */
  int nested;                   /* 1: read through one level of string escapes */
  int first;                    /* object iteration: no member read yet */
} chat_jw;

typedef struct chat_jw_val {
  char type;                    /* '{' '[' '"' '0' (integer) 't' 'f' 'n' */
  int nested;
  const unsigned char *p, *end; /* raw span of the whole value */
  const unsigned char *cp, *ce; /* strings: raw span of the contents */
  int plain;                    /* strings: no backslash in the raw contents,
                                   so the value is exactly [cp, ce) */
} chat_jw_val;

/* A walker over the text p[0..n). */
void chat_jw_open(chat_jw *w, const void *p, size_t n);
/* A walker over a value met by another walker (to iterate a nested
 * object), or (chat_jw_open_string) over the contents of a level-0 string
 * value read as JSON text.  -1 if s is no level-0 string. */
void chat_jw_open_value(chat_jw *w, const chat_jw_val *v);
int chat_jw_open_string(chat_jw *w, const chat_jw_val *s);

/* Skips blanks and reads '{': 0, or -1. */
int chat_jw_object(chat_jw *w);
/* The next member of the object opened by chat_jw_object: 1 with the key
 * (a string value) and the value (checked throughout), 0 after the closing
 * '}', or -1 (unsure). */
int chat_jw_member(chat_jw *w, chat_jw_val *key, chat_jw_val *val);
/* 0 if only blanks remain, else -1. */
int chat_jw_finish(chat_jw *w);

/* 1 if v is a plain string equal to `s`. */
int chat_jw_is(const chat_jw_val *v, const char *s);
/* 1 if two plain strings (e.g. object keys) have the same contents. */
int chat_jw_same(const chat_jw_val *a, const chat_jw_val *b);
/* A plain string of at most cap-1 bytes, copied NUL-terminated into buf:
 * 0, or -1 (not such a string). */
int chat_jw_copy(const chat_jw_val *v, char *buf, size_t cap);
/* The value of an integer: 0, or -1 if v is no integer. */
int chat_jw_int64(const chat_jw_val *v, int64_t *out);
/* The unescaped value of a string, malloc'd and NUL-terminated; NULL on
 * OOM.  (Strings met by the walker hold no \u escape, so no NUL.) */
char *chat_jw_strdup(const chat_jw_val *s);

#endif
