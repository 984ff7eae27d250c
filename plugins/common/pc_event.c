/* The notification event stream, consumer side (see pc_event.h). */
#include "pc_event.h"

#include <stdlib.h>
#include <string.h>

/* ---- the value ---------------------------------------------------------- */

void pc_event_init(pc_event *ev) {
  memset(ev, 0, sizeof *ev);
  pc_buf_init(&ev->user_id);
  pc_buf_init(&ev->type);
}

void pc_event_free(pc_event *ev) {
  pc_buf_free(&ev->user_id);
  pc_buf_free(&ev->type);
}

/* A JSON integer > 0 that fits int64 (no sign, fraction or exponent). */
static int parse_id(pc_jval v, int64_t *out) {
  if (v.n == 0 || v.n > 18 || v.p[0] < '1' || v.p[0] > '9') return -1;
  int64_t x = 0;
  for (size_t i = 0; i < v.n; i++) {
    if (v.p[i] < '0' || v.p[i] > '9') return -1;
    x = x * 10 + (v.p[i] - '0');
  }
  *out = x;
  return 0;
}

static int is_string(pc_jval v) { return v.n >= 2 && v.p[0] == '"'; }

int pc_event_parse(const void *value, size_t len, pc_event *ev, const char **reason) {
  const char *p = value;
  pc_buf err, key;
  pc_buf_init(&err);
  pc_buf_init(&key);
  int bad = p == NULL || pc_json_check_document(p, len, &err) < 0;
  pc_buf_free(&err);
  size_t at = bad ? 0 : pc_json_skip_ws(p, len, 0);
  if (bad || at >= len || p[at] != '{') {
    *reason = "value is not a JSON object";
    return -1;
  }
  pc_jval obj, k, v;
  pc_json_value_at(p, len, at, &obj);
  pc_jobj_iter it;
  pc_jobj_begin(&it, obj);
  int have_id = 0, have_user = 0, have_type = 0, have_ts = 0, have_payload = 0;
  while (pc_jobj_next(&it, &k, &v)) {
    pc_buf_reset(&key);
    if (pc_json_unquote(k, &key) < 0 || !pc_buf_cstr(&key)) break;
    const char *name = key.data ? key.data : "";
    if (strcmp(name, "id") == 0) {
      have_id = parse_id(v, &ev->id) == 0;
      ev->id_v = v;
    } else if (strcmp(name, "user_id") == 0 && is_string(v)) {
      pc_buf_reset(&ev->user_id);
      have_user = pc_json_unquote(v, &ev->user_id) == 0;
    } else if (strcmp(name, "notification_type") == 0 && is_string(v)) {
      pc_buf_reset(&ev->type);
      have_type = pc_json_unquote(v, &ev->type) == 0;
      ev->type_v = v;
    } else if (strcmp(name, "timestamp") == 0 && is_string(v)) {
      have_ts = 1;
      ev->timestamp_v = v;
    } else if (strcmp(name, "payload") == 0) {
      have_payload = 1;
      ev->payload_v = v;
    }
  }
  int oom = key.oom || ev->user_id.oom || ev->type.oom;
  pc_buf_free(&key);
  if (oom) *reason = "out of memory";
  else if (!have_id) *reason = "id must be a positive integer";
  else if (!have_user || ev->user_id.len == 0 || ev->user_id.len > PC_EVENT_USER_MAX ||
           memchr(ev->user_id.data, '\0', ev->user_id.len))
    *reason = "user_id must be a string of 1..256 bytes without NUL";
  else if (!have_type || ev->type.len == 0 || memchr(ev->type.data, '\0', ev->type.len))
    *reason = "notification_type must be a non-empty string without NUL";
  else if (!have_ts) *reason = "timestamp must be a string";
  else if (!have_payload) *reason = "payload is missing";
  else return 0;
  return -1;
}

void pc_event_put_notification(const pc_event *ev, pc_buf *out) {
  pc_buf_puts(out, "{\"id\":");
  pc_buf_put(out, ev->id_v.p, ev->id_v.n);
  pc_buf_puts(out, ",\"notification_type\":");
  pc_buf_put(out, ev->type_v.p, ev->type_v.n);
  pc_buf_puts(out, ",\"timestamp\":");
  pc_buf_put(out, ev->timestamp_v.p, ev->timestamp_v.n);
  pc_buf_puts(out, ",\"payload\":");
  pc_buf_put(out, ev->payload_v.p, ev->payload_v.n);
  pc_buf_putc(out, '}');
}

/* ---- the headers ------------------------------------------------------------ */

/* 1 when the comma-separated `list` names `item` (blanks around names
 * ignored). */
