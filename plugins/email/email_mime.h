/* RFC 5322 / MIME message text for one email: Date, Message-ID, From/To
 * with display names, Subject (RFC 2047 encoded words when not plain
 * ASCII), MIME-Version, text/plain (+ text/html as multipart/alternative),
 * UTF-8, quoted-printable bodies, CRLF line endings.  Dot-stuffing is left
 * to libcurl's SMTP upload. */
#ifndef EMAIL_MIME_H
#define EMAIL_MIME_H

#include <stdint.h>

#include "email_util.h"

typedef struct email_compose_in {
  const char *from_addr, *from_name;  /* name may be NULL or "" */
  const char *to_addr, *to_name;
  const char *subject;
  const char *text;                   /* LF or CRLF line endings */
  const char *html;                   /* NULL = text only */
  int64_t date_unix;                  /* Date header */
} email_compose_in;

/* Appends the whole message to `out`: 0, or -1 on OOM. */
int email_compose(const email_compose_in *in, pc_buf *out);

/* Header helpers, exposed for unit tests. `used` is the length of the
 * header line so far (e.g. strlen("Subject: ")); folds with CRLF SP. */
void email_mime_header_text(pc_buf *b, const char *text, size_t used);
void email_mime_mailbox(pc_buf *b, const char *name, const char *addr, size_t used);
void email_mime_qp(pc_buf *b, const char *text);

#endif
