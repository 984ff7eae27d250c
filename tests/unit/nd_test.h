/* Helpers shared by the Check suites: temp dirs, free ports, spawning the
 * daemon, blocking HTTP calls (libcurl), and a host running on its own
 * loop thread. */
#ifndef ND_TEST_H
#define ND_TEST_H

#include <check.h>
#include <stddef.h>
#include <sys/types.h>

#include <notifd/embed.h>

/* Each test_<area>.c defines this. */
Suite *nd_test_suite(void);

/* mkdtemp under $TMPDIR; malloc'd path (removed by nd_test_rmrf). */
char *nd_test_tmpdir(void);
void nd_test_rmrf(const char *path);
int nd_test_write_file(const char *path, const char *content);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int nd_test_free_port(void);

/* Blocking HTTP with libcurl. Returns the status (or -1 on transport error);
 * *body (optional) gets the malloc'd response body. `headers` NULL-terminated. */
long nd_test_http(const char *method, const char *url, const char *body,
                  const char *const *headers, char **resp_body);
/* Polls `url` until it answers 200 or timeout; 0 when it did. */
int nd_test_wait_ok(const char *url, int timeout_ms);

/* Spawns argv[0] with stdout+stderr into `log_path` (may be NULL). */
pid_t nd_test_spawn(char *const argv[], const char *log_path);
/* Waits up to timeout_ms; returns the exit status, 128+sig when killed by
 * a signal, or -1 on timeout (the child is then SIGKILLed). */
int nd_test_wait_exit(pid_t pid, int timeout_ms);
/* Reads a whole file (malloc'd) or NULL. */
char *nd_test_read_file(const char *path);

/* The notifd binary and plugin dirs of this build. */
#define ND_TEST_NOTIFD ND_BUILD_ROOT "/host/notifd"

/* A host running on a private loop thread, for black-box tests. */
typedef struct nd_test_host nd_test_host;
/* Starts from YAML text (builtins optional, NULL-terminated); NULL with
 * `err` filled on failure. */
nd_test_host *nd_test_host_start(const char *yaml, const notifd_plugin_def *const *builtins,
                                 char *err, size_t errlen);
int nd_test_host_port(nd_test_host *t);
int nd_test_host_admin_port(nd_test_host *t);
/* Graceful stop, joins the loop thread, frees. Returns 0 if the loop
 * ended by itself (no events left behind). */
int nd_test_host_stop(nd_test_host *t);

#endif
