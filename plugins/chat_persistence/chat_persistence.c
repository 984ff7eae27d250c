/* chat_persistence: stores chat messages and captures each store as a
 * change record on the bus (see README.md in this directory).
 *
 * Config keys (all optional):
 *   store                 auto | sqlite | mongodb   auto = mongodb when
 *                         backends.mongodb.uri is set, else sqlite
 *   store_path            <data_dir>/chat.db        SQLite file
 *   sqlite_synchronous    full | normal             full survives power loss
 *   collection            chat                      MongoDB collection
 *                         (database: backends.mongodb.database, default
 *                         "notifications")
 *   change_topic          chat-persistence-change
 *   relay                 auto | outbox | poll | none   auto = outbox for
 *                         SQLite, poll for MongoDB; none with Debezium
 *   relay_batch           256 (SQLite), 2000 (MongoDB)   changes per relay
 *                         cycle (a catch-up fetch on MongoDB reads the
 *                         outbox collection, FerretDB all of it)
 *   relay_delay           0         wait after a commit before publishing
 *   relay_retry_interval  1s        backoff after a failed cycle
 *   relay_poll_interval   500ms     poll mode: look for unpublished documents
 *   verify_stream_id      true      stream_id must be ComputeStreamID(sender, receiver)
 *   max_content_bytes     65536
 *   max_id_bytes          256       message_id, stream_id, sender_id, receiver_id
 *   history_default_limit 50
 *   history_max_limit     200       also the conversation list's limits
 *   conversations_collection conversations  MongoDB: per-user conversation state
 *   outbox_collection     <collection>_outbox  MongoDB: change records not yet
 *                         published (built-in relay)
 *   chat_ws_url           local:    read receipts: POST {chat_ws_url}/chat/forward-event
 *   auth                  none | token | internal   for every route; token:
 *                         sender_id must be the token subject, history needs
 *                         ?peer_id= and the caller must be a participant.
 *                         Default token (none when the host's auth.mode is
 *                         none) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_internal.h"
#include "pc_build.h"
#include "pc_plugin.h"

/* ---- worker jobs ---- */

static void job_unlink(cp_job *j) {
  cp_plugin *pl = j->pl;
  if (j->prev) j->prev->next = j->next;
  else if (pl->jobs == j) pl->jobs = j->next;
  if (j->next) j->next->prev = j->prev;
  j->prev = j->next = NULL;
}

static void job_work_tramp(void *ud) {
  cp_job *j = ud;
  j->work(j);
}

static void job_done_tramp(void *ud) {
  cp_job *j = ud;
  job_unlink(j);
  j->done(j);
}

int cp_job_submit(cp_plugin *pl, cp_job *j) {
  j->pl = pl;
  j->prev = NULL;
  j->next = pl->jobs;
  if (pl->jobs) pl->jobs->prev = j;
  pl->jobs = j;
  int rc = pl->api->work_submit(pl->self, job_work_tramp, job_done_tramp, j);
  if (rc < 0) job_unlink(j);
  return rc;
}

void cp_job_submit_or_503(cp_plugin *pl, notifd_req *req, cp_job *j) {
  if (cp_job_submit(pl, j) < 0) {
    pl->api->respond_error(req, 503, "server is shutting down");
    j->release(j);
  }
}

double cp_elapsed_s(int64_t t0_ns) { return (double)(pc_mono_ns() - t0_ns) / 1e9; }

/* ---- MongoDB setup (ping + indexes), retried until it works ---- */

typedef struct setup_job {
  cp_job base;
  int rc;
  char err[256];
} setup_job;

static void setup_work(cp_job *j) {
  setup_job *sj = (setup_job *)j;
#if NOTIFD_WITH_MONGODB
  sj->rc = cp_store_mongo_setup(j->pl->store, sj->err, sizeof sj->err);
#else
  sj->rc = -1; /* never submitted: the store cannot be MongoDB */
#endif
}

static void setup_release(cp_job *j) { free(j); }
static void setup_submit(cp_plugin *pl);

