/* Per-plugin timers on the loop.  A timer stopped inside its own callback is
 * freed when the callback returns. */
#include "core/host.h"
#include "core/loop_services.h"

#include <stdlib.h>

struct notifd_timer {
  struct event *ev;
  notifd_timer_cb cb;
  void *ud;
  int64_t repeat_ms;
  int in_cb, stopped;
  nd_timer_list *list;
  notifd_timer *prev, *next;
};

struct nd_timer_list {
  struct event_base *base;
  notifd_timer *head;
};

static struct timeval tv_ms(int64_t ms) {
  if (ms < 0) ms = 0;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  return tv;
}

static void unlink_free(notifd_timer *t) {
  nd_timer_list *l = t->list;
  if (t->prev) t->prev->next = t->next; else l->head = t->next;
  if (t->next) t->next->prev = t->prev;
  event_free(t->ev);
  free(t);
}

static void on_fire(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  notifd_timer *t = arg;
  t->in_cb = 1;
  t->cb(t, t->ud);
  t->in_cb = 0;
  if (t->stopped) {
    unlink_free(t);
    return;
  }
  if (t->repeat_ms > 0) {
    struct timeval tv = tv_ms(t->repeat_ms);
    event_add(t->ev, &tv);
  }
}

nd_timer_list *nd_timer_list_new(struct event_base *base) {
  nd_timer_list *l = calloc(1, sizeof *l);
  if (l) l->base = base;
  return l;
}

int nd_timer_start(nd_timer_list *l, int64_t after_ms, int64_t repeat_ms, notifd_timer_cb cb,
                   void *ud, notifd_timer **out) {
  if (!l || !cb || after_ms < 0 || repeat_ms < 0) return NOTIFD_EINVAL;
  notifd_timer *t = calloc(1, sizeof *t);
  if (!t) return NOTIFD_ENOMEM;
  t->ev = evtimer_new(l->base, on_fire, t);
  if (!t->ev) {
    free(t);
    return NOTIFD_ENOMEM;
  }
  struct timeval tv = tv_ms(after_ms);
  if (evtimer_add(t->ev, &tv) < 0) {
    event_free(t->ev);
    free(t);
    return NOTIFD_EBACKEND;
  }
  t->cb = cb;
  t->ud = ud;
  t->repeat_ms = repeat_ms;
  t->list = l;
  t->next = l->head;
  if (l->head) l->head->prev = t;
  l->head = t;
  if (out) *out = t;
  return 0;
}

void nd_timer_stop(notifd_timer *t) {
  if (!t || t->stopped) return;
  t->stopped = 1;
  event_del(t->ev);
  if (!t->in_cb) unlink_free(t);
}

void nd_timer_list_free(nd_timer_list *l) {
  if (!l) return;
  while (l->head) {
    notifd_timer *t = l->head;
    event_del(t->ev);
    unlink_free(t);
  }
  free(l);
}
