/* ws_loadgen: opens many websocket client connections to a server and
 * counts the messages they receive; optionally publishes to them over
 * keep-alive HTTP itself.  Bounded in count and time; loopback only.
 *
 *   ws_loadgen --port P --path '/chat/subscribe-websocket?stream_id=k{key}&sender_id=a&receiver_id=b'
 *              --conns 10000 --keys 1000 --sources 32 --hold 10 [--expect FRAMES]
 *
 * {key} in the path becomes the connection's key index (i % keys).  Source
 * addresses rotate over 127.0.0.1 .. 127.0.0.<sources> so tens of thousands
 * of connections do not exhaust one address's ephemeral ports.  Prints one
 * JSON line with connect and receive figures.
 *
 * Other servers' protocols (bench/run_peer_bench.sh drives Centrifugo
 * with the same client):
 *   --hello TEXT         a text frame sent right after the upgrade ({key}
 *                        substituted; e.g. a connect and a subscribe command)
 *   --ready-marker S     a connection is ready (subscribed) once a frame
 *                        containing S arrived; default: at the upgrade
 *   --count-marker S     a data frame carries as many messages as S occurs
 *                        in it (servers that batch); default: one per frame
 *   --pong-empty-json    answer a text frame "{}" with "{}" (app-level ping)
 * Publishing, once every connection is ready (closed loop: each HTTP
 * connection sends its next POST when the previous one was answered):
 *   --publish PATH       POST target ({key} substituted)
 *   --body TEMPLATE      request body ({key} and {seq} substituted)
 *   --header 'N: V'      extra request header (up to 4)
 *   --messages M         publishes per key (so every socket expects M)
 *   --http-conns N       keep-alive connections publishing (default 4)
 *   --server-pid PID     server CPU (utime+stime) over the publish window:
 *                        server_us_per_publish in the output
 * Publishes to key i % keys in turn; the run ends when every socket got its
 * M messages (or at --hold; or after 60 s if not every socket got ready). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/times.h>
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
  int ready;
  uint64_t frames;
} conn;

typedef struct pubconn {
  run *r;
  struct bufferevent *bev;
  int busy;
} pubconn;

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
  /* other protocols */
  const char *hello, *ready_marker, *count_marker;
  int pong_empty_json;
  int nready;
  /* publishing */
  const char *pub_path, *pub_body;
  const char *headers[4];
  int nheaders;
  long messages;
  int http_conns;
  int server_pid;
  pubconn *pubs;
  long next_pub, answered, http_errors;
  int publishing;
  double t_pub0, cpu0;
  double cpu_server, self0;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (utime + stime) of a process, -1 if unreadable. */
static double proc_cpu(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long ut = 0, st = 0;
  /* after ") ": state(3) ... utime is field 14, stime 15 */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
  struct tms t;
  times(&t);
  return (double)(t.tms_utime + t.tms_stime) / (double)sysconf(_SC_CLK_TCK);
}

/* `tmpl` with {key} (and {seq}) substituted into out; its length. */
static size_t expand(char *out, size_t cap, const char *tmpl, long key, long seq) {
  size_t n = 0;
  for (const char *p = tmpl; *p && n + 32 < cap;) {
    if (strncmp(p, "{key}", 5) == 0) {
      n += (size_t)snprintf(out + n, cap - n, "%ld", key);
      p += 5;
    } else if (strncmp(p, "{seq}", 5) == 0) {
      n += (size_t)snprintf(out + n, cap - n, "%ld", seq);
      p += 5;
    } else {
      out[n++] = *p++;
    }
  }
  out[n] = '\0';
  return n;
}

/* A masked client text frame (mask 0: payload unchanged). */
static void send_text(struct bufferevent *bev, const char *text, size_t len) {
  unsigned char h[14];
  size_t hl = 0;
  h[hl++] = 0x81;
  if (len < 126) {
    h[hl++] = (unsigned char)(0x80 | len);
  } else {
    h[hl++] = 0x80 | 126;
    h[hl++] = (unsigned char)(len >> 8);
    h[hl++] = (unsigned char)len;
  }
  memset(h + hl, 0, 4);
  hl += 4;
  bufferevent_write(bev, h, hl);
  bufferevent_write(bev, text, len);
}

