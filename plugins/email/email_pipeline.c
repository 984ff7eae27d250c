/* One bus record, start to finish, on the loop thread:
 *
 *   parse -> [chat throttle pre-check: exists] -> kv_claim(dedupe lease)
 *   -> [chat throttle claim] -> send job on a worker (at most max_concurrent at once) -> metrics -> kv writes ->
 *   ack | retry | drop
 *
 * Dedupe key: "email:event:<id>:<user_id>" for the event stream
 * (email_stream.c), "email:<topic>:<record key>" for the legacy topics
 * (partition:offset when the record has no key).  It is claimed for a short lease before sending, marked for
 * dedupe_ttl after a successful send, and released (re-marked with a 1 ms
 * TTL) after a failure so the retry can claim it again.  A record seen again
 * while its key is held is acked as a duplicate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"
#include "email_util.h"
#include "chat_debezium.h"

#define RELEASE_TTL_MS 1
enum { V_ACK, V_RETRY, V_DROP };

/* ---- ops ---- */

email_op *email_op_new(email_plugin *ep, int kind) {
  email_op *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->ep = ep;
  op->kind = kind;
  op->ev.type = -1;
  op->next = ep->live;
  if (ep->live) ep->live->prev = op;
  ep->live = op;
  return op;
}

void email_op_free(email_op *op) {
  if (!op) return;
  email_plugin *ep = op->ep;
  if (op->prev) op->prev->next = op->next; else ep->live = op->next;
  if (op->next) op->next->prev = op->prev;
  email_event_free(&op->ev);
  free(op->dedupe_key);
  free(op->throttle_key);
  free(op->echo);
  free(op->user_id);
  free(op->email);
  free(op->name);
  free(op);
}

const char *email_type_label(const email_plugin *ep, int type) {
  if (type >= EMAIL_TYPE_COUNT && type < EMAIL_TYPE_COUNT + ep->ndecl)
    return ep->decl[type - EMAIL_TYPE_COUNT].name;
  return email_type_name(type);
}

void email_count(email_plugin *ep, notifd_metric *m, int type, const char *reason) {
  const char *v[] = {email_type_label(ep, type), reason, NULL};
  ep->api->metric_add(m, v, 1);
}

/* ---- finishing ---- */

static void apply_verdict(email_op *op) {
  email_plugin *ep = op->ep;
  if (!ep->stopping) {
    if (op->verdict == V_ACK)
      ep->api->bus_ack(op->msg);
    else if (op->verdict == V_RETRY)
      ep->api->bus_retry(op->msg, op->detail);
    else
      ep->api->bus_drop(op->msg, op->reason);
  }
  email_op_free(op);
}

static void on_kv_written(int32_t result, void *ud) {
  (void)result; /* a failed write only weakens dedupe; the verdict stands */
  email_op *op = ud;
  if (--op->kv_pending == 0) apply_verdict(op);
}

static void kv_write(email_op *op, const char *key, int64_t ttl_ms) {
  op->kv_pending++;
  if (op->ep->api->kv_mark(op->ep->self, key, ttl_ms, on_kv_written, op) < 0) op->kv_pending--;
}

/* Writes the dedupe state the verdict needs, then applies it.  The guard
 * count covers callbacks that run before kv_mark returns. */
static void finish_bus(email_op *op, int verdict, int sent) {
  email_plugin *ep = op->ep;
  op->verdict = verdict;
  op->kv_pending = 1;
  if (sent) {
    kv_write(op, op->dedupe_key, ep->dedupe_ttl_ms);
  } else {
    kv_write(op, op->dedupe_key, RELEASE_TTL_MS);
    if (op->throttle_claimed) kv_write(op, op->throttle_key, RELEASE_TTL_MS);
  }
  if (--op->kv_pending == 0) apply_verdict(op);
}

