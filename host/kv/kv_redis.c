/* Redis kv backend: hiredis 0.14 async on the host's libevent loop.
 *
 * claim = SET key 1 NX PX ttl, mark = SET key 1 PX ttl (ttl 0: no expiry),
 * exists = EXISTS key.  One connection; when it drops (or never comes up)
 * it is re-opened with a doubling backoff (100 ms .. 500 ms), and meanwhile
 * every operation is answered at once by the failure policy.  Under
 * fail-open, the claims and marks Redis did not take are kept (up to
 * OWED_MAX) and written, with what is left of their TTL, once it answers
 * again: a record delivered during the outage is still a duplicate if it
 * comes back later.  hiredis 0.14
 * has no timeouts, so each request carries its own timer
 * (backends.redis.command_timeout) and connecting has one too
 * (connect_timeout). */
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"
#include "log/log.h"
#include "util/buf.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 500 /* a restarted Redis is used again within 0.5 s */

/* A claim or mark the fail-open policy answered while Redis could not take
 * it: written when Redis is back, so a record delivered during the outage
 * is still recognised if it comes again later. */
typedef struct owed {
  struct owed *next;
  int op;
  int64_t expires_ms; /* monotonic; 0 = no expiry */
  size_t key_len;
  char key[];
} owed;

#define OWED_MAX 100000 /* about 10 MB of keys at most */

typedef struct rreq {
  struct rreq *prev, *next;
  struct rredis *r;
  int op;
  char *key;      /* claims and marks: for the owed list */
  size_t key_len;
  int64_t ttl_ms, at_ms;
  notifd_kv_cb cb;
  void *ud;
  struct event *timer;
  int in_redis;   /* hiredis holds it: freed by its callback */
  int answered;
  int waiting;    /* made while connecting: sent once connected */
  const char *fail; /* reason for an immediate failure */
} rreq;

typedef struct rredis {
  nd_kv *kv;
  char *host, *unix_path, *password, *username;
  int port;
  int64_t db, connect_timeout_ms, command_timeout_ms;
  redisAsyncContext *ac;
  int ready, freeing;
  int64_t backoff_ms;
  struct event *reconnect_ev, *connect_timer;
  rreq *reqs;
  owed *owed_head, *owed_tail;
  size_t nowed;
  uint64_t owed_dropped;
} rredis;

static struct timeval tv_ms(int64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  return tv;
}

static void req_unlink_free(rreq *q) {
  rredis *r = q->r;
  if (q->prev) q->prev->next = q->next;
  else r->reqs = q->next;
  if (q->next) q->next->prev = q->prev;
  event_free(q->timer);
  free(q->key);
  free(q);
}

/* Under fail-open, remembers a claim or mark Redis did not take. */
static void owe(rredis *r, rreq *q) {
  if (r->kv->fail_closed || !q->key || q->op == ND_KV_EXISTS) return;
  if (r->nowed >= OWED_MAX) {
    r->owed_dropped++;
    return;
  }
  owed *o = malloc(sizeof *o + q->key_len);
  if (!o) {
    r->owed_dropped++;
    return;
  }
  o->next = NULL;
  o->op = q->op;
  o->expires_ms = q->ttl_ms > 0 ? q->at_ms + q->ttl_ms : 0;
  o->key_len = q->key_len;
  memcpy(o->key, q->key, q->key_len);
  if (r->owed_tail) r->owed_tail->next = o;
  else r->owed_head = o;
  r->owed_tail = o;
  r->nowed++;
}

static void owed_clear(rredis *r) {
  while (r->owed_head) {
    owed *o = r->owed_head;
    r->owed_head = o->next;
    free(o);
  }
  r->owed_tail = NULL;
  r->nowed = 0;
}

/* Connected again: writes what was owed, in order (a claim then its
 * release stay in that order), with what is left of each TTL. */
static void pay_owed(rredis *r) {
  size_t sent = 0, expired = 0;
  int64_t now = nd_now_ms();
  for (owed *o = r->owed_head; o; o = o->next) {
    long long left = o->expires_ms ? (long long)(o->expires_ms - now) : 0;
    if (o->expires_ms && left <= 0) {
      expired++;
      continue;
    }
    int claim = o->op == ND_KV_CLAIM, rc;
    if (left > 0)
      rc = redisAsyncCommand(r->ac, NULL, NULL, claim ? "SET %b 1 NX PX %lld" : "SET %b 1 PX %lld",
                             o->key, o->key_len, left);
    else
      rc = redisAsyncCommand(r->ac, NULL, NULL, claim ? "SET %b 1 NX" : "SET %b 1", o->key,
                             o->key_len);
    if (rc == REDIS_OK) sent++;
  }
  if (sent || expired || r->owed_dropped)
    ND_INFO("kv",
            "redis: wrote %zu dedupe key(s) answered fail-open while it was unreachable "
            "(%zu expired meanwhile, %llu not kept)",
            sent, expired, (unsigned long long)r->owed_dropped);
  owed_clear(r);
  r->owed_dropped = 0;
}