static size_t count_occurrences(const char *p, size_t len, const char *needle) {
  size_t nl = strlen(needle), n = 0;
  if (!nl) return 0;
  for (const char *e = p + len; p + nl <= e;) {
    const char *q = memmem(p, (size_t)(e - p), needle, nl);
    if (!q) break;
    n++;
    p = q + nl;
  }
  return n;
}

static void maybe_start_publishing(run *r);

/* Parses every complete server frame in the input (server frames are not
 * masked); counts messages. */
static void drain_frames(run *r, conn *c, struct evbuffer *in) {
  bench_ws_frame f;
  while (bench_ws_peek_header(in, &f)) {
    size_t whole = f.header_len + f.payload_len;
    if (evbuffer_get_length(in) < whole) return;
    uint64_t msgs = 1;
    if (f.opcode == 1 || f.opcode == 2) {
      if (r->ready_marker || r->count_marker || r->pong_empty_json) {
        const char *pl = (const char *)evbuffer_pullup(in, (ev_ssize_t)whole) + f.header_len;
        size_t plen = (size_t)f.payload_len;
        if (r->pong_empty_json && plen == 2 && memcmp(pl, "{}", 2) == 0) {
          send_text(c->bev, "{}", 2);
          evbuffer_drain(in, whole);
          continue;
        }
        if (!c->ready && r->ready_marker && count_occurrences(pl, plen, r->ready_marker)) {
          c->ready = 1;
          r->nready++;
          maybe_start_publishing(r);
        }
        if (r->count_marker) msgs = count_occurrences(pl, plen, r->count_marker);
      }
    }
    evbuffer_drain(in, whole);
    if ((f.opcode == 1 || f.opcode == 2) && msgs) {
      double t = now_s();
      if (r->frames == 0) r->t_first_frame = t;
      r->t_last_frame = t;
      r->frames += msgs;
      r->bytes += f.payload_len;
      c->frames += msgs;
      if (r->expect && r->frames >= r->expect) {
        if (r->server_pid) r->cpu_server = proc_cpu(r->server_pid) - r->cpu0;
        event_base_loopexit(r->base, NULL);
      }
    } else if (f.opcode == 9) {
      bufferevent_write(c->bev, bench_ws_pong, sizeof bench_ws_pong);
    }
  }
}

/* ---- publishing over keep-alive HTTP ----------------------------------- */

static void pub_send(pubconn *p) {
  run *r = p->r;
  long total = r->messages * r->nkeys;
  if (r->next_pub >= total) return;
  long i = r->next_pub++;
  long key = i % r->nkeys, seq = i / r->nkeys;
  char path[512], body[4096], head[2048];
  expand(path, sizeof path, r->pub_path, key, seq);
  size_t bl = expand(body, sizeof body, r->pub_body ? r->pub_body : "", key, seq);
  int n = snprintf(head, sizeof head,
                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n",
                   path, r->port, bl);
  for (int h = 0; h < r->nheaders; h++)
    n += snprintf(head + n, sizeof head - (size_t)n, "%s\r\n", r->headers[h]);
  n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
  bufferevent_write(p->bev, head, (size_t)n);
  bufferevent_write(p->bev, body, bl);
  p->busy = 1;
}

