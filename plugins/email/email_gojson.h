/* The Go HTTP endpoints' request binding and 201 echoes (contract 0, 2.3,
 * 2.5): gin's ShouldBindJSON + validator messages, and encoding/json output
 * (fields in declaration order, HTML-escaped strings, RFC 3339 times,
 * shortest floats). */
#ifndef EMAIL_GOJSON_H
#define EMAIL_GOJSON_H

#include <jansson.h>
#include <stddef.h>

#include "email_event.h"

/* 0 = bound and valid; -1 = 400 with the Go error text in *err (malloc'd);
 * -2 = out of memory.  On success the caller frees *out. */
int email_bind_chat(const json_t *body, email_chat_msg *out, char **err);
int email_bind_purchase(const json_t *body, email_purchase *out, char **err);

/* encoding/json renderings of the bound values (malloc'd, NULL on OOM). */
char *email_echo_chat(const email_chat_msg *m, size_t *len);
char *email_echo_purchase(const email_purchase *p, size_t *len);

/* strconv.FormatFloat(v, 'f' or 'e' as encoding/json picks, -1, 64). */
void email_go_float(double v, char *out, size_t n);

#endif
