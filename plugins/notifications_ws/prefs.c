/* Per-user notification preferences: which channels fire for each
 * notification type, and quiet hours.
 *
 *   GET /users/{user_id}/preferences             the user (token subject)
 *   PUT /users/{user_id}/preferences             validated, stored, 200 with it
 *   GET /internal/users/{user_id}/preferences    services (outside the event
 *                                                stream, whose headers carry
 *                                                the decision):
 *                                                the same plus "quiet_now";
 *                                                with ?type=<kind> also
 *                                                "email": whether a mail of
 *                                                that kind may go now
 *
 *   {"channels": {"<type>": {"websocket": bool, "push": bool, "email": bool,
 *                            "<any channel>": bool},
 *                 "default": {...}},
 *    "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "UTC"} | null}
 *
 * A type is looked up by notification_type ("purchase_notification"), then
 * by its path name ("purchase"), then "default"; a channel left out of an
 * entry falls back to "default", then to true.  Unknown type names are
 * accepted (future types); channel names are [a-z0-9_-]{1,32}, at most
 * PREFS_MAX_CHANNELS per entry, so a third-party channel consuming the
 * event stream (notifd-muted) can be turned off per type too.  tz is "UTC" or a fixed offset "+05:30".  During
 * quiet hours push and email do not fire; the websocket still does.
 *
 * Decisions on the publish path read a loop-side cache, filled by the group
 * commit job for users it has not seen (prefs_cached / prefs_cache_put) and
 * by PUT; entries live PREFS_TTL_MS so another process's PUT is seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifications_ws.h"

#define PREFS_TTL_MS 30000
#define PREFS_CACHE_MAX 50000
#define PREFS_MAX_BODY (16 * 1024)
#define PREFS_MAX_TYPES 256
#define PREFS_MAX_CHANNELS 16
#define DEFAULT_DOC \
  "{\"channels\":{\"default\":{\"websocket\":true,\"push\":true,\"email\":true}}," \
  "\"quiet_hours\":null}"

typedef struct prefs_ent {
  json_t *doc; /* NULL: nothing stored (everything on) */
  int64_t loaded_ms;
} prefs_ent;

static void ent_free(void *v) {
  prefs_ent *e = v;
  if (e) json_decref(e->doc);
  free(e);
}

int prefs_cached(notif_ws *s, const char *user) {
  prefs_ent *e = pc_map_get(&s->prefs, user);
  return e && notif_now_ms() - e->loaded_ms < PREFS_TTL_MS;
}

void prefs_cache_put(notif_ws *s, const char *user, const char *json) {
  if (s->prefs.count >= PREFS_CACHE_MAX && !pc_map_get(&s->prefs, user)) {
    pc_map_free(&s->prefs, ent_free); /* simple bound: start over */
    pc_map_init(&s->prefs);
  }
  prefs_ent *e = calloc(1, sizeof *e);
  if (!e) return;
  e->doc = json ? json_loads(json, 0, NULL) : NULL;
  e->loaded_ms = notif_now_ms();
  prefs_ent *old = pc_map_get(&s->prefs, user);
  if (pc_map_put(&s->prefs, user, e) < 0) {
    ent_free(e);
    return;
  }
  ent_free(old);
}

int prefs_load_init(prefs_load *pl, size_t cap) {
  memset(pl, 0, sizeof *pl);
  pl->users = calloc(cap ? cap : 1, sizeof *pl->users);
  pl->docs = calloc(cap ? cap : 1, sizeof *pl->docs);
  pl->found = calloc(cap ? cap : 1, sizeof *pl->found);
  pl->cap = cap;
  return pl->users && pl->docs && pl->found ? 0 : -1;
}

void prefs_load_add(prefs_load *pl, const char *user) {
  if (pl->n >= pl->cap) return;
  for (size_t k = 0; k < pl->n; k++)
    if (strcmp(pl->users[k], user) == 0) return;
  if ((pl->users[pl->n] = strdup(user))) pl->n++;
}

void prefs_load_work(prefs_load *pl, inbox_store *st) {
  for (size_t i = 0; i < pl->n; i++) {
    char e[200];
    pl->found[i] = st->ops->prefs_get(st, pl->users[i], &pl->docs[i], e, sizeof e);
  }
}

void prefs_load_done(notif_ws *s, const prefs_load *pl) {
  for (size_t i = 0; i < pl->n; i++)
    if (pl->found[i] >= 0) prefs_cache_put(s, pl->users[i], pl->found[i] ? pl->docs[i] : NULL);
}

