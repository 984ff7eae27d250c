/* Dedupe / kv store: Redis (hiredis async on libevent) or embedded SQLite
 * with expiry.  Keys are "eventstore:<prefix>:<key>". Loop thread only. */
#ifndef ND_KV_H
#define ND_KV_H

#include <stdint.h>
#include <notifd/plugin.h>
#include "core/host.h"

int nd_kv_open(notifd_host *h, nd_kv **out, nd_errors *errs);
void nd_kv_free(nd_kv *kv);   /* pending callbacks are dropped, not called */
int nd_kv_ready(nd_kv *kv);

int nd_kv_claim(nd_kv *kv, const char *key, int64_t ttl_ms, notifd_kv_cb cb,
                void *ud);
int nd_kv_mark(nd_kv *kv, const char *key, int64_t ttl_ms, notifd_kv_cb cb,
               void *ud);
int nd_kv_exists(nd_kv *kv, const char *key, notifd_kv_cb cb, void *ud);

#endif
