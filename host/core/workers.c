/* Fixed pool of threads for blocking calls (libmongoc, file I/O).  A job's
 * `done` runs on the loop through the poster. */
#include "core/host.h"
#include "core/loop_services.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct job {
  notifd_work_cb work;
  notifd_work_done_cb done;
  void *ud;
  nd_workers *pool;
  struct job *next;
} job;

struct nd_workers {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job *head, *tail;
  int quit;
  pthread_t *threads;
  unsigned nthreads;
  nd_poster *poster;
  atomic_size_t pending;
};

static void job_done_on_loop(void *arg) {
  job *j = arg;
  if (j->done) j->done(j->ud);
  atomic_fetch_sub(&j->pool->pending, 1);
  free(j);
}

static void *worker_main(void *arg) {
  nd_workers *w = arg;
  for (;;) {
    pthread_mutex_lock(&w->mu);
    while (!w->head && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
    job *j = w->head;
    if (!j) {
      pthread_mutex_unlock(&w->mu);
      return NULL;
    }
    w->head = j->next;
    if (!w->head) w->tail = NULL;
    pthread_mutex_unlock(&w->mu);
    j->work(j->ud);
    if (nd_poster_post(w->poster, job_done_on_loop, j) < 0) {
      /* The loop is gone (host stopping): the completion cannot run. */
      atomic_fetch_sub(&w->pending, 1);
      free(j);
    }
  }
}

nd_workers *nd_workers_new(nd_poster *poster, unsigned nthreads) {
  if (nthreads == 0) nthreads = 1;
  nd_workers *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  w->threads = calloc(nthreads, sizeof(pthread_t));
  if (!w->threads) {
    free(w);
    return NULL;
  }
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->poster = poster;
  for (unsigned i = 0; i < nthreads; i++) {
    if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) break;
    w->nthreads++;
  }
  if (w->nthreads == 0) {
    nd_workers_free(w);
    return NULL;
  }
  return w;
}

int nd_workers_submit(nd_workers *w, notifd_work_cb work, notifd_work_done_cb done, void *ud) {
  if (!w || !work) return NOTIFD_EINVAL;
  job *j = calloc(1, sizeof *j);
  if (!j) return NOTIFD_ENOMEM;
  j->work = work;
  j->done = done;
  j->ud = ud;
  j->pool = w;
  pthread_mutex_lock(&w->mu);
  if (w->quit) {
    pthread_mutex_unlock(&w->mu);
    free(j);
    return NOTIFD_ECLOSED;
  }
  if (w->tail) w->tail->next = j; else w->head = j;
  w->tail = j;
  atomic_fetch_add(&w->pending, 1);
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

size_t nd_workers_pending(const nd_workers *w) {
  return w ? atomic_load(&((nd_workers *)w)->pending) : 0;
}

void nd_workers_free(nd_workers *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->quit = 1;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  for (unsigned i = 0; i < w->nthreads; i++) pthread_join(w->threads[i], NULL);
  free(w->threads);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}
