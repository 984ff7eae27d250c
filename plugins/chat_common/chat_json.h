/* JSON text output and UTF-8 checks shared by the chat plugins. */
#ifndef CHAT_JSON_H
#define CHAT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"

/* Escaping flavours for chat_json_str. */
#define CHAT_JSON_PLAIN 0 /* escape only what JSON requires */
#define CHAT_JSON_GO    1 /* Go encoding/json: also <, >, &, U+2028/9; bad UTF-8 -> U+FFFD */

/* Appends `s` (n bytes) as a quoted JSON string. */
int chat_json_str(pc_buf *b, const char *s, size_t n, int flavour);
/* Appends "key": (quoted key followed by a colon), plain flavour. */
int chat_json_key(pc_buf *b, const char *key);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid
 * (overlongs, surrogates and values above U+10FFFF are invalid). */
size_t chat_utf8_seq(const unsigned char *s, size_t n);
/* 1 if all n bytes are valid UTF-8. */
int chat_utf8_valid(const char *s, size_t n);

#endif
