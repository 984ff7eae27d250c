/* JWKS cache: one fetch at a time through nd_http_call (libcurl on the
 * loop, never blocking it), the set swapped in whole on success and kept
 * on failure, a refresh timer, and the waiters of requests whose token
 * named a key we did not hold yet. */
#include "auth/jwks.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/host.h"
#include "http/http.h"
#include "log/log.h"

struct nd_auth_waiter {
  nd_jwks *j;
  nd_auth_waiter *prev, *next;
  uint64_t seq;                /* resumed when fetch `seq` ends */
  struct event timeout;
  nd_auth_resume_fn fn;
  void *ud;
};

/* The ud of one fetch.  The HTTP client may outlive the cache (or not call
 * back at all when it is freed first), so the fetch does not point into
 * the cache once the cache is gone. */
typedef struct fetch {
  nd_jwks *j;
} fetch;

struct nd_jwks {
  notifd_host *h;
  char *url;
  int64_t refresh_ms;
  nd_jwkset set;
  int loaded;                  /* set holds a fetched document */
  fetch *inflight;             /* NULL when idle */
  uint64_t seq;                /* fetches started */
  int64_t last_unknown_ms;     /* monotonic start of the last fetch for an
                                  unknown kid (the rate-limited kind) */
  int failing;                 /* last fetch failed (log once per run) */
  struct event tick;           /* next scheduled refresh */
  nd_auth_waiter *head, *tail; /* in seq order */
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void schedule(nd_jwks *j, int64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  event_del(&j->tick);
  event_add(&j->tick, &tv);
}

static void unlink_waiter(nd_auth_waiter *w) {
  nd_jwks *j = w->j;
  if (w->prev) w->prev->next = w->next;
  else j->head = w->next;
  if (w->next) w->next->prev = w->prev;
  else j->tail = w->prev;
  event_del(&w->timeout);
}

static void resume(nd_auth_waiter *w) {
  nd_auth_resume_fn fn = w->fn;
  void *ud = w->ud;
  unlink_waiter(w);
  free(w);
  fn(ud);
}

/* Every waiter of fetch `seq` or earlier; later ones wait on. */
static void resume_upto(nd_jwks *j, uint64_t seq) {
  while (j->head && j->head->seq <= seq) resume(j->head);
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  resume(arg);
}

static void store(nd_jwks *j, const char *body, size_t len) {
  nd_jwkset set;
  size_t skipped = 0;
  const char *why = NULL;
  if (nd_jwkset_parse(body, len, &set, &skipped, &why) < 0) {
    ND_WARN("auth", "JWKS from %s refused: %s; keeping the %zu keys we had", j->url, why,
            j->set.n);
    j->failing = 1;
    return;
  }
  if (!j->loaded || j->failing || set.n != j->set.n)
    ND_INFO("auth", "JWKS from %s: %zu usable keys, %zu skipped", j->url, set.n, skipped);
  nd_jwkset_free(&j->set);
  j->set = set;
  j->loaded = 1;
  j->failing = 0;
}

static void on_fetched(int32_t status, notifd_http_resp *resp, void *ud) {
  fetch *f = ud;
  nd_jwks *j = f->j;
  free(f);
  if (!j) return; /* the cache went away meanwhile */
  j->inflight = NULL;
  if (status == 200 && resp) {
    size_t len = 0;
    const char *body = nd_http_resp_body(resp, &len);
    store(j, body, len);
  } else {
    if (!j->failing)
      ND_WARN("auth", "JWKS fetch from %s failed (%d); keeping the %zu keys we had", j->url,
              (int)status, j->set.n);
    j->failing = 1;
  }
  if (j->h->phase < ND_PHASE_STOPPING)
    schedule(j, j->failing && j->refresh_ms > ND_JWKS_RETRY_MS ? ND_JWKS_RETRY_MS
                                                                 : j->refresh_ms);
  resume_upto(j, j->seq);
}

/* 0 when a fetch is in flight afterwards. */
static int start_fetch(nd_jwks *j) {
  if (j->inflight) return 0;
  if (j->h->phase >= ND_PHASE_STOPPING) return -1;
  fetch *f = calloc(1, sizeof *f);
  if (!f) return -1;
  f->j = j;
  static const char *const hdrs[] = {"Accept: application/json", NULL};
  notifd_http_client_req q = {.size = sizeof q, .method = "GET", .url = j->url,
                              .headers = hdrs, .timeout_ms = ND_JWKS_FETCH_TIMEOUT_MS};
  int rc = nd_http_call(j->h, &q, on_fetched, f);
  if (rc < 0) {
    free(f);
    if (!j->failing) ND_WARN("auth", "JWKS fetch from %s could not start (%d)", j->url, rc);
    j->failing = 1;
    schedule(j, ND_JWKS_RETRY_MS);
    return -1;
  }
  j->inflight = f;
  j->seq++;
  return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  start_fetch(arg);
}

nd_jwks *nd_jwks_new(notifd_host *h, const char *url, int64_t refresh_ms) {
  nd_jwks *j = calloc(1, sizeof *j);
  if (!j || !(j->url = strdup(url))) {
    free(j);
    return NULL;
  }
  j->h = h;
  j->refresh_ms = refresh_ms > 0 ? refresh_ms : 3600 * 1000;
  j->last_unknown_ms = mono_ms() - ND_JWKS_MIN_INTERVAL_MS;
  evtimer_assign(&j->tick, h->base, on_tick, j);
  start_fetch(j);
  return j;
}

void nd_jwks_free(nd_jwks *j) {
  if (!j) return;
  event_del(&j->tick);
  while (j->head) {
    nd_auth_waiter *w = j->head;
    unlink_waiter(w);
    free(w);
  }
  if (j->inflight) {
    /* Still called back if the client lives on; a freed client cancelled
     * the call without calling back, so the ticket is ours to free. */
    if (j->h->httpc) j->inflight->j = NULL;
    else free(j->inflight);
  }
  nd_jwkset_free(&j->set);
  free(j->url);
  free(j);
}

const nd_jwkset *nd_jwks_keys(const nd_jwks *j) { return j && j->loaded ? &j->set : NULL; }

int nd_jwks_refresh_for_unknown(nd_jwks *j) {
  if (!j) return 0;
  if (j->inflight) return 1;
  int64_t now = mono_ms();
  if (now - j->last_unknown_ms < ND_JWKS_MIN_INTERVAL_MS) return 0;
  ND_DEBUG("auth", "token names an unknown key: refreshing the JWKS");
  if (start_fetch(j) < 0) return 0;
  j->last_unknown_ms = now;
  return 1;
}

nd_auth_waiter *nd_jwks_wait(nd_jwks *j, nd_auth_resume_fn fn, void *ud) {
  if (!j || !j->inflight || !fn) return NULL;
  nd_auth_waiter *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->j = j;
  w->seq = j->seq;
  w->fn = fn;
  w->ud = ud;
  evtimer_assign(&w->timeout, j->h->base, on_wait_timeout, w);
  struct timeval tv = {ND_JWKS_WAIT_MS / 1000, (ND_JWKS_WAIT_MS % 1000) * 1000};
  if (event_add(&w->timeout, &tv) < 0) {
    free(w);
    return NULL;
  }
  w->prev = j->tail;
  if (j->tail) j->tail->next = w;
  else j->head = w;
  j->tail = w;
  return w;
}

void nd_jwks_cancel(nd_auth_waiter *w) {
  if (!w) return;
  unlink_waiter(w);
  free(w);
}
