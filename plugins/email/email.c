/* email: notification emails over SMTP (replaces the Go emailhandler).
 *
 * Sources: the notification event stream (events_topic, docs/events.md),
 * opt-in legacy topics (chat_topic: Debezium MongoDB envelopes,
 * notifications_topic: {"type","user_id","payload"}), and the Go HTTP
 * endpoints.  Recipients come from the user_email directory (SQLite in the
 * data dir, or MongoDB).  Every configuration key is documented in
 * plugins/email/README.md. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "email.h"
#include "email_util.h"
#include "pc_build.h"
#include "pc_plugin.h"

#ifndef EMAIL_DEFAULT_TEMPLATES_DIR
#define EMAIL_DEFAULT_TEMPLATES_DIR "/usr/local/share/notifd/templates"
#endif

#define LOGE(ep, ...) (ep)->api->log((ep)->self, NOTIFD_LOG_ERROR, __VA_ARGS__)

typedef struct cfg_state {
  email_plugin *ep;
  int bad;
} cfg_state;

static void cfg_str(cfg_state *c, const char *key, const char *def, const char **out) {
  if (c->ep->api->config_string(c->ep->self, key, def, out) < 0) c->bad = 1;
}

static void cfg_dur(cfg_state *c, const char *key, int64_t def, int64_t *out) {
  if (c->ep->api->config_duration_ms(c->ep->self, key, def, out) < 0) c->bad = 1;
  if (*out < 0) {
    LOGE(c->ep, "config key '%s': must not be negative", key);
    c->bad = 1;
  }
}

static int parse_auth(email_plugin *ep, const char *v) {
  if (strcmp(v, "none") == 0) ep->auth = NOTIFD_AUTH_NONE;
  else if (strcmp(v, "internal") == 0) ep->auth = NOTIFD_AUTH_INTERNAL;
  else if (strcmp(v, "token") == 0) ep->auth = NOTIFD_AUTH_TOKEN;
  else {
    pc_config_error(ep->api, ep->self, "auth", "expected none, internal or token, got '%s'", v);
    return -1;
  }
  return 0;
}

static int read_events(cfg_state *c) {
  email_plugin *ep = c->ep;
  size_t n = 0;
  if (ep->api->config_list_len(ep->self, "events", &n) < 0) return -1;
  if (n == 0) {
    ep->enabled = (1u << EMAIL_TYPE_COUNT) - 1;
    return 0;
  }
  ep->enabled = 0;
  for (size_t i = 0; i < n; i++) {
    const char *s = NULL;
    if (ep->api->config_list_string(ep->self, "events", i, &s) < 0) return -1;
    int t = email_type_from_name(s);
    if (t < 0) {
      pc_config_error(ep->api, ep->self, "events", "unknown event type '%s' (chat, purchase, payment-reminder, "
               "shipping-update)", s);
      return -1;
    }
    ep->enabled |= 1u << t;
  }
  return 0;
}

static int name_ok(const char *s, size_t max, const char *extra) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i])))
      return 0;
  return 1;
}

/* One `types` entry: a name, or {name, notification_type}.  Problems are
 * reported at the entry's key (file:line:col). */
static int read_type(cfg_state *c, size_t i) {
  email_plugin *ep = c->ep;
  char item[32], name_key[48], nt_key[64];
  const char *name = NULL, *nt = NULL;
  snprintf(item, sizeof item, "types.%zu", i);
  snprintf(name_key, sizeof name_key, "%s.name", item);
  snprintf(nt_key, sizeof nt_key, "%s.notification_type", item);
  cfg_str(c, name_key, NULL, &name);
  cfg_str(c, nt_key, NULL, &nt);
  int is_map = name || nt;
  if (!is_map) cfg_str(c, item, NULL, &name);
  if (c->bad) return -1;
  if (!name || !name_ok(name, 48, "-") || email_type_from_name(name) >= 0) {
    ep->api->config_error(ep->self, is_map ? name_key : item,
                          "expected a type name [a-z0-9-]{1,48}, not a built-in type, got '%s'",
                          name ? name : "");
    return -1;
  }
  email_decl *d = &ep->decl[ep->ndecl];
  d->name = name;
  if (nt) {
    snprintf(d->notification_type, sizeof d->notification_type, "%s", nt);
  } else {
    size_t n = 0;
    for (; name[n]; n++) d->notification_type[n] = name[n] == '-' ? '_' : name[n];
    snprintf(d->notification_type + n, sizeof d->notification_type - n, "_notification");
  }
  if (!name_ok(d->notification_type, 64, "_-.") ||
      email_type_from_notification_type(d->notification_type) >= 0) {
    ep->api->config_error(ep->self, nt ? nt_key : item,
                          "expected a notification_type [a-z0-9_.-]{1,64}, not a built-in "
                          "one, got '%s'", nt ? nt : d->notification_type);
    return -1;
  }
  for (int j = 0; j < ep->ndecl; j++) {
    if (strcmp(ep->decl[j].name, name) == 0 ||
        strcmp(ep->decl[j].notification_type, d->notification_type) == 0) {
      ep->api->config_error(ep->self, item, "'%s' (%s) is declared twice", name,
                            d->notification_type);
      return -1;
    }
  }
  ep->ndecl++;
  return 0;
}

