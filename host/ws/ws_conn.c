/* One websocket connection: reading and dispatching frames, the outbound
 * queue with its limits, the close handshake and teardown.  See
 * ws_internal.h for the connection states. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/tls.h"
#include "log/access.h"
#include "log/log.h"
#include "util/buf.h"
#include "util/evbuf_send.h"
#include "util/ipcount.h"
#include "ws/ws_internal.h"

static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);

const char *nd_ws_conn_peer(notifd_ws_conn *c, char *buf, size_t len) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  evutil_socket_t fd = c->bev ? bufferevent_getfd(c->bev) : -1;
  snprintf(buf, len, "?");
  if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) return buf;
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  snprintf(buf, len, "%s:%d", host, port);
  return buf;
}

/* ==== main thread =========================================================== */

notifd_ws_conn *nd_ws_conn_new(notifd_ws_channel *ch, const char *const *values) {
  size_t total = 0;
  for (size_t i = 0; i < ch->nparams; i++) total += (values[i] ? strlen(values[i]) : 0) + 1;
  notifd_ws_conn *c = calloc(1, sizeof *c);
  char *params = malloc(total ? total : 1);
  if (!c || !params) {
    free(c);
    free(params);
    return NULL;
  }
  char *p = params;
  for (size_t i = 0; i < ch->nparams; i++) {
    size_t n = values[i] ? strlen(values[i]) : 0;
    if (n) memcpy(p, values[i], n);
    p[n] = '\0';
    p += n + 1;
  }
  c->params = params;
  c->ch = ch;
  c->state = ND_WS_OPEN;
  const nd_config *cfg = &ch->hub->host->cfg;
  nd_ws_parser_init(&c->parser, cfg->ws_max_message, 1);
  return c;
}

void nd_ws_conn_discard(notifd_ws_conn *c) {
  if (!c) return;
  nd_ws_parser_free(&c->parser);
  free(c->params);
  free(c);
}

/* Joins the key's connection list; -1 on OOM. */
static int key_link(notifd_ws_conn *c) {
  nd_ws_keyent *e = nd_ws_keymap_get(&c->ch->keys, c->params);
  if (!e) return -1;
  c->kent = e;
  c->kprev = e->tail;
  c->knext = NULL;
  if (e->tail) e->tail->knext = c;
  else e->head = c;
  e->tail = c;
  e->count++;
  return 0;
}

static void key_unlink(notifd_ws_conn *c) {
  nd_ws_keyent *e = c->kent;
  if (!e) return;
  if (c->kprev) c->kprev->knext = c->knext;
  else e->head = c->knext;
  if (c->knext) c->knext->kprev = c->kprev;
  else e->tail = c->kprev;
  c->kprev = c->knext = NULL;
  c->kent = NULL;
  if (--e->count == 0) nd_ws_keymap_remove(&c->ch->keys, e);
}

int nd_ws_conn_register(notifd_ws_conn *c) {
  notifd_ws_channel *ch = c->ch;
  nd_ws_hub *hub = ch->hub;
  if (key_link(c) < 0) return -1;
  c->m_open = 1;
  ch->nopen++;
  c->next = hub->conns;
  c->prev = NULL;
  if (hub->conns) hub->conns->prev = c;
  hub->conns = c;
  hub->nconns++;
  nd_ws_metric_conns(ch);
  return 0;
}

void nd_ws_conn_detach(notifd_ws_conn *c, int code, int slow) {
  if (!c->m_open) return; /* closed before */
  notifd_ws_channel *ch = c->ch;
  if (slow) nd_ws_metric_add(ch->hub->m_slow, ch, 1);
  key_unlink(c);
  c->paused = 0;
  c->m_open = 0;
  ch->nopen--;
  nd_ws_metric_conns(ch);
  c->close_code = (uint16_t)code;
  if (c->opened) {
    if (ch->hub->host->cfg.log_access) {
      const char *user = NULL;
      if (c->subj) {
        user = c->params;
        for (unsigned i = 1; i < c->subj; i++) user += strlen(user) + 1;
      }
      nd_access_ws_close(ch->path, c->params, user, nd_now_ms() - c->open_ms, code);
    }
    c->close_pending = 1;
    nd_ws_hub_defer(ch->hub, c);
  }
}

