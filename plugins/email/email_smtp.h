/* SMTP submission through libcurl easy transfers, run on host worker
 * threads.  Connection reuse: a small pool of easy handles, each keeping its
 * SMTP connection (and TLS session) open between mails; a job borrows one. */
#ifndef EMAIL_SMTP_H
#define EMAIL_SMTP_H

#include <stddef.h>
#include <stdint.h>

enum { EMAIL_STARTTLS_NONE = 0, EMAIL_STARTTLS_TRY, EMAIL_STARTTLS_REQUIRED };

typedef struct email_smtp_cfg {
  const char *url;            /* smtp://host:port[/ehlo-domain] or smtps:// */
  int starttls;               /* EMAIL_STARTTLS_* (smtp:// only) */
  const char *username;       /* NULL = no AUTH */
  const char *password;
  const char *from_addr;      /* envelope sender */
  const char *ca_file;        /* NULL = system CAs */
  int insecure;               /* skip certificate and host name checks */
  int64_t timeout_ms;         /* whole transfer */
  int64_t connect_timeout_ms;
} email_smtp_cfg;

typedef struct email_smtp email_smtp;

typedef struct email_smtp_result {
  int curl_code;              /* CURLcode */
  long smtp_code;             /* last SMTP reply code, 0 if none */
  char error[256];
} email_smtp_result;

/* Copies the strings. 0 or -1 (OOM). */
int email_smtp_new(const email_smtp_cfg *cfg, email_smtp **out);
/* Blocking; any thread.  0 = accepted by the server, -1 = see *res. */
int email_smtp_send(email_smtp *s, const char *rcpt, const char *msg, size_t len,
                    email_smtp_result *res);
/* Thread-safe: makes running and later transfers fail fast (shutdown). */
void email_smtp_abort(email_smtp *s);
/* No transfer may be running. */
void email_smtp_free(email_smtp *s);

#endif
