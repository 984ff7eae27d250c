/* Config-declared notification types (README.md, "Config-declared types"):
 *
 *   types:
 *     - name: order-cancelled        # path segment and bus "type"
 *       notification_type: order_cancelled_notification  # default from name
 *       required: [order_id, reason] # top-level fields present and non-null
 *
 * POST /notifications/<name>?user_id=U with a JSON object body, and bus
 * records {"type":"<name>",...}, are stored, published and produced as
 * events exactly like the built-in types; the payload is the body as
 * compact JSON (whitespace outside strings removed, every other byte as
 * sent).  A body that is not an object, or lacks a required field, is a
 * 400 naming it (bus: dead letter invalid_payload). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifications_ws.h"

#define TYPES_MAX 64
#define REQUIRED_MAX 32

static int cfg_err(notif_ws *s, size_t i, const char *key, const char *msg, const char *v) {
  char at[256];
  snprintf(at, sizeof at, "types.%zu%s%s", i, key ? "." : "", key ? key : "");
  return pc_config_error(s->api, s->self, at, "%s%s%s%s", msg, v ? " (got '" : "", v ? v : "",
                         v ? "')" : "");
}

static int name_ok(const char *n, size_t max, int dash, int underscore) {
  size_t len = strlen(n);
  if (len < 1 || len > max) return 0;
  for (; *n; n++)
    if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || (dash && *n == '-') ||
          (underscore && *n == '_')))
      return 0;
  return 1;
}

const pc_notification_kind *types_find(notif_ws *s, const char *name, size_t n,
                                       const nw_type **custom) {
  if (custom) *custom = NULL;
  const pc_notification_kind *k = pc_notification_kind_find(name, n);
  if (k) return k;
  for (size_t i = 0; i < s->ntypes; i++) {
    const pc_notification_kind *t = &s->types[i].kind;
    if ((strlen(t->name) == n && memcmp(t->name, name, n) == 0) ||
        (strlen(t->notification_type) == n && memcmp(t->notification_type, name, n) == 0)) {
      if (custom) *custom = &s->types[i];
      return t;
    }
  }
  return NULL;
}

/* Appends a checked JSON value without the blanks between its tokens. */
static void put_compact(pc_buf *out, const char *p, size_t n) {
  int in_str = 0;
  size_t run = 0; /* start of the pending run of bytes to copy */
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      pc_buf_put(out, p + run, i - run);
      run = i + 1;
    }
  }
  pc_buf_put(out, p + run, n - run);
}

int types_payload(const nw_type *t, pc_jval v, pc_buf *out, pc_buf *err) {
  if (v.p[0] != '{') {
    pc_buf_puts(err, "the payload must be a JSON object");
    return -1;
  }
  for (size_t r = 0; r < t->nrequired; r++) {
    pc_jobj_iter it;
    pc_jval key, val;
    int found = 0;
    pc_jobj_begin(&it, v);
    while (!found && pc_jobj_next(&it, &key, &val)) {
      pc_buf k;
      pc_buf_init(&k);
      if (pc_json_unquote(key, &k) < 0) return -2;
      found = k.len == strlen(t->required[r]) && memcmp(k.data, t->required[r], k.len) == 0 &&
              val.p[0] != 'n';
      pc_buf_free(&k);
    }
    if (!found) {
      pc_buf_printf(err, "missing required field '%s'", t->required[r]);
      return err->oom ? -2 : -1;
    }
  }
  put_compact(out, v.p, v.n);
  return out->oom ? -2 : 0;
}

/* POST /notifications/<declared name>: the body checked as json.Decoder
 * reads it (the first value), then user_id, as for the built-in types. */
static void on_http(notifd_req *req, void *ud) {
  const nw_type *t = (const nw_type *)((char *)ud - offsetof(nw_type, route));
  notif_ws *s = t->route.s;
  const notifd_api *api = s->api;
  size_t len = 0, start = 0, end = 0;
  const char *body = api->req_body(req, &len);
  pc_buf err, payload;
  pc_buf_init(&err);
  pc_buf_init(&payload);
  int rc;
  if (pc_json_decoder_value(body ? body : "", body ? len : 0, &start, &end, &err) < 0) {
    rc = err.oom ? -2 : -1;
  } else {
    pc_jval v = {body + start, end - start};
    rc = types_payload(t, v, &payload, &err);
  }
  if (rc == 0 && !pc_buf_cstr(&payload)) rc = -2;
  if (rc < 0) {
    notif_count(s, "http", &t->kind, "invalid");
    if (rc == -2) PC_RESPOND_ERROR_LIT(api, req, 500, "out of memory");
    else pc_respond_error(api, req, 400, err.data ? err.data : "", err.len);
  } else {
    notif_http_submit(s, req, &t->kind, NULL, payload.data, api->req_query(req, "user_id"));
  }
  pc_buf_free(&err);
  pc_buf_free(&payload);
}

