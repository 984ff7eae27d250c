/* chat_bench: end-to-end chat load generator for notifd.  Loopback only,
 * bounded in count and time.
 *
 *   chat_bench --port P [--chat-port P] [--notif-port P]
 *              [--rate 1000 | --rate 0 --http-conns C] --count N [--warmup W]
 *              [--streams 100] [--subs 1] [--notif 1] [--size 64]
 *              [--sources 16] [--drain 30] [--max-seconds 300]
 *              [--email-token TOKEN [--email-port P]] [--server-pid PID[,PID...]]
 *              [--jwt-secret SECRET]
 *
 * 1. Opens the websocket clients: --subs chat sockets per conversation
 *    (/chat/subscribe-websocket, keyed by stream_id) and, with --notif 1,
 *    one notifications socket per receiver (/notifications/subscribe), from
 *    source addresses rotating over 127.0.0.1 .. 127.0.0.<sources>.
 *    With --email-token, every sender and receiver is first registered in
 *    the email role's directory (PUT /email/users/{id} on --email-port,
 *    default --port; header X-Notifd-Internal-Token), so that role mails
 *    (or throttles) instead of dead-lettering unknown recipients.
 * 2. POSTs /chat/persist over --http-conns keep-alive connections (one
 *    request in flight per connection).  --rate R > 0 paces the sends open
 *    loop at R msg/s (a 1 ms timer sends what is due; a message sent more
 *    than 2 ms after its due time, e.g. because no connection was idle,
 *    counts as "late"); --rate 0 is closed
 *    loop: every connection sends its next message when the answer came.
 *    Message i goes to conversation i % streams; its content carries
 *    "b:<i>:<CLOCK_MONOTONIC ns at the write>:" and padding to --size.
 * 3. Every frame received is parsed for that content; latency = receive
 *    time - write time, per kind (chat socket, notification socket).
 *    Duplicates and missing deliveries are counted.  The first --warmup
 *    messages are sent and delivered first and are not counted.
 *
 * With --jwt-secret every user acts with an HS256 token signed with that
 * secret (auth.mode users): POSTs carry the sender's Authorization: Bearer,
 * chat sockets ?token= of the sender, notification sockets the receiver's.
 *
 * Prints one JSON object: latency percentiles (ms), POST answer
 * percentiles, send and delivery rates, counts, the generator's own CPU
 * and, with --server-pid, the CPU the server processes used (utime +
 * stime from /proc) between the end of the warm-up and the last delivery.
 * Exit status 0 if every message was accepted (201) and delivered. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth/auth.h"
#include "pc_stream_id.h"
#include "ws_client_frame.h"

enum { K_CHAT = 0, K_NOTIF = 1, K_POST = 2, K_N = 3 };
static const char *const kind_name[K_N] = {"chat_ws", "notifications_ws", "post_answer"};

typedef struct bench bench;

typedef struct hconn {
  bench *b;
  struct bufferevent *bev;
  int busy, up, is_reg;
  int64_t seq;   /* message in flight */
  int64_t t_ns;  /* its write time */
} hconn;

typedef struct wconn {
  bench *b;
  struct bufferevent *bev;
  int kind; /* K_CHAT / K_NOTIF */
  int stream;
  int upgraded;
} wconn;

typedef struct samples {
  float *v; /* milliseconds */
  size_t n, cap;
} samples;