/* One answer at the head of `in`: 1 consumed (status in *st), 0 incomplete. */
static int read_answer(struct evbuffer *in, int *st) {
  struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
  if (end.pos < 0) return 0;
  size_t hl = (size_t)end.pos + 4;
  char *h = (char *)evbuffer_pullup(in, (ev_ssize_t)hl);
  char save = h[hl - 1];
  h[hl - 1] = '\0';
  *st = atoi(h + 9);
  size_t cl = 0;
  int chunked = 0;
  for (char *l = strstr(h, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
    if (strncasecmp(l + 2, "content-length:", 15) == 0) cl = strtoul(l + 17, NULL, 10);
    if (strncasecmp(l + 2, "transfer-encoding:", 18) == 0 && strstr(l, "chunked")) chunked = 1;
  }
  h[hl - 1] = save;
  if (chunked) { /* small answers: wait for the last chunk */
    struct evbuffer_ptr last = evbuffer_search(in, "0\r\n\r\n", 5, &end);
    if (last.pos < 0) return 0;
    evbuffer_drain(in, (size_t)last.pos + 5);
    return 1;
  }
  if (evbuffer_get_length(in) < hl + cl) return 0;
  evbuffer_drain(in, hl + cl);
  return 1;
}

static void pub_read(struct bufferevent *bev, void *arg) {
  pubconn *p = arg;
  run *r = p->r;
  int st;
  while (p->busy && read_answer(bufferevent_get_input(bev), &st)) {
    p->busy = 0;
    r->answered++;
    if (st < 200 || st > 299) {
      if (r->http_errors++ < 3) fprintf(stderr, "ws_loadgen: publish answered %d\n", st);
    }
    pub_send(p);
  }
}

static void pub_event(struct bufferevent *bev, short what, void *arg) {
  pubconn *p = arg;
  if (what & BEV_EVENT_CONNECTED) {
    pub_send(p);
    return;
  }
  if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
    fprintf(stderr, "ws_loadgen: publish connection lost\n");
    bufferevent_free(bev);
    p->bev = NULL;
    p->r->http_errors++;
  }
}

/* A bufferevent on `fd` (-1: a new socket) connecting to the server;
 * NULL if the connect failed at once. */
static struct bufferevent *connect_to(run *r, evutil_socket_t fd, bufferevent_data_cb readcb,
                                      bufferevent_event_cb eventcb, void *arg) {
  struct bufferevent *bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) return NULL;
  bufferevent_setcb(bev, readcb, NULL, eventcb, arg);
  bufferevent_enable(bev, EV_READ);
  struct sockaddr_in dst = {0};
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)r->port);
  dst.sin_addr.s_addr = htonl(0x7f000001u);
  if (bufferevent_socket_connect(bev, (struct sockaddr *)&dst, sizeof dst) < 0) {
    bufferevent_free(bev);
    return NULL;
  }
  return bev;
}