/* ---- connection ---- */

static void connect_now(rredis *r);
static void fail_waiting(rredis *r);
static void release_waiting(rredis *r);

static void schedule_reconnect(rredis *r) {
  if (r->freeing) return;
  r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
  if (r->backoff_ms > BACKOFF_MAX_MS) r->backoff_ms = BACKOFF_MAX_MS;
  struct timeval tv = tv_ms(r->backoff_ms);
  evtimer_add(r->reconnect_ev, &tv);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  connect_now(arg);
}

static void on_ready_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  rredis *r = privdata;
  redisReply *rep = reply;
  if (r->freeing || !rep) return;
  if (rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0) {
    r->ready = 1;
    r->backoff_ms = 0;
    ND_INFO("kv", "redis %s:%d connected", r->unix_path ? r->unix_path : r->host, r->port);
    if (r->owed_head || r->owed_dropped) pay_owed(r);
    release_waiting(r);
    return;
  }
  ND_ERROR("kv", "redis handshake failed: %s",
           rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
  redisAsyncDisconnect(ac); /* -> on_disconnect -> reconnect with backoff */
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  rredis *r = privdata;
  redisReply *rep = reply;
  if (!r->freeing && rep && rep->type == REDIS_REPLY_ERROR)
    ND_ERROR("kv", "redis AUTH/SELECT: %s", rep->str);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  rredis *r = ac->data;
  if (r->freeing) return;
  event_del(r->connect_timer);
  if (status != REDIS_OK) {
    ND_WARN_RL("kv", "redis connect failed: %s", ac->errstr);
    r->ac = NULL; /* hiredis frees it */
    fail_waiting(r);
    schedule_reconnect(r);
    return;
  }
  redisAsyncContext *c = (redisAsyncContext *)ac;
  if (r->password) {
    if (r->username)
      redisAsyncCommand(c, on_setup_reply, r, "AUTH %s %s", r->username, r->password);
    else
      redisAsyncCommand(c, on_setup_reply, r, "AUTH %s", r->password);
  }
  if (r->db) redisAsyncCommand(c, on_setup_reply, r, "SELECT %" PRId64, r->db);
  redisAsyncCommand(c, on_ready_reply, r, "PING");
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  rredis *r = ac->data;
  if (r->freeing) return;
  if (r->ready || status != REDIS_OK)
    ND_WARN("kv", "redis connection lost%s%s", status != REDIS_OK ? ": " : "",
            status != REDIS_OK ? ac->errstr : "");
  r->ready = 0;
  r->ac = NULL;
  fail_waiting(r);
  schedule_reconnect(r);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rredis *r = arg;
  if (!r->ac || r->ready) return;
  ND_WARN("kv", "redis connect timed out");
  redisAsyncContext *ac = r->ac;
  r->ac = NULL;
  r->freeing = 1; /* callbacks from this free are ours, ignore them */
  redisAsyncFree(ac);
  r->freeing = 0;
  fail_waiting(r);
  schedule_reconnect(r);
}

static void connect_now(rredis *r) {
  redisAsyncContext *ac =
      r->unix_path ? redisAsyncConnectUnix(r->unix_path) : redisAsyncConnect(r->host, r->port);
  if (!ac) {
    schedule_reconnect(r);
    return;
  }
  if (ac->err) {
    ND_WARN("kv", "redis connect: %s", ac->errstr);
    redisAsyncFree(ac);
    schedule_reconnect(r);
    return;
  }
  ac->data = r;
  if (redisLibeventAttach(ac, r->kv->base) != REDIS_OK) {
    redisAsyncFree(ac);
    schedule_reconnect(r);
    return;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  r->ac = ac;
  struct timeval tv = tv_ms(r->connect_timeout_ms);
  evtimer_add(r->connect_timer, &tv);
}

/* ---- requests ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  rreq *q = privdata;
  rredis *r = q->r;
  q->in_redis = 0;
  if (r->freeing && !r->kv) {
    req_unlink_free(q);
    return;
  }
  if (!q->answered && !r->freeing) {
    q->answered = 1;
    event_del(q->timer);
    redisReply *rep = reply;
    if (!rep) {
      owe(r, q);
      nd_kv_failed(r->kv, q->op, q->cb, q->ud, "connection lost");
    } else if (rep->type == REDIS_REPLY_ERROR) {
      owe(r, q);
      nd_kv_failed(r->kv, q->op, q->cb, q->ud, rep->str);
    } else {
      int32_t res;
      if (q->op == ND_KV_EXISTS) res = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
      else res = rep->type == REDIS_REPLY_STATUS; /* OK; a nil means NX lost */
      if (q->cb) q->cb(res, q->ud);
    }
  }
  req_unlink_free(q);
}

