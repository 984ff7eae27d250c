/* The blocking part of one email, on a host worker thread: directory
 * lookups, rendering, MIME assembly and the SMTP transfer.  Reads only
 * immutable plugin state (templates, config) and thread-safe objects
 * (store, smtp); writes only its own op. */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "email.h"
#include "email_util.h"
#include "email_mime.h"

static void set_outcome(email_op *op, int outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_outcome(email_op *op, int outcome, const char *fmt, ...) {
  op->outcome = outcome;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(op->detail, sizeof op->detail, fmt, ap);
  va_end(ap);
}

/* SMTP reply classes (RFC 5321 4.2.1): 5xx is permanent, except the
 * authentication family, which is a server-wide configuration problem and
 * must not dead-letter every mail while it is being fixed. */
static int smtp_outcome(const email_smtp_result *r) {
  long c = r->smtp_code;
  if (c >= 500 && c <= 599) {
    if (c == 530 || c == 534 || c == 535 || c == 538) return OUT_SMTP_TRANSIENT;
    return OUT_SMTP_PERMANENT;
  }
  if (c >= 400 && c <= 499) return OUT_SMTP_TRANSIENT;
  return OUT_TRANSPORT;
}

void email_job_send(email_op *op) {
  email_plugin *ep = op->ep;
  email_event *ev = &op->ev;
  char err[256] = "";
  email_user to = {0}, from = {0};
  email_rendered r = {0};
  pc_buf msg;
  pc_buf_init(&msg);

  int found = ep->store->ops->lookup(ep->store, ev->recipient_id, &to, err, sizeof err);
  if (found < 0) {
    set_outcome(op, OUT_STORE_ERROR, "recipient lookup: %s", err);
    goto out;
  }
  if (found == 0) {
    set_outcome(op, OUT_UNKNOWN_RECIPIENT, "no user_email entry for user '%s'", ev->recipient_id);
    goto out;
  }
  if (!email_addr_valid(to.email)) {
    set_outcome(op, OUT_BAD_ADDRESS, "user_email address '%s' is not usable", to.email);
    goto out;
  }
  const char *to_name = to.name && *to.name ? to.name : ev->recipient_id;
  int bad = email_event_set(ev, "recipient_id", ev->recipient_id) < 0;
  bad |= email_event_set(ev, "recipient_name", to_name) < 0;
  bad |= email_event_set(ev, "recipient_email", to.email) < 0;
  bad |= email_event_set(ev, "from_name", ep->from_name) < 0;
  if (ev->type == EMAIL_CHAT) {
    /* The subject names the sender; an unknown sender shows its id. */
    const char *sender_name = ev->sender_id;
    if (ev->sender_id && *ev->sender_id) {
      int sf = ep->store->ops->lookup(ep->store, ev->sender_id, &from, err, sizeof err);
      if (sf < 0) {
        set_outcome(op, OUT_STORE_ERROR, "sender lookup: %s", err);
        goto out;
      }
      if (sf == 1 && from.name && *from.name) sender_name = from.name;
    }
    bad |= email_event_set(ev, "sender_name", sender_name) < 0;
    bad |= email_event_set(ev, "receiver_name", to_name) < 0;
  }
  if (bad || email_template_render(ep->tmpl[ev->type], ev, &r) < 0) {
    set_outcome(op, OUT_INTERNAL, "out of memory while rendering");
    goto out;
  }
  email_compose_in in = {
      .from_addr = ep->from_address,
      .from_name = ep->from_name,
      .to_addr = to.email,
      .to_name = to.name,
      .subject = r.subject,
      .text = r.text,
      .html = r.html,
      .date_unix = (int64_t)time(NULL),
  };
  if (email_compose(&in, &msg) < 0) {
    set_outcome(op, OUT_INTERNAL, "out of memory while composing");
    goto out;
  }
  email_smtp_result res;
  if (email_smtp_send(ep->smtp, to.email, msg.data, msg.len, &res) == 0) {
    set_outcome(op, OUT_SENT, "sent to %s", to.email);
  } else {
    op->smtp_code = res.smtp_code;
    set_outcome(op, res.curl_code == CURLE_OUT_OF_MEMORY ? OUT_INTERNAL : smtp_outcome(&res),
                "smtp: %s", res.error);
  }
out:
  email_rendered_free(&r);
  email_user_free(&to);
  email_user_free(&from);
  pc_buf_free(&msg);
}

const char *email_outcome_reason(const email_op *op, char *buf, size_t n) {
  switch (op->outcome) {
    case OUT_SENT: return "sent";
    case OUT_UNKNOWN_RECIPIENT: return "unknown_recipient";
    case OUT_BAD_ADDRESS: return "invalid_address";
    case OUT_STORE_ERROR: return "store_error";
    case OUT_SMTP_TRANSIENT:
    case OUT_SMTP_PERMANENT:
      snprintf(buf, n, "smtp_%ld", op->smtp_code);
      return buf;
    case OUT_TRANSPORT: return "transport";
    default: return "internal";
  }
}