void nd_ws_conn_gone(notifd_ws_conn *c) {
  if (c->gone) return;
  c->gone = 1;
  nd_ws_hub_unlink(c->ch->hub, c);
  nd_ws_hub_defer(c->ch->hub, c);
}

static void close_conn(notifd_ws_conn *c, int code, const char *reason, int slow) {
  if (!c->m_open) return;
  nd_ws_conn_detach(c, code, slow);
  nd_ws_to_io_close(c, code, reason);
}

void nd_ws_conn_close(notifd_ws_conn *c, int code, const char *reason) {
  close_conn(c, code, reason, 0);
}

void nd_ws_conn_deliver(notifd_ws_conn *c, const void *data, size_t len, int is_text) {
  notifd_ws_channel *ch = c->ch;
  if (c->m_open && ch->on_message) ch->on_message(c, data, len, is_text, ch->ud);
}

void nd_ws_conn_destroy(notifd_ws_conn *c) {
  nd_ipcount_release(c->peer);
  c->peer = NULL;
  nd_ws_to_io_release(c); /* the I/O side frees the rest */
}

/* Bytes waiting to be written: the output itself where main may look at
 * it, otherwise the data frames counted on their way. */
static size_t queued_bytes(notifd_ws_conn *c) {
  if (!nd_ws_remote(c)) return evbuffer_get_length(bufferevent_get_output(c->bev));
  return __atomic_load_n(&c->q_bytes, __ATOMIC_RELAXED);
}

int nd_ws_conn_queue(notifd_ws_conn *c, uint8_t *frame, size_t len) {
  if (!c->m_open) return -1;
  const nd_config *cfg = &c->ch->hub->host->cfg;
  /* The byte limit bounds a backlog, not a message: one message larger
   * than it (Go delivered any size) is queued outside the limit, one such
   * message at a time. */
  int big = cfg->ws_max_queue_bytes && len > cfg->ws_max_queue_bytes;
  size_t q_big = __atomic_load_n(&c->q_big, __ATOMIC_RELAXED);
  if (big && q_big) return NOTIFD_ETOOBIG;
  size_t total = queued_bytes(c); /* the big frame may be partly written */
  size_t queued = total > q_big ? total - q_big : 0;
  uint32_t frames = __atomic_load_n(&c->q_frames, __ATOMIC_RELAXED);
  if ((cfg->ws_max_queue_frames && frames >= cfg->ws_max_queue_frames) ||
      (!big && cfg->ws_max_queue_bytes && queued + len > cfg->ws_max_queue_bytes)) {
    notifd_ws_channel *ch = c->ch;
    char peer[64] = "?";
    if (!nd_ws_remote(c)) nd_ws_conn_peer(c, peer, sizeof peer);
    ND_WARN("ws", "slow consumer %s on %s key=%s: %zu bytes / %u frames queued, closing", peer,
            ch->path, c->params, queued, frames);
    close_conn(c, ND_WS_CLOSE_POLICY, "slow consumer: outbound queue limit reached", 1);
    return -1;
  }
  /* The queued copy holds its own reference, dropped once written. */
  nd_ws_chunk_ref(frame);
  if (big) __atomic_store_n(&c->q_big, len, __ATOMIC_RELAXED);
  return nd_ws_to_io_frame(c, frame, len);
}

/* ==== the connection's I/O loop ============================================== */