struct bench {
  struct event_base *base;
  int port, chat_port, notif_port, email_port;
  double rate;
  int64_t count, warmup, total; /* total = warmup + count */
  int nstreams, subs, notif, size, nsources, nhttp;
  int drain_s, max_s;
  const char *email_token;
  const char *jwt_secret;
  char (*stok)[256], (*rtok)[256]; /* senders' / receivers' tokens, or "" */
  hconn reg; /* registration connection (to email_port) */
  int pids[16], npids;
  double server_cpu0, server_cpu1;
  int next_reg, reg_total; /* registration: 2 users per stream */
  char (*sender)[32], (*receiver)[32], (*sid)[PC_STREAM_ID_LEN + 1];
  hconn *h;
  wconn *w;
  int nw, ws_up, ws_failed, ws_closed, http_up, http_failed;
  int next_ws;
  /* sending */
  int64_t next_seq;     /* next message to send */
  int64_t due;          /* open loop: messages due so far */
  int64_t late;         /* open loop: sent > 1 ms after due */
  int64_t t0_ns;        /* pacing origin */
  int64_t t_first_send, t_last_send, t_measure_start;
  int64_t accepted, rejected, http_errors;
  int64_t first_status_bad;
  struct event *tick, *deadline;
  int phase; /* 0 connecting / registering, 1 warm-up, 2 measuring */
  /* receiving */
  uint8_t *got; /* per message: deliveries seen */
  int per_msg;  /* deliveries expected per message */
  int64_t delivered, complete, dups, bad_frames, warm_complete;
  int64_t t_last_complete;
  samples lat[K_N];
  char *body;   /* scratch */
  size_t body_cap;
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sample_add(samples *s, double ms) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 65536;
    float *v = realloc(s->v, cap * sizeof *v);
    if (!v) return;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = (float)ms;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

static double pct(const samples *s, double p) {
  if (!s->n) return -1;
  size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
  return s->v[i < s->n ? i : s->n - 1];
}

static void stop_all(bench *b) { event_base_loopexit(b->base, NULL); }

/* CPU seconds (user + system) of the server processes. */
static double server_cpu(const bench *b) {
  double total = 0;
  long tick = sysconf(_SC_CLK_TCK);
  for (int i = 0; i < b->npids; i++) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", b->pids[i]);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
      total += (double)(ut + st) / (double)tick;
  }
  return total;
}

/* ---- delivery accounting ---- */

static void check_done(bench *b) {
  if (b->phase == 1 && b->warm_complete >= b->warmup && b->next_seq >= b->warmup) {
    b->phase = 2;
    b->t_measure_start = now_ns();
    b->server_cpu0 = server_cpu(b);
  }
  if (b->next_seq >= b->total && b->complete >= b->count && b->warm_complete >= b->warmup) {
    b->server_cpu1 = server_cpu(b);
    stop_all(b);
  }
}

static void on_delivery(bench *b, int kind, const char *content, size_t len, int64_t t) {
  /* content: b:<seq>:<ns>: */
  if (len < 4 || content[0] != 'b' || content[1] != ':') {
    b->bad_frames++;
    return;
  }
  char *end;
  int64_t seq = strtoll(content + 2, &end, 10);
  if (*end != ':') { b->bad_frames++; return; }
  int64_t ts = strtoll(end + 1, &end, 10);
  if (*end != ':' || seq < 0 || seq >= b->total) { b->bad_frames++; return; }
  b->delivered++;
  if (b->got[seq] >= b->per_msg) {
    b->dups++;
    return;
  }
  if (++b->got[seq] == b->per_msg) {
    if (seq < b->warmup) {
      b->warm_complete++;
    } else {
      b->complete++;
      b->t_last_complete = t;
    }
  }
  if (seq >= b->warmup) sample_add(&b->lat[kind], (double)(t - ts) / 1e6);
  check_done(b);
}

/* Finds "content":"b:...:" in a frame (chat: the ChatMessage; notification:
 * inside "payload"). */
static void parse_frame(bench *b, wconn *c, const char *p, size_t n, int64_t t) {
  static const char key[] = "\"content\":\"";
  const char *hit = memmem(p, n, key, sizeof key - 1);
  if (!hit) { b->bad_frames++; return; }
  const char *s = hit + sizeof key - 1;
  size_t rest = n - (size_t)(s - p);
  on_delivery(b, c->kind, s, rest < 48 ? rest : 48, t);
}

