/* The notifd executable: CLI, --check, serving, SIGTERM shutdown. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd_test.h"

static char *dir;

static void setup(void) { dir = nd_test_tmpdir(); }
static void teardown(void) {
  nd_test_rmrf(dir);
  free(dir);
}

/* Runs notifd with args, returns exit code; *out gets combined output. */
static int run_notifd(char **out, const char *a1, const char *a2, const char *a3) {
  char log[512];
  snprintf(log, sizeof log, "%s/out.log", dir);
  char *argv[] = {ND_TEST_NOTIFD, (char *)a1, (char *)a2, (char *)a3, NULL};
  pid_t pid = nd_test_spawn(argv, log);
  int rc = nd_test_wait_exit(pid, 20000);
  *out = nd_test_read_file(log);
  return rc;
}

/* Runs notifd with a NULL-terminated argv tail; exit code, *out = output. */
static int run_args(char **out, const char *const *args) {
  char log[512];
  snprintf(log, sizeof log, "%s/out.log", dir);
  char *argv[16] = {ND_TEST_NOTIFD};
  for (size_t i = 0; args[i] && i + 2 < sizeof argv / sizeof *argv; i++) argv[i + 1] = (char *)args[i];
  pid_t pid = nd_test_spawn(argv, log);
  int rc = nd_test_wait_exit(pid, 30000); /* generous: a loaded machine */
  *out = nd_test_read_file(log);
  return rc;
}

static int count_lines(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

START_TEST(version_and_help) {
  char *out;
  ck_assert_int_eq(run_notifd(&out, "--version", NULL, NULL), 0);
  char want[64];
  snprintf(want, sizeof want, "notifd 0.1.0 (plugin ABI %d.%d)", NOTIFD_ABI_MAJOR, NOTIFD_ABI_MINOR);
  ck_assert_msg(strstr(out, want), "%s", out);
  free(out);
  ck_assert_int_eq(run_notifd(&out, "--help", NULL, NULL), 0);
  ck_assert_msg(strstr(out, "--check"), "%s", out);
  free(out);
  ck_assert_int_eq(run_notifd(&out, "--bogus", NULL, NULL), 2);
  free(out);
}
END_TEST

START_TEST(check_reports_misspelt_key) {
  char cfg[512];
  snprintf(cfg, sizeof cfg, "%s/bad.yaml", dir);
  nd_test_write_file(cfg,
                     "listen:\n  address: 127.0.0.1\n  prot: 8080\n"
                     "logging: {level: info}\n"
                     "websocket:\n  ping_interval: soon\n");
  char *out;
  ck_assert_int_eq(run_notifd(&out, "--check", "-c", cfg), 1);
  /* Every problem, each with file:line:column. */
  char want[600];
  snprintf(want, sizeof want, "%s:3:3: unknown key 'listen.prot'", cfg);
  ck_assert_msg(strstr(out, want), "want '%s' in: %s", want, out);
  snprintf(want, sizeof want, "%s:6:18", cfg);
  ck_assert_msg(strstr(out, want) && strstr(out, "ping_interval"), "want '%s' in: %s", want, out);
  free(out);
}
END_TEST

START_TEST(check_ok_and_missing_file) {
  char cfg[512];
  snprintf(cfg, sizeof cfg, "%s/good.yaml", dir);
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "listen: {address: 127.0.0.1, port: 0}\ndata_dir: %s/data\n"
           "plugins:\n  - name: tp_ok\n    path: %s/tp_ok.so\n",
           dir, ND_TEST_PLUGIN_DIR);
  nd_test_write_file(cfg, yaml);
  char *out;
  ck_assert_int_eq(run_notifd(&out, "--check", "-c", cfg), 0);
  ck_assert_msg(strstr(out, "OK"), "%s", out);
  free(out);
  ck_assert_int_eq(run_notifd(&out, "-c", "/nonexistent/notifd.yaml", NULL), 1);
  ck_assert_msg(strstr(out, "/nonexistent/notifd.yaml"), "%s", out);
  free(out);
}
END_TEST

/* Entries of `path` other than . and .. (-1 when it cannot be read). */
static int dir_entries(const char *path) {
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  closedir(d);
  return n;
}

/* One run reports every problem: the host's own (a bad value, a misspelt
 * key with its suggestion), a plugin whose init fails, and the config
 * errors of two more plugins (an allowed-values error at its file:line:col,
 * a misspelt key), and writes nothing into the data dir. */
