/* notifications_ws internals shared by its source files. */
#ifndef NOTIFICATIONS_WS_H
#define NOTIFICATIONS_WS_H

#include <notifd/plugin.h>
#include <stddef.h>
#include <stdint.h>

#include "pc_bind.h"
#include "pc_models.h"
#include "pc_plugin.h"

typedef struct notif_ws notif_ws;

/* One POST /notifications/<kind> route's context. */
typedef struct notif_route {
  notif_ws *s;
  const pc_notification_kind *kind;
} notif_route;

struct notif_ws {
  notifd_plugin *self;
  const notifd_api *api;
  notifd_ws_channel *ch;
  notifd_metric *forwards; /* notifications_ws_forwards_total{source,type,result} */
  const char *topics[2];   /* bus input: {topic, NULL} */
  notif_route routes[PC_NOTIFICATION_KINDS];
};

/* Builds the envelope frame {"notification_type","timestamp","payload"}
 * for a bound payload and publishes it to `user_id`.  Returns 0 with the
 * outcome in *pub (and the frame's length in *frame_len), -1 when Go's
 * marshaller would have refused the payload, -2 on OOM. */
int notif_deliver(notif_ws *s, const pc_notification_kind *kind, const pc_model *payload,
                  const char *user_id, size_t user_id_len, pc_publish *pub, size_t *frame_len);

/* Counts one notification: source "http" or "bus"; result delivered,
 * no_subscribers, partial, failed, invalid. */
void notif_count(notif_ws *s, const char *source, const pc_notification_kind *kind,
                 const char *result);
/* The result label for a publish outcome. */
const char *notif_result(const pc_publish *pub);

/* POST /notifications/<kind>; ud is a notif_route. */
void notif_on_http(notifd_req *req, void *ud);
/* Bus records on the configured topic. */
void notif_on_record(notifd_bus_msg *m, void *ud);

#endif
