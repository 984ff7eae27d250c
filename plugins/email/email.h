/* The email plugin's shared state and the life of one unit of work (an
 * "op": one bus record, one HTTP send, or one directory upsert). */
#ifndef EMAIL_H
#define EMAIL_H

#include <notifd/plugin.h>
#include <stdint.h>

#include "email_event.h"
#include "email_smtp.h"
#include "email_store.h"
#include "email_template.h"

typedef struct email_op email_op;

/* A config-declared type (`types:`): number EMAIL_TYPE_COUNT + its index. */
typedef struct email_decl {
  const char *name;              /* "order-cancelled" (host-owned) */
  char notification_type[72];    /* "order_cancelled_notification" */
} email_decl;

typedef struct email_plugin {
  notifd_plugin *self;
  const notifd_api *api;

  /* config (strings owned by the host) */
  const char *events_topic, *chat_topic, *notifications_topic, *group;
  const char *from_address, *from_name;
  const char *templates_dir, *store_path, *mongo_uri, *mongo_db, *mongo_collection;
  uint32_t auth;
  uint32_t enabled;            /* bit per built-in EMAIL_* type (declared ones always are) */
  int64_t dedupe_ttl_ms, lease_ms, chat_throttle_ms, max_concurrent;
  int dead_letter_unknown;     /* unknown_recipients: dead_letter (else skip) */
  email_decl decl[EMAIL_MAX_DECLARED];
  int ndecl;
  email_template *tmpl[EMAIL_MAX_TYPES]; /* by type number */
  email_smtp *smtp;
  email_store *store;          /* opened in start() */

  notifd_metric *m_sent, *m_failed, *m_suppressed;

  /* runtime, loop thread only */
  int stopping;
  email_op *live;              /* every op not yet finished (for cleanup) */
  email_op *wait_head, *wait_tail; /* sends waiting for a slot */
  int64_t running;             /* send jobs on the worker pool */
} email_plugin;

enum op_kind { OP_BUS, OP_HTTP_SEND, OP_UPSERT };

/* What the send job found (written on the worker, read on the loop). */
enum outcome {
  OUT_SENT = 0,
  OUT_UNKNOWN_RECIPIENT,   /* no user_email row: drop, no retry */
  OUT_BAD_ADDRESS,         /* the stored address is unusable: drop */
  OUT_STORE_ERROR,         /* directory unreachable: retry */
  OUT_SMTP_TRANSIENT,      /* 4xx or auth trouble: retry */
  OUT_SMTP_PERMANENT,      /* 5xx: drop */
  OUT_TRANSPORT,           /* connect/TLS/timeout: retry */
  OUT_INTERNAL             /* out of memory, template: retry */
};

struct email_op {
  email_plugin *ep;
  int kind;
  email_op *prev, *next;       /* in ep->live */
  email_op *wnext;             /* in the wait queue */
  notifd_bus_msg *msg;         /* OP_BUS */
  notifd_req *req;             /* OP_HTTP_SEND, OP_UPSERT */
  email_event ev;
  char *dedupe_key, *throttle_key;
  int throttle_claimed;
  char *echo;                  /* OP_HTTP_SEND: 201 body */
  size_t echo_len;
  char *user_id, *email, *name; /* OP_UPSERT */
  /* result of the worker */
  int outcome;
  long smtp_code;
  char detail[320];
  /* finishing: kv writes still outstanding before the bus verdict */
  int kv_pending;
  int verdict;                 /* 0 ack, 1 retry, 2 drop */
  char reason[64];
};

/* email_pipeline.c */
email_op *email_op_new(email_plugin *ep, int kind);
void email_op_free(email_op *op);       /* unlinks from ep->live */
void email_on_record(notifd_bus_msg *m, void *ud);
/* Queues the op's send job (respecting max_concurrent); its completion
 * finishes the op.  0 or < 0 (op untouched on failure). */
int email_submit_send(email_op *op);
void email_count(email_plugin *ep, notifd_metric *m, int type, const char *reason);
/* A type's name for metrics and logs: built-in, declared, or "other". */
const char *email_type_label(const email_plugin *ep, int type);

/* email_stream.c: a record of events_topic into op->ev and op->dedupe_key.
 * 1 = mail it; 0 = finished here (acked or dropped); -1 = out of memory. */
int email_stream_decode(email_plugin *ep, notifd_bus_msg *m, email_op *op);

/* email_job.c: runs on a worker thread. */
void email_job_send(email_op *op);
const char *email_outcome_reason(const email_op *op, char *buf, size_t n);

/* email_http.c */
int email_http_register(email_plugin *ep);

#endif