static int read_type(notif_ws *s, size_t i, nw_type *t) {
  const notifd_api *api = s->api;
  char key[64];
  const char *name = NULL, *ntype = NULL;
  snprintf(key, sizeof key, "types.%zu.name", i);
  if (api->config_string(s->self, key, NULL, &name) < 0) return NOTIFD_EINVAL;
  if (!name) return cfg_err(s, i, "name", "required", NULL);
  if (!name_ok(name, 48, 1, 0))
    return cfg_err(s, i, "name", "1-48 lowercase letters, digits or '-'", name);
  if (pc_notification_kind_find(name, strlen(name)) || strcmp(name, "read") == 0 ||
      strcmp(name, "subscribe") == 0)
    return cfg_err(s, i, "name", "a built-in type or route has this name", name);
  snprintf(key, sizeof key, "types.%zu.notification_type", i);
  if (api->config_string(s->self, key, NULL, &ntype) < 0) return NOTIFD_EINVAL;
  char *nt;
  if (ntype) {
    if (!name_ok(ntype, 64, 0, 1))
      return cfg_err(s, i, "notification_type", "1-64 lowercase letters, digits or '_'", ntype);
    nt = strdup(ntype);
  } else {
    size_t n = strlen(name);
    nt = malloc(n + sizeof "_notification");
    if (nt) {
      for (size_t k = 0; k < n; k++) nt[k] = name[k] == '-' ? '_' : name[k];
      memcpy(nt + n, "_notification", sizeof "_notification");
    }
  }
  if (!nt) return NOTIFD_ENOMEM;
  t->kind.name = name;
  t->kind.notification_type = nt;
  if (pc_notification_kind_find(nt, strlen(nt)))
    return cfg_err(s, i, "notification_type", "a built-in type has this name", nt);
  for (size_t k = 0; k < i; k++)
    if (strcmp(s->types[k].kind.name, name) == 0 ||
        strcmp(s->types[k].kind.notification_type, nt) == 0)
      return cfg_err(s, i, NULL, "declared twice (name or notification_type)", name);

  size_t n = 0;
  snprintf(key, sizeof key, "types.%zu.required", i);
  if (api->config_list_len(s->self, key, &n) < 0) return NOTIFD_EINVAL;
  if (n > REQUIRED_MAX) return cfg_err(s, i, "required", "at most 32 fields", NULL);
  t->required = calloc(n ? n : 1, sizeof *t->required);
  if (!t->required) return NOTIFD_ENOMEM;
  for (size_t k = 0; k < n; k++) {
    const char *f = NULL;
    if (api->config_list_string(s->self, key, k, &f) < 0) return NOTIFD_EINVAL;
    if (!*f || strlen(f) > 128) {
      char sub[48];
      snprintf(sub, sizeof sub, "required.%zu", k); /* dotted: the host shows [k] */
      return cfg_err(s, i, sub, "a field name is 1-128 bytes", f);
    }
    t->required[t->nrequired++] = f;
  }
  return 0;
}

int types_init(notif_ws *s) {
  size_t n = 0;
  if (s->api->config_list_len(s->self, "types", &n) < 0) return NOTIFD_EINVAL;
  if (n == 0) return 0;
  if (n > TYPES_MAX) {
    return pc_config_error(s->api, s->self, "types", "at most %d entries", TYPES_MAX);
  }
  s->types = calloc(n, sizeof *s->types);
  if (!s->types) return NOTIFD_ENOMEM;
  notifd_route_opts ro = {.size = sizeof ro, .auth = s->forward_auth};
  for (size_t i = 0; i < n; i++) {
    nw_type *t = &s->types[i];
    s->ntypes = i + 1; /* freed by types_destroy even when this one fails */
    int rc = read_type(s, i, t);
    if (rc < 0) return rc;
    t->route.s = s;
    t->route.kind = &t->kind;
    char path[80];
    snprintf(path, sizeof path, "/notifications/%s", t->kind.name);
    if ((rc = s->api->http_route(s->self, "POST", path, on_http, &t->route, &ro)) < 0) return rc;
  }
  return 0;
}

void types_destroy(notif_ws *s) {
  for (size_t i = 0; i < s->ntypes; i++) {
    free((char *)s->types[i].kind.notification_type);
    free(s->types[i].required);
  }
  free(s->types);
  s->types = NULL;
  s->ntypes = 0;
}