void nd_ws_io_begin(notifd_ws_conn *c, struct bufferevent *bev) {
  c->bev = bev;
  bufferevent_setcb(bev, conn_readcb, conn_writecb, conn_eventcb, c);
  c->direct = c->ch->hub->write_mode != ND_WS_WRITE_BEV && !nd_tls_bev_is_tls(bev);
  /* (A new bufferevent starts with EV_WRITE enabled.) */
  if (c->direct) bufferevent_disable(bev, EV_WRITE);
  bufferevent_enable(bev, c->direct ? EV_READ : EV_READ | EV_WRITE);
  nd_ws_timer_set(c, ND_WS_TL_PING);
}

/* Control frames and close frames bypass the queue accounting (but not
 * the byte limit check done by their callers where it matters). */
static int write_control(notifd_ws_conn *c, int opcode, const void *payload, size_t len) {
  uint8_t frame[14 + 125];
  size_t h = nd_ws_frame_header(frame, opcode, 1, len, NULL);
  if (len) memcpy(frame + h, payload, len);
  if (bufferevent_write(c->bev, frame, h + len) < 0) return -1;
  nd_ws_conn_kick(c);
  return 0;
}

static void send_close_frame(notifd_ws_conn *c, const uint8_t *payload, size_t len) {
  if (write_control(c, ND_WS_OP_CLOSE, payload, len) < 0)
    ND_WARN("ws", "cannot queue a close frame");
}

/* Output drained in LINGER: shut our write side (with close_notify over
 * TLS) so the peer sees EOF, then wait for its EOF (or the grace timer). */
static void linger_flushed(notifd_ws_conn *c) {
  if (c->wr_shut) return;
  c->wr_shut = 1;
  nd_tls_bev_shut_write(c->bev);
  bufferevent_disable(c->bev, EV_WRITE);
}

static void enter_linger(notifd_ws_conn *c) {
  if (c->state == ND_WS_LINGER || c->state == ND_WS_DEAD) return;
  if (c->state == ND_WS_OPEN) nd_ws_timer_set(c, ND_WS_TL_GRACE);
  /* From CLOSE_SENT the grace deadline already runs. */
  c->state = ND_WS_LINGER;
  if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) linger_flushed(c);
}

void nd_ws_io_close(notifd_ws_conn *c, const uint8_t *payload, size_t len) {
  if (c->state != ND_WS_OPEN) return;
  send_close_frame(c, payload, len);
  c->state = ND_WS_CLOSE_SENT;
  nd_ws_timer_set(c, ND_WS_TL_GRACE);
}

/* Closes from the I/O side (a protocol error, a ping flood) and tells main. */
static void io_close_code(notifd_ws_conn *c, int code, const char *why, int slow) {
  uint8_t pl[125];
  size_t n = nd_ws_close_payload(pl, code, why);
  nd_ws_io_close(c, pl, n);
  nd_ws_to_main_detach(c, code, slow ? ND_WS_DETACH_SLOW : 0);
}

/* On an I/O thread, the close frame that answers the peer's close (or a
 * protocol error) waits until main has handled the messages read before
 * it, so that the plugin's replies to them go out first, as they do on the
 * main loop: reading stops, main is told, and its acknowledgement
 * (nd_ws_io_close_ack) writes the frame.  `why` is static. */
static void close_after_main(notifd_ws_conn *c, int send_code, const char *why, int code) {
  c->ack_wait = 1;
  c->ack_code = (uint16_t)send_code;
  c->ack_why = why;
  nd_ws_timer_set(c, ND_WS_TL_GRACE); /* main never answering ends it too */
  nd_ws_io_pause_reading(c);
  nd_ws_to_main_detach(c, code, ND_WS_DETACH_ACK);
}

void nd_ws_io_close_ack(notifd_ws_conn *c) {
  if (!c->ack_wait) return;
  c->ack_wait = 0;
  if (c->state == ND_WS_OPEN) { /* main did not close it meanwhile */
    uint8_t pl[125];
    send_close_frame(c, pl, nd_ws_close_payload(pl, c->ack_code, c->ack_why));
    c->state = ND_WS_CLOSE_SENT; /* the grace deadline runs already */
  }
  enter_linger(c);
  nd_ws_io_resume_reading(c); /* lingering reads on, to see the peer's EOF */
}

