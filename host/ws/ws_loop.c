/* The websocket layer's I/O loops (websocket.io_threads) and the bridge
 * between a connection's two sides.
 *
 * Loop 0 is the host's own loop: with io_threads 0, and for every TLS
 * connection, the bridge calls straight through and nothing changes from
 * a single-threaded host.  Loops 1..N each run an event_base on a thread
 * of their own and do all the socket work of the plain connections placed
 * on them (round robin): reading and parsing frames, pings and pongs, the
 * close handshake, writing.  The main thread keeps the key registry and
 * every plugin callback (DESIGN.md rule 8 holds: plugins see one thread).
 *
 * Between main and each threaded loop run two pipes (ws_internal.h): what
 * one side produces in a loop turn is staged without a lock and handed
 * over at the end of the turn under one lock, with an eventfd write only
 * when the other side had nothing waiting, so a burst of publishes costs
 * one wake-up per loop, not one per frame.  Order is kept per pipe, which
 * is what the connection lifetime relies on: main's last message about a
 * connection is FREE, so the loop frees the struct after everything main
 * queued for it.
 *
 * Back pressure from clients: message bytes read but not yet handled by
 * main are counted per loop; above a bound the loop stops reading the
 * connections that send (TCP pushes back on the client) until main has
 * caught up. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log/log.h"
#include "ws/ws_internal.h"

enum {
  /* main -> I/O */
  ND_WS_MSG_START = 1, /* data: handover */
  ND_WS_MSG_FRAME,     /* data: chunk frame, len */
  ND_WS_MSG_CLOSE,     /* data: close payload copy, len */
  ND_WS_MSG_FREE,
  ND_WS_MSG_CLOSE_ACK, /* main handled what came before the peer's close */
  ND_WS_MSG_RESUME,    /* c NULL: read the throttled connections again */
  ND_WS_MSG_STOP,      /* c NULL: leave the loop */
  /* I/O -> main */
  ND_WS_MSG_MESSAGE,   /* data: payload copy, len, flag: is_text */
  ND_WS_MSG_DETACH,    /* code, flag: slow consumer */
  ND_WS_MSG_GONE,
};

typedef struct handover {
  int fd;
  struct evbuffer *in, *out;
} handover;

/* Message bytes a loop may have in flight to main before it stops reading. */
static size_t inbound_limit(const nd_ws_hub *hub) {
  return 4u * 1024 * 1024 + (size_t)hub->host->cfg.ws_max_message;
}

/* ---- the dirty connections' writes ------------------------------------- */

static void loop_flush(nd_ws_loop *l) {
  /* Flushing queues nothing new, but a connection aborted meanwhile left
   * a NULL behind. */
  for (size_t i = 0; i < l->ndirty; i++) {
    notifd_ws_conn *c = l->dirty[i];
    if (!c) continue;
    l->dirty[i] = NULL;
    c->dirty_idx = 0;
    nd_ws_conn_flush(c);
  }
  l->ndirty = 0;
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  loop_flush(arg);
}

/* ---- pipes ---------------------------------------------------------------- */

static int vec_push(nd_ws_msgvec *v, const nd_ws_msg *m) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 64;
    nd_ws_msg *nv = realloc(v->v, cap * sizeof *nv);
    if (!nv) return -1;
    v->v = nv;
    v->cap = cap;
  }
  v->v[v->n++] = *m;
  return 0;
}

