/* Notifications from the bus (README.md, "Bus topic"): one JSON record
 * {"type","user_id","payload"} per notification, validated like the HTTP
 * path.  A record that can never be delivered is dropped at once (with a
 * fixed reason code, the detail in the log), so poison never blocks the
 * partition.  A valid record is stored in the inbox, then published, then
 * acked (a store failure asks for a redelivery).  No subscriber, or a
 * socket cut off as a slow consumer, still acks: the notification is in
 * the inbox, and a retry would duplicate it on the sockets that did get it. */
#include <string.h>

#include "notifications_ws.h"
#include "pc_jscan.h"

static int key_is(pc_jval key, const char *name) {
  size_t n = strlen(name);
  return key.n == n + 2 && memcmp(key.p + 1, name, n) == 0;
}

static void drop(notif_ws *s, notifd_bus_msg *m, const pc_notification_kind *kind,
                 const char *reason, const char *detail) {
  const notifd_api *api = s->api;
  /* The detail may quote the record: bounded so a huge value cannot flood the log. */
  api->log(s->self, NOTIFD_LOG_WARN, "dropping record %s[%d]@%lld: %s%s%.300s", api->msg_topic(m),
           api->msg_partition(m), (long long)api->msg_offset(m), reason, detail ? ": " : "",
           detail ? detail : "");
  notif_count(s, "bus", kind, "invalid");
  api->bus_drop(m, reason);
}

/* Stored and published: ack; the store failed: redeliver later. */
static void record_done(notif_ws *s, notif_item *it, int rc, const pc_publish *pub, void *ud) {
  notifd_bus_msg *m = ud;
  if (rc < 0) {
    notif_count(s, "bus", it->kind, "failed");
    s->api->bus_retry(m, it->err);
    return;
  }
  notif_count(s, "bus", it->kind, notif_result(pub));
  s->api->bus_ack(m);
}

void notif_on_record(notifd_bus_msg *m, void *ud) {
  notif_ws *s = ud;
  const notifd_api *api = s->api;
  size_t len = 0;
  const char *value = api->msg_value(m, &len);
  if (!value || !len) {
    drop(s, m, NULL, "empty_value", NULL);
    return;
  }
  pc_buf err, user, compact;
  pc_buf_init(&err);
  pc_buf_init(&user);
  pc_buf_init(&compact);
  if (pc_json_check_document(value, len, &err) < 0) {
    if (err.oom) api->bus_retry(m, "out of memory");
    else drop(s, m, NULL, "invalid_json", pc_buf_cstr(&err));
    goto done;
  }
  pc_jval doc;
  pc_json_value_at(value, len, 0, &doc);
  if (doc.p[0] != '{') {
    drop(s, m, NULL, "not_an_object", NULL);
    goto done;
  }
  pc_jval key, val, type = {0}, uid = {0}, payload = {0};
  pc_jobj_iter it;
  pc_jobj_begin(&it, doc);
  while (pc_jobj_next(&it, &key, &val)) {
    if (key_is(key, "type")) type = val;
    else if (key_is(key, "user_id")) uid = val;
    else if (key_is(key, "payload")) payload = val;
  }

  const pc_notification_kind *kind = NULL;
  const nw_type *custom = NULL;
  if (!type.n || type.p[0] != '"') {
    drop(s, m, NULL, "missing_type", NULL);
    goto done;
  }
  pc_buf tname;
  pc_buf_init(&tname);
  if (pc_json_unquote(type, &tname) == 0 && pc_buf_cstr(&tname))
    kind = types_find(s, tname.data, tname.len, &custom);
  if (!kind) {
    drop(s, m, NULL, "unknown_type", tname.oom ? NULL : pc_buf_cstr(&tname));
    pc_buf_free(&tname);
    goto done;
  }
  pc_buf_free(&tname);

  /* user_id from the record, else from its key. */
  if (uid.n && uid.p[0] == '"') {
    if (pc_json_unquote(uid, &user) < 0) {
      api->bus_retry(m, "out of memory");
      goto done;
    }
  } else if (uid.n && uid.p[0] != 'n') {
    drop(s, m, kind, "invalid_user_id", "user_id is not a string");
    goto done;
  }
  if (user.len == 0) {
    size_t klen = 0;
    const void *k = api->msg_key(m, &klen);
    if (k && klen) pc_buf_put(&user, k, klen);
  }
  if (user.len == 0 || !pc_buf_cstr(&user)) {
    if (user.oom) api->bus_retry(m, "out of memory");
    else drop(s, m, kind, "missing_user_id", NULL);
    goto done;
  }
  const char *bad = memchr(user.data, '\0', user.len) ? "user_id: no control characters"
                                                      : notif_user_id_problem(user.data, user.len);
  if (bad) {
    drop(s, m, kind, "invalid_user_id", bad);
    goto done;
  }
  if (!payload.n) {
    drop(s, m, kind, "missing_payload", NULL);
    goto done;
  }
  pc_model model;
  int rc = custom ? types_payload(custom, payload, &compact, &err)
                  : pc_bind_value(kind->model, payload, &model, &err);
  if (rc == PC_BIND_NOMEM || (custom && rc == 0 && !pc_buf_cstr(&compact))) {
    if (rc == 0 && !custom) pc_model_free(&model);
    api->bus_retry(m, "out of memory");
    goto done;
  }
  if (rc != PC_BIND_OK) {
    drop(s, m, kind, "invalid_payload", pc_buf_cstr(&err));
    goto done;
  }
  if (memchr(user.data, '\0', user.len)) { /* no socket can have such a key: as before */
    if (!custom) pc_model_free(&model);
    notif_count(s, "bus", kind, "no_subscribers");
    api->bus_ack(m);
    goto done;
  }
  if (s->forward_url) { /* bus_input: forward - the owning instance stores it */
    if (!custom) pc_model_free(&model);
    forward_record(s, m, kind, user.data, payload);
    goto done;
  }
  rc = notif_submit(s, kind, custom ? NULL : &model, compact.data, user.data, record_done, m);
  if (!custom) pc_model_free(&model);
  if (rc == -2) {
    api->bus_retry(m, "out of memory");
    goto done;
  }
  if (rc == -1) {
    drop(s, m, kind, "unserializable_payload", "a time's zone offset is 24h or more");
    goto done;
  }
done:
  pc_buf_free(&err);
  pc_buf_free(&user);
  pc_buf_free(&compact);
}