static void drain_frames(bench *b, wconn *c, struct evbuffer *in) {
  bench_ws_frame f;
  while (bench_ws_peek_header(in, &f)) {
    if (f.payload_len > (1u << 24)) { /* not from notifd: give up on this socket */
      bufferevent_free(c->bev);
      c->bev = NULL;
      b->ws_closed++;
      return;
    }
    size_t whole = f.header_len + f.payload_len;
    if (evbuffer_get_length(in) < whole) return;
    if (f.opcode == 1 || f.opcode == 2) {
      int64_t t = now_ns();
      const char *p = (const char *)evbuffer_pullup(in, (ssize_t)whole) + f.header_len;
      parse_frame(b, c, p, (size_t)f.payload_len, t);
    } else if (f.opcode == 9) {
      bufferevent_write(c->bev, bench_ws_pong, sizeof bench_ws_pong);
    } else if (f.opcode == 8) {
      b->ws_closed++;
    }
    evbuffer_drain(in, whole);
  }
}

/* ---- websocket clients ---- */

static void start_sending(bench *b);
static void open_post_conns(bench *b);

static void ws_read(struct bufferevent *bev, void *arg) {
  wconn *c = arg;
  bench *b = c->b;
  struct evbuffer *in = bufferevent_get_input(bev);
  if (!c->upgraded) {
    char status[16];
    int up = bench_ws_read_upgrade(in, status);
    if (up < 0) return;
    if (!up) {
      fprintf(stderr, "chat_bench: websocket upgrade refused: %.12s\n", status);
      b->ws_failed++;
      bufferevent_free(bev);
      c->bev = NULL;
      return;
    }
    c->upgraded = 1;
    if (++b->ws_up == b->nw) start_sending(b);
  }
  drain_frames(b, c, in);
}

static void ws_event(struct bufferevent *bev, short what, void *arg) {
  wconn *c = arg;
  bench *b = c->b;
  if (what & BEV_EVENT_CONNECTED) {
    char req[1024];
    int i = c->stream;
    int n;
    if (c->kind == K_CHAT)
      n = snprintf(req, sizeof req,
                   "GET /chat/subscribe-websocket?stream_id=%s&sender_id=%s&receiver_id=%s%s%s "
                   "HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n",
                   b->sid[i], b->sender[i], b->receiver[i], b->jwt_secret ? "&token=" : "",
                   b->jwt_secret ? b->stok[i] : "", b->chat_port);
    else
      n = snprintf(req, sizeof req,
                   "GET /notifications/subscribe?user_id=%s%s%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n",
                   b->receiver[i], b->jwt_secret ? "&token=" : "",
                   b->jwt_secret ? b->rtok[i] : "", b->notif_port);
    n += snprintf(req + n, sizeof req - (size_t)n,
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    bufferevent_write(bev, req, (size_t)n);
    return;
  }
  if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
    if (c->upgraded) b->ws_closed++;
    else b->ws_failed++;
    bufferevent_free(bev);
    c->bev = NULL;
    if (!c->upgraded) {
      fprintf(stderr, "chat_bench: websocket connect failed: %s\n", strerror(errno));
      stop_all(b);
    }
  }
}

static struct bufferevent *connect_to(bench *b, int port, int src_idx, bufferevent_data_cb rd,
                                      bufferevent_event_cb ev, void *arg) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return NULL;
  struct sockaddr_in src = {0};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(src_idx % b->nsources));
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(s, (struct sockaddr *)&src, sizeof src) < 0) {
    close(s);
    return NULL;
  }
  evutil_make_socket_nonblocking(s);
  struct bufferevent *bev = bufferevent_socket_new(b->base, s, BEV_OPT_CLOSE_ON_FREE);
  if (!bev) {
    close(s);
    return NULL;
  }
  bufferevent_setcb(bev, rd, NULL, ev, arg);
  bufferevent_enable(bev, EV_READ);
  struct sockaddr_in dst = {0};
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)port);
  dst.sin_addr.s_addr = htonl(0x7f000001u);
  if (bufferevent_socket_connect(bev, (struct sockaddr *)&dst, sizeof dst) < 0) {
    bufferevent_free(bev);
    return NULL;
  }
  return bev;
}

