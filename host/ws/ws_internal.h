/* Internal structures of the websocket layer, shared by its files.
 *
 * Lifetime of a connection:
 *   OPEN       registered under its key, heartbeat running
 *   CLOSE_SENT we sent a close frame and wait for the peer's (grace timer)
 *   LINGER     close handshake over or connection failed: flush what is
 *              queued, shut down our write side, discard input until EOF
 *              (grace timer)
 *   DEAD       waiting to be freed on the next loop turn
 * A connection leaves the key registry the moment it stops being OPEN
 * (publish no longer counts it); the plugin's on_close runs on the next
 * loop turn, never inside another API call, so API functions never free
 * or unregister anything behind a caller's back except the connections
 * they were asked to close. */
#ifndef ND_WS_INTERNAL_H
#define ND_WS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "ws/ws.h"
#include "ws/ws_frame.h"

struct event;
struct nd_ipent;

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
  struct bufferevent *bev;
  notifd_ws_channel *ch;
  nd_ws_keyent *kent;        /* NULL once unregistered */
  notifd_ws_conn *kprev, *knext;   /* connections of the same key */
  notifd_ws_conn *prev, *next;     /* hub's live connections */
  notifd_ws_conn *tprev, *tnext;   /* timer list */
  notifd_ws_conn *pnext;           /* hub's pending list (on_close / free) */
  int64_t due_ms;
  int64_t open_ms;           /* when the 101 went out (access log) */
  void *data;                /* plugin's pointer */
  char *params;              /* values of ch->param_names, NUL-separated */
  struct nd_ipent *peer;     /* hold on the address's connection count */
  uint32_t q_frames;         /* data frames queued and not yet written */
  size_t q_big;              /* bytes of the queued frame above max_queue_bytes (0: none) */
  uint32_t dirty_idx;        /* 1 + index in hub->dirty; 0 = not listed */
  uint16_t close_code;       /* reported to on_close */
  uint8_t state;
  uint8_t tlist;             /* ND_WS_TL_* the connection is on */
  uint8_t close_pending;     /* on_close still to run */
  uint8_t in_pending;        /* on the hub's pending list */
  uint8_t opened;            /* on_open ran: on_close is owed */
  uint8_t wr_shut;           /* LINGER: write side shut down */
  uint8_t subj;              /* 1 + index of the parameter the token's
                                subject matched; 0 = anonymous */
  uint8_t proto;             /* 1 + index of the negotiated subprotocol */
  uint8_t paused;            /* open, but out of its key (ws_conn_pause) */
  uint8_t direct;            /* plain socket: we write, not the bufferevent */
  uint8_t wr_armed;          /* direct, and the socket was full: the
                                bufferevent's write event drains the rest */
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

struct nd_ws_hub {
  notifd_host *host;
  notifd_ws_channel *channels;
  notifd_ws_conn *conns;     /* every live connection, any state but DEAD */
  size_t nconns;
  notifd_ws_conn *pending, *pending_tail;
  struct event *pending_ev;
  struct event *tick_ev;
  int tick_armed;
  int64_t tick_ms;
  int64_t close_grace_ms;
  nd_ws_tlist tl[ND_WS_TL_COUNT];
  /* Connections that got bytes since the last flush (entries may be NULL:
   * aborted meanwhile); flush_ev writes them. */
  notifd_ws_conn **dirty;
  size_t ndirty, dirty_cap;
  struct event *flush_ev;
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

/* ws_timer.c */
int nd_ws_timers_init(nd_ws_hub *hub);
void nd_ws_timers_free(nd_ws_hub *hub);
/* Moves c to list `which` with deadline now + that list's delay
 * (ND_WS_TL_NONE, or a list with no delay, only unlinks). */
void nd_ws_timer_set(nd_ws_hub *hub, notifd_ws_conn *c, int which);

/* ws_conn.c */
notifd_ws_conn *nd_ws_conn_new(notifd_ws_channel *ch, struct bufferevent *bev,
                               const char *const *values);
/* Registers under the key, installs the bufferevent callbacks and starts
 * the heartbeat.  0, or -1 (nothing changed; caller frees c). */
int nd_ws_conn_start(notifd_ws_conn *c);
/* Frees a connection that never started (bufferevent untouched). */
void nd_ws_conn_discard(notifd_ws_conn *c);
/* Server-initiated close handshake; no-op unless OPEN. */
void nd_ws_conn_close(notifd_ws_conn *c, int code, const char *reason);
/* Drops the TCP connection now (no close frame); on_close gets `code`. */
void nd_ws_conn_abort(notifd_ws_conn *c, int code, const char *why);
void nd_ws_conn_send_ping(notifd_ws_conn *c);
/* Something was added to c's output: have it written (at once, at the end
 * of the loop turn, or by the bufferevent, per hub->write_mode). */
void nd_ws_conn_kick(notifd_ws_conn *c);
/* Writes c's output now (direct connections); hub's end-of-turn flush. */
void nd_ws_conn_flush(notifd_ws_conn *c);
/* Final teardown (hub's pending list and hub free). */
void nd_ws_conn_destroy(notifd_ws_conn *c);
/* Queues a pre-encoded data frame (a chunk from nd_ws_chunk_new) within
 * the connection's outbound limits.  0 queued; -1 over the limit (the
 * connection is being closed as a slow consumer) or not open;
 * NOTIFD_ETOOBIG for a frame larger than websocket.max_queue_bytes while
 * another such frame is queued (one at a time, outside the byte limit;
 * the connection stays open, the caller may try again). */
int nd_ws_conn_queue(notifd_ws_conn *c, uint8_t *frame, size_t len);
const char *nd_ws_conn_peer(notifd_ws_conn *c, char *buf, size_t len);

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