static void on_setup_timer(notifd_timer *t, void *ud) {
  cp_plugin *pl = ud;
  pl->api->timer_stop(t);
  pl->setup_timer = NULL;
  setup_submit(pl);
}

static void setup_done(cp_job *j) {
  setup_job *sj = (setup_job *)j;
  cp_plugin *pl = j->pl;
  if (sj->rc == 0) {
    pl->mongo_ready = 1;
    pl->api->log(pl->self, NOTIFD_LOG_INFO, "MongoDB reachable, indexes in place");
  } else {
    pl->api->log(pl->self, NOTIFD_LOG_WARN, "MongoDB setup failed (%s); retrying in 5s",
                 sj->err);
    if (pl->api->timer_start(pl->self, 5000, 0, on_setup_timer, pl, &pl->setup_timer) < 0)
      pl->setup_timer = NULL;
  }
  free(sj);
}

static void setup_submit(cp_plugin *pl) {
  setup_job *sj = calloc(1, sizeof *sj);
  if (!sj) return;
  sj->base.work = setup_work;
  sj->base.done = setup_done;
  sj->base.release = setup_release;
  if (cp_job_submit(pl, &sj->base) < 0) free(sj);
}

/* ---- WAL checkpoints off the request path ---- */

#define CP_CHECKPOINT_MS 200

typedef struct ckpt_job {
  cp_job base;
  int again; /* the writer's automatic checkpoint is near */
} ckpt_job;

static void ckpt_submit(cp_plugin *pl);

static void ckpt_work(cp_job *j) {
  ((ckpt_job *)j)->again = j->pl->store->ops->checkpoint(j->pl->store);
}
static void ckpt_release(cp_job *j) { free(j); }
static void ckpt_done(cp_job *j) {
  cp_plugin *pl = j->pl;
  int again = ((ckpt_job *)j)->again;
  pl->ckpt_busy = 0;
  free(j);
  /* Keep what the writer's own checkpoint has to copy small. */
  if (again) ckpt_submit(pl);
}

static void on_ckpt_timer(notifd_timer *t, void *ud) {
  (void)t;
  ckpt_submit(ud);
}

static void ckpt_submit(cp_plugin *pl) {
  if (pl->ckpt_busy) return;
  ckpt_job *j = calloc(1, sizeof *j);
  if (!j) return;
  j->base.work = ckpt_work;
  j->base.done = ckpt_done;
  j->base.release = ckpt_release;
  pl->ckpt_busy = 1;
  if (cp_job_submit(pl, &j->base) < 0) {
    pl->ckpt_busy = 0;
    free(j);
  }
}

/* ---- configuration ---- */

/* A config problem at `key`, as file:line:column on a host that can. */
#define cfg_fail(pl, key, ...) pc_config_error((pl)->api, (pl)->self, (key), __VA_ARGS__)

