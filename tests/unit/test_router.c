/* Router: pattern validation, matching precedence, 404/405 with Allow,
 * HEAD through GET routes, percent-decoded parameters. */
#include <stdlib.h>
#include <string.h>

#include <notifd/plugin.h>
#include "http/http.h"
#include "nd_test.h"

static void h_a(notifd_req *r, void *ud) { (void)r; (void)ud; }
static void h_b(notifd_req *r, void *ud) { (void)r; (void)ud; }

static nd_router *table(void) {
  nd_router *r = nd_router_new();
  ck_assert_ptr_nonnull(r);
  static const struct {
    const char *m, *p;
  } routes[] = {
      {"GET", "/"},
      {"GET", "/a"},
      {"GET", "/a/b"},
      {"GET", "/a/{id}"},
      {"POST", "/a/{id}/c"},
      {"GET", "/users/me"},
      {"POST", "/users/{uid}"},
      {"GET", "/p/{x}/q"},
      {"GET", "/p/lit/r"},
      {"GET", "/x/"},
      {"PUT", "/s/{a}/{b}"},
      {"DELETE", "/s/{a}/{b}"},
  };
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    ck_assert_int_eq(nd_router_add(r, routes[i].m, routes[i].p, h_a, (void *)routes[i].p,
                                   NOTIFD_AUTH_NONE, 0, "test"),
                     0);
  ck_assert_uint_eq(nd_router_count(r), sizeof routes / sizeof routes[0]);
  return r;
}

/* Matches and returns the pattern (or NULL), checking the status. */
static const char *match(nd_router *r, const char *method, const char *path, int want,
                         nd_route_match *m, char *allow) {
  int rc = nd_router_match(r, method, path, m, allow, 64);
  ck_assert_msg(rc == want, "%s %s: got %d want %d", method, path, rc, want);
  return rc == 0 ? m->route->pattern : NULL;
}

START_TEST(matching_table) {
  nd_router *r = table();
  nd_route_match m;
  char allow[64];
  static const struct {
    const char *method, *path, *pattern;
  } ok[] = {
      {"GET", "/", "/"},
      {"GET", "/a", "/a"},
      {"GET", "/a/b", "/a/b"},           /* literal beats {id} */
      {"GET", "/a/zz", "/a/{id}"},
      {"HEAD", "/a/zz", "/a/{id}"},      /* HEAD served by GET */
      {"POST", "/a/7/c", "/a/{id}/c"},
      {"POST", "/users/me", "/users/{uid}"}, /* literal lacks POST: param */
      {"GET", "/users/me", "/users/me"},
      {"GET", "/p/lit/q", "/p/{x}/q"},   /* backtracks from the literal */
      {"GET", "/p/lit/r", "/p/lit/r"},
      {"GET", "/x/", "/x/"},
      {"PUT", "/s/1/2", "/s/{a}/{b}"},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    const char *p = match(r, ok[i].method, ok[i].path, 0, &m, allow);
    ck_assert_msg(p && strcmp(p, ok[i].pattern) == 0, "%s %s -> %s, want %s", ok[i].method,
                  ok[i].path, p ? p : "(none)", ok[i].pattern);
    ck_assert_ptr_eq(m.route->ud, ok[i].pattern);
    nd_route_match_clear(&m);
  }
  static const char *const not_found[] = {"/nope", "/a/b/c/d", "/x", "/a/", "/users",
                                          "/p/lit", "/s/1", "//", "a"};
  for (size_t i = 0; i < sizeof not_found / sizeof not_found[0]; i++)
    match(r, "GET", not_found[i], 404, &m, allow);
  nd_router_free(r);
}
END_TEST

START_TEST(method_not_allowed) {
  nd_router *r = table();
  nd_route_match m;
  char allow[64];
  match(r, "DELETE", "/a", 405, &m, allow);
  ck_assert_str_eq(allow, "GET, HEAD");
  match(r, "GET", "/a/1/c", 405, &m, allow);
  ck_assert_str_eq(allow, "POST");
  match(r, "GET", "/s/1/2", 405, &m, allow);
  ck_assert_str_eq(allow, "PUT, DELETE");
  /* A method the router has never heard of still gets 405 for a known path. */
  match(r, "BREW", "/a", 405, &m, allow);
  ck_assert_str_eq(allow, "GET, HEAD");
  match(r, "BREW", "/zzz", 404, &m, allow);
  /* Allow is truncated safely into a tiny buffer. */
  char tiny[6];
  ck_assert_int_eq(nd_router_match(r, "PATCH", "/s/1/2", &m, tiny, sizeof tiny), 405);
  ck_assert_str_eq(tiny, "PUT");
  nd_router_free(r);
}
END_TEST

