/* Incremental UTF-8 validator for websocket text messages, whose code
 * points may be split across frames and across reads. */
#ifndef ND_WS_UTF8_H
#define ND_WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define ND_UTF8_ACCEPT 0u
#define ND_UTF8_REJECT 8u

/* Feeds n bytes; returns the new state (ND_UTF8_REJECT as soon as the
 * input can no longer be valid, so a bad message fails fast).  A complete
 * message is valid when the final state is ND_UTF8_ACCEPT. */
uint32_t nd_ws_utf8_feed(uint32_t state, const uint8_t *p, size_t n);

#endif
