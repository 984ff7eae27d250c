/* Event bus: Kafka (librdkafka) or embedded (SQLite) behind one interface
 * with ack/retry/drop semantics, ordered per partition, dead letters.
 * Loop thread only. */
#ifndef ND_BUS_H
#define ND_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <notifd/plugin.h>
#include "core/host.h"

/* Opens the backend chosen by config (backends.kafka present = Kafka). */
int nd_bus_open(notifd_host *h, nd_bus **out, nd_errors *errs);
/* Starts consuming for every registered consumer (after plugin start). */
int nd_bus_start(nd_bus *b);
/* Graceful: stop fetching, wait for in-flight handlers (until the host's
 * deadline), commit what is finished, then `done(ud)` on the loop. */
void nd_bus_stop(nd_bus *b, void (*done)(void *ud), void *ud);
void nd_bus_free(nd_bus *b);      /* abrupt; commits nothing new */
int nd_bus_ready(nd_bus *b);      /* 1 when the backend is reachable */

int nd_bus_consume(nd_bus *b, notifd_plugin *owner,
                   const notifd_consumer_opts *opts, notifd_consumer **out);
int nd_bus_produce(nd_bus *b, const char *topic, const void *key,
                   size_t key_len, const void *value, size_t value_len,
                   const char *const *headers, notifd_produce_cb cb, void *ud);

const char *nd_msg_topic(notifd_bus_msg *m);
int32_t nd_msg_partition(notifd_bus_msg *m);
int64_t nd_msg_offset(notifd_bus_msg *m);
const void *nd_msg_key(notifd_bus_msg *m, size_t *len);
const void *nd_msg_value(notifd_bus_msg *m, size_t *len);
const void *nd_msg_header(notifd_bus_msg *m, const char *name, size_t *len);
int64_t nd_msg_timestamp_ms(notifd_bus_msg *m);
int32_t nd_msg_attempt(notifd_bus_msg *m);
int nd_bus_ack(notifd_bus_msg *m);
int nd_bus_retry(notifd_bus_msg *m, const char *error);
int nd_bus_drop(notifd_bus_msg *m, const char *reason);

#endif
