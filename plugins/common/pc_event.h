/* Reading the notification event stream (docs/events.md) on the consumer
 * side: the record's value, the headers that tell a channel to stay quiet,
 * and a bounded window of recently seen (user_id, id) pairs, since the
 * stream is at-least-once.  Shared by the channel plugins (webpush, email).
 *
 *   value   {"id":42,"user_id":"u1","notification_type":"...",
 *            "timestamp":"...","payload":{...}}
 *   headers notifd-delivered: decimal count of sockets reached (absent =
 *           unknown); notifd-muted: comma-separated channels turned off;
 *           notifd-quiet: "1" in the user's quiet hours. */
#ifndef PC_EVENT_H
#define PC_EVENT_H

#include <notifd/plugin.h>
#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"
#include "pc_jscan.h"

#define PC_EVENT_USER_MAX 256

typedef struct pc_event {
  int64_t id;       /* the inbox id, > 0 */
  pc_buf user_id;   /* unquoted, 1..PC_EVENT_USER_MAX bytes */
  pc_buf type;      /* unquoted notification_type, not empty */
  /* The members as written (spans into the parsed value, which must
   * outlive them): copy them to keep the producer's bytes exactly. */
  pc_jval id_v, type_v, timestamp_v, payload_v;
} pc_event;

void pc_event_init(pc_event *ev);
void pc_event_free(pc_event *ev);
/* Parses one record value.  0, or -1 with a static reason naming what is
 * wrong ("value is not a JSON object", "id must be a positive integer",
 * ...); out of memory is -1 with "out of memory". */
int pc_event_parse(const void *value, size_t len, pc_event *ev, const char **reason);
/* Appends the notification as the websocket frame had it:
 * {"id":..,"notification_type":..,"timestamp":..,"payload":..}. */
void pc_event_put_notification(const pc_event *ev, pc_buf *out);

/* Why `channel` should not fire for record `m`: "quiet" (notifd-quiet: 1),
 * "muted" (channel listed in notifd-muted), with `only_undelivered`
 * "delivered" (notifd-delivered is a number > 0); NULL = fire.  A
 * notifd-delivered that is not a decimal number counts as unknown. */
const char *pc_event_skip_reason(const notifd_api *api, notifd_bus_msg *m, const char *channel,
                                 int only_undelivered);

/* Recently seen (user_id, id) pairs: at most `max_entries`, each for at
 * most `max_age_ms`; the oldest is forgotten first.  Loop thread only. */
typedef struct pc_recent pc_recent;

pc_recent *pc_recent_new(size_t max_entries, int64_t max_age_ms);
void pc_recent_free(pc_recent *r);
/* 1 when the pair was claimed within the window (nothing changes), 0 when
 * it is claimed now, -1 out of memory (not claimed). */
int pc_recent_claim(pc_recent *r, const char *user_id, int64_t id, int64_t now_ms);
/* Forgets a claim (the work it stood for failed and will be retried). */
void pc_recent_forget(pc_recent *r, const char *user_id, int64_t id);

#endif