static int read_config(cp_plugin *pl, const char **store_kind, const char **relay,
                       const char **path, const char **sync, const char **coll,
                       const char **conv_coll, const char **outbox_coll) {
  const notifd_api *api = pl->api;
  notifd_plugin *p = pl->self;
  const char *auth = NULL;
  int bad = 0;
  bad |= api->config_string(p, "store", "auto", store_kind) < 0;
  bad |= api->config_string(p, "store_path", NULL, path) < 0;
  bad |= api->config_string(p, "sqlite_synchronous", "full", sync) < 0;
  bad |= api->config_string(p, "collection", "chat", coll) < 0;
  bad |= api->config_string(p, "change_topic", "chat-persistence-change", &pl->change_topic) < 0;
  bad |= api->config_string(p, "relay", "auto", relay) < 0;
  bad |= api->config_int(p, "relay_batch", 0, &pl->relay_batch) < 0; /* 0: per store */
  bad |= api->config_duration_ms(p, "relay_delay", 0, &pl->relay_delay_ms) < 0;
  bad |= api->config_duration_ms(p, "relay_retry_interval", 1000, &pl->relay_retry_ms) < 0;
  bad |= api->config_duration_ms(p, "relay_poll_interval", 500, &pl->relay_poll_ms) < 0;
  bad |= api->config_bool(p, "verify_stream_id", 1, &pl->verify_stream_id) < 0;
  bad |= api->config_int(p, "max_content_bytes", 65536, &pl->max_content_bytes) < 0;
  bad |= api->config_int(p, "max_id_bytes", 256, &pl->max_id_bytes) < 0;
  bad |= api->config_int(p, "history_default_limit", 50, &pl->history_default_limit) < 0;
  bad |= api->config_int(p, "history_max_limit", 200, &pl->history_max_limit) < 0;
  bad |= api->config_string(p, "conversations_collection", "conversations", conv_coll) < 0;
  bad |= api->config_string(p, "outbox_collection", NULL, outbox_coll) < 0;
  const char *chat_ws_url = NULL;
  bad |= api->config_string(p, "chat_ws_url", "local:", &chat_ws_url) < 0;
  if (!bad) {
    size_t n = strlen(chat_ws_url);
    while (n > 0 && chat_ws_url[n - 1] == '/') n--; /* base + "/chat/..." */
    pl->chat_ws_base = malloc(n + 1);
    if (!pl->chat_ws_base) return NOTIFD_ENOMEM;
    memcpy(pl->chat_ws_base, chat_ws_url, n);
    pl->chat_ws_base[n] = '\0';
  }
  /* Users post and read as themselves unless the host runs in seed
   * compatibility (auth.mode: none). */
  int seed = NOTIFD_API_HAS(api, auth_mode) && api->auth_mode(p) == NOTIFD_AUTH_MODE_NONE;
  bad |= api->config_string(p, "auth", seed ? "none" : "token", &auth) < 0;
  /* Every value is checked (a mistyped one holds its default), so --check
   * reports them all in one pass. */
  if (strcmp(auth, "none") == 0) pl->auth = NOTIFD_AUTH_NONE;
  else if (strcmp(auth, "token") == 0) pl->auth = NOTIFD_AUTH_TOKEN;
  else if (strcmp(auth, "internal") == 0) pl->auth = NOTIFD_AUTH_INTERNAL;
  else bad |= cfg_fail(pl, "auth", "expected one of none|token|internal, got '%s'", auth) < 0;
  if (strcmp(*sync, "full") != 0 && strcmp(*sync, "normal") != 0)
    bad |= cfg_fail(pl, "sqlite_synchronous", "expected one of full|normal, got '%s'", *sync) < 0;
  if (!*pl->change_topic) bad |= cfg_fail(pl, "change_topic", "must not be empty") < 0;
  if (pl->relay_batch < 0 || pl->relay_batch > 100000)
    bad |= cfg_fail(pl, "relay_batch", "must be between 1 and 100000") < 0;
  if (pl->relay_retry_ms < 1)
    bad |= cfg_fail(pl, "relay_retry_interval", "must be positive") < 0;
  if (pl->relay_poll_ms < 1) bad |= cfg_fail(pl, "relay_poll_interval", "must be positive") < 0;
  if (pl->relay_delay_ms < 0) bad |= cfg_fail(pl, "relay_delay", "must not be negative") < 0;
  if (pl->max_content_bytes < 1 || pl->max_content_bytes > 16 * 1024 * 1024)
    bad |= cfg_fail(pl, "max_content_bytes", "must be between 1 and 16 MiB") < 0;
  if (pl->max_id_bytes < 16 || pl->max_id_bytes > 4096)
    bad |= cfg_fail(pl, "max_id_bytes", "must be between 16 and 4096") < 0;
  if (!**conv_coll || strcmp(*conv_coll, *coll) == 0)
    bad |= cfg_fail(pl, "conversations_collection", "must be set and differ from collection") < 0;
  if (pl->history_max_limit < 1 || pl->history_max_limit > 10000)
    bad |= cfg_fail(pl, "history_max_limit", "must be between 1 and 10000") < 0;
  else if (pl->history_default_limit < 1 || pl->history_default_limit > pl->history_max_limit)
    bad |= cfg_fail(pl, "history_default_limit", "must be between 1 and history_max_limit (%lld)",
                    (long long)pl->history_max_limit) < 0;
  return bad ? NOTIFD_EINVAL : 0;
}

