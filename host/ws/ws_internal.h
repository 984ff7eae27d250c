/* Internal structures of the websocket layer, shared by its files.
 *
 * Threads (websocket.io_threads, ws_loop.c).  The hub, its channels, the
 * key registry and everything a plugin sees belong to the host's loop
 * thread ("main").  A connection's socket belongs to one I/O loop: loop 0
 * is the main loop itself (io_threads 0, and every TLS connection), loops
 * 1..N each run an event_base on their own thread.  The fields of a
 * connection are split the same way (marked below); the two sides talk
 * through ws_loop.c's bridge, which calls straight through on loop 0 and
 * goes through a queue pair otherwise, so plugins still see one thread.
 *
 * Lifetime of a connection's socket (I/O side, `state`):
 *   OPEN       heartbeat running
 *   CLOSE_SENT we sent a close frame and wait for the peer's (grace timer)
 *   LINGER     close handshake over or connection failed: flush what is
 *              queued, shut down our write side, discard input until EOF
 *              (grace timer)
 *   DEAD       socket gone; the main side is told (nd_ws_main_gone)
 * On the main side a connection is open (`m_open`) until it leaves the key
 * registry (publish no longer counts it): at a close asked by the plugin or
 * forced by a limit, or when the I/O side reports the peer's close or a
 * failure.  The plugin's on_close runs on a later loop turn, never inside
 * another API call; the struct is freed after both on_close ran and the
 * I/O side is done (threaded: the main side's last message to the loop is
 * a FREE, so nothing it queued before can outlive the struct). */
#ifndef ND_WS_INTERNAL_H
#define ND_WS_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "ws/ws.h"
#include "ws/ws_frame.h"

struct event;
struct event_base;
struct evbuffer;
struct nd_ipent;
typedef struct nd_ws_loop nd_ws_loop;

/* How output reaches a plain socket (NOTIFD_WS_WRITE, a benchmark knob):
 * NEXT (default) writes each connection's queued frames with one sendmsg
 * after the next poll's callbacks (a zero-delay timer), so publishes whose
 * requests were already waiting share the write; TURN writes at the end
 * of the turn that queued them; NOW writes at once, each time something is
 * queued; BEV leaves writing to the bufferevent (a write event added and
 * removed for every burst: the layer before issue 14).  TLS connections
 * always use their bufferevent.  Measured in bench/README.md (issue 14). */
enum { ND_WS_WRITE_NEXT = 0, ND_WS_WRITE_TURN, ND_WS_WRITE_NOW, ND_WS_WRITE_BEV };

enum { ND_WS_OPEN = 0, ND_WS_CLOSE_SENT, ND_WS_LINGER, ND_WS_DEAD };

/* Timer lists: each holds connections in deadline order because every
 * entry of a list is appended with the same delay. */
enum { ND_WS_TL_NONE = 0, ND_WS_TL_PING, ND_WS_TL_PONG, ND_WS_TL_GRACE, ND_WS_TL_COUNT };

typedef struct nd_ws_keyent nd_ws_keyent;
struct nd_ws_keyent {
  nd_ws_keyent *next;        /* hash bucket chain */
  notifd_ws_conn *head, *tail;
  uint64_t hash;
  uint32_t count;
  char key[];
};

typedef struct nd_ws_keymap {
  nd_ws_keyent **buckets;
  size_t nbuckets;           /* power of two, or 0 before the first key */
  size_t nkeys;
  uint64_t seed;
} nd_ws_keymap;

