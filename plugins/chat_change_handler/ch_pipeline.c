/* One record's way through the change handler (contract 2.9, 4.2, with its
 * gaps closed):
 *
 *   parse -> tombstone / heartbeat / transaction marker: ack, counted as ignored
 *         -> malformed: drop (dead letter) with the reason, dropped{invalid_format}
 *         -> u, d, r, ...: ack, success{event_type=op} (nothing to deliver)
 *         -> c: dedupe check (kv_exists on the record key verbatim)
 *               -> seen: ack, dropped{dropped_from_event_store_validation}
 *               -> forward to chat_ws and notifications_ws concurrently
 *                    -> both ok: kv_mark, ack, success{c}
 *                    -> else: failed{c}, bus_retry (only failed targets are
 *                       called again); after the last attempt the stream's
 *                       sockets are closed and the host dead-letters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_internal.h"
#include "pc_buf.h"

static void link_event(ch_event *ev) {
  ch_plugin *pl = ev->pl;
  ev->next = pl->events;
  if (pl->events) pl->events->prev = ev;
  pl->events = ev;
}

static void unlink_event(ch_event *ev) {
  ch_plugin *pl = ev->pl;
  if (ev->prev) ev->prev->next = ev->next;
  else if (pl->events == ev) pl->events = ev->next;
  if (ev->next) ev->next->prev = ev->prev;
  ev->prev = ev->next = NULL;
}

void ch_event_free(ch_event *ev) {
  chat_change_free(&ev->change);
  free(ev->key);
  free(ev->body);
  free(ev);
}

static void count(notifd_metric *m, const ch_plugin *pl, const char *label) {
  const char *v[] = {label};
  pl->api->metric_add(m, v, 1);
}

/* The record is finished: `m` must not be used afterwards. */
static void retire(ch_event *ev) {
  unlink_event(ev);
  ch_event_free(ev);
}

static void ack_success(ch_event *ev) {
  ch_plugin *pl = ev->pl;
  count(pl->m.success, pl, ev->change.op);
  ch_memo_forget(pl->memo, ev->m, pl->api);
  pl->api->bus_ack(ev->m);
  retire(ev);
}

static void drop_record(ch_plugin *pl, notifd_bus_msg *m, const char *detail) {
  const notifd_api *api = pl->api;
  count(pl->m.dropped, pl, "invalid_format");
  api->log(pl->self, NOTIFD_LOG_WARN, "dropping %s/%d@%lld: %s", api->msg_topic(m),
           (int)api->msg_partition(m), (long long)api->msg_offset(m), detail);
  ch_memo_forget(pl->memo, m, api);
  api->bus_drop(m, detail);
}

static void fail_attempt(ch_event *ev, const char *error) {
  ch_plugin *pl = ev->pl;
  const notifd_api *api = pl->api;
  count(pl->m.failed, pl, ev->change.op);
  api->log(pl->self, NOTIFD_LOG_WARN, "delivery of %s (attempt %d) failed: %s",
           ev->change.msg.message_id, (int)api->msg_attempt(ev->m), error);
  ch_memo_put(pl->memo, ev->m, api, ev->done);
  /* On the last attempt the host calls ch_on_exhausted from here. */
  api->bus_retry(ev->m, error);
  retire(ev);
}

/* ---- after forwarding ---- */

static void on_marked(int32_t result, void *ud) {
  ch_event *ev = ud;
  if (result < 0)
    ev->pl->api->log(ev->pl->self, NOTIFD_LOG_WARN,
                     "dedupe mark of %s failed (%d): a redelivery would be sent again", ev->key,
                     (int)result);
  ack_success(ev);
}

/* A target refused the record for its size: retries would get the same
 * answer, and closing the conversation would punish every other message
 * in it, so the record goes to the dead-letter topic at once. */
static void refuse_too_large(ch_event *ev) {
  ch_plugin *pl = ev->pl;
  const notifd_api *api = pl->api;
  count(pl->m.failed, pl, ev->change.op);
  api->log(pl->self, NOTIFD_LOG_ERROR, "delivery of %s refused, dead-lettered: %s",
           ev->change.msg.message_id, ev->err);
  ch_memo_forget(pl->memo, ev->m, api);
  api->bus_drop(ev->m, ev->err);
  retire(ev);
}

void ch_forward_finished(ch_event *ev) {
  ch_plugin *pl = ev->pl;
  if (ev->too_large && (ev->done | ev->too_large) == CH_ALL_TARGETS) {
    refuse_too_large(ev);
    return;
  }
  if (ev->done != CH_ALL_TARGETS) {
    fail_attempt(ev, ev->err[0] ? ev->err : "delivery failed");
    return;
  }
  if (!pl->dedupe) {
    ack_success(ev);
    return;
  }
  /* Mark only after success, as the Go event store did; the callback may
   * run before kv_mark returns, so `ev` is not touched after a 0. */
  int rc = pl->api->kv_mark(pl->self, ev->key, pl->dedupe_ttl_ms, on_marked, ev);
  if (rc < 0) on_marked(rc, ev);
}