static void on_req_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rreq *q = arg;
  rredis *r = q->r;
  if (q->answered) return;
  q->answered = 1;
  q->waiting = 0;
  owe(r, q);
  nd_kv_failed(r->kv, q->op, q->cb, q->ud,
               q->in_redis ? "timed out" : q->fail ? q->fail : "not connected");
  if (!q->in_redis) req_unlink_free(q); /* else freed when hiredis lets go */
}

/* Hands q to hiredis; REDIS_OK or REDIS_ERR. */
static int send_req(rredis *r, rreq *q) {
  long long ttl = (long long)q->ttl_ms;
  const char *key = q->key;
  size_t key_len = q->key_len;
  switch (q->op) {
  case ND_KV_CLAIM:
    return ttl > 0 ? redisAsyncCommand(r->ac, on_reply, q, "SET %b 1 NX PX %lld", key, key_len, ttl)
                   : redisAsyncCommand(r->ac, on_reply, q, "SET %b 1 NX", key, key_len);
  case ND_KV_MARK:
    return ttl > 0 ? redisAsyncCommand(r->ac, on_reply, q, "SET %b 1 PX %lld", key, key_len, ttl)
                   : redisAsyncCommand(r->ac, on_reply, q, "SET %b 1", key, key_len);
  default:
    return redisAsyncCommand(r->ac, on_reply, q, "EXISTS %b", key, key_len);
  }
}

static void start_req(rredis *r, rreq *q) {
  if (send_req(r, q) == REDIS_OK) {
    q->in_redis = 1;
    struct timeval tv = tv_ms(r->command_timeout_ms);
    evtimer_add(q->timer, &tv);
  } else {
    /* Answered on the next loop turn, never inside the caller's call. */
    q->fail = "command refused";
    event_active(q->timer, EV_TIMEOUT, 0);
  }
}

/* Connected (after AUTH/SELECT/PING): requests made while connecting go. */
static void release_waiting(rredis *r) {
  for (rreq *q = r->reqs; q; q = q->next) {
    if (!q->waiting) continue;
    q->waiting = 0;
    event_del(q->timer);
    start_req(r, q);
  }
}

/* The connection attempt failed: requests waiting for it are answered by
 * the policy now. */
static void fail_waiting(rredis *r) {
  for (rreq *q = r->reqs; q; q = q->next) {
    if (!q->waiting) continue;
    q->waiting = 0;
    q->fail = "not connected";
    event_del(q->timer);
    event_active(q->timer, EV_TIMEOUT, 0);
  }
}

static int redis_op(nd_kv *kv, int op, const char *key, size_t key_len, int64_t ttl_ms,
                    notifd_kv_cb cb, void *ud) {
  rredis *r = kv->impl;
  rreq *q = calloc(1, sizeof *q);
  if (!q) return NOTIFD_ENOMEM;
  q->timer = evtimer_new(kv->base, on_req_timer, q);
  q->key = malloc(key_len ? key_len : 1);
  if (!q->timer || !q->key) {
    if (q->timer) event_free(q->timer);
    free(q->key);
    free(q);
    return NOTIFD_ENOMEM;
  }
  memcpy(q->key, key, key_len);
  q->key_len = key_len;
  q->r = r;
  q->op = op;
  q->cb = cb;
  q->ud = ud;
  q->ttl_ms = ttl_ms;
  q->at_ms = nd_now_ms();
  q->next = r->reqs;
  if (r->reqs) r->reqs->prev = q;
  r->reqs = q;
  if (r->ready && r->ac) {
    start_req(r, q);
  } else if (r->ac) {
    /* Connecting (at start, or reconnecting): wait for it, up to the
     * command timeout, rather than answer by the policy - a record handled
     * in the first milliseconds after a start would otherwise pass the
     * dedupe unchecked. */
    q->waiting = 1;
    struct timeval tv = tv_ms(r->command_timeout_ms);
    evtimer_add(q->timer, &tv);
  } else {
    q->fail = "not connected";
    event_active(q->timer, EV_TIMEOUT, 0);
  }
  return 0;
}

static int redis_ready(nd_kv *kv) {
  rredis *r = kv->impl;
  return r->ready;
}