struct notifd_ws_conn {
  /* ---- main thread ---- */
  notifd_ws_channel *ch;
  nd_ws_loop *loop;          /* the I/O loop of its socket (never changes) */
  nd_ws_keyent *kent;        /* NULL once unregistered */
  notifd_ws_conn *kprev, *knext;   /* connections of the same key */
  notifd_ws_conn *prev, *next;     /* hub's live connections */
  notifd_ws_conn *pnext;           /* hub's pending list (on_close / free) */
  int64_t open_ms;           /* when the 101 went out (access log) */
  void *data;                /* plugin's pointer */
  char *params;              /* values of ch->param_names, NUL-separated
                                (read-only once started: both sides read) */
  struct nd_ipent *peer;     /* hold on the address's connection count */
  uint16_t close_code;       /* reported to on_close */
  uint8_t m_open;            /* open for the plugin: registered or paused */
  uint8_t gone;              /* the I/O side is done with the socket */
  uint8_t close_pending;     /* on_close still to run */
  uint8_t in_pending;        /* on the hub's pending list */
  uint8_t opened;            /* on_open ran: on_close is owed */
  uint8_t subj;              /* 1 + index of the parameter the token's
                                subject matched; 0 = anonymous */
  uint8_t proto;             /* 1 + index of the negotiated subprotocol */
  uint8_t paused;            /* open, but out of its key (ws_conn_pause) */
  /* ---- both (atomics): data frames in the socket's output, not yet
   * written (counted by the I/O side, read by main's limits) ---- */
  uint32_t q_frames;
  size_t q_bytes;
  size_t q_big;              /* bytes of the queued frame above max_queue_bytes (0: none) */
  /* ---- the I/O loop's thread ---- */
  struct bufferevent *bev;
  notifd_ws_conn *tprev, *tnext;   /* timer list */
  notifd_ws_conn *thnext;          /* loop's throttled list */
  int64_t due_ms;
  uint32_t dirty_idx;        /* 1 + index in loop->dirty; 0 = not listed */
  uint8_t state;
  uint8_t tlist;             /* ND_WS_TL_* the connection is on */
  uint8_t wr_shut;           /* LINGER: write side shut down */
  uint8_t direct;            /* plain socket: we write, not the bufferevent */
  uint8_t wr_armed;          /* direct, and the socket was full: the
                                bufferevent's write event drains the rest */
  uint8_t throttled;         /* reading stopped: main is behind (ws_loop.c) */
  uint8_t ack_wait;          /* close frame waits for main (close_after_main) */
  uint16_t ack_code;         /* ... with this code (0 = empty) */
  const char *ack_why;       /* ... and reason (static) */
  nd_ws_parser parser;
};

typedef struct nd_ws_tlist {
  notifd_ws_conn *head, *tail;
  int64_t delay_ms;          /* <= 0: list unused */
} nd_ws_tlist;

struct notifd_ws_channel {
  nd_ws_hub *hub;
  notifd_plugin *owner;
  notifd_ws_channel *next;
  char *path;
  /* Parameters stored per connection: [0] is the key parameter, then the
   * required ones, then subject parameters not already listed. */
  char **param_names;
  char **missing_msgs;       /* "<name> query parameter required" */
  size_t nparams;
  size_t nrequired;          /* params [0, nrequired) must be non-empty */
  size_t *subject_idx;       /* indices into param_names */
  size_t nsubjects;
  uint32_t auth;
  char **subprotocols;       /* NULL-terminated, or NULL */
  notifd_ws_upgrade_cb on_upgrade;
  notifd_ws_open_cb on_open;
  notifd_ws_message_cb on_message;
  notifd_ws_close_cb on_close;
  void *ud;
  nd_ws_keymap keys;
  uint32_t nopen;            /* registered connections */
};

/* A message between the main thread and a threaded I/O loop. */
typedef struct nd_ws_msg {
  notifd_ws_conn *c;
  void *data;                /* frame chunk, payload copy or handover */
  size_t len;
  int32_t code;
  uint8_t type;              /* ND_WS_MSG_* */
  uint8_t flag;
} nd_ws_msg;

typedef struct nd_ws_msgvec {
  nd_ws_msg *v;
  size_t n, cap;
} nd_ws_msgvec;

/* One direction between two threads: the producer stages messages during
 * its loop turn and hands the batch over at the end of the turn (one lock,
 * and one eventfd write when the consumer had nothing waiting). */
typedef struct nd_ws_pipe {
  pthread_mutex_t mu;
  nd_ws_msgvec shared;       /* under mu */
  nd_ws_msgvec stage;        /* producer's thread */
  nd_ws_msgvec work;         /* consumer's thread */
  int efd;                   /* eventfd the consumer's loop watches */
  struct event *wake_ev;     /* consumer: efd readable */
  struct event *push_ev;     /* producer: end of turn, hand the stage over */
  int inited;                /* mu initialised */
} nd_ws_pipe;

struct nd_ws_loop {
  nd_ws_hub *hub;
  struct event_base *base;
  int threaded;              /* 0: the main loop itself (loop 0) */
  unsigned index;
  /* Heartbeat and close-grace lists (ws_timer.c). */
  nd_ws_tlist tl[ND_WS_TL_COUNT];
  struct event *tick_ev;
  int tick_armed;
  int64_t tick_ms;
  /* Connections that got bytes since the last flush (entries may be NULL:
   * aborted meanwhile); flush_ev writes them. */
  notifd_ws_conn **dirty;
  size_t ndirty, dirty_cap;
  struct event *flush_ev;
  /* Threaded loops only. */
  pthread_t thread;
  int started;               /* thread running */
  int stopped;               /* thread joined: main may touch everything */
  int piped;                 /* both pipes set up */
  nd_ws_pipe to_io, to_main;
  size_t inbound;            /* atomic: message bytes read, not yet handled by main */
  notifd_ws_conn *throttled; /* I/O thread: connections not read meanwhile */
  size_t nassigned;          /* main: connections placed here and not yet freed */
};

