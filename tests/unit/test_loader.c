/* Plugin loader: every refusal path with a real shared object, and a good
 * plugin's SDK round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/host.h"
#include "nd_test.h"

static char err[8192];

/* Starts a host with one plugin entry; returns the host or NULL (err set). */
static nd_test_host *start_with(const char *plugins_yaml) {
  char yaml[4096];
  snprintf(yaml, sizeof yaml,
           "listen: {address: 127.0.0.1, port: 0}\n"
           "admin: {address: 127.0.0.1, port: 0}\n"
           "data_dir: /tmp/notifd-test-loader\n"
           "logging: {level: error}\n"
           "plugins:\n%s",
           plugins_yaml);
  err[0] = '\0';
  return nd_test_host_start(yaml, NULL, err, sizeof err);
}

static void expect_refused(const char *name, const char *needle) {
  char entry[512];
  snprintf(entry, sizeof entry, "  - name: %s\n    path: %s/%s.so\n", name, ND_TEST_PLUGIN_DIR,
           name);
  nd_test_host *t = start_with(entry);
  ck_assert_ptr_null(t);
  ck_assert_msg(strstr(err, needle) != NULL, "expected '%s' in: %s", needle, err);
  /* Every message names the plugin file and the config position. */
  ck_assert_msg(strstr(err, name) != NULL, "plugin path missing in: %s", err);
  ck_assert_msg(strstr(err, "test.yaml:") != NULL, "position missing in: %s", err);
}

START_TEST(major_mismatch) {
  char want[128];
  snprintf(want, sizeof want, "ABI major mismatch: plugin built for 2.0, host provides %d.%d",
           NOTIFD_ABI_MAJOR, NOTIFD_ABI_MINOR);
  expect_refused("tp_major", want);
}
END_TEST

START_TEST(newer_minor) {
  char want[128];
  snprintf(want, sizeof want, "needs ABI %d.%d, host provides %d.%d", NOTIFD_ABI_MAJOR,
           NOTIFD_ABI_MINOR + 1, NOTIFD_ABI_MAJOR, NOTIFD_ABI_MINOR);
  expect_refused("tp_minor", want);
}
END_TEST

START_TEST(missing_symbol) { expect_refused("tp_nosym", "missing entry symbol notifd_plugin_entry_v1"); }
END_TEST

START_TEST(future_major_symbol) {
  expect_refused("tp_v2only", "built for ABI major 2 (exports notifd_plugin_entry_v2)");
}
END_TEST

START_TEST(init_failure) { expect_refused("tp_initfail", "init failed (-5)"); }
END_TEST

/* bus_consume takes a NULL out; a refused call is named with its reason. */
START_TEST(refused_call_named) {
  expect_refused("tp_badconsume", "init failed: bus_consume: group 'tp_group2': opts need");
  ck_assert_msg(strstr(err, "(-22 EINVAL)") != NULL, "%s", err);
}
END_TEST

/* The SDK's error texts, and NOTIFD_API_HAS against an older host's table
 * (one that ends before ABI 1.3's check_only). */
START_TEST(strerror_and_api_has) {
  ck_assert_str_eq(notifd_strerror(NOTIFD_EINVAL), "invalid argument");
  ck_assert_str_eq(notifd_strerror(NOTIFD_ESTATE), "wrong lifecycle phase");
  ck_assert_str_eq(notifd_strerror_name(NOTIFD_EBACKEND), "EBACKEND");
  ck_assert_str_eq(notifd_strerror(-5), "unknown error");
  ck_assert_ptr_null(notifd_strerror_name(-5));
  notifd_api a;
  nd_api_fill(&a);
  ck_assert(NOTIFD_API_HAS(&a, check_only));
  ck_assert(NOTIFD_API_HAS(&a, config_error));
  a.size = (uint32_t)offsetof(notifd_api, check_only); /* a 1.2 host */
  ck_assert(!NOTIFD_API_HAS(&a, check_only));
  ck_assert(NOTIFD_API_HAS(&a, config_error));
}
END_TEST