void prefs_load_free(prefs_load *pl) {
  for (size_t i = 0; i < pl->n; i++) {
    free(pl->users ? pl->users[i] : NULL);
    free(pl->docs ? pl->docs[i] : NULL);
  }
  free(pl->users);
  free(pl->docs);
  free(pl->found);
  memset(pl, 0, sizeof *pl);
}

/* ---- quiet hours ---- */

/* "HH:MM" -> minutes of the day, or -1. */
static int parse_hhmm(const char *t) {
  if (!t || strlen(t) != 5 || t[2] != ':') return -1;
  for (int i = 0; i < 5; i++)
    if (i != 2 && (t[i] < '0' || t[i] > '9')) return -1;
  int h = (t[0] - '0') * 10 + (t[1] - '0'), m = (t[3] - '0') * 10 + (t[4] - '0');
  return h < 24 && m < 60 ? h * 60 + m : -1;
}

/* "UTC" / "Z" / "+HH:MM" / "-HH:MM" -> offset in minutes; 0 ok, -1 bad. */
static int parse_tz(const char *t, int *off) {
  if (strcmp(t, "UTC") == 0 || strcmp(t, "Z") == 0) {
    *off = 0;
    return 0;
  }
  if ((t[0] != '+' && t[0] != '-') || strlen(t) != 6) return -1;
  int m = parse_hhmm(t + 1);
  if (m < 0 || m > 14 * 60) return -1;
  *off = t[0] == '-' ? -m : m;
  return 0;
}

static int quiet_now(const json_t *doc) {
  json_t *q = doc ? json_object_get(doc, "quiet_hours") : NULL;
  if (!json_is_object(q)) return 0;
  int start = parse_hhmm(json_string_value(json_object_get(q, "start")));
  int end = parse_hhmm(json_string_value(json_object_get(q, "end")));
  const char *tz = json_string_value(json_object_get(q, "tz"));
  int off = 0;
  if (start < 0 || end < 0 || (tz && parse_tz(tz, &off) < 0) || start == end) return 0;
  int64_t min = (notif_now_ms() / 60000 + off) % 1440;
  if (min < 0) min += 1440;
  return start < end ? (min >= start && min < end) : (min >= start || min < end);
}

/* ---- decisions ---- */

static int channel_on(const json_t *entry, const json_t *def, const char *channel) {
  json_t *v = entry ? json_object_get(entry, channel) : NULL;
  if (json_is_boolean(v)) return json_is_true(v);
  v = def ? json_object_get(def, channel) : NULL;
  return json_is_boolean(v) ? json_is_true(v) : 1;
}

/* The entry of `doc` for a type: by notification_type, then by path
 * name (when not NULL); *def gets "default". */
static json_t *type_entry(const json_t *doc, const char *type, const char *name, json_t **def) {
  json_t *ch = json_object_get(doc, "channels");
  json_t *entry = type ? json_object_get(ch, type) : NULL;
  if (!entry && name) entry = json_object_get(ch, name);
  *def = json_object_get(ch, "default");
  return entry;
}

/* Whether `doc` lets an email of the type named `type` (notification_type
 * or path name) go now: its channel setting and not quiet hours. */
static int email_allowed(notif_ws *s, const json_t *doc, const char *type) {
  const pc_notification_kind *k = types_find(s, type, strlen(type), NULL);
  json_t *def;
  json_t *entry = type_entry(doc, k ? k->notification_type : NULL, k ? k->name : type, &def);
  return channel_on(entry, def, "email") && !quiet_now(doc);
}

int prefs_websocket_on(notif_ws *s, const char *user, const pc_notification_kind *kind) {
  prefs_ent *e = pc_map_get(&s->prefs, user);
  if (!e || !e->doc) return 1;
  json_t *def;
  json_t *entry = type_entry(e->doc, kind->notification_type, kind->name, &def);
  return channel_on(entry, def, "websocket");
}

void prefs_event_flags(notif_ws *s, const char *user, const char *type, const char *name,
                       pc_buf *muted, int *quiet) {
  *quiet = 0;
  prefs_ent *e = pc_map_get(&s->prefs, user);
  if (!e || !e->doc) return;
  json_t *def, *v;
  json_t *entry = type_entry(e->doc, type, name, &def);
  const char *ch;
  /* The entry's channels, then those of "default" the entry leaves out. */
  json_object_foreach(entry, ch, v) {
    if (json_is_false(v)) {
      if (muted->len) pc_buf_putc(muted, ',');
      pc_buf_puts(muted, ch);
    }
  }
  json_object_foreach(def, ch, v) {
    if (json_is_false(v) && !(entry && json_object_get(entry, ch))) {
      if (muted->len) pc_buf_putc(muted, ',');
      pc_buf_puts(muted, ch);
    }
  }
  *quiet = quiet_now(e->doc);
}

/* ---- validation ---- */