/* ---- dedupe check ---- */

static void on_exists(int32_t result, void *ud) {
  ch_event *ev = ud;
  ch_plugin *pl = ev->pl;
  if (result == 1) {
    count(pl->m.dropped, pl, "dropped_from_event_store_validation");
    ch_memo_forget(pl->memo, ev->m, pl->api);
    pl->api->bus_ack(ev->m);
    retire(ev);
  } else if (result < 0) {
    /* Only under the fail-closed kv policy: better late than twice. */
    fail_attempt(ev, "dedupe store unavailable");
  } else {
    ch_forward(ev);
  }
}

/* ---- entry points ---- */

void ch_on_record(notifd_bus_msg *m, void *ud) {
  ch_plugin *pl = ud;
  const notifd_api *api = pl->api;
  ch_event *ev = calloc(1, sizeof *ev);
  if (!ev) {
    api->bus_retry(m, "out of memory");
    return;
  }
  ev->pl = pl;
  ev->m = m;
  size_t vlen = 0, klen = 0;
  const void *value = api->msg_value(m, &vlen);
  chat_change_opts o = {pl->forward_reads};
  chat_change_parse(value, vlen, &o, &ev->change);
  switch (ev->change.kind) {
  case CHAT_CHANGE_IGNORE:
    count(pl->m.ignored, pl, ev->change.what);
    ch_event_free(ev);
    api->bus_ack(m);
    return;
  case CHAT_CHANGE_DROP:
    drop_record(pl, m, ev->change.detail);
    ch_event_free(ev);
    return;
  case CHAT_CHANGE_SKIP:
    count(pl->m.success, pl, ev->change.op);
    ch_event_free(ev);
    api->bus_ack(m);
    return;
  case CHAT_CHANGE_FORWARD: break;
  default:
    ch_event_free(ev);
    api->bus_retry(m, "out of memory");
    return;
  }
  const void *key = api->msg_key(m, &klen);
  const char *why = NULL;
  if (chat_change_key_ok(key, klen, (size_t)pl->max_key_bytes, &why) < 0) {
    drop_record(pl, m, why); /* no key, no dedupe: Go dropped these too */
    ch_event_free(ev);
    return;
  }
  pc_buf b;
  pc_buf_init(&b);
  chat_message_gojson(&ev->change.msg, &b); /* parsing checked the date range */
  ev->body = pc_buf_steal(&b, &ev->body_len);
  ev->key = chat_strndup(key, klen);
  if (!ev->body || !ev->key) {
    ch_event_free(ev);
    api->bus_retry(m, "out of memory");
    return;
  }
  if (api->msg_attempt(m) > 1) ev->done = ch_memo_get(pl->memo, m, api);
  link_event(ev);
  if (!pl->dedupe) {
    ch_forward(ev);
    return;
  }
  int rc = api->kv_exists(pl->self, ev->key, on_exists, ev);
  if (rc < 0) fail_attempt(ev, "dedupe store unavailable");
}

void ch_on_exhausted(notifd_bus_msg *m, const char *error, void *ud) {
  ch_plugin *pl = ud;
  const notifd_api *api = pl->api;
  ch_memo_forget(pl->memo, m, api);
  pl->api->metric_add(pl->m.exhausted, NULL, 1);
  size_t vlen = 0;
  const void *value = api->msg_value(m, &vlen);
  chat_change_opts o = {pl->forward_reads};
  chat_change c;
  chat_change_parse(value, vlen, &o, &c);
  const char *stream = c.kind == CHAT_CHANGE_FORWARD ? c.msg.stream_id : NULL;
  api->log(pl->self, NOTIFD_LOG_ERROR,
           "giving up on %s/%d@%lld (message %s, stream %s) after %d attempts: %s%s",
           api->msg_topic(m), (int)api->msg_partition(m), (long long)api->msg_offset(m),
           c.kind == CHAT_CHANGE_FORWARD ? c.msg.message_id : "?", stream ? stream : "?",
           (int)api->msg_attempt(m), error ? error : "",
           stream && pl->close_on_exhausted ? "; closing the stream's sockets" : "");
  /* Clients whose socket closes reload the history, so nothing is lost
   * for them even though live delivery gave up. */
  if (stream && pl->close_on_exhausted) ch_close_stream(pl, stream);
  chat_change_free(&c);
}