/* Checks the store and relay settings; opens the store when `open` (and
 * not under --check). */
static int open_store(cp_plugin *pl, int open, const char *kind, const char *relay,
                      const char *path, const char *sync, const char *coll,
                      const char *conv_coll, const char *outbox_coll) {
  const notifd_api *api = pl->api;
  const char *uri = NULL, *db = NULL;
  if (api->backend_string(pl->self, "mongodb", "uri", &uri) < 0 ||
      api->backend_string(pl->self, "mongodb", "database", &db) < 0)
    return NOTIFD_EINVAL;
  if (strcmp(kind, "auto") == 0) kind = uri ? "mongodb" : "sqlite";
  if (strcmp(kind, "sqlite") == 0) pl->mongo = 0;
  else if (strcmp(kind, "mongodb") == 0) pl->mongo = 1;
  else return cfg_fail(pl, "store", "expected one of auto|sqlite|mongodb, got '%s'", kind);
  if (pl->mongo && !uri) return cfg_fail(pl, "store", "mongodb needs backends.mongodb.uri");

  if (strcmp(relay, "auto") == 0) pl->relay_mode = pl->mongo ? CP_RELAY_POLL : CP_RELAY_OUTBOX;
  else if (strcmp(relay, "none") == 0) pl->relay_mode = CP_RELAY_NONE;
  else if (strcmp(relay, "outbox") == 0 && !pl->mongo) pl->relay_mode = CP_RELAY_OUTBOX;
  else if (strcmp(relay, "poll") == 0 && pl->mongo) pl->relay_mode = CP_RELAY_POLL;
  else
    return cfg_fail(pl, "relay", "'%s' does not fit the store (sqlite: auto|outbox|none, "
                                 "mongodb: auto|poll|none)", relay);

  if (pl->relay_batch == 0) pl->relay_batch = pl->mongo ? 2000 : 256;
  char err[512];
  int rc;
  if (pl->mongo) {
    char outbox_def[512];
    if (!outbox_coll) {
      snprintf(outbox_def, sizeof outbox_def, "%s_outbox", coll);
      outbox_coll = outbox_def;
    }
    if (!*outbox_coll || strcmp(outbox_coll, coll) == 0 || strcmp(outbox_coll, conv_coll) == 0)
      return cfg_fail(pl, "outbox_collection", "must differ from collection and "
                                               "conversations_collection");
#if NOTIFD_WITH_MONGODB
    if (!open || pc_check_only(api, pl->self)) return 0; /* --check: open nothing */
    cp_mongo_opts o = {uri, db ? db : "notifications", coll, conv_coll, outbox_coll,
                       pl->relay_mode == CP_RELAY_POLL};
    rc = cp_store_mongo_open(&o, &pl->store, err, sizeof err);
#else
    return cfg_fail(pl, "store", "mongodb: %s", PC_MONGODB_MISSING);
#endif
  } else {
    char def[4096];
    if (!path) {
      snprintf(def, sizeof def, "%s/chat.db", api->data_dir(pl->self));
      path = def;
    }
    if (!open || pc_check_only(api, pl->self)) return 0; /* --check: no chat.db */
    cp_sqlite_opts o = {path, strcmp(sync, "full") == 0, pl->relay_mode == CP_RELAY_OUTBOX};
    rc = cp_store_sqlite_open(&o, &pl->store, err, sizeof err);
  }
  if (rc < 0) {
    api->log(pl->self, NOTIFD_LOG_ERROR, "cannot open the message store: %s", err);
    return NOTIFD_EBACKEND;
  }
  api->log(pl->self, NOTIFD_LOG_INFO, "store %s, change capture %s to topic %s",
           pl->store->ops->name,
           pl->relay_mode == CP_RELAY_OUTBOX ? "by outbox relay"
           : pl->relay_mode == CP_RELAY_POLL ? "by polling relay"
                                             : "external (Debezium) or off",
           pl->change_topic);
  return 0;
}

