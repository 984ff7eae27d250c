/* Presence across chat_ws instances.  Each instance publishes its own
 * users' transitions on the presence topic and consumes the topic with a
 * group of its own (every instance sees every record), keeping per user
 * the set of other instances that reported them online.  Records (key =
 * the instance id, so one instance's records stay in order):
 *
 *   {"instance":"<id>","kind":"online"|"offline","users":["u"]}
 *   {"instance":"<id>","kind":"announce","users":[...]}  every
 *        presence_refresh: the users online here (refreshes their entries)
 *   {"instance":"<id>","kind":"hello","users":[]}  at start: the others
 *        announce at once instead of at their next refresh
 *
 * A report not refreshed within presence_expiry is dropped, so the users
 * of an instance that died go offline elsewhere. */
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_ws.h"
#include "pc_jenc.h"

/* Users per announce record: keeps records small (~10 KB at most). */
#define ANNOUNCE_BATCH 200

static void count(chat_ws *s, const char *result) {
  const char *v[] = {result};
  s->api->metric_add(s->presence_records, v, 1);
}

static void on_produced(int32_t status, void *ud) {
  chat_ws *s = ud;
  if (status == 0) return;
  count(s, "produce_failed");
  s->api->log(s->self, NOTIFD_LOG_WARN, "presence record not accepted by the bus (%d)",
              (int)status);
}

/* Writes the head of a record; the caller adds user ids and "]}". */
static void record_head(chat_ws *s, pc_buf *b, const char *kind) {
  pc_buf_reset(b);
  pc_buf_puts(b, "{\"instance\":\"");
  pc_buf_puts(b, s->instance);
  pc_buf_puts(b, "\",\"kind\":\"");
  pc_buf_puts(b, kind);
  pc_buf_puts(b, "\",\"users\":[");
}

static void produce(chat_ws *s, pc_buf *b) {
  pc_buf_puts(b, "]}");
  if (b->oom) {
    count(s, "produce_failed");
    return;
  }
  int rc = s->api->bus_produce(s->self, s->presence_topic, s->instance, strlen(s->instance),
                               b->data, b->len, NULL, on_produced, s);
  if (rc < 0) {
    count(s, "produce_failed");
    s->api->log(s->self, NOTIFD_LOG_WARN, "cannot produce a presence record (%d)", rc);
    return;
  }
  count(s, "produced");
}

void cw_presence_bus_report(chat_ws *s, cw_user *u, int online) {
  if (!s->presence_topic) return;
  pc_buf b;
  pc_buf_init(&b);
  record_head(s, &b, online ? "online" : "offline");
  pc_json_put_cstring(&b, u->id);
  produce(s, &b);
  pc_buf_free(&b);
}

static void announce_all(chat_ws *s) {
  pc_buf b;
  pc_buf_init(&b);
  size_t n = 0;
  cw_map_iter it;
  cw_map_iter_begin(&it, &s->users);
  for (cw_node *node; (node = cw_map_iter_next(&it));) {
    cw_user *u = (cw_user *)(void *)node;
    if (!u->local_on) continue;
    if (n == 0) record_head(s, &b, "announce");
    else pc_buf_putc(&b, ',');
    pc_json_put_cstring(&b, u->id);
    if (++n == ANNOUNCE_BATCH) {
      produce(s, &b);
      n = 0;
    }
  }
  if (n) produce(s, &b);
  pc_buf_free(&b);
}

/* ---- other instances' reports ------------------------------------------ */

static void remote_touch(cw_user *u, const char *inst, int64_t now) {
  for (uint32_t i = 0; i < u->nremote; i++) {
    if (strcmp(u->remote[i].inst, inst) != 0) continue;
    u->remote[i].seen_ms = now;
    return;
  }
  if (u->nremote == u->capremote) {
    uint32_t cap = u->capremote ? u->capremote * 2 : 1;
    struct cw_remote *r = realloc(u->remote, cap * sizeof *r);
    if (!r) return; /* this report is lost; the next announce retries */
    u->remote = r;
    u->capremote = cap;
  }
  struct cw_remote *r = &u->remote[u->nremote++];
  snprintf(r->inst, sizeof r->inst, "%s", inst);
  r->seen_ms = now;
}

static void remote_drop(cw_user *u, const char *inst) {
  for (uint32_t i = 0; i < u->nremote; i++)
    if (strcmp(u->remote[i].inst, inst) == 0) {
      u->remote[i] = u->remote[--u->nremote];
      return;
    }
}

static void apply(chat_ws *s, const char *inst, int online, const char *id) {
  cw_user *u = online ? cw_user_get(s, id) : cw_user_find(s, id);
  if (!u) return;
  if (online) remote_touch(u, inst, cw_now_ms());
  else remote_drop(u, inst);
  cw_presence_update(s, u);
  cw_user_release(s, u);
}

