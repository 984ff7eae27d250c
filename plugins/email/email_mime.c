/* Message assembly.  Line lengths: headers are folded to stay near 78
 * columns; quoted-printable keeps body lines at most 76 columns, so the
 * message survives any 7-bit relay. */
#include "email_mime.h"

#include <stdio.h>
#include <string.h>

#include "email_time.h"

#define FOLD_AT 76
/* "=?UTF-8?B?" + "?=" around at most 45 bytes (60 base64 chars): one
 * encoded word stays within RFC 2047's 75 characters. */
#define EW_MAX_BYTES 45

static int needs_encoding(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p >= 0x7F || (*p < 0x20 && *p != '\t')) return 1;
  return strstr(s, "=?") != NULL;
}

static void base64(pc_buf *b, const unsigned char *p, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    char o[4] = {tbl[(v >> 18) & 63], tbl[(v >> 12) & 63], i + 1 < n ? tbl[(v >> 6) & 63] : '=',
                 i + 2 < n ? tbl[v & 63] : '='};
    pc_buf_put(b, o, 4);
  }
}

/* Bytes of the UTF-8 character starting at s (1 for stray bytes). */
static size_t utf8_len(const unsigned char *s) {
  if (*s < 0xC0) return 1;
  size_t n = *s >= 0xF0 ? 4 : *s >= 0xE0 ? 3 : 2;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xC0) != 0x80) return 1;
  return n;
}

/* Encoded words, never splitting a UTF-8 character, each line holding
 * encoded words at most 76 columns (RFC 2047 section 2); adjacent words are
 * separated by folding, which decoders drop.  Control characters (CR/LF
 * included) become spaces.  Returns the column after the text. */
static size_t encoded_words(pc_buf *b, const char *text, size_t used) {
  const unsigned char *p = (const unsigned char *)text;
  int first = 1;
  while (*p) {
    if (!first) {
      pc_buf_puts(b, "\r\n ");
      used = 1;
    }
    size_t avail = used + 12 < FOLD_AT ? FOLD_AT - used - 12 : 0;
    size_t max = avail / 4 * 3;
    if (max > EW_MAX_BYTES) max = EW_MAX_BYTES;
    if (max < 4) { /* not even one character fits after the header name */
      pc_buf_puts(b, "\r\n ");
      used = 1;
      max = EW_MAX_BYTES;
    }
    unsigned char chunk[EW_MAX_BYTES];
    size_t n = 0;
    while (*p) {
      size_t cl = utf8_len(p);
      if (n + cl > max) break;
      for (size_t i = 0; i < cl; i++) chunk[n + i] = p[i] < 0x20 || p[i] == 0x7F ? ' ' : p[i];
      n += cl;
      p += cl;
    }
    pc_buf_puts(b, "=?UTF-8?B?");
    base64(b, chunk, n);
    pc_buf_puts(b, "?=");
    used += 12 + (n + 2) / 3 * 4;
    first = 0;
  }
  return used;
}

/* Plain ASCII: folds before a space when a line would pass FOLD_AT.
 * Returns the column after the text. */
static size_t folded_ascii(pc_buf *b, const char *text, size_t used) {
  const char *p = text;
  while (*p) {
    const char *sp = strchr(p + 1, ' ');
    size_t wl = sp ? (size_t)(sp - p) : strlen(p);
    if (used + wl > FOLD_AT && used > 1 && *p == ' ') {
      pc_buf_puts(b, "\r\n");
      used = 0;
    }
    pc_buf_put(b, p, wl);
    used += wl;
    p += wl;
  }
  return used;
}

void email_mime_header_text(pc_buf *b, const char *text, size_t used) {
  if (needs_encoding(text))
    encoded_words(b, text, used);
  else
    folded_ascii(b, text, used);
}