/* Protocol violation: close frame with `code`, then linger. */
static void conn_fail(notifd_ws_conn *c, int code, const char *why) {
  char peer[64];
  ND_INFO("ws", "closing %s on %s: %s (close %d)", nd_ws_conn_peer(c, peer, sizeof peer),
          c->ch->path, why, code);
  if (c->state == ND_WS_OPEN && nd_ws_remote(c)) {
    close_after_main(c, code, why, code);
    return;
  }
  if (c->state == ND_WS_OPEN) io_close_code(c, code, why, 0);
  enter_linger(c);
}

void nd_ws_conn_abort(notifd_ws_conn *c, int code, const char *why) {
  if (c->state == ND_WS_DEAD) return;
  if (why) {
    char peer[64];
    ND_INFO("ws", "dropping %s on %s: %s", nd_ws_conn_peer(c, peer, sizeof peer), c->ch->path,
            why);
  }
  int was_open = c->state == ND_WS_OPEN;
  c->state = ND_WS_DEAD;
  if (was_open) nd_ws_to_main_detach(c, code, 0);
  if (c->dirty_idx) {
    c->loop->dirty[c->dirty_idx - 1] = NULL;
    c->dirty_idx = 0;
  }
  nd_ws_timer_set(c, ND_WS_TL_NONE);
  if (c->bev) {
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
  }
  /* On a thread of its own the socket goes now; on the main loop it goes
   * with the struct (nd_ws_conn_destroy). */
  if (nd_ws_remote(c)) nd_ws_io_free(c, 0);
  nd_ws_to_main_gone(c);
}

void nd_ws_io_free(notifd_ws_conn *c, int whole) {
  if (c->dirty_idx) {
    c->loop->dirty[c->dirty_idx - 1] = NULL;
    c->dirty_idx = 0;
  }
  nd_ws_timer_set(c, ND_WS_TL_NONE);
  if (c->bev) {
    /* Queued frames reference c in their cleanup: release them now, before
     * libevent possibly finalizes the bufferevent later. */
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_unfreeze(out, 1);
    evbuffer_drain(out, evbuffer_get_length(out));
    nd_tls_bev_free(c->bev); /* a TLS one also drops its SSL and socket */
    c->bev = NULL;
  }
  nd_ws_parser_free(&c->parser);
  if (!whole) return;
  free(c->params);
  free(c);
}

void nd_ws_conn_send_ping(notifd_ws_conn *c) {
  nd_ws_loop *l = c->loop;
  if (c->state != ND_WS_OPEN) {
    nd_ws_timer_set(c, ND_WS_TL_NONE);
    return;
  }
  if (write_control(c, ND_WS_OP_PING, NULL, 0) < 0) {
    nd_ws_conn_abort(c, ND_WS_CLOSE_ABNORMAL, "cannot queue a ping");
    return;
  }
  nd_ws_timer_set(c, l->tl[ND_WS_TL_PONG].delay_ms > 0 ? ND_WS_TL_PONG : ND_WS_TL_PING);
}

void nd_ws_io_pause_reading(notifd_ws_conn *c) {
  if (c->bev) bufferevent_disable(c->bev, EV_READ);
}

