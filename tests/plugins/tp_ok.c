/* Test plugin exercising the SDK: routes with params and query, JSON body,
 * config getters, a timer, the worker pool, post() from a thread, metrics. */
#include <notifd/plugin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct state {
  notifd_plugin *self;
  const notifd_api *api;
  const char *greeting;
  int64_t limit;
  int32_t loud;
  int64_t tick_ms;
  int ticks;
  notifd_metric *hits;
  int started;
} state;

static void on_hello(notifd_req *r, void *ud) {
  state *s = ud;
  const char *who = s->api->req_query(r, "who");
  json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:i}", "greeting", s->greeting, "who",
                        who ? who : "", "limit", (json_int_t)s->limit, "loud", s->loud, "ticks",
                        s->ticks);
  static const char *const labels[] = {"hello"};
  s->api->metric_add(s->hits, labels, 1);
  s->api->respond_json(r, 200, o);
  json_decref(o);
}

static void on_item(notifd_req *r, void *ud) {
  state *s = ud;
  json_t *body = s->api->req_json_or_400(r);
  if (!body) return;
  json_t *o = json_pack("{s:s, s:O}", "id", s->api->req_param(r, "id"), "body", body);
  s->api->respond_json(r, 201, o);
  json_decref(o);
}

typedef struct job {
  state *s;
  notifd_req *req;
  long result;
} job;

static void work_sum(void *ud) { /* worker thread: may block */
  job *j = ud;
  long sum = 0;
  for (long i = 1; i <= 1000; i++) sum += i;
  j->result = sum;
}

static void work_done(void *ud) { /* loop thread */
  job *j = ud;
  json_t *o = json_pack("{s:i}", "sum", (json_int_t)j->result);
  j->s->api->respond_json(j->req, 200, o);
  json_decref(o);
  free(j);
}

static void on_work(notifd_req *r, void *ud) {
  state *s = ud;
  job *j = calloc(1, sizeof *j);
  if (!j) { s->api->respond_error(r, 500, "oom"); return; }
  j->s = s;
  j->req = r;
  if (s->api->work_submit(s->self, work_sum, work_done, j) < 0) {
    free(j);
    s->api->respond_error(r, 503, "worker pool unavailable");
  }
}

static void posted(void *ud) {
  job *j = ud;
  json_t *o = json_pack("{s:b}", "posted", 1);
  j->s->api->respond_json(j->req, 200, o);
  json_decref(o);
  free(j);
}

static void *poster_thread(void *ud) {
  job *j = ud;
  if (j->s->api->post(j->s->self, posted, j) < 0) free(j);
  return NULL;
}

static void on_post(notifd_req *r, void *ud) {
  state *s = ud;
  job *j = calloc(1, sizeof *j);
  pthread_t t;
  if (!j) { s->api->respond_error(r, 500, "oom"); return; }
  j->s = s;
  j->req = r;
  if (pthread_create(&t, NULL, poster_thread, j) != 0) {
    free(j);
    s->api->respond_error(r, 500, "thread");
    return;
  }
  pthread_detach(t);
}

typedef struct slow {
  state *s;
  notifd_req *req;
} slow;

static void slow_fire(notifd_timer *t, void *ud) {
  slow *w = ud;
  static const char body[] = "{\"slow\":true}";
  w->s->api->respond(w->req, 200, "application/json", body, sizeof body - 1);
  w->s->api->timer_stop(t);
  free(w);
}

/* Answers after ?ms= milliseconds: in-flight work for shutdown tests. */
static void on_slow(notifd_req *r, void *ud) {
  state *s = ud;
  const char *ms = s->api->req_query(r, "ms");
  slow *w = calloc(1, sizeof *w);
  if (!w) { s->api->respond_error(r, 500, "oom"); return; }
  w->s = s;
  w->req = r;
  if (s->api->timer_start(s->self, ms ? atoi(ms) : 100, 0, slow_fire, w, NULL) < 0) {
    free(w);
    s->api->respond_error(r, 503, "stopping");
  }
}

static void on_tick(notifd_timer *t, void *ud) {
  (void)t;
  ((state *)ud)->ticks++;
}

static int tp_init(notifd_plugin *p, const notifd_api *api, void **out) {
  state *s = calloc(1, sizeof *s);
  if (!s) return NOTIFD_ENOMEM;
  s->self = p;
  s->api = api;
  *out = s;
  int rc = 0;
  rc |= api->config_string(p, "greeting", "hello", &s->greeting);
  rc |= api->config_int(p, "limit", 10, &s->limit);
  rc |= api->config_bool(p, "loud", 0, &s->loud);
  rc |= api->config_duration_ms(p, "tick", 50, &s->tick_ms);
  if (rc) return NOTIFD_EINVAL;
  static const char *const labels[] = {"route", NULL};
  if (api->metric_counter(p, "tp_ok_hits_total", "Hits on the test plugin.", labels, &s->hits) < 0)
    return NOTIFD_EINVAL;
  if (api->http_route(p, "GET", "/tp/hello", on_hello, s, NULL) < 0 ||
      api->http_route(p, "POST", "/tp/items/{id}", on_item, s, NULL) < 0 ||
      api->http_route(p, "GET", "/tp/work", on_work, s, NULL) < 0 ||
      api->http_route(p, "GET", "/tp/post", on_post, s, NULL) < 0 ||
      api->http_route(p, "GET", "/tp/slow", on_slow, s, NULL) < 0)
    return NOTIFD_EINVAL;
  return api->timer_start(p, s->tick_ms, s->tick_ms, on_tick, s, NULL);
}

static int tp_start(void *st) {
  state *s = st;
  /* Registration is refused after init. */
  if (s->api->http_route(s->self, "GET", "/tp/late", on_hello, s, NULL) != NOTIFD_ESTATE)
    return NOTIFD_EINVAL;
  /* Metrics too; timers are not (one-shot timers are how plugins wait). */
  notifd_metric *late = NULL;
  if (s->api->metric_counter(s->self, "tp_ok_late_total", "late", NULL, &late) != NOTIFD_ESTATE)
    return NOTIFD_EINVAL;
  notifd_timer *t = NULL;
  if (s->api->timer_start(s->self, 3600 * 1000, 0, on_tick, s, &t) != 0) return NOTIFD_EINVAL;
  s->api->timer_stop(t);
  /* So are config errors (ABI 1.2; this plugin asks for 1.0, so it checks). */
  if (NOTIFD_API_HAS(s->api, config_error) &&
      s->api->config_error(s->self, "greeting", "too late") != NOTIFD_ESTATE)
    return NOTIFD_EINVAL;
  s->started = 1;
  return 0;
}

static void tp_destroy(void *st) { free(st); }

static const notifd_plugin_def def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 0,
    .name = "tp_ok",
    .version = "1.0.0",
    .init = tp_init,
    .start = tp_start,
    .destroy = tp_destroy,
};
NOTIFD_PLUGIN_DEFINE(def)
