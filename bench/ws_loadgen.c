/* ws_loadgen: opens many websocket client connections to notifd and counts
 * the frames they receive.  Bounded in count and time; loopback only.
 *
 *   ws_loadgen --port P --path '/chat/subscribe-websocket?stream_id=k{key}&sender_id=a&receiver_id=b'
 *              --conns 10000 --keys 1000 --sources 32 --hold 10 [--expect FRAMES]
 *
 * {key} in the path becomes the connection's key index (i % keys).  Source
 * addresses rotate over 127.0.0.1 .. 127.0.0.<sources> so tens of thousands
 * of connections do not exhaust one address's ephemeral ports.  Prints one
 * JSON line with connect and receive figures. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "ws_client_frame.h"

typedef struct run run;

typedef struct conn {
  run *r;
  struct bufferevent *bev;
  int upgraded;
  uint64_t frames;
} conn;

struct run {
  struct event_base *base;
  const char *path;
  int port, nconns, nkeys, nsources;
  int hold_s;
  uint64_t expect; /* total frames to wait for (0 = hold only) */
  conn *conns;
  int opened, upgraded, failed, closed;
  uint64_t frames, bytes;
  double t_start, t_all_up, t_first_frame, t_last_frame;
  int next_to_open;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses every complete server frame in the input (server frames are not
 * masked); returns frames seen. */
static void drain_frames(run *r, conn *c, struct evbuffer *in) {
  bench_ws_frame f;
  while (bench_ws_peek_header(in, &f)) {
    size_t whole = f.header_len + f.payload_len;
    if (evbuffer_get_length(in) < whole) return;
    evbuffer_drain(in, whole);
    if (f.opcode == 1 || f.opcode == 2) {
      double t = now_s();
      if (r->frames == 0) r->t_first_frame = t;
      r->t_last_frame = t;
      r->frames++;
      r->bytes += f.payload_len;
      c->frames++;
      if (r->expect && r->frames >= r->expect) event_base_loopexit(r->base, NULL);
    } else if (f.opcode == 9) {
      bufferevent_write(c->bev, bench_ws_pong, sizeof bench_ws_pong);
    }
  }
}

static void on_read(struct bufferevent *bev, void *arg) {
  conn *c = arg;
  run *r = c->r;
  struct evbuffer *in = bufferevent_get_input(bev);
  if (!c->upgraded) {
    char status[16];
    int up = bench_ws_read_upgrade(in, status);
    if (up < 0) return;
    if (!up) {
      r->failed++;
      bufferevent_free(bev);
      c->bev = NULL;
      return;
    }
    c->upgraded = 1;
    if (++r->upgraded == r->nconns) r->t_all_up = now_s();
  }
  drain_frames(r, c, in);
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
  conn *c = arg;
  run *r = c->r;
  if (what & BEV_EVENT_CONNECTED) {
    char req[1024], path[512];
    const char *k = strstr(r->path, "{key}");
    int idx = (int)(c - r->conns);
    if (k)
      snprintf(path, sizeof path, "%.*s%d%s", (int)(k - r->path), r->path, idx % r->nkeys, k + 5);
    else
      snprintf(path, sizeof path, "%s", r->path);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, r->port);
    bufferevent_write(bev, req, (size_t)n);
    return;
  }
  if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
    if (c->upgraded) r->closed++; else r->failed++;
    bufferevent_free(bev);
    c->bev = NULL;
  }
}

