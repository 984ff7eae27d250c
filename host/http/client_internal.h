/* Outgoing HTTP: the client object and one call, shared by client.c
 * (libcurl multi on the loop) and client_local.c ("local:" URLs). */
#ifndef ND_HTTP_CLIENT_INTERNAL_H
#define ND_HTTP_CLIENT_INTERNAL_H

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "http/http_internal.h"

#define ND_HTTPC_POOL 32

typedef struct nd_httpc_call nd_httpc_call;

struct nd_httpc {
  notifd_host *host;
  struct event_base *base;
  CURLM *multi;
  struct event *timer;          /* curl's timeout */
  nd_httpc_call *calls;          /* in flight */
  size_t ncalls;
  CURL *pool[ND_HTTPC_POOL];    /* idle easy handles for reuse */
  size_t npool;
  nd_http_metrics metrics;      /* for routes reached through local: */
  int busy;                     /* user callbacks on the stack */
  int closing;                  /* freed while busy: finish on unwind */
};

struct nd_httpc_call {
  nd_httpc *c;
  nd_httpc_call *prev, *next;
  notifd_http_client_cb cb;
  void *ud;
  int local;

  /* curl */
  CURL *easy;
  struct curl_slist *hdrs;
  nd_buf body;                  /* response body */
  nd_buf rhdrs;                 /* response headers: name\0value\0... */
  int too_big;

  /* local */
  notifd_req *req;              /* until answered */
  struct event step_ev;         /* start, then completion */
  struct event timeout_ev;
  int started;                  /* routed (a handler may hold req) */
  int answered;
  int32_t status;
};

void nd_httpc_link(nd_httpc *c, nd_httpc_call *call);
void nd_httpc_unlink(nd_httpc *c, nd_httpc_call *call);
/* Runs the user's callback with the reentrancy guard; returns 0 when the
 * client was freed from inside it (and is now gone). */
int nd_httpc_run_cb(nd_httpc *c, nd_httpc_call *call, int32_t status, notifd_http_resp *resp);

/* client_local.c */
int nd_httpc_local_start(nd_httpc *c, const notifd_http_client_req *q, int method,
                         int64_t timeout_ms, notifd_http_client_cb cb,
                         void *ud);
void nd_httpc_local_cancel(nd_httpc_call *call);

#endif
