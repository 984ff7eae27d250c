#include "nd_test.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *nd_test_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/notifd-test-XXXXXX", base && *base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(p);
}

void nd_test_rmrf(const char *path) {
  if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int nd_test_write_file(const char *path, const char *content) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  size_t n = strlen(content);
  int ok = fwrite(content, 1, n, f) == n;
  return (fclose(f) == 0 && ok) ? 0 : -1;
}

char *nd_test_read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += r;
    if (cap - len < 2) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) { free(buf); buf = NULL; break; }
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  if (buf) buf[len] = '\0';
  return buf;
}

int nd_test_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &l) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

typedef struct sink { char *p; size_t n; } sink;

static size_t on_data(char *d, size_t sz, size_t nm, void *ud) {
  sink *s = ud;
  size_t n = sz * nm;
  char *np = realloc(s->p, s->n + n + 1);
  if (!np) return 0;
  memcpy(np + s->n, d, n);
  s->n += n;
  np[s->n] = '\0';
  s->p = np;
  return n;
}

long nd_test_http(const char *method, const char *url, const char *body,
                  const char *const *headers, char **resp_body) {
  CURL *c = curl_easy_init();
  if (!c) return -1;
  sink s = {calloc(1, 1), 0};
  struct curl_slist *hl = NULL;
  for (size_t i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
  if (body) hl = curl_slist_append(hl, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  if (strcmp(method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  long status = -1;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hl);
  curl_easy_cleanup(c);
  if (resp_body) *resp_body = s.p; else free(s.p);
  return status;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int nd_test_wait_ok(const char *url, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    if (nd_test_http("GET", url, NULL, NULL, NULL) == 200) return 0;
    sleep_ms(50);
  }
  return -1;
}

pid_t nd_test_spawn(char *const argv[], const char *log_path) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  if (log_path) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
  }
  execv(argv[0], argv);
  _exit(127);
}

int nd_test_wait_exit(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(st)) return WEXITSTATUS(st);
      if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
      return -1;
    }
    if (r < 0 && errno != EINTR) return -1;
    sleep_ms(20);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* ---- host on a loop thread ---- */

struct nd_test_host {
  struct event_base *base;
  notifd_host *host;
  pthread_t thread;
  int stopped_cb_ran;
};

static void *loop_main(void *arg) {
  nd_test_host *t = arg;
  event_base_dispatch(t->base);
  return NULL;
}

static void on_stopped(notifd_host *h, void *ud) {
  (void)h;
  ((nd_test_host *)ud)->stopped_cb_ran = 1;
}

nd_test_host *nd_test_host_start(const char *yaml, const notifd_plugin_def *const *builtins,
                                 char *err, size_t errlen) {
  nd_test_host *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->base = event_base_new();
  if (!t->base ||
      notifd_host_new_from_string(yaml, strlen(yaml), "test.yaml", t->base, &t->host, err,
                                  errlen) < 0)
    goto fail;
  for (size_t i = 0; builtins && builtins[i]; i++)
    if (notifd_host_add_builtin(t->host, builtins[i]) < 0) goto fail;
  if (notifd_host_start(t->host, err, errlen) < 0) goto fail;
  notifd_host_set_stop_callback(t->host, on_stopped, t);
  if (pthread_create(&t->thread, NULL, loop_main, t) != 0) goto fail;
  return t;
fail:
  if (t->host) notifd_host_free(t->host);
  if (t->base) event_base_free(t->base);
  free(t);
  return NULL;
}

int nd_test_host_port(nd_test_host *t) { return notifd_host_port(t->host); }
int nd_test_host_admin_port(nd_test_host *t) { return notifd_host_admin_port(t->host); }

int nd_test_host_stop(nd_test_host *t) {
  notifd_host_request_stop(t->host);
  /* The loop returns once the host removed all of its events. */
  pthread_join(t->thread, NULL);
  int rc = t->stopped_cb_ran ? 0 : -1;
  notifd_host_free(t->host);
  event_base_free(t->base);
  free(t);
  return rc;
}