void email_mime_mailbox(pc_buf *b, const char *name, const char *addr, size_t used) {
  if (name && *name) {
    if (needs_encoding(name)) {
      used = encoded_words(b, name, used);
    } else {
      /* A quoted-string is always a valid display name. */
      pc_buf_putc(b, '"');
      used++;
      for (const char *p = name; *p; p++, used++) {
        if (*p == '"' || *p == '\\') {
          pc_buf_putc(b, '\\');
          used++;
        }
        pc_buf_putc(b, *p);
      }
      pc_buf_putc(b, '"');
      used++;
    }
    if (used + strlen(addr) + 3 > FOLD_AT) {
      pc_buf_puts(b, "\r\n");
      used = 0;
    }
    pc_buf_putc(b, ' ');
  }
  pc_buf_putc(b, '<');
  pc_buf_puts(b, addr);
  pc_buf_putc(b, '>');
}

void email_mime_qp(pc_buf *b, const char *text) {
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *p = (const unsigned char *)text;
  size_t col = 0;
  while (*p) {
    if (*p == '\r' || *p == '\n') {
      pc_buf_puts(b, "\r\n");
      col = 0;
      p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
      continue;
    }
    unsigned char c = *p;
    int at_eol = p[1] == '\0' || p[1] == '\r' || p[1] == '\n';
    int literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
    size_t w = literal ? 1 : 3;
    /* Keep room for the soft break '=' unless this is the line's end. */
    if (col + w > (at_eol ? 76u : 75u)) {
      pc_buf_puts(b, "=\r\n");
      col = 0;
    }
    if (literal) {
      pc_buf_putc(b, (char)c);
    } else {
      char e[3] = {'=', hex[c >> 4], hex[c & 15]};
      pc_buf_put(b, e, 3);
    }
    col += w;
    p++;
  }
}

static void hexrand(char *out, size_t nbytes) {
  static const char hex[] = "0123456789abcdef";
  unsigned char r[32];
  if (nbytes > sizeof r) nbytes = sizeof r;
  email_random(r, nbytes);
  for (size_t i = 0; i < nbytes; i++) {
    out[2 * i] = hex[r[i] >> 4];
    out[2 * i + 1] = hex[r[i] & 15];
  }
  out[2 * nbytes] = '\0';
}

static void text_part_headers(pc_buf *b, const char *subtype) {
  pc_buf_printf(b,
                "Content-Type: text/%s; charset=UTF-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n",
                subtype);
}

int email_compose(const email_compose_in *in, pc_buf *b) {
  char date[64], id[40], boundary[40];
  email_time_format_rfc5322(in->date_unix, date, sizeof date);
  hexrand(id, 16);
  const char *at = strrchr(in->from_addr, '@');
  const char *domain = at && at[1] ? at + 1 : "localhost";

  pc_buf_printf(b, "Date: %s\r\n", date);
  pc_buf_puts(b, "From: ");
  email_mime_mailbox(b, in->from_name, in->from_addr, 6);
  pc_buf_puts(b, "\r\nTo: ");
  email_mime_mailbox(b, in->to_name, in->to_addr, 4);
  pc_buf_puts(b, "\r\nSubject: ");
  email_mime_header_text(b, in->subject, 9);
  pc_buf_printf(b, "\r\nMessage-ID: <%s@%s>\r\n", id, domain);
  /* RFC 3834: machine-generated, so vacation responders stay quiet. */
  pc_buf_puts(b, "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n");
  if (!in->html) {
    text_part_headers(b, "plain");
    pc_buf_puts(b, "\r\n");
    email_mime_qp(b, in->text);
    pc_buf_puts(b, "\r\n");
  } else {
    /* "=_" never occurs in quoted-printable output, so the boundary cannot
     * collide with the content. */
    hexrand(boundary + 2, 12);
    boundary[0] = '=';
    boundary[1] = '_';
    pc_buf_printf(b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary);
    pc_buf_printf(b, "--%s\r\n", boundary);
    text_part_headers(b, "plain");
    pc_buf_puts(b, "\r\n");
    email_mime_qp(b, in->text);
    pc_buf_printf(b, "\r\n--%s\r\n", boundary);
    text_part_headers(b, "html");
    pc_buf_puts(b, "\r\n");
    email_mime_qp(b, in->html);
    pc_buf_printf(b, "\r\n--%s--\r\n", boundary);
  }
  return b->oom ? -1 : 0;
}