static void on_record(notifd_bus_msg *m, void *ud) {
  chat_ws *s = ud;
  const notifd_api *api = s->api;
  size_t len = 0;
  const void *value = api->msg_value(m, &len);
  json_t *root = value ? json_loadb(value, len, 0, NULL) : NULL;
  const char *inst = json_string_value(json_object_get(root, "instance"));
  const char *kind = json_string_value(json_object_get(root, "kind"));
  json_t *users = json_object_get(root, "users");
  if (!inst || !*inst || strlen(inst) > CHAT_WS_INSTANCE_LEN || !kind || !json_is_array(users)) {
    count(s, "invalid");
    api->log(s->self, NOTIFD_LOG_WARN, "ignoring an invalid presence record at %s/%d@%lld",
             api->msg_topic(m), (int)api->msg_partition(m), (long long)api->msg_offset(m));
  } else if (strcmp(inst, s->instance) == 0) {
    count(s, "own");
  } else {
    count(s, "consumed");
    int online = strcmp(kind, "online") == 0 || strcmp(kind, "announce") == 0;
    if (strcmp(kind, "hello") == 0) {
      announce_all(s);
    } else if (online || strcmp(kind, "offline") == 0) {
      size_t i;
      json_t *v;
      json_array_foreach(users, i, v) {
        const char *id = json_string_value(v);
        if (id && *id) apply(s, inst, online, id);
      }
    }
  }
  json_decref(root);
  api->bus_ack(m);
}

/* Every presence_refresh: announce our users, drop stale reports. */
static void on_tick(notifd_timer *t, void *ud) {
  (void)t;
  chat_ws *s = ud;
  announce_all(s);
  int64_t old = cw_now_ms() - s->expiry_ms;
  cw_map_iter it;
  cw_map_iter_begin(&it, &s->users);
  for (cw_node *node; (node = cw_map_iter_next(&it));) {
    cw_user *u = (cw_user *)(void *)node;
    uint32_t before = u->nremote;
    for (uint32_t i = 0; i < u->nremote;) {
      if (u->remote[i].seen_ms < old) u->remote[i] = u->remote[--u->nremote];
      else i++;
    }
    if (u->nremote == before) continue;
    cw_presence_update(s, u);
    cw_user_release(s, u); /* may free u: the iterator took the next one */
  }
}

int cw_presence_bus_init(chat_ws *s) {
  const notifd_api *api = s->api;
  notifd_plugin *p = s->self;
  const char *topic = NULL;
  int rc;
  if ((rc = api->config_string(p, "presence_topic", "chat-presence", &topic)) < 0 ||
      (rc = api->config_duration_ms(p, "presence_refresh", 30000, &s->refresh_ms)) < 0 ||
      (rc = api->config_duration_ms(p, "presence_expiry", 90000, &s->expiry_ms)) < 0)
    return rc;
  if (!topic || !*topic) return 0;
  if (s->refresh_ms <= 0 || s->expiry_ms <= s->refresh_ms) {
    api->log(p, NOTIFD_LOG_ERROR,
             "presence_refresh must be > 0 and presence_expiry longer than presence_refresh");
    return NOTIFD_EINVAL;
  }
  unsigned char raw[CHAT_WS_INSTANCE_LEN / 2];
  if (RAND_bytes(raw, sizeof raw) != 1) return NOTIFD_EBACKEND;
  for (size_t i = 0; i < sizeof raw; i++) sprintf(s->instance + 2 * i, "%02x", raw[i]);
  snprintf(s->group, sizeof s->group, "chat_ws-presence-%s", s->instance);
  s->presence_topic = topic;
  s->topics[0] = topic;
  s->topics[1] = NULL;
  notifd_consumer_opts co = {
      .size = sizeof co,
      .topics = s->topics,
      .group = s->group,
      .handler = on_record,
      .ud = s,
      .max_attempts = 1,
      .start_from_latest = 1,
  };
  notifd_consumer *consumer = NULL;
  if ((rc = api->bus_consume(p, &co, &consumer)) < 0) {
    api->log(p, NOTIFD_LOG_ERROR, "cannot consume presence topic %s: %d", topic, rc);
    return rc;
  }
  if ((rc = api->timer_start(p, s->refresh_ms, s->refresh_ms, on_tick, s, &s->tick)) < 0)
    return rc;
  api->log(p, NOTIFD_LOG_INFO, "presence on topic %s as instance %s (group %s)", topic,
           s->instance, s->group);
  return 0;
}

int cw_presence_bus_start(chat_ws *s) {
  if (!s->presence_topic) return 0;
  pc_buf b;
  pc_buf_init(&b);
  record_head(s, &b, "hello");
  produce(s, &b);
  pc_buf_free(&b);
  return 0;
}
