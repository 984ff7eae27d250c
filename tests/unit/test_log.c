/* Rate-limited log lines (log/log.h): per call site, ND_LOG_RL_BURST lines
 * per window pass, the rest are counted; the count comes out in one line
 * once the window is over (by the site's next line or by a flush); other
 * sites are not affected; lines above the level are not counted. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "nd_test.h"

/* Runs fn with stderr captured into a file; returns the text (free it). */
static char *captured(void (*fn)(void)) {
  char path[] = "/tmp/nd-log-test-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  int saved = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fd);
  char *text = nd_test_read_file(path);
  unlink(path);
  ck_assert_ptr_nonnull(text);
  return text;
}

static int count(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void flood(void) {
  nd_log_configure(2, 0);
  for (int i = 0; i < 500; i++) ND_ERROR_RL("test", "store write %d failed: disk full", i);
  for (int i = 0; i < 3; i++) ND_WARN_RL("test", "another kind %d", i);
  for (int i = 0; i < 50; i++) nd_log_limited("site", 3, "test", "debug %d", i); /* off */
  nd_log_limited_flush(); /* the window is not over: nothing yet */
}

START_TEST(burst_then_counted) {
  char *t = captured(flood);
  ck_assert_int_eq(count(t, "failed: disk full"), ND_LOG_RL_BURST);
  ck_assert_int_eq(count(t, "store write 0 failed"), 1);
  ck_assert_int_eq(count(t, "another kind"), 3);
  ck_assert_int_eq(count(t, "more like this"), 0);
  ck_assert_int_eq(count(t, "debug"), 0);
  ck_assert_int_eq(count(t, "level=error comp=test"), ND_LOG_RL_BURST);
  free(t);
}
END_TEST

static void after_window(void) {
  nd_log_configure(2, 0);
  for (int i = 0; i < 30; i++) nd_log_limited("w", 1, "test", "slow disk %d", i);
  usleep((ND_LOG_RL_WINDOW_MS + 100) * 1000);
  nd_log_limited_flush(); /* window over: the 20 suppressed are reported */
  nd_log_limited_flush(); /* and only once */
  nd_log_limited("w", 1, "test", "slow disk %d", 99); /* a new window: passes */
}

START_TEST(count_reported_once_after_the_window) {
  char *t = captured(after_window);
  ck_assert_int_eq(count(t, "20 more like this in the last 10s, the last: slow disk 29"), 1);
  ck_assert_int_eq(count(t, "more like this"), 1);
  ck_assert_int_eq(count(t, "msg=\"slow disk 99\""), 1);
  ck_assert_int_eq(count(t, "level=warn comp=test"), ND_LOG_RL_BURST + 2);
  free(t);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("log");
  TCase *tc = tcase_create("rate_limited");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, burst_then_counted);
  tcase_add_test(tc, count_reported_once_after_the_window);
  suite_add_tcase(s, tc);
  return s;
}