static int list_has(const char *list, size_t n, const char *item) {
  size_t want = strlen(item), i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && list[j] != ',') j++;
    size_t a = i, b = j;
    while (a < b && (list[a] == ' ' || list[a] == '\t')) a++;
    while (b > a && (list[b - 1] == ' ' || list[b - 1] == '\t')) b--;
    if (b - a == want && memcmp(list + a, item, want) == 0) return 1;
    i = j + 1;
  }
  return 0;
}

const char *pc_event_skip_reason(const notifd_api *api, notifd_bus_msg *m, const char *channel,
                                 int only_undelivered) {
  size_t n = 0;
  const char *v = api->msg_header(m, "notifd-quiet", &n);
  if (v && n == 1 && v[0] == '1') return "quiet";
  v = api->msg_header(m, "notifd-muted", &n);
  if (v && list_has(v, n, channel)) return "muted";
  if (!only_undelivered) return NULL;
  v = api->msg_header(m, "notifd-delivered", &n);
  if (!v || n == 0 || n > 10) return NULL;
  int nonzero = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return NULL; /* unknown */
    nonzero |= v[i] != '0';
  }
  return nonzero ? "delivered" : NULL;
}

/* ---- the window of recent ids ------------------------------------------------ */

typedef struct recent_entry {
  char *user;     /* NULL = free slot */
  int64_t id, at_ms;
  uint32_t hash;
  int32_t next;   /* next slot in the bucket, -1 = end */
} recent_entry;

struct pc_recent {
  recent_entry *e;
  size_t cap, pos; /* e[pos] is the oldest slot (overwritten next) */
  int32_t *bucket;
  size_t nbuckets; /* a power of two */
  int64_t max_age_ms;
};

static uint32_t recent_hash(const char *user, int64_t id) {
  uint32_t h = 2166136261u;
  for (const unsigned char *s = (const unsigned char *)user; *s; s++) h = (h ^ *s) * 16777619u;
  for (int i = 0; i < 8; i++) h = (h ^ (uint32_t)((uint64_t)id >> (i * 8) & 0xff)) * 16777619u;
  return h;
}

pc_recent *pc_recent_new(size_t max_entries, int64_t max_age_ms) {
  if (max_entries == 0 || max_entries > (1u << 28)) return NULL;
  pc_recent *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->cap = max_entries;
  r->max_age_ms = max_age_ms;
  r->nbuckets = 16;
  while (r->nbuckets < 2 * max_entries) r->nbuckets *= 2;
  r->e = calloc(r->cap, sizeof *r->e);
  r->bucket = malloc(r->nbuckets * sizeof *r->bucket);
  if (!r->e || !r->bucket) {
    pc_recent_free(r);
    return NULL;
  }
  for (size_t i = 0; i < r->nbuckets; i++) r->bucket[i] = -1;
  return r;
}

void pc_recent_free(pc_recent *r) {
  if (!r) return;
  for (size_t i = 0; r->e && i < r->cap; i++) free(r->e[i].user);
  free(r->e);
  free(r->bucket);
  free(r);
}

/* Frees slot `i` and takes it out of its bucket. */
static void recent_drop(pc_recent *r, int32_t i) {
  int32_t *link = &r->bucket[r->e[i].hash & (r->nbuckets - 1)];
  while (*link != -1 && *link != i) link = &r->e[*link].next;
  if (*link == i) *link = r->e[i].next;
  free(r->e[i].user);
  r->e[i].user = NULL;
}

static int32_t recent_find(pc_recent *r, const char *user, int64_t id, uint32_t h) {
  for (int32_t i = r->bucket[h & (r->nbuckets - 1)]; i != -1; i = r->e[i].next)
    if (r->e[i].hash == h && r->e[i].id == id && strcmp(r->e[i].user, user) == 0) return i;
  return -1;
}

int pc_recent_claim(pc_recent *r, const char *user_id, int64_t id, int64_t now_ms) {
  uint32_t h = recent_hash(user_id, id);
  int32_t found = recent_find(r, user_id, id, h);
  if (found != -1) {
    if (now_ms - r->e[found].at_ms <= r->max_age_ms) return 1;
    recent_drop(r, found); /* too old: claimed again below */
  }
  char *copy = strdup(user_id);
  if (!copy) return -1;
  int32_t i = (int32_t)r->pos;
  if (r->e[i].user) recent_drop(r, i);
  r->e[i] = (recent_entry){copy, id, now_ms, h, r->bucket[h & (r->nbuckets - 1)]};
  r->bucket[h & (r->nbuckets - 1)] = i;
  r->pos = (r->pos + 1) % r->cap;
  return 0;
}

void pc_recent_forget(pc_recent *r, const char *user_id, int64_t id) {
  int32_t i = recent_find(r, user_id, id, recent_hash(user_id, id));
  if (i != -1) recent_drop(r, i);
}