/* Hands the staged batch to the consumer: one lock, one wake at most. */
static void pipe_push(nd_ws_pipe *p) {
  if (!p->stage.n) return;
  pthread_mutex_lock(&p->mu);
  int was_empty = p->shared.n == 0;
  if (was_empty) {
    nd_ws_msgvec t = p->shared; /* swap: no copy */
    p->shared = p->stage;
    p->stage = t;
    p->stage.n = 0;
  } else {
    while (p->shared.cap - p->shared.n < p->stage.n) {
      size_t cap = p->shared.cap * 2;
      nd_ws_msg *nv = realloc(p->shared.v, cap * sizeof *nv);
      if (!nv) break;
      p->shared.v = nv;
      p->shared.cap = cap;
    }
    size_t room = p->shared.cap - p->shared.n, n = p->stage.n < room ? p->stage.n : room;
    memcpy(p->shared.v + p->shared.n, p->stage.v, n * sizeof *p->stage.v);
    p->shared.n += n;
    /* Out of memory: the rest waits for the next push, in order. */
    memmove(p->stage.v, p->stage.v + n, (p->stage.n - n) * sizeof *p->stage.v);
    p->stage.n -= n;
  }
  pthread_mutex_unlock(&p->mu);
  if (p->stage.n) event_active(p->push_ev, EV_TIMEOUT, 0);
  if (was_empty) {
    uint64_t one = 1;
    while (write(p->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
}

static void on_push(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pipe_push(arg);
}

/* Stages a message for the end of this turn.  -1 on OOM (nothing staged). */
static int pipe_send(nd_ws_pipe *p, const nd_ws_msg *m) {
  if (vec_push(&p->stage, m) < 0) return -1;
  if (p->stage.n == 1) event_active(p->push_ev, EV_TIMEOUT, 0);
  return 0;
}

/* Everything waiting, in order, into p->work (consumer's thread). */
static void pipe_take(nd_ws_pipe *p) {
  uint64_t n;
  while (read(p->efd, &n, sizeof n) < 0 && errno == EINTR) {
  }
  pthread_mutex_lock(&p->mu);
  nd_ws_msgvec t = p->work;
  p->work = p->shared;
  p->shared = t;
  p->shared.n = 0;
  pthread_mutex_unlock(&p->mu);
}

typedef void (*msg_fn)(nd_ws_loop *l, nd_ws_msg *m, void *arg);

/* Takes everything waiting and handles it in order (consumer's thread). */
static void pipe_consume(nd_ws_pipe *p, nd_ws_loop *l, msg_fn fn, void *arg) {
  pipe_take(p);
  size_t n = p->work.n;
  for (size_t i = 0; i < n; i++) fn(l, &p->work.v[i], arg);
  p->work.n = 0;
  /* The three buffers rotate; let one that a burst grew go again. */
  if (p->work.cap > 4096 && n < p->work.cap / 8) {
    free(p->work.v);
    p->work.v = NULL;
    p->work.cap = 0;
  }
}

static int pipe_init(nd_ws_pipe *p, struct event_base *consumer, struct event_base *producer,
                     event_callback_fn on_wake, void *arg) {
  if (pthread_mutex_init(&p->mu, NULL) != 0) return -1;
  p->inited = 1;
  p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->efd < 0) return -1;
  p->wake_ev = event_new(consumer, p->efd, EV_READ | EV_PERSIST, on_wake, arg);
  p->push_ev = event_new(producer, -1, 0, on_push, p);
  if (!p->wake_ev || !p->push_ev || event_add(p->wake_ev, NULL) < 0) return -1;
  return 0;
}

static void pipe_free(nd_ws_pipe *p) {
  if (p->wake_ev) event_free(p->wake_ev);
  if (p->push_ev) event_free(p->push_ev);
  if (p->efd >= 0) close(p->efd);
  free(p->shared.v);
  free(p->stage.v);
  free(p->work.v);
  if (p->inited) pthread_mutex_destroy(&p->mu);
  p->inited = 0;
  p->wake_ev = p->push_ev = NULL;
  p->efd = -1;
}

/* ---- the I/O thread's side ------------------------------------------------ */

static void io_start(nd_ws_loop *l, notifd_ws_conn *c, handover *ho) {
  struct bufferevent *bev = bufferevent_socket_new(l->base, ho->fd, BEV_OPT_CLOSE_ON_FREE);
  int ok = bev != NULL;
  if (ok) {
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_unfreeze(in, 0); /* a socket bufferevent freezes its input's end */
    ok = evbuffer_add_buffer(in, ho->in) == 0 &&
         evbuffer_add_buffer(bufferevent_get_output(bev), ho->out) == 0;
    evbuffer_freeze(in, 0);
  } else {
    close(ho->fd);
  }
  evbuffer_free(ho->in);
  evbuffer_free(ho->out);
  free(ho);
  if (!ok) {
    if (bev) bufferevent_free(bev);
    c->state = ND_WS_DEAD;
    nd_ws_to_main_detach(c, ND_WS_CLOSE_ABNORMAL, 0);
    nd_ws_to_main_gone(c);
    return;
  }
  nd_ws_io_begin(c, bev);
  nd_ws_conn_kick(c); /* the 101 */
  /* Bytes the client sent right after its request. */
  if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
    bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void io_resume(nd_ws_loop *l) {
  notifd_ws_conn *c = l->throttled;
  l->throttled = NULL;
  while (c) {
    notifd_ws_conn *next = c->thnext;
    c->thnext = NULL;
    c->throttled = 0;
    nd_ws_io_resume_reading(c);
    c = next;
  }
}

static void io_unthrottle(nd_ws_loop *l, notifd_ws_conn *c) {
  if (!c->throttled) return;
  for (notifd_ws_conn **pp = &l->throttled; *pp; pp = &(*pp)->thnext)
    if (*pp == c) {
      *pp = c->thnext;
      break;
    }
  c->thnext = NULL;
  c->throttled = 0;
}

static void io_handle(nd_ws_loop *l, nd_ws_msg *m, void *arg) {
  (void)arg;
  notifd_ws_conn *c = m->c;
  switch (m->type) {
  case ND_WS_MSG_START: io_start(l, c, m->data); break;
  case ND_WS_MSG_FRAME: nd_ws_io_add_frame(c, m->data, m->len); break;
  case ND_WS_MSG_CLOSE:
    nd_ws_io_close(c, m->data, m->len);
    free(m->data);
    break;
  case ND_WS_MSG_FREE:
    io_unthrottle(l, c);
    nd_ws_io_free(c, 1);
    break;
  case ND_WS_MSG_CLOSE_ACK: nd_ws_io_close_ack(c); break;
  case ND_WS_MSG_RESUME: io_resume(l); break;
  case ND_WS_MSG_STOP: event_base_loopbreak(l->base); break;
  default: break;
  }
}

static void on_io_wake(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_ws_loop *l = arg;
  pipe_consume(&l->to_io, l, io_handle, NULL);
  /* The batch is main's loop turn: write it now, one sendmsg per socket,
   * unless websocket.write_delay asks to hold frames longer. */
  if (l->hub->host->cfg.ws_write_delay_ms == 0 && l->hub->write_mode == ND_WS_WRITE_NEXT) {
    event_del(l->flush_ev);
    loop_flush(l);
  }
}

static void *io_thread(void *arg) {
  nd_ws_loop *l = arg;
  event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

/* ---- the main thread's side -------------------------------------------- */

static void main_handle(nd_ws_loop *l, nd_ws_msg *m, void *arg) {
  size_t *handled_bytes = arg;
  notifd_ws_conn *c = m->c;
  switch (m->type) {
  case ND_WS_MSG_MESSAGE:
    /* A plugin call from on_message may stop the loops (host shutdown):
     * the rest of the batch is then dropped (drop_to_main). */
    if (!l->stopped) nd_ws_conn_deliver(c, m->data, m->len, m->flag);
    *handled_bytes += m->len;
    free(m->data);
    break;
  case ND_WS_MSG_DETACH:
    nd_ws_conn_detach(c, m->code, m->flag & ND_WS_DETACH_SLOW);
    if ((m->flag & ND_WS_DETACH_ACK) && !l->stopped) {
      /* Replies to what came before are staged already: the ack follows. */
      nd_ws_msg ack = {.c = c, .type = ND_WS_MSG_CLOSE_ACK};
      if (pipe_send(&l->to_io, &ack) < 0)
        ND_ERROR("ws", "cannot acknowledge a close: out of memory (the grace timer ends it)");
    }
    break;
  case ND_WS_MSG_GONE: nd_ws_conn_gone(c); break;
  default: break;
  }
}

static void on_main_wake(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_ws_loop *l = arg;
  size_t bytes = 0;
  pipe_consume(&l->to_main, l, main_handle, &bytes);
  if (bytes) {
    size_t limit = inbound_limit(l->hub);
    size_t before = __atomic_fetch_sub(&l->inbound, bytes, __ATOMIC_ACQ_REL);
    if (before >= limit && before - bytes < limit && !l->stopped) {
      nd_ws_msg r = {.type = ND_WS_MSG_RESUME};
      if (pipe_send(&l->to_io, &r) < 0) ND_ERROR("ws", "cannot resume reading: out of memory");
    }
  }
}

/* ---- loops ---------------------------------------------------------------- */

static nd_ws_loop *loop_new(nd_ws_hub *hub, unsigned index) {
  nd_ws_loop *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->hub = hub;
  l->index = index;
  l->threaded = index > 0;
  l->to_io.efd = l->to_main.efd = -1; /* (what pipe_free may see) */
  hub->loops[hub->nloops++] = l;
  l->base = l->threaded ? event_base_new() : hub->host->base;
  if (!l->base) return NULL;
  l->flush_ev = event_new(l->base, -1, 0, on_flush, l);
  if (!l->flush_ev || nd_ws_timers_init(l) < 0) return NULL;
  if (!l->threaded) return l;
  if (pipe_init(&l->to_io, l->base, hub->host->base, on_io_wake, l) < 0 ||
      pipe_init(&l->to_main, hub->host->base, l->base, on_main_wake, l) < 0)
    return NULL;
  l->piped = 1;
  /* Signals are the main thread's (libevent's signal events run there). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&l->thread, NULL, io_thread, l);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) return NULL;
  l->started = 1;
  return l;
}

static unsigned io_threads(const nd_ws_hub *hub) {
  /* NOTIFD_WS_IO_THREADS overrides the configuration: the test suites run
   * both ways with it (meson test variants), and benchmarks A/B one binary. */
  const char *e = getenv("NOTIFD_WS_IO_THREADS");
  if (e && *e) {
    char *end;
    unsigned long n = strtoul(e, &end, 10);
    if (!*end && n <= 64) return (unsigned)n;
    ND_WARN("ws", "NOTIFD_WS_IO_THREADS=%s ignored (0..64)", e);
  }
  return hub->host->cfg.ws_io_threads;
}

int nd_ws_loops_init(nd_ws_hub *hub) {
  unsigned n = io_threads(hub);
  hub->loops = calloc(n + 1, sizeof *hub->loops);
  if (!hub->loops) return -1;
  for (unsigned i = 0; i <= n; i++)
    if (!loop_new(hub, i)) {
      ND_ERROR("ws", "cannot start websocket I/O loop %u", i);
      return -1;
    }
  if (n) ND_INFO("ws", "%u websocket I/O thread(s)", n);
  return 0;
}

nd_ws_loop *nd_ws_loop_pick(nd_ws_hub *hub, int tls) {
  if (tls || hub->nloops < 2) {
    hub->loops[0]->nassigned++;
    return hub->loops[0];
  }
  /* Least loaded, ties in turn. */
  unsigned n = hub->nloops - 1, best = 1 + hub->next_loop % n;
  for (unsigned k = 1; k <= n; k++) {
    unsigned i = 1 + (hub->next_loop + k) % n;
    if (hub->loops[i]->nassigned < hub->loops[best]->nassigned) best = i;
  }
  hub->next_loop = best % n;
  hub->loops[best]->nassigned++;
  return hub->loops[best];
}

/* What main had queued but the loop never took: frames hold chunk
 * references, FREE is the struct's last word. */
static void drop_to_io(nd_ws_loop *l, nd_ws_msg *m, void *arg) {
  (void)l;
  (void)arg;
  switch (m->type) {
  case ND_WS_MSG_START: { /* never had a socket on the loop */
    handover *ho = m->data;
    close(ho->fd);
    evbuffer_free(ho->in);
    evbuffer_free(ho->out);
    free(ho);
    m->c->state = ND_WS_DEAD;
    nd_ws_conn_detach(m->c, ND_WS_CLOSE_GOING_AWAY, 0);
    nd_ws_conn_gone(m->c);
    break;
  }
  case ND_WS_MSG_FRAME: nd_ws_frame_unsent(m->data, m->len, m->c); break;
  case ND_WS_MSG_CLOSE: free(m->data); break;
  case ND_WS_MSG_FREE: nd_ws_io_free(m->c, 1); break;
  default: break;
  }
}

/* What the loop reported and main did not see yet: DETACH and GONE still
 * count (the connection's state), messages are dropped. */
static void drop_to_main(nd_ws_loop *l, nd_ws_msg *m, void *arg) {
  (void)l;
  (void)arg;
  if (m->type == ND_WS_MSG_MESSAGE) free(m->data);
  else if (m->type == ND_WS_MSG_DETACH) nd_ws_conn_detach(m->c, m->code, m->flag & ND_WS_DETACH_SLOW);
  else if (m->type == ND_WS_MSG_GONE) nd_ws_conn_gone(m->c);
}

void nd_ws_loops_stop(nd_ws_hub *hub) {
  for (unsigned i = 1; i < hub->nloops; i++) {
    nd_ws_loop *l = hub->loops[i];
    if (!l || l->stopped) continue;
    if (l->started) {
      pipe_push(&l->to_io);
      nd_ws_msg stop = {.type = ND_WS_MSG_STOP};
      if (pipe_send(&l->to_io, &stop) == 0) pipe_push(&l->to_io);
      else event_base_loopexit(l->base, NULL); /* no memory: blunter, same effect */
      pthread_join(l->thread, NULL);
      l->started = 0;
    }
    l->stopped = 1;
    if (!l->piped) continue; /* failed to start: nothing in flight */
    /* From here the loop's state is main's: the bridge calls through. */
    pipe_push(&l->to_io);
    pipe_consume(&l->to_io, l, drop_to_io, NULL);
    pipe_push(&l->to_main);
    pipe_consume(&l->to_main, l, drop_to_main, NULL);
  }
}

void nd_ws_loops_free(nd_ws_hub *hub) {
  if (!hub->loops) return;
  nd_ws_loops_stop(hub);
  for (unsigned i = 0; i < hub->nloops; i++) {
    nd_ws_loop *l = hub->loops[i];
    if (!l) continue;
    nd_ws_timers_free(l);
    if (l->flush_ev) event_free(l->flush_ev);
    free(l->dirty);
    if (l->threaded) {
      pipe_free(&l->to_io);
      pipe_free(&l->to_main);
      /* Runs the finalizers of the bufferevents freed on it. */
      if (l->base) event_base_free(l->base);
    }
    free(l);
  }
  free(hub->loops);
  hub->loops = NULL;
  hub->nloops = 0;
}

/* ---- the bridge ------------------------------------------------------------ */

int nd_ws_to_io_frame(notifd_ws_conn *c, uint8_t *frame, size_t len) {
  if (!nd_ws_remote(c)) return nd_ws_io_add_frame(c, frame, len);
  nd_ws_msg m = {.c = c, .data = frame, .len = len, .type = ND_WS_MSG_FRAME};
  if (pipe_send(&c->loop->to_io, &m) == 0) return 0;
  nd_ws_frame_unsent(frame, len, c);
  return -1;
}

void nd_ws_to_io_close(notifd_ws_conn *c, int code, const char *reason) {
  uint8_t pl[125];
  size_t n = nd_ws_close_payload(pl, code, reason);
  if (!nd_ws_remote(c)) {
    nd_ws_io_close(c, pl, n);
    return;
  }
  uint8_t *copy = malloc(n ? n : 1);
  nd_ws_msg m = {.c = c, .data = copy, .len = n, .type = ND_WS_MSG_CLOSE};
  if (copy) memcpy(copy, pl, n);
  if (!copy || pipe_send(&c->loop->to_io, &m) < 0) {
    free(copy);
    /* Without the close frame the peer sees the TCP connection end
     * when the heartbeat finds it unanswered; log it at least. */
    ND_ERROR("ws", "cannot ask for a close of key=%s: out of memory", c->params);
  }
}

int nd_ws_to_io_start(notifd_ws_conn *c, int fd, struct evbuffer *in, struct evbuffer *out) {
  handover *ho = malloc(sizeof *ho);
  if (!ho) return -1;
  *ho = (handover){fd, in, out};
  nd_ws_msg m = {.c = c, .data = ho, .type = ND_WS_MSG_START};
  if (pipe_send(&c->loop->to_io, &m) < 0) {
    free(ho);
    return -1;
  }
  return 0;
}

void nd_ws_to_io_release(notifd_ws_conn *c) {
  nd_ws_loop *l = c->loop;
  l->nassigned--;
  if (!nd_ws_remote(c)) {
    nd_ws_io_free(c, 1);
    return;
  }
  nd_ws_msg m = {.c = c, .type = ND_WS_MSG_FREE};
  /* Without memory to say so the struct stays allocated: a leak, never a
   * use after free. */
  if (pipe_send(&l->to_io, &m) < 0) ND_ERROR("ws", "cannot free a connection: out of memory");
}

void nd_ws_to_main_message(notifd_ws_conn *c, const void *data, size_t len, int is_text) {
  if (!nd_ws_remote(c)) {
    nd_ws_conn_deliver(c, data, len, is_text);
    return;
  }
  nd_ws_loop *l = c->loop;
  void *copy = malloc(len ? len : 1);
  nd_ws_msg m = {.c = c, .data = copy, .len = len, .type = ND_WS_MSG_MESSAGE,
                 .flag = (uint8_t)(is_text != 0)};
  if (copy && len) memcpy(copy, data, len);
  if (!copy || pipe_send(&l->to_main, &m) < 0) {
    free(copy);
    nd_ws_conn_abort(c, ND_WS_CLOSE_INTERNAL, "cannot pass a message on: out of memory");
    return;
  }
  size_t now = __atomic_add_fetch(&l->inbound, len, __ATOMIC_ACQ_REL);
  if (now >= inbound_limit(l->hub) && !c->throttled) {
    c->throttled = 1;
    c->thnext = l->throttled;
    l->throttled = c;
    nd_ws_io_pause_reading(c);
  }
}

static void to_main(notifd_ws_conn *c, int type, int code, int flag) {
  nd_ws_msg m = {.c = c, .code = code, .type = (uint8_t)type, .flag = (uint8_t)flag};
  /* These two carry the connection's end: without them main would wait
   * for it forever, so retry until there is memory. */
  while (pipe_send(&c->loop->to_main, &m) < 0) {
    ND_ERROR("ws", "out of memory reporting a connection's end; retrying");
    sleep(1);
  }
}

void nd_ws_to_main_detach(notifd_ws_conn *c, int code, int flags) {
  if (nd_ws_remote(c)) {
    to_main(c, ND_WS_MSG_DETACH, code, flags);
    return;
  }
  nd_ws_conn_detach(c, code, flags & ND_WS_DETACH_SLOW);
  if (flags & ND_WS_DETACH_ACK) nd_ws_io_close_ack(c);
}

void nd_ws_to_main_gone(notifd_ws_conn *c) {
  if (!nd_ws_remote(c)) {
    nd_ws_conn_gone(c);
    return;
  }
  if (c->throttled) io_unthrottle(c->loop, c);
  to_main(c, ND_WS_MSG_GONE, 0, 0);
}
