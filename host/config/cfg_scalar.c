/* Typed reads of scalar nodes: integers, sizes, numbers, booleans and Go
 * style durations. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_internal.h"

#define SHOWN_MAX 64
#define U63 (UINT64_C(1) << 63)

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* "expected <what>, got <description of n>", at n's position. */
static int type_error(nd_cfg_node *n, nd_errors *e, const char *what) {
  if (!n) {
    nd_errors_add(e, NULL, 0, 0, "expected %s, got nothing", what);
    return -1;
  }
  if (n->kind == ND_CFG_MAP) {
    nd_cfg_error_at(e, n, "expected %s, got a map", what);
  } else if (n->kind == ND_CFG_SEQ) {
    nd_cfg_error_at(e, n, "expected %s, got a list", what);
  } else if (n->is_null || !n->str) {
    nd_cfg_error_at(e, n, "expected %s, got null", what);
  } else {
    size_t len = strlen(n->str), cut = len;
    if (cut > SHOWN_MAX) {
      cut = SHOWN_MAX;
      while (cut && ((unsigned char)n->str[cut] & 0xC0) == 0x80) cut--; /* whole UTF-8 chars */
    }
    nd_cfg_error_at(e, n, "expected %s, got '%.*s%s'%s", what, (int)cut, n->str,
                    cut < len ? "..." : "", n->quoted ? " (a quoted string)" : "");
  }
  return -1;
}

/* The text of a non-null scalar, or NULL. */
static const char *text_of(const nd_cfg_node *n, int allow_quoted) {
  if (!n || n->kind != ND_CFG_SCALAR || n->is_null || !n->str) return NULL;
  if (n->quoted && !allow_quoted) return NULL;
  return n->str;
}

int nd_parse_int64(const char *s, int64_t *out) {
  if (!s) return -1;
  const char *p = s;
  int neg = 0;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  int base = 10;
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    p += 2;
  }
  if (!*p) return -1;
  uint64_t limit = neg ? U63 : U63 - 1, v = 0;
  for (; *p; p++) {
    int d;
    if (is_digit(*p)) d = *p - '0';
    else if (base == 16 && isxdigit((unsigned char)*p)) d = tolower((unsigned char)*p) - 'a' + 10;
    else return -1;
    if (v > (limit - (uint64_t)d) / (uint64_t)base) return -1;
    v = v * (uint64_t)base + (uint64_t)d;
  }
  *out = neg ? (v == U63 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
  return 0;
}

int nd_parse_size(const char *s, uint64_t *out) {
  if (!s) return -1;
  static const struct {
    const char *suffix;
    uint64_t mult;
  } suffixes[] = {
      {"B", 1},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
      {"KiB", 1024},
      {"MiB", 1024 * 1024},
      {"GiB", 1024 * 1024 * 1024},
  };
  size_t len = strlen(s), num_end = len;
  while (num_end && isalpha((unsigned char)s[num_end - 1])) num_end--;
  uint64_t mult = 1;
  if (num_end < len) {
    size_t i, n = sizeof suffixes / sizeof suffixes[0];
    for (i = 0; i < n; i++)
      if (strcmp(s + num_end, suffixes[i].suffix) == 0) break;
    if (i == n) return -1;
    mult = suffixes[i].mult;
    while (num_end && s[num_end - 1] == ' ') num_end--;
  }
  char num[32];
  if (num_end == 0 || num_end >= sizeof num) return -1;
  memcpy(num, s, num_end);
  num[num_end] = '\0';
  int64_t v;
  if (num[0] == '-' || num[0] == '+' || nd_parse_int64(num, &v) < 0) return -1;
  if ((uint64_t)v > UINT64_MAX / mult) return -1;
  *out = (uint64_t)v * mult;
  return 0;
}