static void open_ws_batch(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  bench *b = arg;
  for (int i = 0; i < 500 && b->next_ws < b->nw; i++, b->next_ws++) {
    wconn *c = &b->w[b->next_ws];
    c->bev = connect_to(b, c->kind == K_CHAT ? b->chat_port : b->notif_port, b->next_ws, ws_read,
                        ws_event, c);
    if (!c->bev) {
      fprintf(stderr, "chat_bench: cannot open websocket %d: %s\n", b->next_ws, strerror(errno));
      b->ws_failed++;
      stop_all(b);
      return;
    }
  }
  if (b->next_ws < b->nw) {
    struct timeval tv = {0, 2000};
    event_base_once(b->base, -1, EV_TIMEOUT, open_ws_batch, b, &tv);
  }
}

/* ---- user tokens (--jwt-secret) ---- */

/* An HS256 JWT {sub, exp: in a day}, signed by the host's own signer, into
 * out (256 bytes); 0 or -1. */
static int sign_token(const char *secret, const char *sub, char out[256]) {
  char *t = nd_jwt_sign(secret, sub, (int64_t)time(NULL) + 86400);
  int ok = t && strlen(t) < 256;
  if (ok) memcpy(out, t, strlen(t) + 1);
  free(t);
  return ok ? 0 : -1;
}

/* ---- HTTP POST clients ---- */

static void send_one(bench *b, hconn *c) {
  int64_t seq = b->next_seq++;
  int st = (int)(seq % b->nstreams);
  int64_t t = now_ns();
  char stamp[64];
  int cl = snprintf(stamp, sizeof stamp, "b:%" PRId64 ":%" PRId64 ":", seq, t);
  int pad = b->size > cl ? b->size - cl : 0;
  size_t need = (size_t)b->size + (size_t)cl + 512;
  if (need > b->body_cap) {
    char *nb = realloc(b->body, need);
    if (!nb) { stop_all(b); return; }
    b->body = nb;
    b->body_cap = need;
  }
  int n = snprintf(b->body, b->body_cap, "{\"content\":\"%s", stamp);
  memset(b->body + n, 'x', (size_t)pad);
  n += pad;
  n += snprintf(b->body + n, b->body_cap - (size_t)n,
                "\",\"stream_id\":\"%s\",\"sender_id\":\"%s\",\"receiver_id\":\"%s\"}",
                b->sid[st], b->sender[st], b->receiver[st]);
  char head[512];
  int hn = snprintf(head, sizeof head,
                    "POST /chat/persist HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s%s"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                    b->port, b->jwt_secret ? "Authorization: Bearer " : "",
                    b->jwt_secret ? b->stok[st] : "", b->jwt_secret ? "\r\n" : "", n);
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evbuffer_add(out, head, (size_t)hn);
  evbuffer_add(out, b->body, (size_t)n);
  c->busy = 1;
  c->seq = seq;
  c->t_ns = t;
  if (!b->t_first_send) b->t_first_send = t;
  b->t_last_send = t;
}

/* PUT /email/users/{id} for the next user (registration phase). */
static void send_registration(bench *b, hconn *c) {
  int i = b->next_reg++;
  const char *user = (i & 1) ? b->receiver[i / 2] : b->sender[i / 2];
  char body[256], req[1024];
  int n = snprintf(body, sizeof body, "{\"email\":\"%s@bench.test\",\"name\":\"Bench %s\"}",
                   user, user);
  int m = snprintf(req, sizeof req,
                   "PUT /email/users/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                   "X-Notifd-Internal-Token: %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s",
                   user, b->port, b->email_token, n, body);
  bufferevent_write(c->bev, req, (size_t)m);
  c->busy = 1;
  c->seq = -1;
}

static void begin_load(bench *b) {
  b->phase = b->warmup > 0 ? 1 : 2;
  b->t0_ns = now_ns();
  if (b->phase == 2) {
    b->t_measure_start = b->t0_ns;
    b->server_cpu0 = server_cpu(b);
  }
}

static hconn *idle_conn(bench *b) {
  static int rr;
  for (int k = 0; k < b->nhttp; k++) {
    hconn *c = &b->h[(rr + k) % b->nhttp];
    if (c->up && !c->busy && c->bev) {
      rr = (rr + k + 1) % b->nhttp;
      return c;
    }
  }
  return NULL;
}

/* Sends what the schedule asks for, or (closed loop) fills idle
 * connections. */
