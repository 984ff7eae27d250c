/* Email templates: one file per event type, <templates_dir>/<type>.tmpl.
 *
 * Format (UTF-8; LF or CRLF line endings):
 *
 *     # comment lines are allowed before the first blank line
 *     Subject: You have a new chat message from {{sender_name}}
 *
 *     Text body, up to the HTML marker or the end of the file.
 *     --- html ---
 *     <p>Optional HTML body; values are HTML-escaped here.</p>
 *
 * The header block ends at the first blank line and must contain exactly one
 * `Subject:` line (no other headers).  A line that is exactly `--- html ---`
 * starts the optional HTML part; with it the mail is multipart/alternative.
 * `{{name}}` (spaces inside the braces allowed) is replaced by the event's
 * field; the names each type offers are listed by email_type_fields().  An
 * unknown name, an unclosed `{{`, a missing Subject or an empty text body is
 * a load error reported as "<path>:<line>: <problem>". */
#ifndef EMAIL_TEMPLATE_H
#define EMAIL_TEMPLATE_H

#include <stddef.h>

#include "email_event.h"

typedef struct email_template email_template;

/* 0, or -1 with "<path>:<line>: ..." in err. */
int email_template_load(const char *path, int type, email_template **out, char *err,
                        size_t errlen);
/* A config-declared type's template: every {{name}} other than the common
 * recipient fields is a top-level payload field (any name, at most
 * EMAIL_MAX_FIELDS in all).  Same format and errors otherwise. */
int email_template_load_declared(const char *path, int type, email_template **out, char *err,
                                 size_t errlen);
/* The template's field names (NULL-terminated, in the order of an event's
 * vals; valid as long as the template): build a declared type's events
 * with them. */
const char *const *email_template_fields(const email_template *t);
void email_template_free(email_template *t);

typedef struct email_rendered {
  char *subject;  /* one line: CR/LF in values become spaces */
  char *text;     /* LF line endings */
  char *html;     /* NULL when the template has no HTML part */
} email_rendered;

/* Thread-safe (templates are read-only after load).  0, or -1 on OOM. */
int email_template_render(const email_template *t, const email_event *ev, email_rendered *out);
void email_rendered_free(email_rendered *r);

#endif