static void finish_send(email_op *op) {
  email_plugin *ep = op->ep;
  int type = op->ev.type;
  char rbuf[32];
  const char *reason = email_outcome_reason(op, rbuf, sizeof rbuf);
  int sent = op->outcome == OUT_SENT;
  if (op->kind != OP_HTTP_SEND && op->outcome == OUT_UNKNOWN_RECIPIENT &&
      !ep->dead_letter_unknown) {
    /* No address on file: that user gets no mail, which is no failure
     * (a single node where nobody registered an address would otherwise
     * log and dead-letter every chat message).  Settled like a sent mail,
     * so the conversation's throttle and the dedupe key hold. */
    email_count(ep, ep->m_suppressed, type, reason);
    ep->api->log(ep->self, NOTIFD_LOG_DEBUG, "%s email for user %s skipped: %s",
                 email_type_label(ep, type), op->ev.recipient_id, op->detail);
    finish_bus(op, V_ACK, 1);
    return;
  }
  if (sent) {
    const char *v[] = {email_type_label(ep, type), NULL};
    ep->api->metric_add(ep->m_sent, v, 1);
    ep->api->log(ep->self, NOTIFD_LOG_INFO, "%s email for user %s: %s",
                 email_type_label(ep, type), op->ev.recipient_id, op->detail);
  } else {
    email_count(ep, ep->m_failed, type, reason);
    ep->api->log(ep->self, NOTIFD_LOG_WARN, "%s email for user %s failed (%s): %s",
                 email_type_label(ep, type), op->ev.recipient_id, reason, op->detail);
  }
  if (op->kind == OP_HTTP_SEND) {
    if (sent)
      ep->api->respond(op->req, 201, "application/json; charset=utf-8", op->echo, op->echo_len);
    else
      ep->api->respond_error(op->req, 500, "failed to send email");
    email_op_free(op);
    return;
  }
  int verdict = V_RETRY;
  switch (op->outcome) {
    case OUT_SENT: verdict = V_ACK; break;
    case OUT_UNKNOWN_RECIPIENT:
    case OUT_BAD_ADDRESS:
      verdict = V_DROP;
      snprintf(op->reason, sizeof op->reason, "%s", reason);
      break;
    case OUT_SMTP_PERMANENT:
      verdict = V_DROP;
      snprintf(op->reason, sizeof op->reason, "smtp_permanent_%ld", op->smtp_code);
      break;
    default: break;
  }
  finish_bus(op, verdict, sent);
}

/* ---- send jobs ---- */

static void job_work(void *ud) { email_job_send(ud); }

static void pump(email_plugin *ep);

static void job_done(void *ud) {
  email_op *op = ud;
  email_plugin *ep = op->ep;
  ep->running--;
  if (ep->stopping) {
    email_op_free(op);
    return;
  }
  pump(ep);
  finish_send(op);
}

static int run_job(email_op *op) {
  email_plugin *ep = op->ep;
  int rc = ep->api->work_submit(ep->self, job_work, job_done, op);
  if (rc == 0) ep->running++;
  return rc;
}

static void fail_unsubmitted(email_op *op) {
  op->outcome = OUT_INTERNAL;
  snprintf(op->detail, sizeof op->detail, "cannot submit the send job");
  finish_send(op);
}

static void pump(email_plugin *ep) {
  while (ep->wait_head && ep->running < ep->max_concurrent) {
    email_op *op = ep->wait_head;
    ep->wait_head = op->wnext;
    if (!ep->wait_head) ep->wait_tail = NULL;
    op->wnext = NULL;
    if (run_job(op) < 0) fail_unsubmitted(op);
  }
}

int email_submit_send(email_op *op) {
  email_plugin *ep = op->ep;
  if (ep->stopping) return NOTIFD_ECLOSED;
  if (ep->running < ep->max_concurrent) return run_job(op);
  if (ep->wait_tail) ep->wait_tail->wnext = op; else ep->wait_head = op;
  ep->wait_tail = op;
  return 0;
}

/* ---- bus records ---- */

static void submit_or_retry(email_op *op) {
  if (email_submit_send(op) < 0) fail_unsubmitted(op);
}

static void on_throttle_claimed(int32_t result, void *ud) {
  email_op *op = ud;
  email_plugin *ep = op->ep;
  if (ep->stopping) {
    email_op_free(op);
    return;
  }
  if (result < 0) {
    snprintf(op->detail, sizeof op->detail, "kv unavailable (throttle claim)");
    finish_bus(op, V_RETRY, 0);
    return;
  }
  if (result == 0) {
    /* Handled: this conversation already mailed within the window. */
    email_count(ep, ep->m_suppressed, op->ev.type, "throttled");
    finish_bus(op, V_ACK, 1);
    return;
  }
  op->throttle_claimed = 1;
  submit_or_retry(op);
}

