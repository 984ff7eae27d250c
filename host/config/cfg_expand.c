/* ${VAR} expansion in scalar values (syntax in config.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_internal.h"

static int name_start(int c) {
  return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
static int name_char(int c) { return name_start(c) || (c >= '0' && c <= '9'); }

static char *reason(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *reason(const char *fmt, ...) {
  nd_buf b;
  nd_buf_init(&b);
  va_list ap;
  va_start(ap, fmt);
  nd_buf_vprintf(&b, fmt, ap);
  va_end(ap);
  return nd_buf_steal(&b, NULL);
}

/* Expands one ${...} starting at `p` (pointing at '$'); appends to out and
 * returns the text after the closing brace, or NULL with *why set. */
static const char *expand_ref(const char *p, nd_buf *out, char **why) {
  const char *name = p + 2;
  const char *q = name;
  while (name_char((unsigned char)*q)) q++;
  size_t nlen = (size_t)(q - name);
  const char *close = strchr(p + 2, '}');
  if (!close) {
    *why = reason("unterminated '${%.*s' (missing '}')", (int)nlen, name);
    return NULL;
  }
  if (nlen == 0 || !name_start((unsigned char)*name)) {
    *why = reason("invalid variable reference '${%.*s}'", (int)(close - (p + 2)), p + 2);
    return NULL;
  }
  int has_default = 0, empty_counts = 0;
  const char *def = NULL;
  if (q[0] == ':' && q[1] == '-') {
    has_default = empty_counts = 1;
    def = q + 2;
  } else if (q[0] == '-') {
    has_default = 1;
    def = q + 1;
  } else if (q[0] != '}') {
    *why = reason("unsupported variable reference '${%.*s}' (use ${VAR} or ${VAR:-default})",
                  (int)(close - (p + 2)), p + 2);
    return NULL;
  }
  if (def) {
    const char *nested = strstr(def, "${");
    if (nested && nested < close) {
      *why = reason("nested '${' in the default of '${%.*s' is not supported", (int)nlen, name);
      return NULL;
    }
  }
  char vname[256];
  if (nlen >= sizeof vname) {
    *why = reason("variable name '%.*s...' is too long", 32, name);
    return NULL;
  }
  memcpy(vname, name, nlen);
  vname[nlen] = '\0';
  const char *val = getenv(vname);
  if (val && !(empty_counts && !*val)) {
    nd_buf_puts(out, val);
  } else if (has_default) {
    nd_buf_append(out, def, (size_t)(close - def));
  } else {
    *why = reason("environment variable %s is not set (use ${%s:-default} for a default)", vname,
                  vname);
    return NULL;
  }
  return close + 1;
}

char *nd_cfg_expand(const char *in, char **why) {
  *why = NULL;
  nd_buf out;
  nd_buf_init(&out);
  const char *p = in;
  while (*p) {
    const char *dollar = strchr(p, '$');
    if (!dollar) {
      nd_buf_puts(&out, p);
      break;
    }
    nd_buf_append(&out, p, (size_t)(dollar - p));
    if (dollar[1] == '$') {
      nd_buf_append(&out, "$", 1);
      p = dollar + 2;
    } else if (dollar[1] == '{') {
      p = expand_ref(dollar, &out, why);
      if (!p) {
        nd_buf_free(&out);
        return NULL;
      }
    } else {
      nd_buf_append(&out, "$", 1);
      p = dollar + 1;
    }
  }
  return nd_buf_steal(&out, NULL);
}
