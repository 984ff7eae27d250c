/* ComputeStreamID (contract 2.6): sort the two ids bytewise, concatenate
 * them with no separator, SHA-256, first 16 lowercase hex characters. */
#ifndef PC_STREAM_ID_H
#define PC_STREAM_ID_H

#include <stddef.h>

#define PC_STREAM_ID_LEN 16

/* Writes 16 hex characters and a NUL into out.  0, or -1 if the digest
 * failed (OpenSSL error). */
int pc_stream_id(const char *a, size_t alen, const char *b, size_t blen,
                 char out[PC_STREAM_ID_LEN + 1]);

#endif