static void on_dedupe_claimed(int32_t result, void *ud) {
  email_op *op = ud;
  email_plugin *ep = op->ep;
  if (ep->stopping) {
    email_op_free(op);
    return;
  }
  if (result < 0) {
    ep->api->bus_retry(op->msg, "kv unavailable (dedupe claim)");
    email_op_free(op);
    return;
  }
  if (result == 0) {
    email_count(ep, ep->m_suppressed, op->ev.type, "duplicate");
    ep->api->log(ep->self, NOTIFD_LOG_INFO, "duplicate record %s: not mailed again",
                 op->dedupe_key);
    ep->api->bus_ack(op->msg);
    email_op_free(op);
    return;
  }
  if (op->throttle_key) {
    if (ep->api->kv_claim(ep->self, op->throttle_key, ep->chat_throttle_ms, on_throttle_claimed,
                          op) < 0) {
      snprintf(op->detail, sizeof op->detail, "kv unavailable (throttle claim)");
      finish_bus(op, V_RETRY, 0);
    }
    return;
  }
  submit_or_retry(op);
}

static void claim_dedupe(email_op *op) {
  email_plugin *ep = op->ep;
  if (ep->api->kv_claim(ep->self, op->dedupe_key, ep->lease_ms, on_dedupe_claimed, op) < 0) {
    ep->api->bus_retry(op->msg, "kv unavailable (dedupe claim)");
    email_op_free(op);
  }
}

/* Pre-check of the chat throttle: 1 = this conversation was mailed within
 * the window (suppressed, acked, nothing written); otherwise (0, or an
 * error under fail-closed) the normal claim path decides. */
static void on_throttle_checked(int32_t result, void *ud) {
  email_op *op = ud;
  email_plugin *ep = op->ep;
  if (ep->stopping) {
    email_op_free(op);
    return;
  }
  if (result == 1) {
    email_count(ep, ep->m_suppressed, op->ev.type, "throttled");
    ep->api->bus_ack(op->msg);
    email_op_free(op);
    return;
  }
  claim_dedupe(op);
}

/* "email:<topic>:<key>": printable keys verbatim, others in hex; records
 * without a key by partition and offset. */
static char *dedupe_key(email_plugin *ep, notifd_bus_msg *m, const char *topic) {
  size_t klen = 0;
  const unsigned char *k = ep->api->msg_key(m, &klen);
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_printf(&b, "email:%s:", topic);
  if (!k || !klen) {
    pc_buf_printf(&b, "p%d@%lld", (int)ep->api->msg_partition(m),
                  (long long)ep->api->msg_offset(m));
  } else if (email_utf8_printable((const char *)k, klen) && !memchr(k, '\t', klen)) {
    pc_buf_put(&b, k, klen);
  } else {
    pc_buf_puts(&b, "hex:");
    for (size_t i = 0; i < klen; i++) pc_buf_printf(&b, "%02x", k[i]);
  }
  return pc_buf_steal(&b, NULL);
}

/* A change record's document as a chat event (strings are copied). */
static int event_from_change(email_event *ev, const chat_message *cm) {
  email_chat_msg m = {.message_id = cm->message_id, .content = cm->content,
                      .stream_id = cm->stream_id, .sender_id = cm->sender_id,
                      .receiver_id = cm->receiver_id};
  email_time_from_unix_ms(cm->created_at_ms, &m.created_at);
  if (email_event_from_chat(ev, &m) < 0) return -1;
  return email_event_set_n(ev, "content", cm->content, cm->content_len);
}

/* Decodes a record into op->ev.  1 = mail it; 0 = finished here (acked or
 * dropped); -1 = out of memory (retried). */