struct nd_ws_hub {
  notifd_host *host;
  notifd_ws_channel *channels;
  notifd_ws_conn *conns;     /* every live connection, any state but DEAD */
  size_t nconns;
  notifd_ws_conn *pending, *pending_tail;
  struct event *pending_ev;
  int64_t close_grace_ms;
  nd_ws_loop **loops;        /* [0] the main loop, [1..nloops) threads */
  unsigned nloops;
  unsigned next_loop;        /* round robin over the threaded ones */
  int write_mode;            /* ND_WS_WRITE_* */
  int shutting_down;
  char msg[256];             /* refusal text handed to the HTTP layer */

  nd_metric *m_conns, *m_frames, *m_bytes, *m_publishes, *m_deliveries, *m_failures,
      *m_slow, *m_rejects;
};

/* ws_keymap.c */
void nd_ws_keymap_init(nd_ws_keymap *m, uint64_t seed);
void nd_ws_keymap_free(nd_ws_keymap *m);   /* entries must be empty */
nd_ws_keyent *nd_ws_keymap_find(const nd_ws_keymap *m, const char *key);
nd_ws_keyent *nd_ws_keymap_get(nd_ws_keymap *m, const char *key); /* adds; NULL on OOM */
void nd_ws_keymap_remove(nd_ws_keymap *m, nd_ws_keyent *e);      /* frees e */

/* ws_timer.c: per loop, on the loop's thread */
int nd_ws_timers_init(nd_ws_loop *l);
void nd_ws_timers_free(nd_ws_loop *l);
/* Moves c to list `which` of its loop with deadline now + that list's
 * delay (ND_WS_TL_NONE, or a list with no delay, only unlinks). */
void nd_ws_timer_set(notifd_ws_conn *c, int which);

/* ws_conn.c, main thread */
notifd_ws_conn *nd_ws_conn_new(notifd_ws_channel *ch, const char *const *values);
/* Registers under the key and in the hub's list.  0, or -1 (nothing
 * changed; caller discards c). */
int nd_ws_conn_register(notifd_ws_conn *c);
/* Frees a connection that never registered. */
void nd_ws_conn_discard(notifd_ws_conn *c);
/* Server-initiated close handshake; no-op unless open. */
void nd_ws_conn_close(notifd_ws_conn *c, int code, const char *reason);
/* Leaves the key registry; on_close (with `code`) is owed.  Idempotent. */
void nd_ws_conn_detach(notifd_ws_conn *c, int code, int slow);
/* The I/O side is done with the socket: unlink, free after on_close. */
void nd_ws_conn_gone(notifd_ws_conn *c);
/* A message from the client, for the plugin (dropped once closed). */
void nd_ws_conn_deliver(notifd_ws_conn *c, const void *data, size_t len, int is_text);
/* Final teardown (hub's pending list and hub free). */
void nd_ws_conn_destroy(notifd_ws_conn *c);
/* Queues a pre-encoded data frame (a chunk from nd_ws_chunk_new) within
 * the connection's outbound limits.  0 queued; -1 over the limit (the
 * connection is being closed as a slow consumer) or not open;
 * NOTIFD_ETOOBIG for a frame larger than websocket.max_queue_bytes while
 * another such frame is queued (one at a time, outside the byte limit;
 * the connection stays open, the caller may try again). */
int nd_ws_conn_queue(notifd_ws_conn *c, uint8_t *frame, size_t len);

/* ws_conn.c, the connection's I/O loop */
/* Takes over `bev`: callbacks, reading, the heartbeat. */
void nd_ws_io_begin(notifd_ws_conn *c, struct bufferevent *bev);
/* Main has handled everything read before the peer's close (or a protocol
 * error): the close frame goes out now. */
void nd_ws_io_close_ack(notifd_ws_conn *c);
/* Sends a close frame and waits for the peer's; no-op unless OPEN. */
void nd_ws_io_close(notifd_ws_conn *c, const uint8_t *payload, size_t len);
/* Appends a data frame main queued (and counted).  0, or -1 (dropped:
 * not open, or no memory; the count is undone). */