START_TEST(name_mismatch) { expect_refused("tp_name", "calls itself 'someone_else'"); }
END_TEST

START_TEST(not_found) {
  nd_test_host *t = start_with("  - name: tp_nowhere\n");
  ck_assert_ptr_null(t);
  ck_assert_msg(strstr(err, "tp_nowhere.so not found") != NULL, "%s", err);
}
END_TEST

START_TEST(duplicate_name) {
  char entry[1024];
  snprintf(entry, sizeof entry,
           "  - name: tp_ok\n    path: %s/tp_ok.so\n  - name: tp_ok\n    path: %s/tp_ok.so\n",
           ND_TEST_PLUGIN_DIR, ND_TEST_PLUGIN_DIR);
  nd_test_host *t = start_with(entry);
  ck_assert_ptr_null(t);
  ck_assert_msg(strstr(err, "tp_ok") && strstr(err, "duplicate"), "%s", err);
}
END_TEST

START_TEST(duplicate_route) {
  char entry[1024];
  snprintf(entry, sizeof entry,
           "  - name: tp_ok\n    path: %s/tp_ok.so\n  - name: tp_duproute\n    path: %s/tp_duproute.so\n",
           ND_TEST_PLUGIN_DIR, ND_TEST_PLUGIN_DIR);
  nd_test_host *t = start_with(entry);
  ck_assert_ptr_null(t);
  /* The message names the refused call, its reason and the code. */
  ck_assert_msg(strstr(err, "tp_duproute") &&
                    strstr(err, "init failed: http_route: GET /tp/hello: already registered "
                                "(-17 EEXIST)"),
                "%s", err);
}
END_TEST

START_TEST(unknown_plugin_key) {
  char entry[1024];
  snprintf(entry, sizeof entry,
           "  - name: tp_ok\n    path: %s/tp_ok.so\n    config:\n      greeting: hi\n      greting: typo\n",
           ND_TEST_PLUGIN_DIR);
  nd_test_host *t = start_with(entry);
  ck_assert_ptr_null(t);
  ck_assert_msg(strstr(err, "test.yaml:10:7") && strstr(err, "greting"), "%s", err);
}
END_TEST

START_TEST(wrong_type_plugin_key) {
  char entry[1024];
  snprintf(entry, sizeof entry,
           "  - name: tp_ok\n    path: %s/tp_ok.so\n    config:\n      limit: lots\n",
           ND_TEST_PLUGIN_DIR);
  nd_test_host *t = start_with(entry);
  ck_assert_ptr_null(t);
  ck_assert_msg(strstr(err, "test.yaml:9:14") && strstr(err, "limit"), "%s", err);
}
END_TEST

/* api->config_error (ABI 1.2): the host's own format, at the value, or
 * at the config map for an absent key; no "init failed" line after it. */
START_TEST(plugin_config_error) {
  char entry[1024];
  snprintf(entry, sizeof entry,
           "  - name: tp_cfgerr\n    path: %s/tp_cfgerr.so\n    config:\n      url: ftp://x\n",
           ND_TEST_PLUGIN_DIR);
  nd_test_host *t = start_with(entry);
  ck_assert_ptr_null(t);
  ck_assert_msg(strstr(err, "test.yaml:9:12: key 'plugins[0].config.url': expected an http:// or "
                            "https:// URL, got 'ftp://x'"),
                "%s", err);
  ck_assert_msg(strstr(err, "test.yaml:9:7: key 'plugins[0].config.token': is required"), "%s",
                err);
  ck_assert_msg(strstr(err, "init failed") == NULL, "%s", err);
  /* No config map at all: the plugin entry's position. */
  snprintf(entry, sizeof entry, "  - name: tp_cfgerr\n    path: %s/tp_cfgerr.so\n",
           ND_TEST_PLUGIN_DIR);
  ck_assert_ptr_null(start_with(entry));
  ck_assert_msg(strstr(err, "test.yaml:6:5: key 'plugins[0].config.token': is required"), "%s",
                err);
}
END_TEST

