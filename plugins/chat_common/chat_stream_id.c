#include "chat_stream_id.h"

#include <openssl/evp.h>
#include <string.h>

/* Go's sort.Strings order: bytewise, a proper prefix first. */
static int byte_cmp(const char *a, size_t alen, const char *b, size_t blen) {
  int c = memcmp(a, b, alen < blen ? alen : blen);
  if (c) return c;
  return alen < blen ? -1 : alen > blen;
}

int chat_stream_id(const char *a, size_t alen, const char *b, size_t blen,
                   char out[CHAT_STREAM_ID_LEN + 1]) {
  if (byte_cmp(a, alen, b, blen) > 0) {
    const char *t = a;
    a = b;
    b = t;
    size_t tl = alen;
    alen = blen;
    blen = tl;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
           EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= CHAT_STREAM_ID_LEN / 2;
  EVP_MD_CTX_free(ctx);
  if (!ok) return -1;
  static const char hexd[] = "0123456789abcdef";
  for (int i = 0; i < CHAT_STREAM_ID_LEN / 2; i++) {
    out[2 * i] = hexd[md[i] >> 4];
    out[2 * i + 1] = hexd[md[i] & 15];
  }
  out[CHAT_STREAM_ID_LEN] = '\0';
  return 0;
}