int nd_ws_io_add_frame(notifd_ws_conn *c, uint8_t *frame, size_t len);
/* A queued data frame is written or dropped: the counts main keeps go
 * down and the chunk reference goes (any thread; the evbuffer cleanup). */
void nd_ws_frame_done(const void *data, size_t len, void *extra);
/* A frame main queued never reached the socket's output: its reference
 * (and the large-frame mark) go, nothing was counted. */
void nd_ws_frame_unsent(uint8_t *frame, size_t len, notifd_ws_conn *c);
/* Drops the TCP connection now (no close frame); on_close gets `code`. */
void nd_ws_conn_abort(notifd_ws_conn *c, int code, const char *why);
void nd_ws_conn_send_ping(notifd_ws_conn *c);
/* Something was added to c's output: have it written (at once, at the end
 * of the loop turn, or by the bufferevent, per hub->write_mode). */
void nd_ws_conn_kick(notifd_ws_conn *c);
/* Writes c's output now (direct connections); the loop's flush. */
void nd_ws_conn_flush(notifd_ws_conn *c);
/* Releases the socket side: output (and the chunks it holds), bufferevent,
 * parser.  `whole` also frees the struct (threaded loops' FREE). */
void nd_ws_io_free(notifd_ws_conn *c, int whole);
/* Reading stopped / restarted (ws_loop.c's back pressure). */
void nd_ws_io_pause_reading(notifd_ws_conn *c);
void nd_ws_io_resume_reading(notifd_ws_conn *c);
const char *nd_ws_conn_peer(notifd_ws_conn *c, char *buf, size_t len);

/* ws_loop.c: the loops and the bridge between the two sides */
int nd_ws_loops_init(nd_ws_hub *hub);    /* loop 0, then io_threads threads */
/* Stops and joins the threads; afterwards main owns every loop's state and
 * the bridge calls straight through. */
void nd_ws_loops_stop(nd_ws_hub *hub);
void nd_ws_loops_free(nd_ws_hub *hub);   /* after every connection is freed */
/* The loop for a new connection (TLS ones stay on loop 0). */
nd_ws_loop *nd_ws_loop_pick(nd_ws_hub *hub, int tls);
/* 1 when c's socket is on another thread than main. */
static inline int nd_ws_remote(const notifd_ws_conn *c) {
  return c->loop->threaded && !c->loop->stopped;
}
/* main -> I/O */
int nd_ws_to_io_frame(notifd_ws_conn *c, uint8_t *frame, size_t len);
void nd_ws_to_io_close(notifd_ws_conn *c, int code, const char *reason);
/* Hands a threaded loop the socket and what its HTTP connection held:
 * input after the request, output (answers still queued and the 101). */
int nd_ws_to_io_start(notifd_ws_conn *c, int fd, struct evbuffer *in, struct evbuffer *out);
void nd_ws_to_io_release(notifd_ws_conn *c);
/* I/O -> main */
void nd_ws_to_main_message(notifd_ws_conn *c, const void *data, size_t len, int is_text);
/* flags: */
#define ND_WS_DETACH_SLOW 1 /* a slow consumer (metric) */
#define ND_WS_DETACH_ACK 2  /* answer with nd_ws_io_close_ack */
void nd_ws_to_main_detach(notifd_ws_conn *c, int code, int flags);
void nd_ws_to_main_gone(notifd_ws_conn *c);

/* Publishes to the open, unpaused connections of `key` whose proto
 * matches `want` (ND_WS_PROTO_ANY, 0 = none, or 1 + index). */
#define ND_WS_PROTO_ANY (-1)
int nd_ws_publish_where(notifd_ws_channel *ch, const char *key, int want, const void *data,
                        size_t len, uint32_t *delivered, uint32_t *failed);

/* ws_publish.c: refcounted frames shared by every receiver. */
uint8_t *nd_ws_chunk_new(int opcode, const void *data, size_t len, size_t *frame_len);
void nd_ws_chunk_ref(uint8_t *frame);
void nd_ws_chunk_unref(uint8_t *frame);

/* ws_hub.c */
void nd_ws_hub_defer(nd_ws_hub *hub, notifd_ws_conn *c);  /* to pending list */
void nd_ws_hub_unlink(nd_ws_hub *hub, notifd_ws_conn *c); /* from live list */
void nd_ws_metric_conns(notifd_ws_channel *ch);
void nd_ws_metric_add(nd_metric *m, notifd_ws_channel *ch, double v);
void nd_ws_metric_reject(notifd_ws_channel *ch, const char *reason);

#endif
