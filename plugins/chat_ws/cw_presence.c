/* Presence on this process: a user is online while they have a chat
 * socket here (any stream), stay so for `presence_grace` after their last
 * one closed (a reload or a flaky network must not flash "offline"), or
 * another chat_ws instance reports them online (cw_presence_bus.c).  A
 * change is told to the v2 sockets of every stream whose sockets name the
 * user, except the user's own sockets. */
#include "chat_ws.h"

int cw_online(const cw_user *u) { return u->local_on || u->nremote > 0; }

void cw_presence_update(chat_ws *s, cw_user *u) {
  int on = cw_online(u);
  if (on == u->told) return;
  u->told = (uint8_t)on;
  if (on) s->online_users++;
  else s->online_users--;
  s->api->metric_set(s->online_gauge, NULL, s->online_users);
  const char *v[] = {on ? "true" : "false"};
  s->api->metric_add(s->presence_changes, v, 1);
  if (!u->nstreams) return;
  pc_buf ev;
  pc_buf_init(&ev);
  cw_event_presence(&ev, u->id, on);
  for (uint32_t i = 0; i < u->nstreams; i++)
    cw_send_stream(s, u->streams[i].st, u, "presence", &ev);
  pc_buf_free(&ev);
}

void cw_presence_initial(chat_ws *s, cw_conn *cc) {
  if (!cc->peer) return;
  pc_buf ev;
  pc_buf_init(&ev);
  cw_event_presence(&ev, cc->peer->id, cw_online(cc->peer));
  if (!ev.oom && s->api->ws_send(cc->c, ev.data, ev.len, 1) == 0)
    cw_count_event(s, "presence", 1);
  pc_buf_free(&ev);
}

static void go_offline(chat_ws *s, cw_user *u) {
  u->local_on = 0;
  cw_presence_bus_report(s, u, 0);
  cw_presence_update(s, u);
  cw_user_release(s, u);
}

static void on_grace(notifd_timer *t, void *ud) {
  cw_user *u = ud;
  chat_ws *s = u->s;
  s->api->timer_stop(t);
  u->grace = NULL;
  if (u->local == 0) go_offline(s, u);
}

void cw_presence_local_open(chat_ws *s, cw_user *u) {
  u->local++;
  if (u->grace) { /* back within the grace: nobody saw them leave */
    s->api->timer_stop(u->grace);
    u->grace = NULL;
  }
  if (u->local_on) return;
  u->local_on = 1;
  cw_presence_bus_report(s, u, 1);
  cw_presence_update(s, u);
}

void cw_presence_local_close(chat_ws *s, cw_user *u) {
  if (--u->local > 0) return;
  u->s = s;
  if (s->grace_ms <= 0 ||
      s->api->timer_start(s->self, s->grace_ms, 0, on_grace, u, &u->grace) < 0) {
    u->grace = NULL;
    go_offline(s, u);
  }
}
