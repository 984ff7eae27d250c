/* chat_ws internals shared by its source files. */
#ifndef CHAT_WS_H
#define CHAT_WS_H

#include <notifd/plugin.h>
#include <stdint.h>

#include "cw_map.h"

/* Close code sent to a stream's sockets by POST /chat/streams/{id}/close:
 * an application code (RFC 6455 4000-4999) telling clients that live
 * delivery gave up on a message and they must reload the history. */
#define CHAT_WS_CLOSE_RELOAD 4001
#define CHAT_WS_CLOSE_RELOAD_REASON "retries exhausted, reload history"

/* The opt-in subprotocol of typed events (README: "Protocol v2"). */
#define CHAT_WS_V2 "notifd.chat.v2"
/* Largest client frame a v2 socket may send (bytes); larger ones close
 * the socket with 1009. */
#define CHAT_WS_CLIENT_MAX 1024
/* An instance id: 16 hex characters. */
#define CHAT_WS_INSTANCE_LEN 16

typedef struct cw_user cw_user;
typedef struct cw_stream cw_stream;
typedef struct cw_conn cw_conn;

typedef struct chat_ws {
  notifd_plugin *self;
  const notifd_api *api;
  notifd_ws_channel *ch;
  int32_t verify_stream_id;
  notifd_metric *forwards; /* chat_ws_forwards_total{result} */
  notifd_metric *closed;   /* chat_ws_stream_closes_total */

  /* v2 events */
  int64_t typing_interval_ms; /* at most one typing relayed per socket per interval */
  notifd_metric *events;      /* chat_ws_v2_events_total{type}: sockets reached */
  notifd_metric *client;      /* chat_ws_client_frames_total{result} */
  uint32_t nv2;               /* open v2 sockets (0: forwards take the v1 fast path) */

  /* presence */
  int64_t grace_ms, refresh_ms, expiry_ms;
  const char *presence_topic; /* NULL: presence stays on this process */
  const char *topics[2];
  char group[64];
  char instance[CHAT_WS_INSTANCE_LEN + 1];
  cw_map users;   /* cw_user by id: sockets, streams naming them, remote reports */
  cw_map streams; /* cw_stream by id: the stream's v2 sockets */
  uint32_t mark;  /* generation for visiting each stream once */
  uint32_t online_users;
  notifd_metric *presence_changes; /* chat_ws_presence_changes_total{online} */
  notifd_metric *presence_records; /* chat_ws_presence_records_total{result} */
  notifd_metric *online_gauge;     /* chat_ws_presence_online_users */
  notifd_timer *tick;
} chat_ws;

/* ---- the registry (cw_registry.c) ------------------------------------ */

struct cw_remote {
  char inst[CHAT_WS_INSTANCE_LEN + 1];
  int64_t seen_ms; /* monotonic, when last reported online */
};

struct cw_stream_ref {
  cw_stream *st;
  uint32_t n; /* v2 sockets of `st` naming the user */
};

struct cw_user {
  cw_node node;
  uint32_t local;    /* open chat sockets of this user on this process */
  uint32_t refs;     /* cw_conn pointers to this entry (owner or peer) */
  uint8_t told;      /* online state last told to v2 sockets */
  uint8_t local_on;  /* this process's report on the bus: local > 0 or grace running */
  notifd_timer *grace;
  chat_ws *s;        /* for the grace timer's callback */
  struct cw_stream_ref *streams; /* streams whose v2 sockets name the user */
  uint32_t nstreams, capstreams;
  struct cw_remote *remote; /* other instances reporting the user online */
  uint32_t nremote, capremote;
  char id[];
};

struct cw_stream {
  cw_node node;
  cw_conn *head; /* v2 sockets */
  uint32_t nv2;
  uint32_t mark;
  char id[];
};

struct cw_conn {
  notifd_ws_conn *c;
  cw_user *owner;    /* the token's subject, else sender_id */
  cw_user *peer;     /* v2: the other participant, or NULL (sender_id == receiver_id) */
  cw_stream *stream; /* v2 only */
  cw_conn *snext, *sprev;
  int64_t last_typing_ms;
  uint8_t v2;
};

int cw_registry_init(chat_ws *s);
void cw_registry_free(chat_ws *s);
/* The user's entry, created when absent (NULL on OOM). */
cw_user *cw_user_get(chat_ws *s, const char *id);
cw_user *cw_user_find(chat_ws *s, const char *id);
/* Frees the entry when nothing refers to it any more. */
void cw_user_release(chat_ws *s, cw_user *u);
/* The stream's entry or NULL (only streams with v2 sockets have one). */
cw_stream *cw_stream_find(chat_ws *s, const char *id);
/* Channel callbacks: account each socket, link v2 ones to their stream. */
void cw_on_open(notifd_ws_conn *c, void *ud);
void cw_on_close(notifd_ws_conn *c, int32_t code, void *ud);

int64_t cw_now_ms(void);

/* ---- presence (cw_presence.c, cw_presence_bus.c) --------------------- */

/* 1 while the user counts as online here (own sockets, grace, or another
 * instance's report). */
int cw_online(const cw_user *u);
void cw_presence_local_open(chat_ws *s, cw_user *u);
void cw_presence_local_close(chat_ws *s, cw_user *u);
/* Tells the local v2 sockets naming `u` when its online state changed. */
void cw_presence_update(chat_ws *s, cw_user *u);
/* Sends the peer's current presence to a v2 socket that just opened. */
void cw_presence_initial(chat_ws *s, cw_conn *cc);

int cw_presence_bus_init(chat_ws *s);
int cw_presence_bus_start(chat_ws *s);
/* This instance's transition for `u` on the presence topic. */
void cw_presence_bus_report(chat_ws *s, cw_user *u, int online);

/* ---- v2 events (cw_events.c) ------------------------------------------ */

#include "pc_buf.h"
void cw_event_message(pc_buf *b, const char *frame, size_t len);
void cw_event_read(pc_buf *b, const char *user, size_t ulen, const char *msg, size_t mlen);
void cw_event_typing(pc_buf *b, const char *user);
void cw_event_presence(pc_buf *b, const char *user, int online);
/* ws_send of one encoded event to each v2 socket of `st` not owned by
 * `skip`; returns the sockets reached. */
uint32_t cw_send_stream(chat_ws *s, cw_stream *st, const cw_user *skip, const char *type,
                        const pc_buf *ev);
void cw_count_event(chat_ws *s, const char *type, uint32_t n);

/* ---- client frames (cw_client.c) -------------------------------------- */
void cw_on_message(notifd_ws_conn *c, const void *data, size_t len, int32_t is_text, void *ud);

/* ---- HTTP ------------------------------------------------------------- */
/* POST /chat/forward-to-websocket */
void chat_ws_on_forward(notifd_req *req, void *ud);
/* POST /chat/streams/{stream_id}/close */
void chat_ws_on_close_stream(notifd_req *req, void *ud);
/* POST /chat/forward-event (cw_forward_event.c) */
void chat_ws_on_forward_event(notifd_req *req, void *ud);

#endif