int nd_parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True",
                                    "yes", "Yes", "YES", "on", "On", "ON", NULL};
  static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False",
                                   "no", "No", "NO", "off", "Off", "OFF", NULL};
  if (!s) return -1;
  for (size_t i = 0; yes[i]; i++)
    if (strcmp(s, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
  for (size_t i = 0; no[i]; i++)
    if (strcmp(s, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  return -1;
}

/* Unit of a duration component, in nanoseconds; 0 if unknown. */
static uint64_t unit_ns(const char *u, size_t len) {
  static const struct {
    const char *name;
    uint64_t ns;
  } units[] = {
      {"ns", 1},
      {"us", 1000},
      {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
      {"\xce\xbcs", 1000}, /* U+03BC Greek small mu */
      {"ms", 1000 * 1000},
      {"s", UINT64_C(1000000000)},
      {"m", UINT64_C(60000000000)},
      {"h", UINT64_C(3600000000000)},
  };
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strlen(units[i].name) == len && memcmp(units[i].name, u, len) == 0) return units[i].ns;
  return 0;
}

int nd_parse_duration_ms(const char *s, int64_t *out) {
  if (!s) return -1;
  const char *p = s;
  int neg = 0;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  if (!*p) return -1;
  if (strcmp(p, "0") == 0) {
    *out = 0;
    return 0;
  }
  const char *q = p;
  while (is_digit(*q)) q++;
  if (!*q) {
    /* A bare integer: milliseconds (our extension to Go's syntax). */
    int64_t v;
    if (nd_parse_int64(s, &v) < 0) return -1;
    *out = v;
    return 0;
  }
  uint64_t total = 0;
  while (*p) {
    uint64_t whole = 0, frac = 0;
    double scale = 1;
    int have_whole = 0, have_frac = 0, frac_full = 0;
    for (; is_digit(*p); p++) {
      uint64_t d = (uint64_t)(*p - '0');
      if (whole > (U63 - d) / 10) return -1;
      whole = whole * 10 + d;
      have_whole = 1;
    }
    if (*p == '.') {
      p++;
      for (; is_digit(*p); p++) {
        have_frac = 1;
        /* Digits past 63 bits of precision cannot change the result. */
        if (frac_full || frac > (U63 - 9) / 10) {
          frac_full = 1;
          continue;
        }
        frac = frac * 10 + (uint64_t)(*p - '0');
        scale *= 10;
      }
    }
    if (!have_whole && !have_frac) return -1;
    const char *u = p;
    while (*p && *p != '.' && !is_digit(*p)) p++;
    uint64_t unit = unit_ns(u, (size_t)(p - u));
    if (!unit) return -1;
    if (whole > U63 / unit) return -1;
    uint64_t v = whole * unit;
    if (frac) {
      v += (uint64_t)((double)frac * ((double)unit / scale));
      if (v > U63) return -1;
    }
    total += v;
    if (total > U63) return -1;
  }
  if (!neg && total > U63 - 1) return -1;
  int64_t ns = neg ? (total == U63 ? INT64_MIN : -(int64_t)total) : (int64_t)total;
  *out = ns / 1000000; /* C division truncates toward zero */
  return 0;
}

int nd_cfg_as_string(nd_cfg_node *n, nd_errors *e, const char **out) {
  const char *t = text_of(n, 1);
  if (!t) return type_error(n, e, "string");
  *out = t;
  return 0;
}

int nd_cfg_as_int(nd_cfg_node *n, nd_errors *e, int64_t *out) {
  const char *t = text_of(n, 0);
  int64_t v;
  if (!t || nd_parse_int64(t, &v) < 0) return type_error(n, e, "integer");
  *out = v;
  return 0;
}

int nd_cfg_as_size(nd_cfg_node *n, nd_errors *e, uint64_t *out) {
  const char *t = text_of(n, 1);
  uint64_t v;
  if (!t || nd_parse_size(t, &v) < 0) return type_error(n, e, "size");
  *out = v;
  return 0;
}

int nd_cfg_as_double(nd_cfg_node *n, nd_errors *e, double *out) {
  const char *t = text_of(n, 0);
  if (t) {
    /* Only decimal notation: strtod alone would take inf, nan and hex. */
    int digits = 0, other = 0;
    for (const char *p = t; *p; p++) {
      if (is_digit(*p)) digits = 1;
      else if (!strchr("+-.eE", *p)) other = 1;
    }
    char *end = NULL;
    double d = digits && !other ? strtod(t, &end) : 0;
    if (digits && !other && end && !*end && isfinite(d)) {
      *out = d;
      return 0;
    }
  }
  return type_error(n, e, "number");
}

int nd_cfg_as_bool(nd_cfg_node *n, nd_errors *e, int *out) {
  const char *t = text_of(n, 0);
  int v;
  if (!t || nd_parse_bool(t, &v) < 0) return type_error(n, e, "boolean");
  *out = v;
  return 0;
}

int nd_cfg_as_duration_ms(nd_cfg_node *n, nd_errors *e, int64_t *out) {
  const char *t = text_of(n, 1);
  int64_t v;
  if (!t || nd_parse_duration_ms(t, &v) < 0) return type_error(n, e, "duration");
  *out = v;
  return 0;
}
