/* Heartbeat and close-grace deadlines for every connection of an I/O loop,
 * on ONE periodic libevent timer of that loop (no per-connection timers).
 *
 * Three lists, each ordered by deadline because every entry of a list is
 * appended with the same delay: PING (next ping due), PONG (ping sent,
 * pong due) and GRACE (closing, drop if the peer does not finish).  A tick
 * pops expired heads, so every operation is O(1).  The timer is armed only
 * while some list is non-empty, so an idle loop leaves no pending event. */
#include <event2/event.h>
#include <stdlib.h>

#include "log/log.h"
#include "util/buf.h"
#include "ws/ws_internal.h"

static void unlink_conn(nd_ws_loop *lp, notifd_ws_conn *c) {
  if (c->tlist == ND_WS_TL_NONE) return;
  nd_ws_tlist *l = &lp->tl[c->tlist];
  if (c->tprev) c->tprev->tnext = c->tnext;
  else l->head = c->tnext;
  if (c->tnext) c->tnext->tprev = c->tprev;
  else l->tail = c->tprev;
  c->tprev = c->tnext = NULL;
  c->tlist = ND_WS_TL_NONE;
}

static int lists_empty(const nd_ws_loop *l) {
  for (int i = 1; i < ND_WS_TL_COUNT; i++)
    if (l->tl[i].head) return 0;
  return 1;
}

static void arm(nd_ws_loop *l) {
  if (l->tick_armed || !l->tick_ev) return;
  struct timeval tv = {(time_t)(l->tick_ms / 1000), (suseconds_t)(l->tick_ms % 1000) * 1000};
  if (event_add(l->tick_ev, &tv) == 0) l->tick_armed = 1;
  else ND_ERROR("ws", "cannot arm the heartbeat timer");
}

void nd_ws_timer_set(notifd_ws_conn *c, int which) {
  nd_ws_loop *lp = c->loop;
  unlink_conn(lp, c);
  if (which == ND_WS_TL_NONE || lp->tl[which].delay_ms <= 0) return;
  nd_ws_tlist *l = &lp->tl[which];
  c->due_ms = nd_now_ms() + l->delay_ms;
  c->tlist = (uint8_t)which;
  c->tprev = l->tail;
  c->tnext = NULL;
  if (l->tail) l->tail->tnext = c;
  else l->head = c;
  l->tail = c;
  arm(lp);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_ws_loop *l = arg;
  int64_t now = nd_now_ms();
  notifd_ws_conn *c;
  while ((c = l->tl[ND_WS_TL_PONG].head) && c->due_ms <= now)
    nd_ws_conn_abort(c, ND_WS_CLOSE_ABNORMAL, "pong timeout"); /* unlinks c */
  while ((c = l->tl[ND_WS_TL_GRACE].head) && c->due_ms <= now)
    nd_ws_conn_abort(c, c->close_code ? c->close_code : ND_WS_CLOSE_ABNORMAL,
                     "close handshake not finished in time");
  while ((c = l->tl[ND_WS_TL_PING].head) && c->due_ms <= now) {
    nd_ws_conn_send_ping(c); /* moves c to PONG (or closes it) */
    if (l->tl[ND_WS_TL_PING].head == c) nd_ws_timer_set(c, ND_WS_TL_NONE);
  }
  if (lists_empty(l)) {
    event_del(l->tick_ev);
    l->tick_armed = 0;
  }
}

int nd_ws_timers_init(nd_ws_loop *l) {
  const nd_config *cfg = &l->hub->host->cfg;
  int64_t grace = cfg->ws_pong_timeout_ms;
  if (grace < 100) grace = 100;
  if (grace > 5000) grace = 5000;
  l->tl[ND_WS_TL_PING].delay_ms = cfg->ws_ping_interval_ms;
  l->tl[ND_WS_TL_PONG].delay_ms = cfg->ws_pong_timeout_ms > 0 ? cfg->ws_pong_timeout_ms : 0;
  l->tl[ND_WS_TL_GRACE].delay_ms = grace;
  /* Tick at 1/8 of the shortest delay, between 5 ms and 1 s. */
  int64_t shortest = grace;
  for (int i = ND_WS_TL_PING; i <= ND_WS_TL_PONG; i++)
    if (l->tl[i].delay_ms > 0 && l->tl[i].delay_ms < shortest) shortest = l->tl[i].delay_ms;
  l->tick_ms = shortest / 8;
  if (l->tick_ms < 5) l->tick_ms = 5;
  if (l->tick_ms > 1000) l->tick_ms = 1000;
  l->tick_ev = event_new(l->base, -1, EV_PERSIST, on_tick, l);
  return l->tick_ev ? 0 : -1;
}

void nd_ws_timers_free(nd_ws_loop *l) {
  if (l->tick_ev) event_free(l->tick_ev);
  l->tick_ev = NULL;
  l->tick_armed = 0;
}