static int valid_type_name(const char *k) {
  size_t n = strlen(k);
  if (n < 1 || n > 64) return 0;
  for (; *k; k++)
    if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
          *k == '_' || *k == '-' || *k == '.'))
      return 0;
  return 1;
}

static int valid_channel_name(const char *k) {
  size_t n = strlen(k);
  if (n < 1 || n > 32) return 0;
  for (; *k; k++)
    if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' || *k == '-'))
      return 0;
  return 1;
}

/* Checks a PUT body; a normalized copy (both keys present) in *out, or a
 * static message. */
static const char *validate(json_t *body, json_t **out) {
  *out = NULL;
  if (!json_is_object(body)) return "preferences must be a JSON object";
  const char *key;
  json_t *v;
  json_object_foreach(body, key, v) {
    if (strcmp(key, "channels") != 0 && strcmp(key, "quiet_hours") != 0)
      return "unknown field (allowed: channels, quiet_hours)";
  }
  json_t *ch = json_object_get(body, "channels");
  if (ch && !json_is_object(ch)) return "channels must be an object";
  if (ch && json_object_size(ch) > PREFS_MAX_TYPES) return "channels: at most 256 entries";
  const char *type;
  json_t *entry;
  if (ch) json_object_foreach(ch, type, entry) {
      if (!valid_type_name(type))
        return "channels: a notification type is 1-64 letters, digits, '_', '-' or '.'";
      if (!json_is_object(entry)) return "channels: each entry must be an object";
      if (json_object_size(entry) > PREFS_MAX_CHANNELS)
        return "channels: at most 16 channels per entry";
      json_object_foreach(entry, key, v) {
        if (!valid_channel_name(key))
          return "channels: a channel name is 1-32 lowercase letters, digits, '_' or '-'";
        if (!json_is_boolean(v)) return "channels: a channel is true or false";
      }
    }
  json_t *q = json_object_get(body, "quiet_hours");
  if (q && !json_is_null(q)) {
    if (!json_is_object(q)) return "quiet_hours must be an object or null";
    json_object_foreach(q, key, v) {
      if (strcmp(key, "start") != 0 && strcmp(key, "end") != 0 && strcmp(key, "tz") != 0)
        return "quiet_hours: unknown field (allowed: start, end, tz)";
    }
    if (parse_hhmm(json_string_value(json_object_get(q, "start"))) < 0 ||
        parse_hhmm(json_string_value(json_object_get(q, "end"))) < 0)
      return "quiet_hours: start and end are required, as \"HH:MM\" (00:00-23:59)";
    json_t *tz = json_object_get(q, "tz");
    int off;
    if (tz && (!json_is_string(tz) || parse_tz(json_string_value(tz), &off) < 0))
      return "quiet_hours: tz must be \"UTC\" or an offset like \"+05:30\"";
  }
  json_t *n = json_object();
  if (!n) return "out of memory";
  json_object_set_new(n, "channels", ch ? json_deep_copy(ch) : json_object());
  json_t *qn = q && !json_is_null(q) ? json_deep_copy(q) : json_null();
  if (json_is_object(qn) && !json_object_get(qn, "tz")) json_object_set_new(qn, "tz", json_string("UTC"));
  json_object_set_new(n, "quiet_hours", qn);
  *out = n;
  return NULL;
}

/* ---- routes ---- */

typedef struct prefs_job {
  nw_job base;
  notifd_req *req;
  char *user;
  char *json; /* PUT: the document; GET: what was found */
  int put, internal, found;
  int rc;
  char err[200];
} prefs_job;

static void job_free(prefs_job *pj) {
  free(pj->user);
  free(pj->json);
  free(pj);
}
static void job_release(nw_job *j) { job_free((prefs_job *)j); }

static void job_work(nw_job *j) {
  prefs_job *pj = (prefs_job *)j;
  inbox_store *st = j->s->store;
  if (pj->put) {
    pj->rc = st->ops->prefs_put(st, pj->user, pj->json, pj->err, sizeof pj->err);
  } else {
    pj->found = st->ops->prefs_get(st, pj->user, &pj->json, pj->err, sizeof pj->err);
    pj->rc = pj->found < 0 ? -1 : 0;
  }
}

