/* Cross-thread post: a mutex-protected FIFO plus an eventfd the loop
 * watches.  The eventfd write is async-signal-safe, which also makes it the
 * path for stop requests from signal handlers. */
#include "core/host.h"
#include "core/loop_services.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct post_item {
  notifd_post_cb cb;
  void *ud;
  struct post_item *next;
} post_item;

struct nd_poster {
  pthread_mutex_t mu;
  post_item *head, *tail;
  int closed;
  int efd;
  struct event *ev;
  volatile sig_atomic_t stop_flag;
  void (*on_stop)(void *);
  void *stop_ud;
};

static void wake(nd_poster *p) {
  uint64_t one = 1;
  ssize_t r;
  do {
    r = write(p->efd, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
}

static void run_queue(nd_poster *p) {
  pthread_mutex_lock(&p->mu);
  post_item *it = p->head;
  p->head = p->tail = NULL;
  pthread_mutex_unlock(&p->mu);
  while (it) {
    post_item *next = it->next;
    it->cb(it->ud);
    free(it);
    it = next;
  }
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  nd_poster *p = arg;
  uint64_t n;
  ssize_t r = read(fd, &n, sizeof n);
  (void)r;
  (void)what;
  if (p->stop_flag) {
    p->stop_flag = 0;
    if (p->on_stop) p->on_stop(p->stop_ud);
  }
  run_queue(p);
}

nd_poster *nd_poster_new(struct event_base *base) {
  nd_poster *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->efd < 0) {
    free(p);
    return NULL;
  }
  pthread_mutex_init(&p->mu, NULL);
  p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_wake, p);
  if (!p->ev || event_add(p->ev, NULL) < 0) {
    nd_poster_free(p);
    return NULL;
  }
  return p;
}

int nd_poster_post(nd_poster *p, notifd_post_cb cb, void *ud) {
  if (!p || !cb) return NOTIFD_EINVAL;
  post_item *it = malloc(sizeof *it);
  if (!it) return NOTIFD_ENOMEM;
  it->cb = cb;
  it->ud = ud;
  it->next = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->closed) {
    pthread_mutex_unlock(&p->mu);
    free(it);
    return NOTIFD_ECLOSED;
  }
  int was_empty = p->head == NULL;
  if (p->tail) p->tail->next = it; else p->head = it;
  p->tail = it;
  pthread_mutex_unlock(&p->mu);
  if (was_empty) wake(p);
  return 0;
}

void nd_poster_signal_stop(nd_poster *p) {
  if (!p) return;
  p->stop_flag = 1;
  wake(p);
}

void nd_poster_set_stop_handler(nd_poster *p, void (*on_stop)(void *), void *ud) {
  p->on_stop = on_stop;
  p->stop_ud = ud;
}

void nd_poster_close(nd_poster *p) {
  if (!p) return;
  run_queue(p);
  pthread_mutex_lock(&p->mu);
  p->closed = 1;
  pthread_mutex_unlock(&p->mu);
  if (p->ev) event_del(p->ev);
}

void nd_poster_free(nd_poster *p) {
  if (!p) return;
  if (p->ev) event_free(p->ev);
  post_item *it = p->head;
  while (it) {
    post_item *next = it->next;
    free(it);
    it = next;
  }
  if (p->efd >= 0) close(p->efd);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