static int read_types(cfg_state *c) {
  email_plugin *ep = c->ep;
  size_t n = 0;
  if (ep->api->config_list_len(ep->self, "types", &n) < 0) return -1;
  if (n > EMAIL_MAX_DECLARED) {
    ep->api->config_error(ep->self, "types", "at most %d types", EMAIL_MAX_DECLARED);
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad |= read_type(c, i) < 0;
  return bad ? -1 : 0;
}

static int read_smtp(cfg_state *c) {
  email_plugin *ep = c->ep;
  const char *url, *starttls, *user, *pass, *ca;
  int32_t insecure = 0;
  int64_t timeout, connect_timeout;
  cfg_str(c, "smtp_url", "smtp://127.0.0.1:25", &url);
  cfg_str(c, "username", "", &user);
  cfg_str(c, "password", "", &pass);
  /* With credentials, refuse to send them in clear text unless told to. */
  cfg_str(c, "starttls", user && *user ? "required" : "try", &starttls);
  cfg_str(c, "ca_file", "", &ca);
  if (ep->api->config_bool(ep->self, "insecure_skip_verify", 0, &insecure) < 0) c->bad = 1;
  cfg_dur(c, "timeout", 15000, &timeout);
  cfg_dur(c, "connect_timeout", 10000, &connect_timeout);
  if (c->bad) return -1;
  email_smtp_cfg sc = {.url = url, .username = user, .password = pass,
                       .from_addr = ep->from_address, .ca_file = ca, .insecure = insecure};
  if (strncmp(url, "smtp://", 7) != 0 && strncmp(url, "smtps://", 8) != 0) {
    pc_config_error(ep->api, ep->self, "smtp_url", "expected smtp://host:port or smtps://host:port, got '%s'",
         url);
    return -1;
  }
  if (strcmp(starttls, "none") == 0) sc.starttls = EMAIL_STARTTLS_NONE;
  else if (strcmp(starttls, "try") == 0) sc.starttls = EMAIL_STARTTLS_TRY;
  else if (strcmp(starttls, "required") == 0) sc.starttls = EMAIL_STARTTLS_REQUIRED;
  else {
    pc_config_error(ep->api, ep->self, "starttls", "expected none, try or required, got '%s'", starttls);
    return -1;
  }
  if (timeout <= 0) timeout = 15000;
  if (connect_timeout <= 0 || connect_timeout > timeout) connect_timeout = timeout;
  sc.timeout_ms = timeout;
  sc.connect_timeout_ms = connect_timeout;
  /* A claim outlives one send attempt, queueing included. */
  ep->lease_ms = 2 * timeout + 30000;
  if (email_smtp_new(&sc, &ep->smtp) < 0) {
    LOGE(ep, "out of memory");
    return -1;
  }
  return 0;
}

static int load_templates(email_plugin *ep) {
  int bad = 0;
  for (int t = 0; t < EMAIL_TYPE_COUNT + ep->ndecl; t++) {
    if (t < EMAIL_TYPE_COUNT && !(ep->enabled & (1u << t))) continue;
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/%s.tmpl", ep->templates_dir, email_type_label(ep, t));
    int rc = t < EMAIL_TYPE_COUNT
                 ? email_template_load(path, t, &ep->tmpl[t], err, sizeof err)
                 : email_template_load_declared(path, t, &ep->tmpl[t], err, sizeof err);
    if (rc < 0) {
      LOGE(ep, "template error: %s", err);
      bad = 1;
    }
  }
  return bad ? -1 : 0;
}

static int register_consumer(cfg_state *c) {
  email_plugin *ep = c->ep;
  int64_t attempts = -1, initial = 0, max_iv = 0;
  double mult = 0, jitter = 0;
  if (ep->api->config_int(ep->self, "retry.max_attempts", -1, &attempts) < 0) c->bad = 1;
  cfg_dur(c, "retry.initial_interval", 0, &initial);
  cfg_dur(c, "retry.max_interval", 0, &max_iv);
  if (ep->api->config_double(ep->self, "retry.multiplier", 0, &mult) < 0) c->bad = 1;
  if (ep->api->config_double(ep->self, "retry.jitter", 0, &jitter) < 0) c->bad = 1;
  if (c->bad) return -1;
  if (attempts == 0) attempts = -1; /* the host's policy */
  if (attempts < -1 || attempts > 1000000) {
    pc_config_error(ep->api, ep->self, "retry.max_attempts", "expected 1..1000000");
    return -1;
  }
  const char *topics[4] = {NULL, NULL, NULL, NULL};
  const char *given[3] = {ep->events_topic, ep->chat_topic, ep->notifications_topic};
  int n = 0;
  for (int i = 0; i < 3; i++) {
    if (!*given[i]) continue;
    for (int j = 0; j < n; j++) {
      if (strcmp(topics[j], given[i]) == 0) {
        LOGE(ep, "events_topic, chat_topic and notifications_topic must differ ('%s' twice)",
             given[i]);
        return -1;
      }
    }
    topics[n++] = given[i];
  }
  if (n == 0) return 0; /* HTTP only */
  if (*ep->events_topic && n > 1)
    ep->api->log(ep->self, NOTIFD_LOG_WARN,
                 "events_topic and a legacy topic are both consumed: a notification that "
                 "reaches both is mailed twice (set events_topic: \"\" for legacy only)");
  notifd_consumer_opts o = {
      .size = sizeof o,
      .topics = topics,
      .group = ep->group,
      .handler = email_on_record,
      .ud = ep,
      .max_attempts = (int32_t)attempts,
      .initial_interval_ms = initial,
      .max_interval_ms = max_iv,
      .multiplier = mult,
      .jitter = jitter,
  };
  notifd_consumer *consumer = NULL; /* owned by the host */
  int rc = ep->api->bus_consume(ep->self, &o, &consumer);
  if (rc < 0) LOGE(ep, "cannot consume %s%s%s%s%s as group %s (%d)", topics[0],
                   n > 1 ? ", " : "", n > 1 ? topics[1] : "", n > 2 ? ", " : "",
                   n > 2 ? topics[2] : "", ep->group, rc);
  return rc;
}

static int register_metrics(email_plugin *ep) {
  static const char *const type_l[] = {"type", NULL};
  static const char *const reason_l[] = {"type", "reason", NULL};
  const notifd_api *a = ep->api;
  if (a->metric_counter(ep->self, "email_sent_total", "Emails accepted by the SMTP server.",
                        type_l, &ep->m_sent) < 0 ||
      a->metric_counter(ep->self, "email_failed_total",
                        "Failed email attempts (each retry counts), by reason.", reason_l,
                        &ep->m_failed) < 0 ||
      a->metric_counter(ep->self, "email_suppressed_total",
                        "Events deliberately not mailed (duplicate, throttled, ...).", reason_l,
                        &ep->m_suppressed) < 0)
    return -1;
  return 0;
}

static void email_destroy(void *state);

static int init_config(email_plugin *ep) {
  cfg_state c = {ep, 0};
  const char *auth;
  cfg_str(&c, "auth", "internal", &auth);
  cfg_str(&c, "events_topic", "notification-events", &ep->events_topic);
  cfg_str(&c, "chat_topic", "", &ep->chat_topic);
  cfg_str(&c, "notifications_topic", "", &ep->notifications_topic);
  cfg_str(&c, "group", "email", &ep->group);
  cfg_str(&c, "from_address", "notifd@localhost", &ep->from_address);
  cfg_str(&c, "from_name", "", &ep->from_name);
  cfg_str(&c, "templates_dir", EMAIL_DEFAULT_TEMPLATES_DIR, &ep->templates_dir);
  cfg_str(&c, "store_path", "", &ep->store_path);
  cfg_str(&c, "mongodb_collection", "user_email", &ep->mongo_collection);
  cfg_dur(&c, "dedupe_ttl", 24LL * 3600 * 1000, &ep->dedupe_ttl_ms);
  cfg_dur(&c, "chat_throttle", 0, &ep->chat_throttle_ms);
  const char *unknown;
  cfg_str(&c, "unknown_recipients", "skip", &unknown);
  if (ep->api->config_int(ep->self, "max_concurrent", 2, &ep->max_concurrent) < 0) c.bad = 1;
  if (ep->api->backend_string(ep->self, "mongodb", "uri", &ep->mongo_uri) < 0 ||
      ep->api->backend_string(ep->self, "mongodb", "database", &ep->mongo_db) < 0)
    c.bad = 1;
  if (read_events(&c) < 0) c.bad = 1;
  if (read_types(&c) < 0) c.bad = 1;
  if (c.bad) return -1;
  if (parse_auth(ep, auth) < 0) return -1;
  if (strcmp(unknown, "skip") != 0 && strcmp(unknown, "dead_letter") != 0) {
    pc_config_error(ep->api, ep->self, "unknown_recipients", "expected skip or dead_letter, got '%s'", unknown);
    return -1;
  }
  ep->dead_letter_unknown = strcmp(unknown, "dead_letter") == 0;
  if (!email_addr_valid(ep->from_address)) {
    pc_config_error(ep->api, ep->self, "from_address", "'%s' is not an address (local@domain)", ep->from_address);
    return -1;
  }
  if (!email_utf8_printable(ep->from_name, strlen(ep->from_name))) {
    pc_config_error(ep->api, ep->self, "from_name", "must be one line of UTF-8 text");
    return -1;
  }
  if (ep->max_concurrent < 1 || ep->max_concurrent > 256) {
    pc_config_error(ep->api, ep->self, "max_concurrent", "expected 1..256");
    return -1;
  }
  if (ep->dedupe_ttl_ms == 0) ep->dedupe_ttl_ms = 24LL * 3600 * 1000;
  if (read_smtp(&c) < 0) return -1;
  if (register_consumer(&c) < 0) return -1;
  return 0;
}

static int email_init(notifd_plugin *p, const notifd_api *api, void **state) {
  email_plugin *ep = calloc(1, sizeof *ep);
  *state = ep;
  if (!ep) return NOTIFD_ENOMEM;
  ep->self = p;
  ep->api = api;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    free(ep);
    *state = NULL;
    return NOTIFD_ENOMEM;
  }
  /* Check everything (so --check lists every problem), then fail. */
  int bad = init_config(ep) < 0;
  bad |= register_metrics(ep) < 0;
  if (!bad) bad |= email_http_register(ep) < 0;
  bad |= load_templates(ep) < 0;
  if (bad) {
    /* Release now; the host's destroy call then gets NULL. */
    email_destroy(ep);
    *state = NULL;
    return NOTIFD_EINVAL;
  }
  return 0;
}

