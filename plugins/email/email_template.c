/* Templates are compiled at load into segment lists (literal text or a
 * field index), so rendering on a worker thread is a plain walk. */
#include "email_template.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "email_util.h"

#define MAX_TEMPLATE_BYTES (1024 * 1024)
#define HTML_MARKER "--- html ---"

typedef struct segment {
  const char *lit; /* points into the template's text copy */
  size_t len;
  int field;       /* -1 for a literal */
} segment;

typedef struct part {
  segment *segs;
  size_t n, cap;
} part;

struct email_template {
  int type;
  char *text;      /* the file, normalised: LF endings */
  part subject, body, html;
  int has_html;
  const char *const *fields; /* a built-in type's, or `names` */
  int open;                  /* declared type: any {{name}} is a payload field */
  char *names[EMAIL_MAX_FIELDS + 1]; /* open: the common fields, then the template's */
};

static int part_add(part *p, const char *lit, size_t len, int field) {
  if (field < 0 && len == 0) return 0;
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 8;
    segment *s = realloc(p->segs, cap * sizeof *s);
    if (!s) return -1;
    p->segs = s;
    p->cap = cap;
  }
  p->segs[p->n++] = (segment){lit, len, field};
  return 0;
}

typedef struct loader {
  const char *path;
  char *err;
  size_t errlen;
  email_template *t;
} loader;

static int fail(loader *l, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(loader *l, int line, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (line > 0)
    snprintf(l->err, l->errlen, "%s:%d: %s", l->path, line, msg);
  else
    snprintf(l->err, l->errlen, "%s: %s", l->path, msg);
  return -1;
}

static void known_fields(const email_template *t, char *out, size_t n) {
  size_t used = 0;
  out[0] = '\0';
  for (const char *const *f = t->fields; *f && used < n; f++) {
    int w = snprintf(out + used, n - used, "%s%s", used ? ", " : "", *f);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* The index of a placeholder's field; an open template adds a new name.
 * -1 unknown, -2 out of memory, -3 too many fields. */
static int field_index(loader *l, const char *field) {
  email_template *t = l->t;
  int i = 0;
  for (; t->fields[i]; i++)
    if (strcmp(t->fields[i], field) == 0) return i;
  if (!t->open) return -1;
  if (i >= EMAIL_MAX_FIELDS) return -3;
  if (!(t->names[i] = strdup(field))) return -2;
  return i;
}

/* Compiles [s, s+len) (which lies on `line`, or spans lines starting at
 * `line` for bodies) into segments. */
static int compile(loader *l, part *p, const char *s, size_t len, int line) {
  size_t i = 0, lit_start = 0;
  while (i < len) {
    if (s[i] == '\n') {
      line++;
      i++;
      continue;
    }
    if (s[i] != '{' || i + 1 >= len || s[i + 1] != '{') {
      i++;
      continue;
    }
    if (part_add(p, s + lit_start, i - lit_start, -1) < 0) return fail(l, 0, "out of memory");
    size_t j = i + 2;
    while (j + 1 < len && s[j] != '\n' && !(s[j] == '}' && s[j + 1] == '}')) j++;
    if (j + 1 >= len || s[j] != '}') return fail(l, line, "unclosed '{{' (expected '}}' on the same line)");
    const char *name = s + i + 2;
    size_t nl = j - (i + 2);
    while (nl && (*name == ' ' || *name == '\t')) {
      name++;
      nl--;
    }
    while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t')) nl--;
    char field[64];
    if (nl == 0 || nl >= sizeof field) return fail(l, line, "bad placeholder '{{%.*s}}'", (int)(j - i - 2), s + i + 2);
    memcpy(field, name, nl);
    field[nl] = '\0';
    int idx = field_index(l, field);
    if (idx == -2) return fail(l, 0, "out of memory");
    if (idx == -3)
      return fail(l, line, "more than %d different fields", EMAIL_MAX_FIELDS);
    if (idx < 0) {
      char known[512];
      known_fields(l->t, known, sizeof known);
      return fail(l, line, "unknown field {{%s}} for %s templates (known: %s)", field,
                  email_type_name(l->t->type), known);
    }
    if (part_add(p, NULL, 0, idx) < 0) return fail(l, 0, "out of memory");
    i = j + 2;
    lit_start = i;
  }
  if (part_add(p, s + lit_start, len - lit_start, -1) < 0) return fail(l, 0, "out of memory");
  return 0;
}

static char *read_file(loader *l, size_t *len) {
  FILE *f = fopen(l->path, "rb");
  if (!f) {
    fail(l, 0, "cannot open template: %s", strerror(errno));
    return NULL;
  }
  pc_buf b;
  pc_buf_init(&b);
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.len + n > MAX_TEMPLATE_BYTES) {
      fclose(f);
      pc_buf_free(&b);
      fail(l, 0, "template larger than %d bytes", MAX_TEMPLATE_BYTES);
      return NULL;
    }
    pc_buf_put(&b, chunk, n);
    if (b.oom) break;
  }
  int rerr = ferror(f);
  fclose(f);
  if (rerr || b.oom) {
    pc_buf_free(&b);
    fail(l, 0, rerr ? "read error" : "out of memory");
    return NULL;
  }
  /* Normalise CRLF to LF in place. */
  char *d = pc_buf_steal(&b, &n);
  if (!d) {
    fail(l, 0, "out of memory");
    return NULL;
  }
  size_t w = 0;
  for (size_t r = 0; r < n; r++) {
    if (d[r] == '\r' && r + 1 < n && d[r + 1] == '\n') continue;
    d[w++] = d[r];
  }
  d[w] = '\0';
  *len = w;
  return d;
}

/* Utf-8 check allowing newlines and tabs. */
static int text_valid(const char *s, size_t n, int *bad_line) {
  size_t start = 0;
  int line = 1;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '\n') {
      if (!email_utf8_printable(s + start, i - start)) {
        *bad_line = line;
        return 0;
      }
      start = i + 1;
      line++;
    }
  }
  return 1;
}