START_TEST(params_decoded) {
  nd_router *r = table();
  nd_route_match m;
  char allow[64];
  match(r, "GET", "/a/hello%20world", 0, &m, allow);
  ck_assert_uint_eq(m.nparams, 1);
  ck_assert_str_eq(m.names[0], "id");
  ck_assert_str_eq(m.values[0], "hello world");
  nd_route_match_clear(&m);
  match(r, "GET", "/a/a%2Fb+c", 0, &m, allow); /* %2F stays in the segment, '+' is '+' */
  ck_assert_str_eq(m.values[0], "a/b+c");
  nd_route_match_clear(&m);
  match(r, "GET", "/a/%C3%A9t%c3%a9", 0, &m, allow);
  ck_assert_str_eq(m.values[0], "\xc3\xa9t\xc3\xa9");
  nd_route_match_clear(&m);
  match(r, "PUT", "/s/x%41/y", 0, &m, allow);
  ck_assert_uint_eq(m.nparams, 2);
  ck_assert_str_eq(m.names[0], "a");
  ck_assert_str_eq(m.values[0], "xA");
  ck_assert_str_eq(m.names[1], "b");
  ck_assert_str_eq(m.values[1], "y");
  nd_route_match_clear(&m);
  /* Malformed escapes and encoded NULs never reach a handler. */
  match(r, "GET", "/a/%zz", 404, &m, allow);
  match(r, "GET", "/a/%4", 404, &m, allow);
  match(r, "GET", "/a/x%00y", 404, &m, allow);
  /* An empty segment is not a parameter value. */
  match(r, "POST", "/a//c", 404, &m, allow);
  nd_router_free(r);
}
END_TEST

START_TEST(registration_errors) {
  nd_router *r = nd_router_new();
  ck_assert_int_eq(nd_router_add(r, "GET", "/a/{id}", h_a, NULL, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(r, "GET", "/a/{other}", h_b, NULL, 0, 0, "t"), NOTIFD_EEXIST);
  ck_assert_int_eq(nd_router_add(r, "POST", "/a/{other}", h_b, NULL, 0, 0, "t"), 0);
  ck_assert_int_eq(nd_router_add(r, "GET", "/a/{id}", h_a, NULL, 0, 0, "t"), NOTIFD_EEXIST);
  static const char *const bad[] = {
      "", "a", "/a//b", "/{}", "/{a-b}", "/{a}/{a}", "/x{y}", "/a b", "/a?b", "/{a",
      "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(nd_router_add(r, "GET", bad[i], h_a, NULL, 0, 0, "t") == NOTIFD_EINVAL, "%s",
                  bad[i]);
  ck_assert_int_eq(nd_router_add(r, "get", "/lower", h_a, NULL, 0, 0, "t"), NOTIFD_EINVAL);
  ck_assert_int_eq(nd_router_add(r, "FETCH", "/f", h_a, NULL, 0, 0, "t"), NOTIFD_EINVAL);
  ck_assert_int_eq(nd_router_add(r, "GET", "/f", NULL, NULL, 0, 0, "t"), NOTIFD_EINVAL);
  ck_assert_int_eq(nd_router_add(r, "GET", "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", h_a, NULL, 0,
                                 0, "t"),
                   0); /* exactly ND_ROUTE_MAX_PARAMS */
  ck_assert_uint_eq(nd_router_count(r), 3);
  nd_router_free(r);
}
END_TEST

START_TEST(route_info_copied) {
  nd_router *r = nd_router_new();
  char owner[16] = "plugin-x", pattern[32] = "/o/{k}";
  int ud;
  ck_assert_int_eq(nd_router_add(r, "POST", pattern, h_b, &ud, NOTIFD_AUTH_INTERNAL, 512, owner),
                   0);
  strcpy(owner, "changed");
  strcpy(pattern, "/changed");
  nd_route_match m;
  ck_assert_int_eq(nd_router_match(r, "POST", "/o/1", &m, NULL, 0), 0);
  ck_assert_str_eq(m.route->owner, "plugin-x");
  ck_assert_str_eq(m.route->pattern, "/o/{k}");
  ck_assert_ptr_eq(m.route->handler, h_b);
  ck_assert_ptr_eq(m.route->ud, &ud);
  ck_assert_uint_eq(m.route->auth, NOTIFD_AUTH_INTERNAL);
  ck_assert_uint_eq(m.route->max_body, 512);
  nd_route_match_clear(&m);
  ck_assert_uint_eq(m.nparams, 0);
  nd_router_free(r);
  nd_router_free(NULL);
}
END_TEST

START_TEST(many_routes) {
  /* Registration and lookup stay correct with a wide tree. */
  nd_router *r = nd_router_new();
  char p[64];
  for (int i = 0; i < 500; i++) {
    snprintf(p, sizeof p, "/r%d/{id}/leaf%d", i, i % 7);
    ck_assert_int_eq(nd_router_add(r, "GET", p, h_a, NULL, 0, 0, "t"), 0);
  }
  nd_route_match m;
  for (int i = 0; i < 500; i += 37) {
    snprintf(p, sizeof p, "/r%d/v%d/leaf%d", i, i, i % 7);
    ck_assert_int_eq(nd_router_match(r, "GET", p, &m, NULL, 0), 0);
    char want[16];
    snprintf(want, sizeof want, "v%d", i);
    ck_assert_str_eq(m.values[0], want);
    nd_route_match_clear(&m);
  }
  nd_router_free(r);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("router");
  TCase *tc = tcase_create("router");
  tcase_add_test(tc, matching_table);
  tcase_add_test(tc, method_not_allowed);
  tcase_add_test(tc, params_decoded);
  tcase_add_test(tc, registration_errors);
  tcase_add_test(tc, route_info_copied);
  tcase_add_test(tc, many_routes);
  suite_add_tcase(s, tc);
  return s;
}