static void pump(bench *b) {
  if (b->phase < 1) return;
  int64_t limit = b->total;
  if (b->phase == 1 && b->rate <= 0) limit = b->warmup; /* closed loop: warm up first */
  if (b->rate > 0) {
    int64_t t = now_ns();
    int64_t due = (int64_t)((double)(t - b->t0_ns) / 1e9 * b->rate) + 1;
    if (due > b->total) due = b->total;
    while (b->next_seq < due) {
      hconn *c = idle_conn(b);
      if (!c) break;
      /* a message sent more than 1 ms after it was due */
      int64_t due_t = b->t0_ns + (int64_t)((double)b->next_seq / b->rate * 1e9);
      if (t - due_t > 2000000) b->late++;
      send_one(b, c);
    }
  } else {
    while (b->next_seq < limit) {
      hconn *c = idle_conn(b);
      if (!c) break;
      send_one(b, c);
    }
  }
  check_done(b);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  bench *b = arg;
  if (b->phase == 1 && b->rate <= 0 && b->warm_complete >= b->warmup) check_done(b);
  pump(b);
}

static void http_read(struct bufferevent *bev, void *arg) {
  hconn *c = arg;
  bench *b = c->b;
  struct evbuffer *in = bufferevent_get_input(bev);
  for (;;) {
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) return;
    size_t hlen = (size_t)end.pos + 4;
    char *h = (char *)evbuffer_pullup(in, (ssize_t)hlen);
    long clen = 0;
    for (char *p = h; p && p < h + hlen;) {
      char *eol = memchr(p, '\n', (size_t)(h + hlen - p));
      if (!eol) break;
      if ((size_t)(eol - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
        clen = strtol(p + 15, NULL, 10);
      p = eol + 1;
    }
    if (evbuffer_get_length(in) < hlen + (size_t)clen) return;
    int status = atoi(h + 9);
    int64_t t = now_ns();
    evbuffer_drain(in, hlen + (size_t)clen);
    if (!c->busy) {
      b->http_errors++;
      continue;
    }
    c->busy = 0;
    if (c->seq < 0) { /* registration */
      if (status != 200) {
        fprintf(stderr, "chat_bench: PUT /email/users answered %d\n", status);
        stop_all(b);
        return;
      }
      if (b->next_reg < b->reg_total) {
        send_registration(b, c);
        continue;
      }
      bufferevent_free(c->bev); /* done: now the POST connections */
      c->bev = NULL;
      open_post_conns(b);
      return;
    }
    if (status == 201) {
      b->accepted++;
      if (c->seq >= b->warmup) sample_add(&b->lat[K_POST], (double)(t - c->t_ns) / 1e6);
    } else {
      b->rejected++;
      if (!b->first_status_bad) {
        b->first_status_bad = status;
        fprintf(stderr, "chat_bench: POST answered %d\n", status);
      }
    }
    if (b->rate <= 0) pump(b);
  }
}

static void http_event(struct bufferevent *bev, short what, void *arg) {
  hconn *c = arg;
  bench *b = c->b;
  if (what & BEV_EVENT_CONNECTED) {
    if (c->is_reg) {
      send_registration(b, c);
      return;
    }
    c->up = 1;
    if (++b->http_up == b->nhttp) {
      begin_load(b);
      pump(b);
    }
    return;
  }
  if (c->is_reg) {
    fprintf(stderr, "chat_bench: registration connection lost\n");
    bufferevent_free(bev);
    c->bev = NULL;
    stop_all(b);
    return;
  }
  if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
    fprintf(stderr, "chat_bench: HTTP connection lost (%s)\n",
            (what & BEV_EVENT_EOF) ? "eof" : strerror(errno));
    b->http_failed++;
    if (c->busy) b->http_errors++;
    bufferevent_free(bev);
    c->bev = NULL;
    c->up = 0;
    if (b->http_failed == b->nhttp) stop_all(b);
  }
}

static void open_post_conns(bench *b) {
  for (int i = 0; i < b->nhttp; i++) {
    hconn *c = &b->h[i];
    c->b = b;
    c->bev = connect_to(b, b->port, i, http_read, http_event, c);
    if (!c->bev) {
      fprintf(stderr, "chat_bench: cannot connect for POSTs\n");
      stop_all(b);
      return;
    }
  }
}

