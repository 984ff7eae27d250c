/* Heartbeat and close-grace deadlines for every connection of a hub, on
 * ONE periodic libevent timer (no per-connection timers).
 *
 * Three lists, each ordered by deadline because every entry of a list is
 * appended with the same delay: PING (next ping due), PONG (ping sent,
 * pong due) and GRACE (closing, drop if the peer does not finish).  A tick
 * pops expired heads, so every operation is O(1).  The timer is armed only
 * while some list is non-empty, so an idle hub leaves no pending event. */
#include <event2/event.h>
#include <stdlib.h>

#include "log/log.h"
#include "util/buf.h"
#include "ws/ws_internal.h"

static void unlink_conn(nd_ws_hub *hub, notifd_ws_conn *c) {
  if (c->tlist == ND_WS_TL_NONE) return;
  nd_ws_tlist *l = &hub->tl[c->tlist];
  if (c->tprev) c->tprev->tnext = c->tnext;
  else l->head = c->tnext;
  if (c->tnext) c->tnext->tprev = c->tprev;
  else l->tail = c->tprev;
  c->tprev = c->tnext = NULL;
  c->tlist = ND_WS_TL_NONE;
}

static int lists_empty(const nd_ws_hub *hub) {
  for (int i = 1; i < ND_WS_TL_COUNT; i++)
    if (hub->tl[i].head) return 0;
  return 1;
}

static void arm(nd_ws_hub *hub) {
  if (hub->tick_armed || !hub->tick_ev) return;
  struct timeval tv = {(time_t)(hub->tick_ms / 1000), (suseconds_t)(hub->tick_ms % 1000) * 1000};
  if (event_add(hub->tick_ev, &tv) == 0) hub->tick_armed = 1;
  else ND_ERROR("ws", "cannot arm the heartbeat timer");
}

void nd_ws_timer_set(nd_ws_hub *hub, notifd_ws_conn *c, int which) {
  unlink_conn(hub, c);
  if (which == ND_WS_TL_NONE || hub->tl[which].delay_ms <= 0) return;
  nd_ws_tlist *l = &hub->tl[which];
  c->due_ms = nd_now_ms() + l->delay_ms;
  c->tlist = (uint8_t)which;
  c->tprev = l->tail;
  c->tnext = NULL;
  if (l->tail) l->tail->tnext = c;
  else l->head = c;
  l->tail = c;
  arm(hub);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nd_ws_hub *hub = arg;
  int64_t now = nd_now_ms();
  notifd_ws_conn *c;
  while ((c = hub->tl[ND_WS_TL_PONG].head) && c->due_ms <= now)
    nd_ws_conn_abort(c, ND_WS_CLOSE_ABNORMAL, "pong timeout"); /* unlinks c */
  while ((c = hub->tl[ND_WS_TL_GRACE].head) && c->due_ms <= now)
    nd_ws_conn_abort(c, c->close_code ? c->close_code : ND_WS_CLOSE_ABNORMAL,
                     "close handshake not finished in time");
  while ((c = hub->tl[ND_WS_TL_PING].head) && c->due_ms <= now) {
    nd_ws_conn_send_ping(c); /* moves c to PONG (or closes it) */
    if (hub->tl[ND_WS_TL_PING].head == c) nd_ws_timer_set(hub, c, ND_WS_TL_NONE);
  }
  if (lists_empty(hub)) {
    event_del(hub->tick_ev);
    hub->tick_armed = 0;
  }
}

int nd_ws_timers_init(nd_ws_hub *hub) {
  const nd_config *cfg = &hub->host->cfg;
  int64_t grace = cfg->ws_pong_timeout_ms;
  if (grace < 100) grace = 100;
  if (grace > 5000) grace = 5000;
  hub->close_grace_ms = grace;
  hub->tl[ND_WS_TL_PING].delay_ms = cfg->ws_ping_interval_ms;
  hub->tl[ND_WS_TL_PONG].delay_ms = cfg->ws_pong_timeout_ms > 0 ? cfg->ws_pong_timeout_ms : 0;
  hub->tl[ND_WS_TL_GRACE].delay_ms = grace;
  /* Tick at 1/8 of the shortest delay, between 5 ms and 1 s. */
  int64_t shortest = grace;
  for (int i = ND_WS_TL_PING; i <= ND_WS_TL_PONG; i++)
    if (hub->tl[i].delay_ms > 0 && hub->tl[i].delay_ms < shortest) shortest = hub->tl[i].delay_ms;
  hub->tick_ms = shortest / 8;
  if (hub->tick_ms < 5) hub->tick_ms = 5;
  if (hub->tick_ms > 1000) hub->tick_ms = 1000;
  hub->tick_ev = event_new(hub->host->base, -1, EV_PERSIST, on_tick, hub);
  return hub->tick_ev ? 0 : -1;
}

void nd_ws_timers_free(nd_ws_hub *hub) {
  if (hub->tick_ev) event_free(hub->tick_ev);
  hub->tick_ev = NULL;
  hub->tick_armed = 0;
}
