/* Server-generated message ids in the shape of a MongoDB ObjectId (24
 * lowercase hex: 4-byte big-endian seconds, 5 random bytes per generator,
 * 3-byte counter), so ids look the same whichever store made them and
 * sort roughly by creation time. */
#ifndef CHAT_OID_H
#define CHAT_OID_H

#include <stdint.h>

#define CHAT_OID_HEX_LEN 24

typedef struct chat_oid_gen {
  unsigned char random[5];
  uint32_t counter;
} chat_oid_gen;

/* Seeds from the kernel's random source: 0, or -1 if it is unavailable. */
int chat_oid_gen_init(chat_oid_gen *g);
/* Not thread-safe: one generator per thread (the chat plugins use theirs
 * on the loop thread). */
void chat_oid_next(chat_oid_gen *g, int64_t now_ms, char out[CHAT_OID_HEX_LEN + 1]);
/* 1 if s is exactly 24 hex digits (either case). */
int chat_oid_is_hex(const char *s);

#endif