static int register_metrics(cp_plugin *pl) {
  const notifd_api *api = pl->api;
  notifd_plugin *p = pl->self;
  static const char *const result[] = {"result", NULL};
  static const char *const op[] = {"op", NULL};
  int rc = api->metric_counter(p, "chat_persistence_requests_total",
                               "Store requests by result (created, existing, conflict, invalid, "
                               "forbidden, error).",
                               result, &pl->m.requests);
  if (rc == 0)
    rc = api->metric_histogram(p, "chat_persistence_store_seconds",
                               "Store call latency by operation.", op, NULL, 0,
                               &pl->m.store_seconds);
  if (rc == 0)
    rc = api->metric_counter(p, "chat_persistence_relay_published_total",
                             "Change records the bus acknowledged.", NULL, &pl->m.published);
  if (rc == 0)
    rc = api->metric_counter(p, "chat_persistence_relay_publish_errors_total",
                             "Change records the bus refused (published again later).", NULL,
                             &pl->m.publish_errors);
  if (rc == 0)
    rc = api->metric_counter(p, "chat_persistence_relay_errors_total",
                             "Relay store reads or confirmations that failed.", NULL,
                             &pl->m.relay_errors);
  return rc;
}

/* ---- lifecycle ---- */

static int cp_init(notifd_plugin *p, const notifd_api *api, void **state) {
  cp_plugin *pl = calloc(1, sizeof *pl);
  if (!pl) return NOTIFD_ENOMEM;
  *state = pl; /* destroy() frees it even when init fails below */
  pl->self = p;
  pl->api = api;
  if (chat_oid_gen_init(&pl->oids) < 0) {
    api->log(p, NOTIFD_LOG_ERROR, "no kernel random source for message ids");
    return NOTIFD_EBACKEND;
  }
  const char *kind, *relay, *path, *sync, *coll, *conv_coll, *outbox_coll;
  int rc = read_config(pl, &kind, &relay, &path, &sync, &coll, &conv_coll, &outbox_coll);
  if (rc < 0) {
    if (rc == NOTIFD_EINVAL) /* the store's settings are checked too, nothing opened */
      open_store(pl, 0, kind, relay, path, sync, coll, conv_coll, outbox_coll);
    return rc;
  }
  if ((rc = open_store(pl, 1, kind, relay, path, sync, coll, conv_coll, outbox_coll)) < 0)
    return rc;
  if ((rc = register_metrics(pl)) < 0) return rc;
  if (pl->store && pl->relay_mode != CP_RELAY_NONE && (rc = cp_relay_new(pl, &pl->relay)) < 0)
    return rc; /* (no store under --check) */
  return cp_http_register(pl);
}

static int cp_start(void *state) {
  cp_plugin *pl = state;
  if (pl->mongo) setup_submit(pl);
  if (pl->store->ops->checkpoint &&
      pl->api->timer_start(pl->self, CP_CHECKPOINT_MS, CP_CHECKPOINT_MS, on_ckpt_timer, pl,
                           &pl->ckpt_timer) < 0)
    pl->api->log(pl->self, NOTIFD_LOG_WARN, "cannot start the checkpoint timer");
  if (pl->relay) cp_relay_start(pl->relay);
  return 0;
}

static void cp_destroy(void *state) {
  cp_plugin *pl = state;
  if (!pl) return;
  /* Jobs whose completion never ran: the host is gone, just release. */
  while (pl->jobs) {
    cp_job *j = pl->jobs;
    job_unlink(j);
    j->release(j);
  }
  cp_http_drop_queued(pl);
  cp_conv_drop(pl);
  cp_state_drop_receipts(pl);
  free(pl->chat_ws_base);
  cp_relay_free(pl->relay);
  if (pl->store) pl->store->ops->close(pl->store);
  free(pl);
}

/* Test builds (tests/plugins/swap) override the version. */
#ifndef CHAT_PERSISTENCE_VERSION
#define CHAT_PERSISTENCE_VERSION "1.0.0"
#endif

static const notifd_plugin_def chat_persistence_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 0,
    .name = "chat_persistence",
    .version = CHAT_PERSISTENCE_VERSION,
    .init = cp_init,
    .start = cp_start,
    .destroy = cp_destroy,
};
NOTIFD_PLUGIN_DEFINE(chat_persistence_def)