static size_t trim_trailing_blank(const char *s, size_t len) {
  while (len && (s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
  return len;
}

static int parse(loader *l, size_t len) {
  email_template *t = l->t;
  const char *s = t->text, *end = s + len;
  int bad_line;
  if (!text_valid(s, len, &bad_line)) return fail(l, bad_line, "not valid UTF-8 text");
  const char *p = s;
  int line = 1, have_subject = 0;
  /* Header block. */
  for (;;) {
    if (p >= end) break;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    size_t ll = (size_t)(eol - p);
    if (ll == 0 || strspn(p, " \t") >= ll) { /* blank line ends the headers */
      p = eol < end ? eol + 1 : end;
      line++;
      break;
    }
    if (*p == '#') {
      /* comment */
    } else {
      const char *colon = memchr(p, ':', ll);
      if (!colon) return fail(l, line, "expected 'Subject: ...' or a blank line before the body");
      size_t nl = (size_t)(colon - p);
      if (nl != 7 || strncasecmp(p, "Subject", 7) != 0)
        return fail(l, line, "unknown header '%.*s' (only Subject is allowed)", (int)nl, p);
      if (have_subject) return fail(l, line, "second Subject line");
      const char *v = colon + 1;
      while (v < eol && (*v == ' ' || *v == '\t')) v++;
      size_t vl = (size_t)(eol - v);
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
      if (vl == 0) return fail(l, line, "empty Subject");
      if (compile(l, &t->subject, v, vl, line) < 0) return -1;
      have_subject = 1;
    }
    p = eol < end ? eol + 1 : end;
    line++;
  }
  if (!have_subject) return fail(l, 1, "missing 'Subject:' line");
  /* Text body, then the optional HTML part. */
  const char *body = p;
  int body_line = line;
  const char *marker = NULL, *html = NULL;
  int html_line = 0;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    size_t ll = (size_t)(eol - p);
    while (ll && (p[ll - 1] == ' ' || p[ll - 1] == '\t')) ll--;
    if (ll == strlen(HTML_MARKER) && memcmp(p, HTML_MARKER, ll) == 0) {
      if (marker) return fail(l, line, "second '" HTML_MARKER "' marker");
      marker = p;
      html = eol < end ? eol + 1 : end;
      html_line = line + 1;
    }
    p = eol < end ? eol + 1 : end;
    line++;
  }
  size_t body_len = trim_trailing_blank(body, (size_t)((marker ? marker : end) - body));
  if (body_len == 0) return fail(l, body_line, "empty text body");
  if (compile(l, &t->body, body, body_len, body_line) < 0) return -1;
  if (marker) {
    size_t html_len = trim_trailing_blank(html, (size_t)(end - html));
    if (html_len == 0) return fail(l, html_line, "empty HTML part after '" HTML_MARKER "'");
    if (compile(l, &t->html, html, html_len, html_line) < 0) return -1;
    t->has_html = 1;
  }
  return 0;
}

static int load(const char *path, int type, int open, email_template **out, char *err,
                size_t errlen) {
  *out = NULL;
  loader l = {path, err, errlen, NULL};
  email_template *t = calloc(1, sizeof *t);
  if (!t) return fail(&l, 0, "out of memory");
  t->type = type;
  t->open = open;
  t->fields = email_type_fields(type);
  l.t = t;
  if (open) {
    const char *const *common = email_common_fields();
    for (int i = 0; common[i]; i++) {
      if (!(t->names[i] = strdup(common[i]))) {
        email_template_free(t);
        return fail(&l, 0, "out of memory");
      }
    }
    t->fields = (const char *const *)t->names;
  }
  size_t len = 0;
  t->text = read_file(&l, &len);
  if (!t->text || parse(&l, len) < 0) {
    email_template_free(t);
    return -1;
  }
  *out = t;
  return 0;
}

int email_template_load(const char *path, int type, email_template **out, char *err,
                        size_t errlen) {
  return load(path, type, 0, out, err, errlen);
}

int email_template_load_declared(const char *path, int type, email_template **out, char *err,
                                 size_t errlen) {
  return load(path, type, 1, out, err, errlen);
}

const char *const *email_template_fields(const email_template *t) { return t->fields; }

void email_template_free(email_template *t) {
  if (!t) return;
  for (int i = 0; i < EMAIL_MAX_FIELDS; i++) free(t->names[i]);
  free(t->subject.segs);
  free(t->body.segs);
  free(t->html.segs);
  free(t->text);
  free(t);
}

enum { ESC_NONE, ESC_LINE, ESC_HTML };

static void put_value(pc_buf *b, const char *v, int esc) {
  if (esc == ESC_NONE) {
    pc_buf_puts(b, v);
    return;
  }
  for (; *v; v++) {
    char c = *v;
    if (esc == ESC_LINE) {
      pc_buf_putc(b, c == '\r' || c == '\n' ? ' ' : c);
      continue;
    }
    switch (c) {
      case '&': pc_buf_puts(b, "&amp;"); break;
      case '<': pc_buf_puts(b, "&lt;"); break;
      case '>': pc_buf_puts(b, "&gt;"); break;
      case '"': pc_buf_puts(b, "&quot;"); break;
      case '\'': pc_buf_puts(b, "&#39;"); break;
      default: pc_buf_putc(b, c);
    }
  }
}

static char *render_part(const part *p, const email_event *ev, int esc) {
  pc_buf b;
  pc_buf_init(&b);
  for (size_t i = 0; i < p->n; i++) {
    const segment *s = &p->segs[i];
    if (s->field < 0) {
      pc_buf_put(&b, s->lit, s->len);
    } else {
      const char *v = ev->vals[s->field];
      put_value(&b, v ? v : "", esc);
    }
  }
  return pc_buf_steal(&b, NULL);
}

int email_template_render(const email_template *t, const email_event *ev, email_rendered *out) {
  memset(out, 0, sizeof *out);
  if (ev->type != t->type) return -1;
  out->subject = render_part(&t->subject, ev, ESC_LINE);
  out->text = render_part(&t->body, ev, ESC_NONE);
  if (t->has_html) out->html = render_part(&t->html, ev, ESC_HTML);
  if (!out->subject || !out->text || (t->has_html && !out->html)) {
    email_rendered_free(out);
    return -1;
  }
  return 0;
}

void email_rendered_free(email_rendered *r) {
  free(r->subject);
  free(r->text);
  free(r->html);
  memset(r, 0, sizeof *r);
}