static void maybe_start_publishing(run *r) {
  if (!r->pub_path || r->publishing) return;
  int ready = r->ready_marker ? r->nready : r->upgraded;
  if (ready < r->nconns) return;
  r->publishing = 1;
  r->pubs = calloc((size_t)r->http_conns, sizeof *r->pubs);
  if (!r->pubs) return;
  r->t_pub0 = now_s();
  if (r->server_pid) r->cpu0 = proc_cpu(r->server_pid);
  r->self0 = self_cpu();
  for (int i = 0; i < r->http_conns; i++) {
    pubconn *p = &r->pubs[i];
    p->r = r;
    if (!(p->bev = connect_to(r, -1, pub_read, pub_event, p))) {
      r->http_errors++;
      continue;
    }
    int one = 1;
    setsockopt(bufferevent_getfd(p->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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
    if (r->hello) {
      char text[2048];
      size_t n = expand(text, sizeof text, r->hello, (long)(c - r->conns) % r->nkeys, 0);
      send_text(bev, text, n);
    }
    maybe_start_publishing(r);
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
    if (!(c->bev = connect_to(r, s, on_read, on_event, c))) {
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

/* Publishing never started: some connection did not get ready. */
static void on_ready_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  run *r = arg;
  if (r->publishing) return;
  fprintf(stderr, "ws_loadgen: %d of %d connections ready (%d failed): not publishing\n",
          r->ready_marker ? r->nready : r->upgraded, r->nconns, r->failed);
  event_base_loopexit(r->base, NULL);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopexit(((run *)arg)->base, NULL);
}

int main(int argc, char **argv) {
  run r = {.port = 8080, .nconns = 1000, .nkeys = 1, .nsources = 16, .hold_s = 5, .http_conns = 4,
           .path = "/chat/subscribe-websocket?stream_id=k{key}&sender_id=a&receiver_id=b"};
  static const struct option opts[] = {
      {"port", 1, 0, 'p'}, {"path", 1, 0, 'P'}, {"conns", 1, 0, 'n'}, {"keys", 1, 0, 'k'},
      {"sources", 1, 0, 's'}, {"hold", 1, 0, 'h'}, {"expect", 1, 0, 'e'},
      {"hello", 1, 0, 'H'}, {"ready-marker", 1, 0, 'R'}, {"count-marker", 1, 0, 'C'},
      {"pong-empty-json", 0, 0, 'J'}, {"publish", 1, 0, 'U'}, {"body", 1, 0, 'B'},
      {"header", 1, 0, 'X'}, {"messages", 1, 0, 'm'}, {"http-conns", 1, 0, 'c'},
      {"server-pid", 1, 0, 'S'}, {0, 0, 0, 0}};
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
    case 'H': r.hello = optarg; break;
    case 'R': r.ready_marker = optarg; break;
    case 'C': r.count_marker = optarg; break;
    case 'J': r.pong_empty_json = 1; break;
    case 'U': r.pub_path = optarg; break;
    case 'B': r.pub_body = optarg; break;
    case 'X':
      if (r.nheaders < 4) r.headers[r.nheaders++] = optarg;
      break;
    case 'm': r.messages = atol(optarg); break;
    case 'c': r.http_conns = atoi(optarg); break;
    case 'S': r.server_pid = atoi(optarg); break;
    default: fprintf(stderr, "see the comment at the top of bench/ws_loadgen.c\n"); return 2;
    }
  }
  /* Bounds: loopback only, at most 100k connections and 10 minutes. */
  if (r.nconns < 1 || r.nconns > 100000 || r.nkeys < 1 || r.nsources < 1 || r.nsources > 250 ||
      r.hold_s < 1 || r.hold_s > 600 || r.messages < 0 || r.messages > 1000000 ||
      r.http_conns < 0 || r.http_conns > 256) {
    fprintf(stderr, "ws_loadgen: arguments out of bounds\n");
    return 2;
  }
  struct rlimit rl = {(rlim_t)r.nconns + 256, (rlim_t)r.nconns + 256};
  setrlimit(RLIMIT_NOFILE, &rl);
  if (r.pub_path && !r.expect) r.expect = (uint64_t)r.messages * (uint64_t)r.nconns;
  r.conns = calloc((size_t)r.nconns, sizeof(conn));
  r.base = event_base_new();
  if (!r.conns || !r.base) return 1;
  for (int i = 0; i < r.nconns; i++) r.conns[i].r = &r;
  r.t_start = now_s();
  struct timeval tv0 = {0, 0}, hold = {r.hold_s, 0};
  event_base_once(r.base, -1, EV_TIMEOUT, open_batch, &r, &tv0);
  event_base_once(r.base, -1, EV_TIMEOUT, on_deadline, &r, &hold);
  struct timeval ready_tv = {60, 0}; /* to be subscribed before publishing */
  if (r.pub_path) event_base_once(r.base, -1, EV_TIMEOUT, on_ready_deadline, &r, &ready_tv);
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
  if (r.pub_path) {
    double t1 = !r.publishing ? r.t_pub0 : r.t_last_frame > r.t_pub0 ? r.t_last_frame : now_s();
    long pubs = r.messages * r.nkeys;
    if (r.publishing && r.server_pid && r.cpu_server == 0 && r.cpu0 >= 0)
      r.cpu_server = proc_cpu(r.server_pid) - r.cpu0; /* ended at --hold */
    printf("{\"event\":\"published\",\"publishes\":%ld,\"answered\":%ld,\"http_errors\":%ld,"
           "\"expected\":%llu,\"received\":%llu,\"seconds\":%.3f,\"server_cpu_seconds\":%.3f,"
           "\"server_us_per_publish\":%.1f,\"loadgen_cpu_seconds\":%.3f}\n",
           pubs, r.answered, r.http_errors, (unsigned long long)r.expect,
           (unsigned long long)r.frames, t1 - r.t_pub0, r.cpu_server,
           pubs ? r.cpu_server * 1e6 / (double)pubs : 0.0, self_cpu() - r.self0);
    for (int i = 0; r.pubs && i < r.http_conns; i++)
      if (r.pubs[i].bev) bufferevent_free(r.pubs[i].bev);
    free(r.pubs);
  }
  for (int i = 0; i < r.nconns; i++)
    if (r.conns[i].bev) bufferevent_free(r.conns[i].bev);
  free(r.conns);
  event_base_free(r.base);
  return r.upgraded == r.nconns ? 0 : 1;
}