static void start_sending(bench *b) {
  if (b->email_token) {
    b->reg.b = b;
    b->reg.is_reg = 1;
    b->reg.bev = connect_to(b, b->email_port, 0, http_read, http_event, &b->reg);
    if (!b->reg.bev) {
      fprintf(stderr, "chat_bench: cannot connect for registrations\n");
      stop_all(b);
      return;
    }
  } else {
    open_post_conns(b);
  }
  struct timeval ms = {0, 1000};
  b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
  event_add(b->tick, &ms);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  fprintf(stderr, "chat_bench: time limit reached\n");
  stop_all(arg);
}

/* ---- report ---- */

static void print_lat(const char *name, samples *s, int comma) {
  qsort(s->v, s->n, sizeof *s->v, cmp_float);
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) sum += s->v[i];
  printf("    \"%s\": {\"n\": %zu, \"mean\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
         "\"p999\": %.3f, \"max\": %.3f}%s\n",
         name, s->n, s->n ? sum / (double)s->n : -1.0, pct(s, 0.5), pct(s, 0.9), pct(s, 0.99),
         pct(s, 0.999), s->n ? s->v[s->n - 1] : -1.0, comma ? "," : "");
}

static void usage(void) {
  fprintf(stderr, "see the comment at the top of bench/chat_bench.c\n");
}