static void redis_free(nd_kv *kv) {
  rredis *r = kv->impl;
  if (!r) return;
  r->freeing = 1;
  r->kv = NULL; /* marks "dropping": on_reply frees without answering */
  if (r->ac) redisAsyncFree(r->ac);
  r->ac = NULL;
  while (r->reqs) req_unlink_free(r->reqs);
  owed_clear(r);
  if (r->reconnect_ev) event_free(r->reconnect_ev);
  if (r->connect_timer) event_free(r->connect_timer);
  free(r->host);
  free(r->unix_path);
  free(r->password);
  free(r->username);
  free(r);
  kv->impl = NULL;
}

static const nd_kv_ops redis_ops = {"redis", redis_op, redis_ready, redis_free};

/* "host:port", "[v6]:port", "host" (6379), "unix:/path" or "/path". */
static int parse_address(rredis *r, const char *a) {
  if (strncmp(a, "unix:", 5) == 0) a += 5;
  if (a[0] == '/') return (r->unix_path = strdup(a)) ? 0 : -1;
  r->port = 6379;
  const char *colon;
  if (a[0] == '[') {
    const char *end = strchr(a, ']');
    if (!end) return -1;
    r->host = nd_strndup(a + 1, (size_t)(end - a - 1));
    colon = end[1] == ':' ? end + 1 : NULL;
    if (end[1] && !colon) return -1;
  } else {
    colon = strrchr(a, ':');
    r->host = colon ? nd_strndup(a, (size_t)(colon - a)) : strdup(a);
  }
  if (!r->host || !*r->host) return -1;
  if (colon) {
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535) return -1;
    r->port = (int)p;
  }
  return 0;
}

static int opt_str(nd_cfg_node *m, const char *k, const char **out, nd_errors *e) {
  *out = NULL;
  nd_cfg_node *n = nd_cfg_get(m, k);
  if (!n || n->is_null) return 0;
  return nd_cfg_as_string(n, e, out);
}

int nd_kv_redis_open(nd_kv *kv, nd_errors *errs) {
  nd_cfg_node *rc = kv->host->cfg.redis;
  rredis *r = calloc(1, sizeof *r);
  if (!r) return NOTIFD_ENOMEM;
  r->kv = kv;
  kv->impl = r;
  kv->ops = &redis_ops;
  const char *addr, *pw, *user;
  int bad = opt_str(rc, "address", &addr, errs) < 0;
  bad |= opt_str(rc, "password", &pw, errs) < 0;
  bad |= opt_str(rc, "username", &user, errs) < 0;
  nd_cfg_node *n;
  r->db = 0;
  if ((n = nd_cfg_get(rc, "db")) && !n->is_null) bad |= nd_cfg_as_int(n, errs, &r->db) < 0;
  r->connect_timeout_ms = 2000;
  if ((n = nd_cfg_get(rc, "connect_timeout")) && !n->is_null)
    bad |= nd_cfg_as_duration_ms(n, errs, &r->connect_timeout_ms) < 0;
  r->command_timeout_ms = 1000;
  if ((n = nd_cfg_get(rc, "command_timeout")) && !n->is_null)
    bad |= nd_cfg_as_duration_ms(n, errs, &r->command_timeout_ms) < 0;
  if (!bad && parse_address(r, addr ? addr : "127.0.0.1:6379") < 0) {
    n = nd_cfg_get(rc, "address");
    nd_errors_add(errs, n ? n->file : rc->file, n ? n->line : rc->line, n ? n->col : rc->col,
                  "backends.redis.address: expected host:port or unix:/path, got '%s'", addr);
    bad = 1;
  }
  if (!bad && (r->db < 0 || r->db > 1000000)) {
    nd_errors_add(errs, rc->file, rc->line, rc->col, "backends.redis.db: out of range");
    bad = 1;
  }
  if (bad) {
    redis_free(kv);
    return NOTIFD_EINVAL;
  }
  if (r->connect_timeout_ms < 1) r->connect_timeout_ms = 1;
  if (r->command_timeout_ms < 1) r->command_timeout_ms = 1;
  r->password = pw && *pw ? strdup(pw) : NULL;
  r->username = user && *user ? strdup(user) : NULL;
  r->reconnect_ev = evtimer_new(kv->base, on_reconnect, r);
  r->connect_timer = evtimer_new(kv->base, on_connect_timeout, r);
  if (!r->reconnect_ev || !r->connect_timer || (pw && *pw && !r->password) ||
      (user && *user && !r->username)) {
    redis_free(kv);
    return NOTIFD_ENOMEM;
  }
  connect_now(r);
  return 0;
}