static void prepare_work(void *ud) {
  email_plugin *ep = ud;
  char err[256] = "";
  if (ep->store->ops->prepare(ep->store, err, sizeof err) < 0)
    ep->api->log(ep->self, NOTIFD_LOG_WARN, "directory setup: %s", err);
}

static int email_start(void *state) {
  email_plugin *ep = state;
  char err[512] = "";
  int rc;
  if (ep->mongo_uri) {
#if NOTIFD_WITH_MONGODB
    rc = email_store_open_mongo(ep->mongo_uri, ep->mongo_db ? ep->mongo_db : "notifications",
                                ep->mongo_collection, &ep->store, err, sizeof err);
#else
    snprintf(err, sizeof err, "backends.mongodb: %s", PC_MONGODB_MISSING);
    rc = -1;
#endif
  } else {
    char path[4096];
    if (*ep->store_path)
      snprintf(path, sizeof path, "%s", ep->store_path);
    else
      snprintf(path, sizeof path, "%s/email.db", ep->api->data_dir(ep->self));
    rc = email_store_open_sqlite(path, &ep->store, err, sizeof err);
  }
  if (rc < 0) {
    LOGE(ep, "cannot open the user_email directory: %s", err);
    return NOTIFD_EBACKEND;
  }
  if (ep->store->ops->prepare) ep->api->work_submit(ep->self, prepare_work, NULL, ep);
  ep->api->log(ep->self, NOTIFD_LOG_INFO,
               "email ready: directory=%s events_topic=%s chat_topic=%s notifications_topic=%s "
               "group=%s declared_types=%d",
               ep->store->ops->name, ep->events_topic, ep->chat_topic, ep->notifications_topic,
               ep->group, ep->ndecl);
  return 0;
}

