/* chat_persistence internals: plugin state, worker jobs, HTTP handlers and
 * the change relay. */
#ifndef CP_INTERNAL_H
#define CP_INTERNAL_H

#include <notifd/plugin.h>
#include <stdint.h>

#include "chat_oid.h"
#include "cp_store.h"
#include "pc_time.h"

enum { CP_RELAY_NONE = 0, CP_RELAY_OUTBOX, CP_RELAY_POLL };

typedef struct cp_relay cp_relay;
typedef struct cp_job cp_job;
typedef struct cp_plugin cp_plugin;

/* Blocking work for the host pool.  `work` runs on a worker thread and
 * touches only the job and the store; `done` runs on the loop.  A job whose
 * completion never ran (host torn down) is released with `release` at
 * destroy. */
struct cp_job {
  cp_job *prev, *next;
  cp_plugin *pl;
  void (*work)(cp_job *j);
  void (*done)(cp_job *j);
  void (*release)(cp_job *j);
};

typedef struct cp_receipt cp_receipt;

typedef struct cp_metrics {
  notifd_metric *requests;      /* {result} */
  notifd_metric *store_seconds; /* {op} */
  notifd_metric *published;     /* relay: records acknowledged by the bus */
  notifd_metric *publish_errors;
  notifd_metric *relay_errors;  /* fetch / mark failures */
} cp_metrics;

struct cp_plugin {
  notifd_plugin *self;
  const notifd_api *api;
  /* configuration (strings owned by the host) */
  const char *change_topic;
  int64_t max_content_bytes;
  int64_t max_id_bytes;
  int32_t verify_stream_id;
  uint32_t auth;              /* NOTIFD_AUTH_* for every route */
  int relay_mode;             /* CP_RELAY_* */
  int64_t relay_batch;
  int64_t relay_delay_ms;
  int64_t relay_retry_ms;
  int64_t relay_poll_ms;
  int64_t history_default_limit, history_max_limit;
  char *chat_ws_base;         /* read receipts: {chat_ws_url}/chat/forward-event */
  cp_receipt *receipts;       /* read receipts in flight */
  int mongo;                  /* store is MongoDB */
  int mongo_ready;            /* indexes created, ping answered */
  notifd_timer *setup_timer;

  cp_store *store;
  cp_relay *relay;
  chat_oid_gen oids;          /* loop thread only */
  cp_job *jobs;               /* submitted, completion not yet run */
  cp_metrics m;
  /* Group commit (stores with insert_batch): POSTs queue here while the
   * one batch in flight commits; its completion submits the next batch. */
  struct post_job *ins_head, *ins_tail;
  int ins_busy;
  /* Conversation state apart from the insert (stores with conv_apply):
   * messages inserted and answered, waiting for the one conv job at a
   * time; conversation reads wait until what was queued before them is
   * applied (gen counters). */
  chat_message *conv_q;
  size_t conv_n, conv_cap;
  int conv_busy;
  notifd_timer *conv_timer;   /* under load: the next job waits a little */
  uint64_t conv_queued_gen, conv_done_gen;
  struct cp_conv_waiter *conv_waiters;
  /* Periodic WAL checkpoint job (stores with a checkpoint op). */
  notifd_timer *ckpt_timer;
  int ckpt_busy;
};

/* 0, or < 0 (the job was not queued; the caller still owns it). */
int cp_job_submit(cp_plugin *pl, cp_job *j);
/* cp_job_submit for a request's job: a job the pool refuses (shutting
 * down) is answered 503 and released. */
void cp_job_submit_or_503(cp_plugin *pl, notifd_req *req, cp_job *j);
void cp_observe_store(cp_plugin *pl, const char *op, int64_t t0_ns);
/* A ?limit= value: the default when absent, capped at the maximum; 0 if
 * malformed (not a positive integer). */
size_t cp_parse_limit(cp_plugin *pl, const char *s);
/* The user a request acts for: under token auth the token subject (a
 * `given` user_id must equal it, else 403), otherwise `given` (required,
 * else 400).  NULL after answering. */
const char *cp_acting_user(cp_plugin *pl, notifd_req *req, const char *given);

/* Conversation state apart from the insert (cp_http.c): queues copies of
 * the inserted messages and runs the conv job. */
void cp_conv_queue(cp_plugin *pl, chat_message *const *m, const int *rc, size_t n);
/* Submits a conversation read or a read mark once the conversation state
 * of every message answered so far is applied (cp_job_submit_or_503 now or
 * later). */
void cp_submit_after_conv(cp_plugin *pl, notifd_req *req, cp_job *j);
/* At destroy: queued messages and parked reads (never answered). */
void cp_conv_drop(cp_plugin *pl);

/* Conversations and read state (cp_state.c). */
int cp_state_register(cp_plugin *pl);
/* At destroy: read receipts still in flight (their callbacks never run). */
void cp_state_drop_receipts(cp_plugin *pl);

int cp_http_register(cp_plugin *pl);
/* At destroy: drops POSTs still queued for a batch (never answered). */
void cp_http_drop_queued(cp_plugin *pl);

int cp_relay_new(cp_plugin *pl, cp_relay **out);
void cp_relay_start(cp_relay *r);
/* A commit happened: publish soon. */
void cp_relay_kick(cp_relay *r);
/* An insert batch committed these change records (items with a key are
 * moved out: key/value set to NULL).  No-op unless the relay can go live. */
void cp_relay_committed(cp_relay *r, cp_change *items, size_t n);
/* Hands the outbox rows of acknowledged records to an insert batch, which
 * deletes them in its transaction: 1 with a malloc'd array, 0 if none. */
int cp_relay_take_deletes(cp_relay *r, int64_t **seqs, size_t *n);
/* The batch failed: the relay takes the rows back (and frees `seqs`). */
void cp_relay_deletes_failed(cp_relay *r, int64_t *seqs, size_t n);
void cp_relay_free(cp_relay *r);

/* Seconds since `t0` (monotonic), for the store histogram. */
double cp_elapsed_s(int64_t t0_ns);

#endif
