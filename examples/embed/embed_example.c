/* Embedding libnotifd: an existing libevent program with its own HTTP
 * listener (evhttp) runs the notifd host on the same event_base.
 *
 *   embed_example APP_PORT NOTIFD_PORT PLUGIN_DIR
 *
 * GET http://127.0.0.1:APP_PORT/app        -> served by this program
 * GET http://127.0.0.1:NOTIFD_PORT/hello   -> served by the example_hello plugin
 * SIGTERM stops both gracefully. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <notifd/embed.h>

typedef struct app {
  struct event_base *base;
  struct evhttp *http;
  notifd_host *notifd;
  struct event *sigterm;
} app;

static void on_app(struct evhttp_request *req, void *ud) {
  (void)ud;
  struct evbuffer *b = evbuffer_new();
  evbuffer_add_printf(b, "app ok\n");
  evhttp_send_reply(req, 200, "OK", b);
  evbuffer_free(b);
}

static void on_notifd_stopped(notifd_host *h, void *ud) {
  (void)h;
  app *a = ud;
  /* notifd left nothing on the loop; now release our own events. */
  evhttp_free(a->http);
  a->http = NULL;
  event_del(a->sigterm);
}

static void on_sigterm(evutil_socket_t s, short w, void *ud) {
  (void)s;
  (void)w;
  app *a = ud;
  notifd_host_stop(a->notifd, on_notifd_stopped, a);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s APP_PORT NOTIFD_PORT PLUGIN_DIR\n", argv[0]);
    return 2;
  }
  app a = {0};
  a.base = event_base_new();
  a.http = evhttp_new(a.base);
  if (!a.base || !a.http || evhttp_bind_socket(a.http, "127.0.0.1", (unsigned short)atoi(argv[1])) < 0) {
    fprintf(stderr, "cannot listen on %s\n", argv[1]);
    return 1;
  }
  evhttp_set_cb(a.http, "/app", on_app, NULL);

  char yaml[1024], err[4096];
  int n = snprintf(yaml, sizeof yaml,
                   "listen: {address: 127.0.0.1, port: %s}\n"
                   "admin: {port: -1}\n"
                   "data_dir: /tmp/notifd-embed-example\n"
                   "plugin_dirs: [%s]\n"
                   "plugins:\n  - name: example_hello\n    config: {greeting: Hi}\n",
                   argv[2], argv[3]);
  if (notifd_host_new_from_string(yaml, (size_t)n, "embedded", a.base, &a.notifd, err, sizeof err) < 0 ||
      notifd_host_start(a.notifd, err, sizeof err) < 0) {
    fprintf(stderr, "notifd: %s\n", err);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  a.sigterm = evsignal_new(a.base, SIGTERM, on_sigterm, &a);
  event_add(a.sigterm, NULL);
  printf("embed_example: app on %s, notifd on %d\n", argv[1], notifd_host_port(a.notifd));
  fflush(stdout);
  event_base_dispatch(a.base);
  notifd_host_free(a.notifd);
  event_free(a.sigterm);
  event_base_free(a.base);
  return 0;
}
