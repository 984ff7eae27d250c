/* chat_ws internals shared by its source files. */
#ifndef CHAT_WS_H
#define CHAT_WS_H

#include <notifd/plugin.h>
#include <stdint.h>

/* Close code sent to a stream's sockets by POST /chat/streams/{id}/close:
 * an application code (RFC 6455 4000-4999) telling clients that live
 * delivery gave up on a message and they must reload the history. */
#define CHAT_WS_CLOSE_RELOAD 4001
#define CHAT_WS_CLOSE_RELOAD_REASON "retries exhausted, reload history"

typedef struct chat_ws {
  notifd_plugin *self;
  const notifd_api *api;
  notifd_ws_channel *ch;
  int32_t verify_stream_id;
  notifd_metric *forwards; /* chat_ws_forwards_total{result} */
  notifd_metric *closed;   /* chat_ws_stream_closes_total */
} chat_ws;

/* POST /chat/forward-to-websocket */
void chat_ws_on_forward(notifd_req *req, void *ud);
/* POST /chat/streams/{stream_id}/close */
void chat_ws_on_close_stream(notifd_req *req, void *ud);

#endif
