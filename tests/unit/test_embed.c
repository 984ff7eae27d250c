/* Embedding API: a host on the caller's event_base, twice in one process,
 * builtin plugins, graceful shutdown that finishes in-flight requests. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "nd_test.h"

static char err[4096];

static const char *yaml_with_tp_ok(char *buf, size_t len) {
  snprintf(buf, len,
           "listen: {address: 127.0.0.1, port: 0}\n"
           "admin: {address: 127.0.0.1, port: -1}\n"
           "data_dir: /tmp/notifd-test-embed\n"
           "logging: {level: warn}\n"
           "shutdown: {deadline: 5s}\n"
           "plugins:\n  - name: tp_ok\n    path: %s/tp_ok.so\n",
           ND_TEST_PLUGIN_DIR);
  return buf;
}

typedef struct fetch {
  char url[256];
  long status;
  char *body;
} fetch;

static void *fetch_main(void *arg) {
  fetch *f = arg;
  f->status = nd_test_http("GET", f->url, NULL, NULL, &f->body);
  return NULL;
}

typedef struct run {
  notifd_host *h;
  int stopped;
  fetch f;
  pthread_t client;
} run;

static void on_stopped(notifd_host *h, void *ud) {
  (void)h;
  ((run *)ud)->stopped = 1;
}

/* Once the slow request is in flight, ask for a graceful stop. */
static void begin_stop(evutil_socket_t fd, short what, void *ud) {
  (void)fd;
  (void)what;
  run *r = ud;
  ck_assert_int_eq(notifd_host_stop(r->h, on_stopped, r), 0);
  /* A second stop while stopping is refused. */
  ck_assert_int_eq(notifd_host_stop(r->h, NULL, NULL), NOTIFD_ESTATE);
}

/* One full life on a caller-owned base: serve, stop gracefully with a
 * request in flight, and leave no events behind. */
static void one_life(void) {
  struct event_base *base = event_base_new();
  ck_assert_ptr_nonnull(base);
  char yaml[1024];
  run r = {0};
  yaml_with_tp_ok(yaml, sizeof yaml);
  ck_assert_int_eq(notifd_host_new_from_string(yaml, strlen(yaml), "embed.yaml", base, &r.h, err,
                                               sizeof err), 0);
  ck_assert_msg(notifd_host_start(r.h, err, sizeof err) == 0, "%s", err);
  int port = notifd_host_port(r.h);
  ck_assert_int_gt(port, 0);
  ck_assert_int_eq(notifd_host_admin_port(r.h), -1);

  snprintf(r.f.url, sizeof r.f.url, "http://127.0.0.1:%d/tp/slow?ms=300", port);
  ck_assert_int_eq(pthread_create(&r.client, NULL, fetch_main, &r.f), 0);
  struct event *ev = evtimer_new(base, begin_stop, &r);
  struct timeval tv = {0, 100 * 1000};
  evtimer_add(ev, &tv);
  /* Returns (1 = no events left) only when nothing of notifd remains. */
  ck_assert_int_eq(event_base_dispatch(base), 1);
  pthread_join(r.client, NULL);
  ck_assert_int_eq(r.stopped, 1);
  ck_assert_int_eq(r.f.status, 200);
  ck_assert_str_eq(r.f.body, "{\"slow\":true}");
  free(r.f.body);
  event_free(ev);
  notifd_host_free(r.h);
  event_base_free(base);
}

START_TEST(two_lives_in_one_process) {
  one_life();
  one_life();
}
END_TEST

START_TEST(two_hosts_at_once) {
  char yaml[1024];
  yaml_with_tp_ok(yaml, sizeof yaml);
  nd_test_host *a = nd_test_host_start(yaml, NULL, err, sizeof err);
  ck_assert_msg(a != NULL, "%s", err);
  nd_test_host *b = nd_test_host_start(yaml, NULL, err, sizeof err);
  ck_assert_msg(b != NULL, "%s", err);
  ck_assert_int_ne(nd_test_host_port(a), nd_test_host_port(b));
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", nd_test_host_port(b));
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, NULL), 200);
  ck_assert_int_eq(nd_test_host_stop(a), 0);
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, NULL), 200);
  ck_assert_int_eq(nd_test_host_stop(b), 0);
}
END_TEST

/* A builtin plugin: compiled into the embedding program. */
static void hello_route(notifd_req *r, void *ud) {
  const notifd_api *api = ud;
  api->respond(r, 200, "text/plain", "builtin", 7);
}

static int builtin_init(notifd_plugin *p, const notifd_api *api, void **st) {
  *st = NULL;
  return api->http_route(p, "GET", "/builtin", hello_route, (void *)api, NULL);
}

static const notifd_plugin_def builtin_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .name = "my_builtin",
    .version = "1",
    .init = builtin_init,
};

START_TEST(builtin_plugin) {
  const char *yaml =
      "listen: {address: 127.0.0.1, port: 0}\nadmin: {port: -1}\ndata_dir: /tmp/notifd-test-embed\n"
      "logging: {level: warn}\nplugins:\n  - name: my_builtin\n    builtin: true\n";
  const notifd_plugin_def *const builtins[] = {&builtin_def, NULL};
  nd_test_host *t = nd_test_host_start(yaml, builtins, err, sizeof err);
  ck_assert_msg(t != NULL, "%s", err);
  char url[128], *body = NULL;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/builtin", nd_test_host_port(t));
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, &body), 200);
  ck_assert_str_eq(body, "builtin");
  free(body);
  ck_assert_int_eq(nd_test_host_stop(t), 0);
}
END_TEST

START_TEST(start_failure_leaves_nothing_behind) {
  /* Port already taken: start fails and the base has no events left. */
  char yaml[1024];
  yaml_with_tp_ok(yaml, sizeof yaml);
  nd_test_host *a = nd_test_host_start(yaml, NULL, err, sizeof err);
  ck_assert_msg(a != NULL, "%s", err);
  char yaml2[1024];
  snprintf(yaml2, sizeof yaml2,
           "listen: {address: 127.0.0.1, port: %d}\nadmin: {port: -1}\n"
           "data_dir: /tmp/notifd-test-embed\nlogging: {level: error}\n",
           nd_test_host_port(a));
  struct event_base *base = event_base_new();
  notifd_host *h = NULL;
  ck_assert_int_eq(notifd_host_new_from_string(yaml2, strlen(yaml2), "b.yaml", base, &h, err,
                                               sizeof err), 0);
  ck_assert_int_lt(notifd_host_start(h, err, sizeof err), 0);
  ck_assert_msg(strstr(err, "127.0.0.1") != NULL, "%s", err);
  ck_assert_int_eq(event_base_dispatch(base), 1); /* 1 = no events */
  notifd_host_free(h);
  event_base_free(base);
  ck_assert_int_eq(nd_test_host_stop(a), 0);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("embed");
  TCase *tc = tcase_create("embed");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, two_lives_in_one_process);
  tcase_add_test(tc, two_hosts_at_once);
  tcase_add_test(tc, builtin_plugin);
  tcase_add_test(tc, start_failure_leaves_nothing_behind);
  suite_add_tcase(s, tc);
  return s;
}