static void job_done(nw_job *j) {
  prefs_job *pj = (prefs_job *)j;
  notif_ws *s = j->s;
  const notifd_api *api = s->api;
  const char *op[] = {pj->put ? "preferences_put" : "preferences_get",
                      pj->rc == 0 ? "ok" : "error"};
  api->metric_add(s->m_store, op, 1);
  if (pj->rc < 0) {
    api->log(s->self, NOTIFD_LOG_WARN, "inbox: %s for %s failed: %s", op[0], pj->user, pj->err);
    PC_RESPOND_ERROR_LIT(api, pj->req, 500, "the preferences store is unavailable");
    job_free(pj);
    return;
  }
  const char *doc = pj->put || pj->found ? pj->json : NULL;
  prefs_cache_put(s, pj->user, doc);
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_puts(&b, doc ? doc : DEFAULT_DOC);
  if (pj->internal && b.len > 0) {
    prefs_ent *e = pc_map_get(&s->prefs, pj->user);
    const json_t *d = e ? e->doc : NULL;
    const char *type = api->req_query(pj->req, "type");
    b.len--; /* reopen the object */
    pc_buf_puts(&b, quiet_now(d) ? ",\"quiet_now\":true" : ",\"quiet_now\":false");
    if (type && *type) pc_buf_puts(&b, email_allowed(s, d, type) ? ",\"email\":true" : ",\"email\":false");
    pc_buf_putc(&b, '}');
  }
  pc_respond_json(api, pj->req, 200, &b);
  pc_buf_free(&b);
  job_free(pj);
}

static void submit(notif_ws *s, prefs_job *pj) {
  pj->base.work = job_work;
  pj->base.done = job_done;
  pj->base.release = job_release;
  if (nw_job_submit(s, &pj->base) < 0) {
    PC_RESPOND_ERROR_LIT(s->api, pj->req, 503, "server is shutting down");
    job_free(pj);
  }
}

/* The path's user, which a token's subject must equal. */
static const char *path_user(notif_ws *s, notifd_req *req) {
  const notifd_api *api = s->api;
  const char *user = api->req_param(req, "user_id");
  const char *sub = api->req_auth_subject(req);
  if (!user || !*user) {
    PC_RESPOND_ERROR_LIT(api, req, 400, "user_id required");
    return NULL;
  }
  if (sub && strcmp(sub, user) != 0) {
    PC_RESPOND_ERROR_LIT(api, req, 403, "the token's user may not act for another user");
    return NULL;
  }
  return user;
}

static prefs_job *new_job(notifd_req *req, const char *user) {
  prefs_job *pj = calloc(1, sizeof *pj);
  if (!pj) return NULL;
  if (!(pj->user = strdup(user))) {
    free(pj);
    return NULL;
  }
  pj->req = req;
  return pj;
}

static void on_get(notifd_req *req, void *ud) {
  notif_ws *s = ud;
  const char *user = path_user(s, req);
  if (!user) return;
  prefs_job *pj = new_job(req, user);
  if (!pj) {
    PC_RESPOND_ERROR_LIT(s->api, req, 500, "out of memory");
    return;
  }
  submit(s, pj);
}

static void on_get_internal(notifd_req *req, void *ud) {
  notif_ws *s = ud;
  const char *user = s->api->req_param(req, "user_id");
  prefs_job *pj = user && *user ? new_job(req, user) : NULL;
  if (!pj) {
    if (user && *user) PC_RESPOND_ERROR_LIT(s->api, req, 500, "out of memory");
    else PC_RESPOND_ERROR_LIT(s->api, req, 400, "user_id required");
    return;
  }
  pj->internal = 1;
  submit(s, pj);
}

static void on_put(notifd_req *req, void *ud) {
  notif_ws *s = ud;
  const notifd_api *api = s->api;
  const char *user = path_user(s, req);
  if (!user) return;
  json_t *body = api->req_json_or_400(req);
  if (!body) return;
  json_t *norm = NULL;
  const char *why = validate(body, &norm);
  if (why) {
    pc_respond_error(api, req, 400, why, strlen(why));
    return;
  }
  prefs_job *pj = new_job(req, user);
  if (pj) pj->json = json_dumps(norm, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(norm);
  if (!pj || !pj->json) {
    if (pj) job_free(pj);
    PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    return;
  }
  pj->put = 1;
  submit(s, pj);
}

int prefs_register(notif_ws *s) {
  const notifd_api *api = s->api;
  notifd_route_opts user = {.size = sizeof user, .auth = s->auth, .max_body = PREFS_MAX_BODY};
  notifd_route_opts internal = {.size = sizeof internal, .auth = s->forward_auth};
  int rc = api->http_route(s->self, "GET", "/users/{user_id}/preferences", on_get, s, &user);
  if (rc == 0)
    rc = api->http_route(s->self, "PUT", "/users/{user_id}/preferences", on_put, s, &user);
  if (rc == 0)
    rc = api->http_route(s->self, "GET", "/internal/users/{user_id}/preferences",
                         on_get_internal, s, &internal);
  return rc;
}

void prefs_destroy(notif_ws *s) { pc_map_free(&s->prefs, ent_free); }
