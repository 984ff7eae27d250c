/* Echo server for the Autobahn|Testsuite fuzzing client: a host assembled
 * by hand (event base, ws hub, HTTP server) with one channel, /echo?k=KEY,
 * whose on_message sends every message back unchanged.
 *
 *   ws_echo_server PORT      listens on 127.0.0.1:PORT until SIGINT/SIGTERM
 *
 * Limits are raised so Autobahn's large-message cases (up to 16 MiB in
 * case 9) are echoed rather than refused; the heartbeat is slowed so
 * unsolicited pings never interleave with a case's expected frames. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/host.h"
#include "http/http.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "ws/ws.h"

static void on_message(notifd_ws_conn *c, const void *data, size_t len, int32_t is_text,
                       void *ud) {
  (void)ud;
  int rc = nd_ws_send(c, data, len, is_text);
  if (rc < 0) fprintf(stderr, "echo: send failed (%d)\n", rc);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)sig;
  (void)what;
  event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  signal(SIGPIPE, SIG_IGN);
  notifd_host *h = calloc(1, sizeof *h);
  if (!h || !(h->base = event_base_new())) return 1;
  nd_config *c = &h->cfg;
  c->listen_address = "127.0.0.1";
  c->log_level = NOTIFD_LOG_WARN;
  c->http_max_body = 1 << 20;
  c->http_max_header_bytes = 16384;
  c->http_max_connections = 1000;
  c->http_keepalive_ms = 60000;
  c->http_request_timeout_ms = 30000;
  c->shutdown_deadline_ms = 2000;
  c->ws_ping_interval_ms = 600000;
  c->ws_pong_timeout_ms = 60000;
  c->ws_handshake_timeout_ms = 10000;
  c->ws_max_message = 32u << 20;
  c->ws_max_queue_bytes = 128u << 20;
  c->ws_max_queue_frames = 1000000;
  c->ws_max_connections = 1000;
  c->ws_max_per_key = 1000;
  nd_log_configure(c->log_level, 0);
  nd_errors_init(&h->errs);
  h->metrics = nd_metrics_new();
  h->router = nd_router_new();
  h->ws = nd_ws_hub_new(h);
  if (!h->metrics || !h->router || !h->ws) return 1;
  h->phase = ND_PHASE_INIT;
  notifd_ws_channel_opts o = {sizeof o};
  o.path = "/echo";
  o.key_param = "k";
  o.on_message = on_message;
  notifd_ws_channel *ch;
  if (nd_ws_channel_add(h->ws, NULL, &o, &ch) < 0) return 1;
  h->phase = ND_PHASE_RUNNING;
  h->http = nd_http_server_new(h, h->router, 0);
  if (!h->http || nd_http_server_listen(h->http, "127.0.0.1", port, &h->errs) < 0) {
    char buf[512];
    nd_errors_format(&h->errs, buf, sizeof buf);
    fprintf(stderr, "listen failed: %s\n", buf);
    return 1;
  }
  struct event *sint = evsignal_new(h->base, SIGINT, on_signal, h->base);
  struct event *sterm = evsignal_new(h->base, SIGTERM, on_signal, h->base);
  if (!sint || !sterm || event_add(sint, NULL) < 0 || event_add(sterm, NULL) < 0) return 1;
  printf("listening on 127.0.0.1:%d\n", nd_http_server_port(h->http));
  fflush(stdout);
  event_base_dispatch(h->base);
  event_free(sint);
  event_free(sterm);
  nd_http_server_free(h->http);
  nd_ws_hub_free(h->ws);
  nd_router_free(h->router);
  nd_metrics_free(h->metrics);
  nd_errors_free(&h->errs);
  event_base_free(h->base);
  free(h);
  return 0;
}
