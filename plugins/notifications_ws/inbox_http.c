/* The inbox over HTTP, for the user of the request (notif_req_user):
 *
 *   GET /notifications?user_id=U&limit=N&before=ID
 *     200 {"notifications":[{"id","notification_type","timestamp","payload",
 *          "read"}...] newest first, "unread":n, "next_before":ID|null}
 *   POST /notifications/read?user_id=U  {"ids":[ID...]} | {"all":true}
 *     200 {"unread":n}; ids of other users or unknown ids change nothing;
 *     anything else is a 400. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifications_ws.h"

#define READ_IDS_MAX 1000

typedef struct http_job {
  nw_job base;
  notifd_req *req;
  char *user;
  int64_t before;
  size_t limit;
  int64_t *ids;
  size_t nids;
  int all, is_read;
  inbox_rec *recs;
  size_t n;
  int64_t unread;
  int rc;
  char err[200];
} http_job;

static void job_free(http_job *hj) {
  inbox_recs_free(hj->recs, hj->n);
  free(hj->ids);
  free(hj->user);
  free(hj);
}

/* The request was answered by the host at shutdown, or never will be. */
static void job_release(nw_job *j) { job_free((http_job *)j); }

static void job_work(nw_job *j) {
  http_job *hj = (http_job *)j;
  inbox_store *st = j->s->store;
  if (hj->is_read)
    hj->rc = st->ops->mark_read(st, hj->user, hj->ids, hj->nids, hj->all, hj->err,
                                sizeof hj->err);
  else
    hj->rc = st->ops->list(st, hj->user, hj->before, hj->limit + 1, &hj->recs, &hj->n, hj->err,
                           sizeof hj->err);
  if (hj->rc == 0) hj->rc = st->ops->unread(st, hj->user, &hj->unread, hj->err, sizeof hj->err);
}

static void job_done(nw_job *j) {
  http_job *hj = (http_job *)j;
  notif_ws *s = j->s;
  const notifd_api *api = s->api;
  const char *op[] = {hj->is_read ? "read" : "list", hj->rc == 0 ? "ok" : "error"};
  api->metric_add(s->m_store, op, 1);
  if (hj->rc < 0) {
    api->log(s->self, NOTIFD_LOG_WARN, "inbox: %s for %s failed: %s", op[0], hj->user, hj->err);
    PC_RESPOND_ERROR_LIT(api, hj->req, 500, "the notification inbox is unavailable");
    job_free(hj);
    return;
  }
  pc_buf b;
  pc_buf_init(&b);
  if (hj->is_read) {
    pc_buf_printf(&b, "{\"unread\":%lld}", (long long)hj->unread);
  } else {
    size_t n = hj->n > hj->limit ? hj->limit : hj->n;
    pc_buf_puts(&b, "{\"notifications\":[");
    for (size_t i = 0; i < n; i++) {
      const inbox_rec *r = &hj->recs[i];
      if (i) pc_buf_putc(&b, ',');
      notif_frame(&b, r->id, r->type, r->ts, r->payload);
      b.len--; /* reopen the object for "read" */
      pc_buf_puts(&b, r->read ? ",\"read\":true}" : ",\"read\":false}");
    }
    pc_buf_printf(&b, "],\"unread\":%lld,\"next_before\":", (long long)hj->unread);
    if (hj->n > hj->limit && n > 0) pc_buf_printf(&b, "%lld}", (long long)hj->recs[n - 1].id);
    else pc_buf_puts(&b, "null}");
  }
  pc_respond_json(api, hj->req, 200, &b);
  pc_buf_free(&b);
  job_free(hj);
}

static void submit(notif_ws *s, http_job *hj) {
  hj->base.work = job_work;
  hj->base.done = job_done;
  hj->base.release = job_release;
  if (nw_job_submit(s, &hj->base) < 0) {
    PC_RESPOND_ERROR_LIT(s->api, hj->req, 503, "server is shutting down");
    job_free(hj);
  }
}

/* A positive integer query parameter; 0 when absent, -1 when malformed. */
static int query_int(const char *t, int64_t max, int64_t *out) {
  *out = 0;
  if (!t) return 0;
  if (!*t || strlen(t) > 19) return -1;
  int64_t v = 0;
  for (const char *p = t; *p; p++) {
    if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10) return -1;
    v = v * 10 + (*p - '0');
  }
  if (v < 1 || v > max) return -1;
  *out = v;
  return 0;
}

static void on_list(notifd_req *req, void *ud) {
  notif_ws *s = ud;
  const notifd_api *api = s->api;
  const char *user = notif_req_user(s, req, api->req_query(req, "user_id"));
  if (!user) return;
  int64_t limit, before;
  if (query_int(api->req_query(req, "limit"), INT64_MAX, &limit) < 0) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "limit must be a positive integer");
    return;
  }
  if (query_int(api->req_query(req, "before"), INT64_MAX, &before) < 0) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "before must be a notification id (a positive integer)");
    return;
  }
  http_job *hj = calloc(1, sizeof *hj);
  if (!hj || !(hj->user = strdup(user))) {
    free(hj);
    PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    return;
  }
  hj->req = req;
  hj->limit = (size_t)(limit == 0 ? s->list_default : limit > s->list_max ? s->list_max : limit);
  hj->before = before;
  submit(s, hj);
}

static void on_read(notifd_req *req, void *ud) {
  notif_ws *s = ud;
  const notifd_api *api = s->api;
  const char *user = notif_req_user(s, req, api->req_query(req, "user_id"));
  if (!user) return;
  json_t *body = api->req_json_or_400(req);
  if (!body) return;
  json_t *ids = json_is_object(body) ? json_object_get(body, "ids") : NULL;
  json_t *all = json_is_object(body) ? json_object_get(body, "all") : NULL;
  if (!json_is_object(body) || (!ids && !all) || (ids && all) ||
      (all && !json_is_true(all)) || (ids && !json_is_array(ids))) {
    PC_RESPOND_ERROR_LIT(api, req, 400,
                         "body must be {\"ids\":[notification ids]} or {\"all\":true}");
    return;
  }
  size_t n = ids ? json_array_size(ids) : 0;
  if (n > READ_IDS_MAX) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "at most 1000 ids per request");
    return;
  }
  http_job *hj = calloc(1, sizeof *hj);
  if (hj) {
    hj->user = strdup(user);
    hj->ids = calloc(n ? n : 1, sizeof *hj->ids);
  }
  if (!hj || !hj->user || !hj->ids) {
    if (hj) job_free(hj);
    PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(ids, i);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
      job_free(hj);
      PC_RESPOND_ERROR_LIT(api, req, 400, "ids must be notification ids (non-negative integers)");
      return;
    }
    hj->ids[i] = json_integer_value(v);
  }
  hj->nids = n;
  hj->all = all != NULL;
  hj->is_read = 1;
  hj->req = req;
  submit(s, hj);
}

int inbox_http_register(notif_ws *s) {
  notifd_route_opts ro = {.size = sizeof ro, .auth = s->auth, .max_body = 64 * 1024};
  int rc = s->api->http_route(s->self, "GET", "/notifications", on_list, s, &ro);
  if (rc == 0) rc = s->api->http_route(s->self, "POST", "/notifications/read", on_read, s, &ro);
  return rc;
}