static int decode_record(email_plugin *ep, notifd_bus_msg *m, const char *topic, email_op *op) {
  size_t vlen = 0;
  const void *val = ep->api->msg_value(m, &vlen);
  const char *why = "invalid record";
  if (*ep->events_topic && strcmp(topic, ep->events_topic) == 0) {
    int rc = email_stream_decode(ep, m, op);
    if (rc <= 0) return rc;
  } else if (*ep->chat_topic && strcmp(topic, ep->chat_topic) == 0) {
    chat_change cc;
    chat_change_parse(val, vlen, NULL, &cc);
    int rc = 0;
    switch (cc.kind) {
      case CHAT_CHANGE_FORWARD: rc = event_from_change(&op->ev, &cc.msg) < 0 ? -1 : 1; break;
      case CHAT_CHANGE_NOMEM: rc = -1; break;
      case CHAT_CHANGE_DROP:
        email_count(ep, ep->m_failed, EMAIL_CHAT, "invalid_record");
        ep->api->log(ep->self, NOTIFD_LOG_WARN, "chat record %s@%lld dropped: %s", topic,
                     (long long)ep->api->msg_offset(m), cc.detail);
        ep->api->bus_drop(m, "invalid_record");
        break;
      default: /* updates, deletes, tombstones, heartbeats: nothing to mail */
        email_count(ep, ep->m_suppressed, EMAIL_CHAT, "not_insert");
        ep->api->bus_ack(m);
    }
    chat_change_free(&cc);
    if (rc <= 0) return rc;
  } else {
    json_t *rec = val && vlen ? json_loadb(val, vlen, 0, NULL) : NULL;
    int type = -1;
    int rc = email_event_from_notification(&op->ev, rec, &type, &why);
    json_decref(rec);
    if (rc == -2) return -1;
    if (rc == 1) {
      email_count(ep, ep->m_suppressed, type, "unsupported_type");
      ep->api->bus_ack(m);
      return 0;
    }
    if (rc < 0) {
      email_count(ep, ep->m_failed, type, "invalid_record");
      ep->api->log(ep->self, NOTIFD_LOG_WARN, "notification record %s@%lld dropped: %s", topic,
                   (long long)ep->api->msg_offset(m), why);
      ep->api->bus_drop(m, "invalid_record");
      return 0;
    }
  }
  if (!op->ev.recipient_id || !*op->ev.recipient_id) {
    email_count(ep, ep->m_failed, op->ev.type, "invalid_record");
    ep->api->bus_drop(m, "invalid_record");
    return 0;
  }
  if (op->ev.type < EMAIL_TYPE_COUNT && !(ep->enabled & (1u << op->ev.type))) {
    email_count(ep, ep->m_suppressed, op->ev.type, "disabled_type");
    ep->api->bus_ack(m);
    return 0;
  }
  return 1;
}

void email_on_record(notifd_bus_msg *m, void *ud) {
  email_plugin *ep = ud;
  const char *topic = ep->api->msg_topic(m);
  email_op *op = email_op_new(ep, OP_BUS);
  if (!op) {
    ep->api->bus_retry(m, "out of memory");
    return;
  }
  op->msg = m;
  int rc = decode_record(ep, m, topic, op);
  if (rc <= 0) {
    if (rc < 0) ep->api->bus_retry(m, "out of memory");
    email_op_free(op);
    return;
  }
  if (!op->dedupe_key) op->dedupe_key = dedupe_key(ep, m, topic); /* events set theirs */
  if (op->ev.type == EMAIL_CHAT && ep->chat_throttle_ms > 0) {
    pc_buf b;
    pc_buf_init(&b);
    pc_buf_printf(&b, "email:throttle:%s:%s", email_event_get(&op->ev, "stream_id"),
                  op->ev.recipient_id);
    op->throttle_key = pc_buf_steal(&b, NULL);
    if (!op->throttle_key) {
      ep->api->bus_retry(m, "out of memory");
      email_op_free(op);
      return;
    }
  }
  if (!op->dedupe_key) {
    ep->api->bus_retry(m, "out of memory");
    email_op_free(op);
    return;
  }
  /* A throttled conversation is the common case under chat load: one read
   * settles it, instead of a dedupe claim, a failed throttle claim and a
   * dedupe mark (three writes). */
  if (op->throttle_key &&
      ep->api->kv_exists(ep->self, op->throttle_key, on_throttle_checked, op) == 0)
    return;
  claim_dedupe(op);
}
