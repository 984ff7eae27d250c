/* ws_bench: a plugin for websocket benchmarks (not installed).
 *
 *   ws  /bench/ws?k=KEY                                   subscribe to KEY
 *   POST /bench/publish?keys=N&prefix=k&count=M&size=S     publish M messages of S bytes
 *        to each of keys prefix0..prefix(N-1), in batches spread over loop turns so
 *        receivers drain while we publish.  Answers when done with the totals. */
#include <notifd/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench {
  notifd_plugin *self;
  const notifd_api *api;
  notifd_ws_channel *ch;
} bench;

typedef struct job {
  bench *b;
  notifd_req *req;
  char prefix[32];
  long keys, count, sent;
  char *payload;
  size_t size;
  unsigned long long delivered, failed;
} job;

static void publish_batch(notifd_timer *t, void *ud) {
  job *j = ud;
  const notifd_api *api = j->b->api;
  /* One batch = one message to every key; 8 batches per loop turn. */
  for (int batch = 0; batch < 8 && j->sent < j->count; batch++, j->sent++) {
    char key[64];
    for (long k = 0; k < j->keys; k++) {
      snprintf(key, sizeof key, "%s%ld", j->prefix, k);
      uint32_t d = 0, f = 0;
      api->ws_publish(j->b->ch, key, j->payload, j->size, &d, &f);
      j->delivered += d;
      j->failed += f;
    }
  }
  if (j->sent < j->count) return; /* the repeating timer comes back */
  api->timer_stop(t);
  char body[256];
  int n = snprintf(body, sizeof body, "{\"published\":%ld,\"delivered\":%llu,\"failed\":%llu}",
                   j->count * j->keys, j->delivered, j->failed);
  api->respond(j->req, 200, "application/json", body, (size_t)n);
  free(j->payload);
  free(j);
}

static long qlong(const notifd_api *api, notifd_req *r, const char *name, long def) {
  const char *v = api->req_query(r, name);
  return v ? strtol(v, NULL, 10) : def;
}

static void on_publish(notifd_req *r, void *ud) {
  bench *b = ud;
  job *j = calloc(1, sizeof *j);
  if (!j) { b->api->respond_error(r, 500, "oom"); return; }
  j->b = b;
  j->req = r;
  j->keys = qlong(b->api, r, "keys", 1);
  j->count = qlong(b->api, r, "count", 1);
  j->size = (size_t)qlong(b->api, r, "size", 64);
  const char *prefix = b->api->req_query(r, "prefix");
  snprintf(j->prefix, sizeof j->prefix, "%s", prefix ? prefix : "k");
  if (j->keys < 1 || j->keys > 100000 || j->count < 1 || j->count > 1000000 || j->size < 2 ||
      j->size > 65536 || !(j->payload = malloc(j->size))) {
    free(j);
    b->api->respond_error(r, 400, "keys 1..100000, count 1..1000000, size 2..65536");
    return;
  }
  memset(j->payload, 'x', j->size);
  j->payload[0] = '"';
  j->payload[j->size - 1] = '"';
  if (b->api->timer_start(b->self, 0, 1, publish_batch, j, NULL) < 0) {
    free(j->payload);
    free(j);
    b->api->respond_error(r, 503, "stopping");
  }
}

static int bench_init(notifd_plugin *p, const notifd_api *api, void **state) {
  bench *b = calloc(1, sizeof *b);
  if (!b) return NOTIFD_ENOMEM;
  *state = b;
  b->self = p;
  b->api = api;
  static const char *const required[] = {"k", NULL};
  notifd_ws_channel_opts o = {.size = sizeof o, .path = "/bench/ws", .key_param = "k",
                              .required_params = required};
  if (api->ws_channel(p, &o, &b->ch) < 0) return NOTIFD_EINVAL;
  return api->http_route(p, "POST", "/bench/publish", on_publish, b, NULL);
}

static void bench_destroy(void *state) { free(state); }

static const notifd_plugin_def ws_bench_def = {
    .size = sizeof(notifd_plugin_def), .abi_major = NOTIFD_ABI_MAJOR, .abi_minor = 0,
    .name = "ws_bench", .version = "1", .init = bench_init, .destroy = bench_destroy};
NOTIFD_PLUGIN_DEFINE(ws_bench_def)