START_TEST(check_reports_everything_in_one_pass) {
  char cfg[512], data[512], yaml[4096];
  snprintf(cfg, sizeof cfg, "%s/many.yaml", dir);
  snprintf(data, sizeof data, "%s/data", dir);
  ck_assert_int_eq(mkdir(data, 0750), 0);
  snprintf(yaml, sizeof yaml,
           "listen: {address: 127.0.0.1, prot: 8080}\n"                        /* 1 */
           "websocket:\n"                                                      /* 2 */
           "  ping_interval: soon\n"                                           /* 3 */
           "data_dir: %s\n"                                                    /* 4 */
           "plugins:\n"                                                        /* 5 */
           "  - name: tp_initfail\n"                                           /* 6 */
           "    path: %s/tp_initfail.so\n"                                     /* 7 */
           "  - name: notifications_ws\n"                                      /* 8 */
           "    path: %s/plugins/notifications_ws/notifications_ws.so\n"       /* 9 */
           "    config:\n"                                                     /* 10 */
           "      answer: sometimes\n"                                         /* 11 */
           "      store_pth: /tmp/elsewhere.db\n"                              /* 12 */
           "  - name: chat_persistence\n"                                      /* 13 */
           "    path: %s/plugins/chat_persistence/chat_persistence.so\n"       /* 14 */
           "    config:\n"                                                     /* 15 */
           "      sqlite_synchronous: fast\n"                                  /* 16 */
           "      store: nosql\n",                                             /* 17 */
           data, ND_TEST_PLUGIN_DIR, ND_BUILD_ROOT, ND_BUILD_ROOT);
  nd_test_write_file(cfg, yaml);
  char *out;
  ck_assert_int_eq(run_notifd(&out, "--check", "-c", cfg), 1);
  const char *want[] = {
      ":3:18: key 'websocket.ping_interval': expected duration",
      ":6:5: plugin 'tp_initfail' (",
      "init failed (-5)",
      ":11:15: key 'plugins[1].config.answer': expected one of stored|arrival, got 'sometimes'",
      ":16:27: key 'plugins[2].config.sqlite_synchronous': expected one of full|normal, got "
      "'fast'",
      ":17:14: key 'plugins[2].config.store': expected one of auto|sqlite|mongodb, got 'nosql'",
      ":1:30: unknown key 'listen.prot' (did you mean 'port'?)",
      ":12:7: unknown key 'plugins[1].config.store_pth' (did you mean 'store_path'?)",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    ck_assert_msg(strstr(out, want[i]), "want '%s' in: %s", want[i], out);
  /* The plugins' failures add no "init failed" line of their own. */
  ck_assert_msg(strstr(out, "'notifications_ws' (") == NULL, "%s", out);
  ck_assert_msg(strstr(out, "'chat_persistence' (") == NULL, "%s", out);
  ck_assert_int_eq(dir_entries(data), 0);
  free(out);
}
END_TEST

/* `bus tail -n 10` with fewer records prints what exists and exits (the
 * README's example used to wait forever); -f waits for the rest. */
START_TEST(bus_tail_prints_what_exists) {
  char data[512];
  snprintf(data, sizeof data, "%s/bus", dir);
  char *out;
  for (int i = 0; i < 3; i++) {
    char key[8];
    snprintf(key, sizeof key, "u%d", i);
    const char *produce[] = {"bus", "produce", "-d", data, "-k", key, "t.dlq", "{\"n\":1}", NULL};
    ck_assert_int_eq(run_args(&out, produce), 0);
    free(out);
  }
  const char *from_start[] = {"bus", "tail", "-d", data, "-B", "-n", "10", "t.dlq", NULL};
  ck_assert_int_eq(run_args(&out, from_start), 0);
  ck_assert_msg(count_lines(out, "\"topic\":\"t.dlq\"") == 3, "%s", out);
  free(out);
  /* Without -B: the last records (each partition's), at most -n. */
  const char *last[] = {"bus", "tail", "-d", data, "-n", "2", "t.dlq", NULL};
  ck_assert_int_eq(run_args(&out, last), 0);
  ck_assert_msg(count_lines(out, "\"topic\":\"t.dlq\"") == 2, "%s", out);
  free(out);
  /* An empty topic: nothing to print, exit at once. */
  const char *empty[] = {"bus", "tail", "-d", data, "-B", "-n", "5", "none", NULL};
  ck_assert_int_eq(run_args(&out, empty), 0);
  ck_assert_msg(count_lines(out, "\"topic\"") == 0, "%s", out);
  free(out);
  /* --follow keeps waiting at the end: the 4th record, produced once the
   * first 3 are printed, ends it. */
  char log[512];
  snprintf(log, sizeof log, "%s/follow.log", dir);
  char *follow[] = {ND_TEST_NOTIFD, "bus", "tail", "-d", data, "-B", "-f", "-n", "4", "t.dlq", NULL};
  pid_t pid = nd_test_spawn(follow, log);
  int seen = 0;
  for (int tries = 0; tries < 3000 && seen < 3; tries++) { /* up to 30 s */
    char *so_far = nd_test_read_file(log);
    seen = so_far ? count_lines(so_far, "\"topic\":\"t.dlq\"") : 0;
    free(so_far);
    if (seen < 3) usleep(10000);
  }
  ck_assert_msg(seen == 3, "tail -f printed %d of the 3 records", seen);
  const char *fourth[] = {"bus", "produce", "-d", data, "t.dlq", "{\"n\":4}", NULL};
  ck_assert_int_eq(run_args(&out, fourth), 0);
  free(out);
  ck_assert_int_eq(nd_test_wait_exit(pid, 30000), 0);
  out = nd_test_read_file(log);
  ck_assert_msg(out && count_lines(out, "\"topic\":\"t.dlq\"") == 4, "%s", out);
  free(out);
  const char *bad[] = {"bus", "tail", "-d", data, "-n", "ten", "t.dlq", NULL};
  ck_assert_int_eq(run_args(&out, bad), 2);
  free(out);
}
END_TEST

/* The README's run config: every role loads and inits from the build. */
START_TEST(check_shipped_single_node_config) {
  char data[512];
  snprintf(data, sizeof data, "%s/data", dir);
  setenv("NOTIFD_DATA_DIR", data, 1);
  setenv("NOTIFD_PLUGIN_DIR", ND_BUILD_ROOT "/plugins", 1);
  setenv("NOTIFD_WEB_DIR", ND_SOURCE_ROOT "/web", 1);
  setenv("NOTIFD_TEMPLATES_DIR", ND_SOURCE_ROOT "/config/templates", 1);
  char *out;
  int rc = run_notifd(&out, "--check", "-c", ND_SOURCE_ROOT "/config/single-node.yaml");
  ck_assert_msg(rc == 0, "%s", out);
  /* --check writes nothing: not even the data dir is created. */
  ck_assert_msg(access(data, F_OK) != 0, "--check created %s: %s", data, out);
  const char *roles[] = {"chat_ws", "notifications_ws", "chat_persistence", "chat_change_handler",
                         "email"};
  for (size_t i = 0; i < sizeof roles / sizeof *roles; i++) {
    char want[128];
    snprintf(want, sizeof want, "plugin %s ", roles[i]);
    ck_assert_msg(strstr(out, want), "%s not loaded: %s", roles[i], out);
  }
  free(out);
}
END_TEST

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

START_TEST(serve_and_sigterm) {
  int port = nd_test_free_port(), admin = nd_test_free_port();
  char cfg[512], log[512], yaml[1024], url[256];
  snprintf(cfg, sizeof cfg, "%s/run.yaml", dir);
  snprintf(log, sizeof log, "%s/run.log", dir);
  snprintf(yaml, sizeof yaml,
           "listen: {address: 127.0.0.1, port: %d}\nadmin: {address: 127.0.0.1, port: %d}\n"
           "data_dir: %s/data\nshutdown: {deadline: 5s}\n"
           "plugins:\n  - name: tp_ok\n    path: %s/tp_ok.so\n",
           port, admin, dir, ND_TEST_PLUGIN_DIR);
  nd_test_write_file(cfg, yaml);
  char *argv[] = {ND_TEST_NOTIFD, "-c", cfg, NULL};
  pid_t pid = nd_test_spawn(argv, log);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
  ck_assert_int_eq(nd_test_wait_ok(url, 10000), 0);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", admin);
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, NULL), 200);
  char *body = NULL;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", admin);
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, &body), 200);
  char info[96];
  snprintf(info, sizeof info, "notifd_build_info{version=\"0.1.0\",abi=\"%d.%d\"} 1",
           NOTIFD_ABI_MAJOR, NOTIFD_ABI_MINOR);
  ck_assert_msg(strstr(body, info), "%s", body);
  ck_assert_msg(strstr(body, "notifd_http_requests_total"), "%s", body);
  free(body);

  /* SIGTERM with a request in flight: it is answered, then exit 0. */
  fetch f = {0};
  snprintf(f.url, sizeof f.url, "http://127.0.0.1:%d/tp/slow?ms=400", port);
  pthread_t t;
  pthread_create(&t, NULL, fetch_main, &f);
  usleep(150 * 1000);
  kill(pid, SIGTERM);
  ck_assert_int_eq(nd_test_wait_exit(pid, 8000), 0);
  pthread_join(t, NULL);
  ck_assert_int_eq(f.status, 200);
  free(f.body);
  char *logtext = nd_test_read_file(log);
  ck_assert_msg(strstr(logtext, "shutting down") && strstr(logtext, "notifd stopped"), "%s",
                logtext);
  free(logtext);
  /* Nothing listens any more. */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
  ck_assert_int_eq(nd_test_http("GET", url, NULL, NULL, NULL), -1);
}
END_TEST

Suite *nd_test_suite(void) {
  Suite *s = suite_create("daemon");
  TCase *tc = tcase_create("daemon");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 240); /* the bounded waits inside fail first */
  tcase_add_test(tc, version_and_help);
  tcase_add_test(tc, check_reports_misspelt_key);
  tcase_add_test(tc, check_ok_and_missing_file);
  tcase_add_test(tc, check_reports_everything_in_one_pass);
  tcase_add_test(tc, bus_tail_prints_what_exists);
  tcase_add_test(tc, check_shipped_single_node_config);
  tcase_add_test(tc, serve_and_sigterm);
  suite_add_tcase(s, tc);
  return s;
}