static void open_batch(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  run *r = arg;
  /* Open in batches so the listen backlog keeps up. */
  for (int i = 0; i < 500 && r->next_to_open < r->nconns; i++, r->next_to_open++) {
    int idx = r->next_to_open;
    conn *c = &r->conns[idx];
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { r->failed++; continue; }
    struct sockaddr_in src = {0};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(idx % r->nsources));
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(s, (struct sockaddr *)&src, sizeof src) < 0) { close(s); r->failed++; continue; }
    evutil_make_socket_nonblocking(s);
    c->bev = bufferevent_socket_new(r->base, s, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ);
    struct sockaddr_in dst = {0};
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)r->port);
    dst.sin_addr.s_addr = htonl(0x7f000001u);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&dst, sizeof dst) < 0) {
      bufferevent_free(c->bev);
      c->bev = NULL;
      r->failed++;
      continue;
    }
    r->opened++;
  }
  if (r->next_to_open < r->nconns) {
    struct timeval tv = {0, 2000};
    event_base_once(r->base, -1, EV_TIMEOUT, open_batch, r, &tv);
  }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopexit(((run *)arg)->base, NULL);
}

int main(int argc, char **argv) {
  run r = {.port = 8080, .nconns = 1000, .nkeys = 1, .nsources = 16, .hold_s = 5,
           .path = "/chat/subscribe-websocket?stream_id=k{key}&sender_id=a&receiver_id=b"};
  static const struct option opts[] = {
      {"port", 1, 0, 'p'}, {"path", 1, 0, 'P'}, {"conns", 1, 0, 'n'}, {"keys", 1, 0, 'k'},
      {"sources", 1, 0, 's'}, {"hold", 1, 0, 'h'}, {"expect", 1, 0, 'e'}, {0, 0, 0, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case 'p': r.port = atoi(optarg); break;
    case 'P': r.path = optarg; break;
    case 'n': r.nconns = atoi(optarg); break;
    case 'k': r.nkeys = atoi(optarg); break;
    case 's': r.nsources = atoi(optarg); break;
    case 'h': r.hold_s = atoi(optarg); break;
    case 'e': r.expect = strtoull(optarg, NULL, 10); break;
    default: fprintf(stderr, "see the comment at the top of bench/ws_loadgen.c\n"); return 2;
    }
  }
  /* Bounds: loopback only, at most 100k connections and 10 minutes. */
  if (r.nconns < 1 || r.nconns > 100000 || r.nkeys < 1 || r.nsources < 1 || r.nsources > 250 ||
      r.hold_s < 1 || r.hold_s > 600) {
    fprintf(stderr, "ws_loadgen: arguments out of bounds\n");
    return 2;
  }
  struct rlimit rl = {(rlim_t)r.nconns + 256, (rlim_t)r.nconns + 256};
  setrlimit(RLIMIT_NOFILE, &rl);
  r.conns = calloc((size_t)r.nconns, sizeof(conn));
  r.base = event_base_new();
  if (!r.conns || !r.base) return 1;
  for (int i = 0; i < r.nconns; i++) r.conns[i].r = &r;
  r.t_start = now_s();
  struct timeval tv0 = {0, 0}, hold = {r.hold_s, 0};
  event_base_once(r.base, -1, EV_TIMEOUT, open_batch, &r, &tv0);
  event_base_once(r.base, -1, EV_TIMEOUT, on_deadline, &r, &hold);
  printf("{\"event\":\"started\",\"conns\":%d}\n", r.nconns);
  fflush(stdout);
  event_base_dispatch(r.base);
  double span = r.frames > 1 ? r.t_last_frame - r.t_first_frame : 0;
  printf("{\"event\":\"done\",\"conns\":%d,\"upgraded\":%d,\"failed\":%d,\"closed\":%d,"
         "\"connect_seconds\":%.3f,\"frames\":%llu,\"bytes\":%llu,\"receive_span_seconds\":%.6f,"
         "\"frames_per_second\":%.0f}\n",
         r.nconns, r.upgraded, r.failed, r.closed, r.t_all_up > 0 ? r.t_all_up - r.t_start : -1.0,
         (unsigned long long)r.frames, (unsigned long long)r.bytes, span,
         span > 0 ? (double)r.frames / span : 0.0);
  for (int i = 0; i < r.nconns; i++)
    if (r.conns[i].bev) bufferevent_free(r.conns[i].bev);
  free(r.conns);
  event_base_free(r.base);
  return r.upgraded == r.nconns ? 0 : 1;
}