static void email_stop(void *state) {
  email_plugin *ep = state;
  if (!ep) return;
  ep->stopping = 1;
  /* Running transfers fail fast; queued sends never start. */
  email_smtp_abort(ep->smtp);
  while (ep->wait_head) {
    email_op *op = ep->wait_head;
    ep->wait_head = op->wnext;
    email_op_free(op);
  }
  ep->wait_tail = NULL;
}

static void email_destroy(void *state) {
  email_plugin *ep = state;
  if (!ep) return;
  /* Workers are joined by now: whatever op is left waits for a callback
   * that will never come. */
  while (ep->live) email_op_free(ep->live);
  for (int t = 0; t < EMAIL_MAX_TYPES; t++) email_template_free(ep->tmpl[t]);
  if (ep->store) ep->store->ops->close(ep->store);
  email_smtp_free(ep->smtp);
  curl_global_cleanup();
  free(ep);
}

static const notifd_plugin_def email_def = {
    .size = sizeof(notifd_plugin_def),
    .abi_major = NOTIFD_ABI_MAJOR,
    .abi_minor = 2, /* config_error */
    .name = "email",
    .version = "1.0.0",
    .init = email_init,
    .start = email_start,
    .stop = email_stop,
    .destroy = email_destroy,
};
NOTIFD_PLUGIN_DEFINE(email_def)
