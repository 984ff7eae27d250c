/* Milliseconds since the Unix epoch <-> RFC 3339 text, over the whole
 * range Go's JSON encoder accepts (years 0000..9999), without libc time
 * zones (pure arithmetic, thread-safe). */
#ifndef CHAT_TIME_H
#define CHAT_TIME_H

#include <stdint.h>

/* Go's zero time.Time, 0001-01-01T00:00:00Z, in Unix milliseconds. */
#define CHAT_TIME_ZERO_MS (-62135596800000LL)
/* Bounds of years 0000..9999 in Unix milliseconds. */
#define CHAT_TIME_MIN_MS (-62167219200000LL)
#define CHAT_TIME_MAX_MS (253402300799999LL)

#define CHAT_TIME_TEXT_MAX 32

/* RFC 3339 in UTC as Go's encoding/json writes a time.Time read from a
 * BSON date: "2006-01-02T15:04:05.12Z" (at most 3 fractional digits,
 * trailing zeros trimmed, none for a whole second; the same text the chat
 * websocket frames carry).  Returns 0, or -1 when out of range. */
int chat_time_format(int64_t ms, char out[CHAT_TIME_TEXT_MAX]);
/* RFC 3339 / ISO 8601 as used by Go and Extended JSON: date 'T' time,
 * optional fraction (truncated to ms), and 'Z' or +hh:mm / +hhmm.  The
 * whole string must match.  Returns 0, or -1 if malformed. */
int chat_time_parse(const char *s, int64_t *ms);
/* Wall clock now, in ms. */
int64_t chat_time_now_ms(void);

#endif