START_TEST(good_plugin_round_trip) {
  char entry[1024];
  snprintf(entry, sizeof entry,
           "  - name: tp_ok\n    path: %s/tp_ok.so\n    config:\n      greeting: hi there\n"
           "      limit: 42\n      loud: true\n      tick: 10ms\n",
           ND_TEST_PLUGIN_DIR);
  nd_test_host *t = start_with(entry);
  ck_assert_msg(t != NULL, "%s", err);
  char url[256], *body = NULL;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/tp/hello?who=a%%20b", nd_test_host_port(t));
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, &body), 200);
  ck_assert_msg(strstr(body, "\"greeting\":\"hi there\"") && strstr(body, "\"who\":\"a b\"") &&
                    strstr(body, "\"limit\":42") && strstr(body, "\"loud\":true"),
                "%s", body);
  free(body);

  snprintf(url, sizeof url, "http://127.0.0.1:%d/tp/items/x%%2Fy", nd_test_host_port(t));
  ck_assert_int_eq(nd_test_http("POST", url, "{\"a\":[1,2]}", NULL, &body), 201);
  ck_assert_msg(strstr(body, "\"id\":\"x/y\"") && strstr(body, "\"body\":{\"a\":[1,2]}"), "%s", body);
  free(body);
  ck_assert_int_eq(nd_test_http("POST", url, "{\"a\":", NULL, &body), 400);
  ck_assert_msg(strstr(body, "\"error\"") != NULL, "%s", body);
  free(body);

  snprintf(url, sizeof url, "http://127.0.0.1:%d/tp/work", nd_test_host_port(t));
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, &body), 200);
  ck_assert_str_eq(body, "{\"sum\":500500}");
  free(body);

  snprintf(url, sizeof url, "http://127.0.0.1:%d/tp/post", nd_test_host_port(t));
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, &body), 200);
  ck_assert_str_eq(body, "{\"posted\":true}");
  free(body);

  /* The timer fired (10 ms period) and the plugin counted hits. */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/tp/hello", nd_test_host_port(t));
  body = NULL;
  int hello_calls = 1; /* the greeting check above */
  for (int tries = 0; tries < 200; tries++) { /* up to 2 s on a loaded machine */
    free(body);
    body = NULL;
    nd_test_http("GET", url, NULL, NULL, &body);
    hello_calls++;
    if (body && !strstr(body, "\"ticks\":0,") && !strstr(body, "\"ticks\":0}")) break;
    usleep(10000);
  }
  ck_assert_msg(body && strstr(body, "\"ticks\":0}") == NULL, "timer never fired: %s", body);
  free(body);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", nd_test_host_admin_port(t));
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, &body), 200);
  char want[64];
  snprintf(want, sizeof want, "tp_ok_hits_total{route=\"hello\"} %d\n", hello_calls);
  ck_assert_msg(strstr(body, want), "want %s", want);
  free(body);
  ck_assert_int_eq(nd_test_host_stop(t), 0);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("loader");
  TCase *tc = tcase_create("loader");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, major_mismatch);
  tcase_add_test(tc, newer_minor);
  tcase_add_test(tc, missing_symbol);
  tcase_add_test(tc, future_major_symbol);
  tcase_add_test(tc, init_failure);
  tcase_add_test(tc, refused_call_named);
  tcase_add_test(tc, strerror_and_api_has);
  tcase_add_test(tc, name_mismatch);
  tcase_add_test(tc, not_found);
  tcase_add_test(tc, duplicate_name);
  tcase_add_test(tc, duplicate_route);
  tcase_add_test(tc, unknown_plugin_key);
  tcase_add_test(tc, wrong_type_plugin_key);
  tcase_add_test(tc, plugin_config_error);
  tcase_add_test(tc, good_plugin_round_trip);
  suite_add_tcase(s, tc);
  return s;
}
