/* Metric registry and Prometheus text rendering. */
#include <stdlib.h>
#include <string.h>

#include <notifd/plugin.h>
#include "metrics/metrics.h"
#include "nd_test.h"

static char *render(nd_metrics *r) {
  char *out = NULL;
  size_t len = 0;
  ck_assert_int_eq(nd_metrics_render(r, &out, &len), 0);
  ck_assert_uint_eq(strlen(out), len);
  return out;
}

START_TEST(counter_with_labels) {
  nd_metrics *r = nd_metrics_new();
  nd_metric *m;
  static const char *const labels[] = {"route", "status", NULL};
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_COUNTER, "req_total", "Requests.\nall", labels,
                                      NULL, 0, &m), 0);
  const char *a[] = {"/x", "200"}, *b[] = {"/y\"q\\", "500"};
  nd_metric_add(m, a, 1);
  nd_metric_add(m, a, 2);
  nd_metric_add(m, b, 1);
  nd_metric_add(m, a, -5); /* counters never go down */
  ck_assert(nd_metric_value(m, a) == 3);
  char *t = render(r);
  ck_assert_msg(strstr(t, "# HELP req_total Requests.\\nall\n# TYPE req_total counter\n"), "%s", t);
  ck_assert_msg(strstr(t, "req_total{route=\"/x\",status=\"200\"} 3\n"), "%s", t);
  ck_assert_msg(strstr(t, "req_total{route=\"/y\\\"q\\\\\",status=\"500\"} 1\n"), "%s", t);
  free(t);
  nd_metrics_free(r);
}
END_TEST

START_TEST(gauge_and_histogram) {
  nd_metrics *r = nd_metrics_new();
  nd_metric *g, *h;
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_GAUGE, "conns", "Open.", NULL, NULL, 0, &g), 0);
  nd_metric_set(g, NULL, 7);
  nd_metric_set(g, NULL, 5);
  const double buckets[] = {0.1, 1};
  static const char *const labels[] = {"op", NULL};
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_HISTOGRAM, "lat_seconds", "Latency.", labels,
                                      buckets, 2, &h), 0);
  const char *v[] = {"get"};
  nd_metric_observe(h, v, 0.05);
  nd_metric_observe(h, v, 0.5);
  nd_metric_observe(h, v, 3);
  char *t = render(r);
  ck_assert_msg(strstr(t, "conns 5\n"), "%s", t);
  ck_assert_msg(strstr(t, "lat_seconds_bucket{op=\"get\",le=\"0.1\"} 1\n"), "%s", t);
  ck_assert_msg(strstr(t, "lat_seconds_bucket{op=\"get\",le=\"1\"} 2\n"), "%s", t);
  ck_assert_msg(strstr(t, "lat_seconds_bucket{op=\"get\",le=\"+Inf\"} 3\n"), "%s", t);
  ck_assert_msg(strstr(t, "lat_seconds_sum{op=\"get\"} 3.55"), "%s", t);
  ck_assert_msg(strstr(t, "lat_seconds_count{op=\"get\"} 3\n"), "%s", t);
  free(t);
  nd_metrics_free(r);
}
END_TEST

START_TEST(registration_rules) {
  nd_metrics *r = nd_metrics_new();
  nd_metric *m, *m2;
  static const char *const l1[] = {"a", NULL}, *const l2[] = {"b", NULL}, *const le[] = {"le", NULL};
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_COUNTER, "x_total", "", l1, NULL, 0, &m), 0);
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_COUNTER, "x_total", "", l1, NULL, 0, &m2), 0);
  ck_assert_ptr_eq(m, m2); /* same shape shares the family */
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_COUNTER, "x_total", "", l2, NULL, 0, &m2),
                   NOTIFD_EEXIST);
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_GAUGE, "x_total", "", l1, NULL, 0, &m2),
                   NOTIFD_EEXIST);
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_GAUGE, "1bad", "", NULL, NULL, 0, &m2),
                   NOTIFD_EINVAL);
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_GAUGE, "bad-name", "", NULL, NULL, 0, &m2),
                   NOTIFD_EINVAL);
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_HISTOGRAM, "h", "", le, NULL, 0, &m2),
                   NOTIFD_EINVAL);
  const double unsorted[] = {1, 0.5};
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_HISTOGRAM, "h", "", NULL, unsorted, 2, &m2),
                   NOTIFD_EINVAL);
  nd_metrics_free(r);
}
END_TEST

START_TEST(many_series) {
  nd_metrics *r = nd_metrics_new();
  nd_metric *m;
  static const char *const l[] = {"k", NULL};
  ck_assert_int_eq(nd_metric_register(r, ND_METRIC_COUNTER, "many_total", "", l, NULL, 0, &m), 0);
  char key[32];
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 5000; i++) {
      snprintf(key, sizeof key, "k%d", i);
      const char *v[] = {key};
      nd_metric_add(m, v, 1);
    }
  const char *v[] = {"k4999"};
  ck_assert(nd_metric_value(m, v) == 2);
  nd_metrics_free(r);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("metrics");
  tcase_add_test(tc, counter_with_labels);
  tcase_add_test(tc, gauge_and_histogram);
  tcase_add_test(tc, registration_rules);
  tcase_add_test(tc, many_series);
  suite_add_tcase(s, tc);
  return s;
}