int main(int argc, char **argv) {
  bench b = {.port = 8080, .rate = 1000, .count = 10000, .warmup = 200, .nstreams = 100,
             .subs = 1, .notif = 1, .size = 64, .nsources = 16, .nhttp = 32, .drain_s = 30,
             .max_s = 300};
  static const struct option opts[] = {
      {"port", 1, 0, 'p'},     {"chat-port", 1, 0, 'c'}, {"notif-port", 1, 0, 'N'},
      {"rate", 1, 0, 'r'},     {"count", 1, 0, 'n'},     {"warmup", 1, 0, 'W'},
      {"streams", 1, 0, 's'},  {"subs", 1, 0, 'S'},      {"notif", 1, 0, 'o'},
      {"size", 1, 0, 'z'},     {"sources", 1, 0, 'a'},   {"http-conns", 1, 0, 'H'},
      {"drain", 1, 0, 'd'},    {"max-seconds", 1, 0, 'm'}, {"email-token", 1, 0, 'T'},
      {"server-pid", 1, 0, 'P'}, {"email-port", 1, 0, 'E'}, {"jwt-secret", 1, 0, 'J'},
      {0, 0, 0, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case 'p': b.port = atoi(optarg); break;
    case 'c': b.chat_port = atoi(optarg); break;
    case 'N': b.notif_port = atoi(optarg); break;
    case 'r': b.rate = atof(optarg); break;
    case 'n': b.count = strtoll(optarg, NULL, 10); break;
    case 'W': b.warmup = strtoll(optarg, NULL, 10); break;
    case 's': b.nstreams = atoi(optarg); break;
    case 'S': b.subs = atoi(optarg); break;
    case 'o': b.notif = atoi(optarg); break;
    case 'z': b.size = atoi(optarg); break;
    case 'a': b.nsources = atoi(optarg); break;
    case 'H': b.nhttp = atoi(optarg); break;
    case 'd': b.drain_s = atoi(optarg); break;
    case 'm': b.max_s = atoi(optarg); break;
    case 'T': b.email_token = optarg; break;
    case 'E': b.email_port = atoi(optarg); break;
    case 'J': b.jwt_secret = optarg; break;
    case 'P':
      for (char *t = strtok(optarg, ","); t && b.npids < 16; t = strtok(NULL, ","))
        b.pids[b.npids++] = atoi(t);
      break;
    default: usage(); return 2;
    }
  }
  if (!b.chat_port) b.chat_port = b.port;
  if (!b.notif_port) b.notif_port = b.port;
  if (!b.email_port) b.email_port = b.port;
  /* Bounds: at most 10M messages, 100k sockets, 10 minutes. */
  if (b.count < 1 || b.count > 10000000 || b.warmup < 0 || b.warmup > 1000000 ||
      b.nstreams < 1 || b.nstreams > 100000 || b.subs < 0 || b.subs > 64 ||
      (b.notif != 0 && b.notif != 1) || b.subs + b.notif < 1 || b.size < 40 ||
      b.size > 65536 || b.nsources < 1 || b.nsources > 250 || b.nhttp < 1 ||
      b.nhttp > 1000 || b.rate < 0 || b.rate > 1e6 || b.drain_s < 1 || b.max_s < 1 ||
      b.max_s > 600 || (int64_t)b.nstreams * (b.subs + b.notif) > 100000) {
    fprintf(stderr, "chat_bench: arguments out of bounds\n");
    return 2;
  }
  b.total = b.warmup + b.count;
  b.per_msg = b.subs + b.notif;
  b.reg_total = b.email_token ? 2 * b.nstreams : 0;
  b.nw = b.nstreams * b.per_msg;
  struct rlimit rl = {(rlim_t)b.nw + (rlim_t)b.nhttp + 256, (rlim_t)b.nw + (rlim_t)b.nhttp + 256};
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0) fprintf(stderr, "chat_bench: setrlimit: %s\n",
                                                 strerror(errno));
  b.sender = calloc((size_t)b.nstreams, sizeof *b.sender);
  b.receiver = calloc((size_t)b.nstreams, sizeof *b.receiver);
  b.sid = calloc((size_t)b.nstreams, sizeof *b.sid);
  b.stok = calloc((size_t)b.nstreams, sizeof *b.stok);
  b.rtok = calloc((size_t)b.nstreams, sizeof *b.rtok);
  b.h = calloc((size_t)b.nhttp, sizeof *b.h);
  b.w = calloc((size_t)b.nw, sizeof *b.w);
  b.got = calloc((size_t)b.total, 1);
  struct event_config *ec = event_config_new();
  if (ec) event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
  b.base = ec ? event_base_new_with_config(ec) : NULL;
  if (ec) event_config_free(ec);
  if (!b.sender || !b.receiver || !b.sid || !b.stok || !b.rtok || !b.h || !b.w || !b.got ||
      !b.base)
    return 1;
  /* Unique per run, so a data dir reused across runs does not dedupe. */
  unsigned run_tag = (unsigned)(now_ns() / 1000) & 0xffffff;
  for (int i = 0; i < b.nstreams; i++) {
    snprintf(b.sender[i], sizeof b.sender[i], "a%06x-%d", run_tag, i);
    snprintf(b.receiver[i], sizeof b.receiver[i], "b%06x-%d", run_tag, i);
    if (pc_stream_id(b.sender[i], strlen(b.sender[i]), b.receiver[i], strlen(b.receiver[i]),
                     b.sid[i]) < 0)
      return 1;
    if (b.jwt_secret && (sign_token(b.jwt_secret, b.sender[i], b.stok[i]) < 0 ||
                         sign_token(b.jwt_secret, b.receiver[i], b.rtok[i]) < 0)) {
      fprintf(stderr, "chat_bench: cannot sign a token\n");
      return 1;
    }
  }
  int k = 0;
  for (int i = 0; i < b.nstreams; i++) {
    for (int j = 0; j < b.subs; j++, k++) b.w[k] = (wconn){.b = &b, .kind = K_CHAT, .stream = i};
    if (b.notif) b.w[k++] = (wconn){.b = &b, .kind = K_NOTIF, .stream = i};
  }
  int64_t expected_s = b.rate > 0 ? (int64_t)((double)b.total / b.rate) : 0;
  struct timeval limit = {(time_t)(expected_s + b.drain_s + 30), 0};
  if (limit.tv_sec > b.max_s) limit.tv_sec = b.max_s;
  b.deadline = evtimer_new(b.base, on_deadline, &b);
  evtimer_add(b.deadline, &limit);
  struct timeval tv0 = {0, 0};
  int64_t t_start = now_ns();
  event_base_once(b.base, -1, EV_TIMEOUT, open_ws_batch, &b, &tv0);
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  event_base_dispatch(b.base);
  getrusage(RUSAGE_SELF, &ru1);
  int64_t t_end = now_ns();
  double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
               (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
               (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
               (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
  int64_t measured_sent = b.next_seq > b.warmup ? b.next_seq - b.warmup : 0;
  int64_t expected = b.count * b.per_msg;
  int64_t missing_msgs = b.count - b.complete;
  double send_span = (double)(b.t_last_send - b.t_measure_start) / 1e9;
  double deliver_span = (double)(b.t_last_complete - b.t_measure_start) / 1e9;
  int ok = b.complete == b.count && b.rejected == 0 && b.http_errors == 0 && b.dups == 0;

  printf("{\n  \"ok\": %s,\n", ok ? "true" : "false");
  printf("  \"config\": {\"rate\": %.0f, \"count\": %" PRId64 ", \"warmup\": %" PRId64
         ", \"streams\": %d, \"chat_sockets_per_stream\": %d, \"notification_sockets_per_stream\": "
         "%d, \"size\": %d, \"http_conns\": %d, \"websockets\": %d},\n",
         b.rate, b.count, b.warmup, b.nstreams, b.subs, b.notif, b.size, b.nhttp, b.nw);
  printf("  \"sent\": %" PRId64 ", \"accepted_201\": %" PRId64 ", \"rejected\": %" PRId64
         ", \"http_errors\": %" PRId64 ", \"late_sends\": %" PRId64 ",\n",
         measured_sent, b.accepted - (b.warmup < b.accepted ? b.warmup : b.accepted), b.rejected,
         b.http_errors, b.late);
  printf("  \"deliveries_expected\": %" PRId64 ", \"deliveries\": %" PRId64
         ", \"messages_complete\": %" PRId64 ", \"messages_missing\": %" PRId64
         ", \"duplicates\": %" PRId64 ", \"bad_frames\": %" PRId64 ",\n",
         expected, (int64_t)(b.lat[K_CHAT].n + b.lat[K_NOTIF].n), b.complete, missing_msgs,
         b.dups, b.bad_frames);
  printf("  \"websockets_up\": %d, \"websockets_failed\": %d, \"websockets_closed\": %d,\n",
         b.ws_up, b.ws_failed, b.ws_closed);
  printf("  \"send_seconds\": %.3f, \"send_rate\": %.0f, \"deliver_seconds\": %.3f, "
         "\"complete_rate\": %.0f,\n",
         send_span, send_span > 0 ? (double)measured_sent / send_span : 0.0, deliver_span,
         deliver_span > 0 ? (double)b.complete / deliver_span : 0.0);
  printf("  \"loadgen_cpu_seconds\": %.3f, \"wall_seconds\": %.3f,\n", cpu,
         (double)(t_end - t_start) / 1e9);
  if (b.npids) {
    double sc = b.server_cpu1 > 0 ? b.server_cpu1 - b.server_cpu0 : server_cpu(&b) - b.server_cpu0;
    printf("  \"server_cpu_seconds\": %.3f, \"server_cpu_us_per_message\": %.1f,\n", sc,
           b.complete ? sc / (double)b.complete * 1e6 : 0.0);
  }
  printf("  \"latency_ms\": {\n");
  for (int i = 0; i < K_N; i++) print_lat(kind_name[i], &b.lat[i], i + 1 < K_N);
  printf("  }\n}\n");

  for (int i = 0; i < b.nhttp; i++)
    if (b.h[i].bev) bufferevent_free(b.h[i].bev);
  if (b.reg.bev) bufferevent_free(b.reg.bev);
  for (int i = 0; i < b.nw; i++)
    if (b.w[i].bev) bufferevent_free(b.w[i].bev);
  if (b.tick) event_free(b.tick);
  event_free(b.deadline);
  event_base_free(b.base);
  for (int i = 0; i < K_N; i++) free(b.lat[i].v);
  free(b.sender);
  free(b.receiver);
  free(b.stok);
  free(b.rtok);
  free(b.sid);
  free(b.h);
  free(b.w);
  free(b.got);
  free(b.body);
  return ok ? 0 : 1;
}