void nd_ws_io_resume_reading(notifd_ws_conn *c) {
  if (c->state == ND_WS_DEAD || !c->bev || c->ack_wait || c->throttled) return;
  bufferevent_enable(c->bev, EV_READ);
  if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
    bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- outbound queue ---------------------------------------------------- */

void nd_ws_frame_done(const void *data, size_t len, void *extra) {
  notifd_ws_conn *c = extra;
  __atomic_fetch_sub(&c->q_frames, 1, __ATOMIC_RELAXED);
  __atomic_fetch_sub(&c->q_bytes, len, __ATOMIC_RELAXED);
  size_t big = len;
  __atomic_compare_exchange_n(&c->q_big, &big, 0, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  nd_ws_chunk_unref((uint8_t *)(uintptr_t)data);
}

void nd_ws_frame_unsent(uint8_t *frame, size_t len, notifd_ws_conn *c) {
  size_t big = len;
  __atomic_compare_exchange_n(&c->q_big, &big, 0, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  nd_ws_chunk_unref(frame);
}

int nd_ws_io_add_frame(notifd_ws_conn *c, uint8_t *frame, size_t len) {
  /* Counted from here, in the socket's output, to its write: main's limits
   * see what the socket holds back, not frames on their way between
   * threads (a thread scheduled late is not a slow consumer). */
  __atomic_fetch_add(&c->q_frames, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&c->q_bytes, len, __ATOMIC_RELAXED);
  if (c->state == ND_WS_OPEN && c->bev &&
      evbuffer_add_reference(bufferevent_get_output(c->bev), frame, len, nd_ws_frame_done, c) == 0) {
    nd_ws_conn_kick(c);
    return 0;
  }
  /* Closed meanwhile (or no memory): not sent, no longer queued. */
  nd_ws_frame_done(frame, len, c);
  return -1;
}

/* ---- writing ------------------------------------------------------------ */

#define FLUSH_IOV 64

/* The socket is full (or failed): its bufferevent writes the rest when it
 * becomes writable (and reports a failure through conn_eventcb, as it
 * always did); conn_writecb hands writing back to us once it drained. */
static void arm_write(notifd_ws_conn *c) {
  c->wr_armed = 1;
  bufferevent_enable(c->bev, EV_WRITE);
}

void nd_ws_conn_flush(notifd_ws_conn *c) {
  if (!c->direct || c->wr_armed || c->wr_shut || c->state == ND_WS_DEAD || !c->bev) return;
  struct evbuffer *out = bufferevent_get_output(c->bev);
  evutil_socket_t fd = bufferevent_getfd(c->bev);
  while (evbuffer_get_length(out) > 0) {
    size_t total = 0;
    ssize_t w = nd_evbuffer_sendmsg(out, fd, MSG_DONTWAIT, FLUSH_IOV, &total);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      /* EAGAIN, or an error the bufferevent's own write will report. */
      arm_write(c);
      return;
    }
    /* A socket bufferevent keeps its output's start frozen: only it may
     * drain, and here we are it.  Written frames release their chunks. */
    evbuffer_unfreeze(out, 1);
    evbuffer_drain(out, (size_t)w);
    evbuffer_freeze(out, 1);
    if ((size_t)w < total) { /* kernel buffer full */
      arm_write(c);
      return;
    }
  }
  if (c->state == ND_WS_LINGER) linger_flushed(c);
}

void nd_ws_conn_kick(notifd_ws_conn *c) {
  if (!c->direct || c->wr_armed || c->state == ND_WS_DEAD) return;
  nd_ws_loop *l = c->loop;
  int mode = l->hub->write_mode;
  if (mode == ND_WS_WRITE_NOW) {
    nd_ws_conn_flush(c);
    return;
  }
  if (c->dirty_idx) return; /* listed for the coming flush already */
  if (l->ndirty == l->dirty_cap) {
    size_t cap = l->dirty_cap ? l->dirty_cap * 2 : 256;
    notifd_ws_conn **d = realloc(l->dirty, cap * sizeof *d);
    if (!d) {
      nd_ws_conn_flush(c); /* no room to remember it: write now */
      return;
    }
    l->dirty = d;
    l->dirty_cap = cap;
  }
  l->dirty[l->ndirty++] = c;
  c->dirty_idx = (uint32_t)l->ndirty;
  /* Everything queued for c until the flush goes out in one sendmsg. */
  if (l->ndirty == 1) {
    if (mode == ND_WS_WRITE_NEXT) {
      /* A zero-delay timer runs after the I/O callbacks of the next poll
       * (which does not block while it is pending): requests that were
       * already waiting publish into the same writes.  websocket.
       * write_delay holds the writes longer, for bigger batches.  (A
       * threaded loop also flushes at the end of each batch from main.) */
      int64_t d = l->hub->host->cfg.ws_write_delay_ms; /* websocket.write_delay */
      struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
      event_add(l->flush_ev, &tv);
    } else {
      event_active(l->flush_ev, EV_TIMEOUT, 0); /* after this turn's callbacks */
    }
  }
}

/* ---- inbound ------------------------------------------------------------ */

static void handle_event(notifd_ws_conn *c, const nd_ws_event *ev) {
  switch (ev->type) {
  case ND_WS_EV_MESSAGE:
    if (c->state == ND_WS_OPEN) nd_ws_to_main_message(c, ev->data, ev->len, ev->is_text);
    break;
  case ND_WS_EV_PING:
    if (c->state != ND_WS_OPEN) break;
    {
      const nd_config *cfg = &c->ch->hub->host->cfg;
      size_t queued = evbuffer_get_length(bufferevent_get_output(c->bev));
      if (cfg->ws_max_queue_bytes && queued + 2 + ev->len > cfg->ws_max_queue_bytes) {
        /* Pings faster than it reads our pongs. */
        char peer[64];
        ND_WARN("ws", "slow consumer %s on %s key=%s: %zu bytes queued (pongs), closing",
                nd_ws_conn_peer(c, peer, sizeof peer), c->ch->path, c->params, queued);
        io_close_code(c, ND_WS_CLOSE_POLICY, "slow consumer: outbound queue limit reached", 1);
        break;
      }
      if (write_control(c, ND_WS_OP_PONG, ev->data, ev->len) < 0)
        nd_ws_conn_abort(c, ND_WS_CLOSE_ABNORMAL, "cannot queue a pong");
    }
    break;
  case ND_WS_EV_PONG:
    if (c->state == ND_WS_OPEN && c->tlist == ND_WS_TL_PONG) nd_ws_timer_set(c, ND_WS_TL_PING);
    break;
  case ND_WS_EV_CLOSE:
    if (c->state == ND_WS_OPEN && nd_ws_remote(c)) {
      close_after_main(c, ev->code == ND_WS_CLOSE_NO_STATUS ? 0 : ev->code, NULL, ev->code);
      break;
    }
    if (c->state == ND_WS_OPEN) {
      /* Echo the peer's code (an empty close is answered empty). */
      uint8_t pl[2] = {(uint8_t)(ev->code >> 8), (uint8_t)ev->code};
      write_control(c, ND_WS_OP_CLOSE, pl, ev->code == ND_WS_CLOSE_NO_STATUS ? 0 : 2);
      nd_ws_to_main_detach(c, ev->code, 0);
    }
    enter_linger(c);
    break;
  case ND_WS_EV_ERROR:
    conn_fail(c, ev->code, ev->why);
    break;
  default: break;
  }
}

static void conn_readcb(struct bufferevent *bev, void *arg) {
  notifd_ws_conn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  while (c->state != ND_WS_DEAD && !c->throttled && !c->ack_wait && evbuffer_get_length(in) > 0) {
    if (c->state == ND_WS_LINGER) {
      evbuffer_drain(in, evbuffer_get_length(in));
      break;
    }
    struct evbuffer_iovec v;
    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) break;
    nd_ws_event ev;
    size_t used = nd_ws_parse(&c->parser, v.iov_base, v.iov_len, &ev);
    /* Handle before draining: the event may point into this chunk. */
    if (ev.type != ND_WS_EV_NONE) handle_event(c, &ev);
    if (c->state == ND_WS_DEAD) break;
    nd_ws_parser_release(&c->parser);
    evbuffer_drain(in, used);
  }
}

static void conn_writecb(struct bufferevent *bev, void *arg) {
  notifd_ws_conn *c = arg;
  if (c->wr_armed && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
    /* Drained: back to writing directly, no write event. */
    c->wr_armed = 0;
    bufferevent_disable(bev, EV_WRITE);
  }
  if (c->state == ND_WS_LINGER && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
    linger_flushed(c);
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  notifd_ws_conn *c = arg;
  /* A peer that closed after the handshake, or one that just vanished (a
   * connection already closing only loses its socket: main has its code). */
  const char *why = what & BEV_EVENT_EOF ? "peer closed the connection" : "connection error";
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
    nd_ws_conn_abort(c, ND_WS_CLOSE_ABNORMAL, c->state == ND_WS_OPEN ? why : NULL);
}

/* ---- API table functions ---------------------------------------------- */

int nd_ws_send(notifd_ws_conn *c, const void *data, size_t len, int32_t is_text) {
  if (!c || (!data && len)) return NOTIFD_EINVAL;
  if (!c->m_open) return NOTIFD_ECLOSED;
  if (is_text && !nd_utf8_valid(data, len)) return NOTIFD_EINVAL;
  size_t flen = 0;
  uint8_t *frame = nd_ws_chunk_new(is_text ? ND_WS_OP_TEXT : ND_WS_OP_BINARY, data, len, &flen);
  if (!frame) return NOTIFD_ENOMEM;
  int rc = nd_ws_conn_queue(c, frame, flen);
  nd_ws_chunk_unref(frame);
  if (rc == NOTIFD_ETOOBIG) return rc;
  if (rc < 0) return c->m_open ? NOTIFD_ENOMEM : NOTIFD_ECLOSED;
  nd_ws_hub *hub = c->ch->hub;
  nd_ws_metric_add(hub->m_frames, c->ch, 1);
  nd_ws_metric_add(hub->m_bytes, c->ch, (double)flen);
  return 0;
}

int nd_ws_close(notifd_ws_conn *c, int32_t code, const char *reason) {
  if (!c) return NOTIFD_EINVAL;
  if (!nd_ws_close_code_valid(code)) return NOTIFD_EINVAL;
  if (reason && !nd_utf8_valid(reason, strlen(reason))) return NOTIFD_EINVAL;
  if (!c->m_open) return NOTIFD_ECLOSED;
  nd_ws_conn_close(c, code, reason);
  return 0;
}

const char *nd_ws_conn_key(notifd_ws_conn *c) { return c ? c->params : NULL; }

const char *nd_ws_conn_param(notifd_ws_conn *c, const char *name) {
  if (!c || !name) return NULL;
  const char *v = c->params;
  for (size_t i = 0; i < c->ch->nparams; i++) {
    if (strcmp(c->ch->param_names[i], name) == 0) return v;
    v += strlen(v) + 1;
  }
  return NULL;
}

const char *nd_ws_conn_subprotocol(notifd_ws_conn *c) {
  return c && c->proto ? c->ch->subprotocols[c->proto - 1] : NULL;
}

const char *nd_ws_conn_subject(notifd_ws_conn *c) {
  if (!c || !c->subj) return NULL;
  const char *v = c->params;
  for (unsigned i = 0; i + 1 < c->subj; i++) v += strlen(v) + 1;
  return v;
}

int nd_ws_conn_pause(notifd_ws_conn *c) {
  if (!c) return NOTIFD_EINVAL;
  if (!c->m_open) return NOTIFD_ECLOSED;
  if (c->paused) return 0;
  key_unlink(c);
  c->paused = 1;
  return 0;
}

int nd_ws_conn_resume(notifd_ws_conn *c) {
  if (!c) return NOTIFD_EINVAL;
  if (!c->m_open) return NOTIFD_ECLOSED;
  if (!c->paused) return 0;
  if (key_link(c) < 0) return NOTIFD_ENOMEM; /* still paused */
  c->paused = 0;
  return 0;
}

void nd_ws_conn_set_data(notifd_ws_conn *c, void *data) {
  if (c) c->data = data;
}

void *nd_ws_conn_data(notifd_ws_conn *c) { return c ? c->data : NULL; }
