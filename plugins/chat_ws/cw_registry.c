/* Who is connected: one cw_conn per chat socket (its owner and peer), one
 * cw_user per user this process knows of (own sockets, sockets naming
 * them, other instances' presence reports), one cw_stream per stream with
 * v2 sockets.  v1-only streams get no entry, so their forwards stay one
 * plain ws_publish. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_ws.h"

int64_t cw_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cw_registry_init(chat_ws *s) {
  return cw_map_init(&s->users) < 0 || cw_map_init(&s->streams) < 0 ? NOTIFD_ENOMEM : 0;
}

static void user_free(cw_user *u) {
  free(u->streams);
  free(u->remote);
  free(u);
}

/* At destroy: the host has already dropped the timers and sockets. */
void cw_registry_free(chat_ws *s) {
  cw_map_iter it;
  cw_map_iter_begin(&it, &s->users);
  for (cw_node *n; (n = cw_map_iter_next(&it));) user_free((cw_user *)(void *)n);
  cw_map_iter_begin(&it, &s->streams);
  for (cw_node *n; (n = cw_map_iter_next(&it));) free(n);
  cw_map_free(&s->users);
  cw_map_free(&s->streams);
}

cw_user *cw_user_find(chat_ws *s, const char *id) {
  return (cw_user *)(void *)cw_map_find(&s->users, id);
}

cw_user *cw_user_get(chat_ws *s, const char *id) {
  cw_user *u = cw_user_find(s, id);
  if (u) return u;
  size_t n = strlen(id);
  if (!(u = calloc(1, sizeof *u + n + 1))) return NULL;
  memcpy(u->id, id, n + 1);
  u->node.key = u->id;
  cw_map_insert(&s->users, &u->node);
  return u;
}

void cw_user_release(chat_ws *s, cw_user *u) {
  if (u->refs || u->local || u->grace || u->nremote) return;
  cw_map_remove(&s->users, &u->node);
  user_free(u);
}

cw_stream *cw_stream_find(chat_ws *s, const char *id) {
  return (cw_stream *)(void *)cw_map_find(&s->streams, id);
}

/* Counts one more v2 socket of `st` naming `u`; -1 on OOM. */
static int user_stream_add(cw_user *u, cw_stream *st) {
  for (uint32_t i = 0; i < u->nstreams; i++)
    if (u->streams[i].st == st) {
      u->streams[i].n++;
      return 0;
    }
  if (u->nstreams == u->capstreams) {
    uint32_t cap = u->capstreams ? u->capstreams * 2 : 2;
    struct cw_stream_ref *r = realloc(u->streams, cap * sizeof *r);
    if (!r) return -1;
    u->streams = r;
    u->capstreams = cap;
  }
  u->streams[u->nstreams++] = (struct cw_stream_ref){st, 1};
  return 0;
}

static void user_stream_del(cw_user *u, cw_stream *st) {
  for (uint32_t i = 0; i < u->nstreams; i++) {
    if (u->streams[i].st != st) continue;
    if (--u->streams[i].n == 0) u->streams[i] = u->streams[--u->nstreams];
    return;
  }
}

/* Links a v2 socket to its stream and to the streams its users are named
 * in; -1 on OOM (nothing linked). */
static int link_v2(chat_ws *s, cw_conn *cc, const char *sid) {
  cw_stream *st = cw_stream_find(s, sid);
  int created = 0;
  if (!st) {
    size_t n = strlen(sid);
    if (!(st = calloc(1, sizeof *st + n + 1))) return -1;
    memcpy(st->id, sid, n + 1);
    st->node.key = st->id;
    cw_map_insert(&s->streams, &st->node);
    created = 1;
  }
  if (user_stream_add(cc->owner, st) < 0) goto oom;
  if (cc->peer && user_stream_add(cc->peer, st) < 0) {
    user_stream_del(cc->owner, st);
    goto oom;
  }
  cc->stream = st;
  cc->sprev = NULL;
  cc->snext = st->head;
  if (st->head) st->head->sprev = cc;
  st->head = cc;
  st->nv2++;
  s->nv2++;
  return 0;
oom:
  if (created) {
    cw_map_remove(&s->streams, &st->node);
    free(st);
  }
  return -1;
}

static void unlink_v2(chat_ws *s, cw_conn *cc) {
  cw_stream *st = cc->stream;
  if (!st) return;
  if (cc->sprev) cc->sprev->snext = cc->snext;
  else st->head = cc->snext;
  if (cc->snext) cc->snext->sprev = cc->sprev;
  user_stream_del(cc->owner, st);
  if (cc->peer) user_stream_del(cc->peer, st);
  cc->stream = NULL;
  s->nv2--;
  if (--st->nv2 == 0) {
    cw_map_remove(&s->streams, &st->node);
    free(st);
  }
}

static void conn_free(chat_ws *s, cw_conn *cc) {
  cw_user *owner = cc->owner, *peer = cc->peer;
  unlink_v2(s, cc);
  if (peer) {
    peer->refs--;
    cw_user_release(s, peer);
  }
  owner->refs--;
  cw_user_release(s, owner);
  free(cc);
}

/* The socket's owner: the token's subject, else (policy none) sender_id. */
static const char *owner_of(chat_ws *s, notifd_ws_conn *c) {
  const char *sub = s->api->ws_conn_subject(c);
  return sub ? sub : s->api->ws_conn_param(c, "sender_id");
}

void cw_on_open(notifd_ws_conn *c, void *ud) {
  chat_ws *s = ud;
  const notifd_api *api = s->api;
  const char *me = owner_of(s, c);
  const char *a = api->ws_conn_param(c, "sender_id");
  const char *b = api->ws_conn_param(c, "receiver_id");
  const char *other = strcmp(me, a) == 0 ? b : a;
  const char *proto = api->ws_conn_subprotocol(c);
  cw_conn *cc = calloc(1, sizeof *cc);
  if (!cc) goto oom;
  cc->c = c;
  cc->v2 = proto && strcmp(proto, CHAT_WS_V2) == 0;
  if (!(cc->owner = cw_user_get(s, me))) goto oom;
  cc->owner->refs++;
  /* The peer matters only to v2 sockets (initial presence, the streams
   * naming the peer); v1 sockets keep one user reference, less memory. */
  if (cc->v2 && strcmp(other, me) != 0) {
    if (!(cc->peer = cw_user_get(s, other))) goto oom;
    cc->peer->refs++;
  }
  if (cc->v2 && link_v2(s, cc, api->ws_conn_key(c)) < 0) goto oom;
  api->ws_conn_set_data(c, cc);
  cw_presence_local_open(s, cc->owner);
  if (cc->v2) cw_presence_initial(s, cc);
  return;
oom:
  /* Without its entry the socket could never be accounted: refuse it. */
  if (cc && cc->owner) conn_free(s, cc);
  else free(cc);
  api->log(s->self, NOTIFD_LOG_ERROR, "out of memory accounting a chat socket; closing it");
  api->ws_close(c, 1011, "out of memory");
}

void cw_on_close(notifd_ws_conn *c, int32_t code, void *ud) {
  (void)code;
  chat_ws *s = ud;
  cw_conn *cc = s->api->ws_conn_data(c);
  if (!cc) return; /* refused at open */
  s->api->ws_conn_set_data(c, NULL);
  cw_user *owner = cc->owner;
  owner->refs++; /* keep it across conn_free for the presence change */
  conn_free(s, cc);
  cw_presence_local_close(s, owner);
  owner->refs--;
  cw_user_release(s, owner);
}
