/* Loop-side services the host offers plugins: cross-thread post, a worker
 * pool whose completions run on the loop, and per-plugin timers. */
#ifndef ND_LOOP_SERVICES_H
#define ND_LOOP_SERVICES_H

#include <stddef.h>
#include <event2/event.h>
#include <notifd/plugin.h>

/* ---- post: thread-safe hand-off to the loop (eventfd-woken queue) ------ */
nd_poster *nd_poster_new(struct event_base *base);
/* Thread-safe. NOTIFD_ECLOSED after nd_poster_close. */
int nd_poster_post(nd_poster *p, notifd_post_cb cb, void *ud);
/* Async-signal-safe: sets a flag and wakes the loop, which then calls
 * `on_stop(ud)` (set with nd_poster_set_stop_handler). */
void nd_poster_signal_stop(nd_poster *p);
void nd_poster_set_stop_handler(nd_poster *p, void (*on_stop)(void *), void *ud);
/* Runs what is queued, refuses new posts and removes the loop event. */
void nd_poster_close(nd_poster *p);
/* Frees; queued callbacks that never ran are dropped. */
void nd_poster_free(nd_poster *p);

/* ---- worker pool ------------------------------------------------------- */
nd_workers *nd_workers_new(nd_poster *poster, unsigned nthreads);
int nd_workers_submit(nd_workers *w, notifd_work_cb work, notifd_work_done_cb done,
                      void *ud);
/* Jobs submitted and whose `done` has not run yet. */
size_t nd_workers_pending(const nd_workers *w);
/* Finishes queued jobs, joins the threads. */
void nd_workers_free(nd_workers *w);

/* ---- per-plugin timers ------------------------------------------------- */
nd_timer_list *nd_timer_list_new(struct event_base *base);
int nd_timer_start(nd_timer_list *l, int64_t after_ms, int64_t repeat_ms,
                   notifd_timer_cb cb, void *ud, notifd_timer **out);
void nd_timer_stop(notifd_timer *t);
/* Stops and frees every timer of the list, then the list. */
void nd_timer_list_free(nd_timer_list *l);

#endif
