/* The conversation id both participants compute (contract section 2.6):
 * sort the two user ids by bytes, concatenate without a separator,
 * SHA-256, lowercase hex, first 16 characters. */
#ifndef CHAT_STREAM_ID_H
#define CHAT_STREAM_ID_H

#include <stddef.h>

#define CHAT_STREAM_ID_LEN 16

/* Writes 16 hex characters and a NUL into out.  Returns 0, -1 on a
 * crypto library failure. */
int chat_stream_id(const char *a, size_t alen, const char *b, size_t blen,
                   char out[CHAT_STREAM_ID_LEN + 1]);

#endif
