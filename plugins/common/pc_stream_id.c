#include "pc_stream_id.h"

#include <openssl/evp.h>
#include <string.h>

/* Go's sort.Strings order: bytewise, a prefix sorts first. */
static int bytes_less(const char *a, size_t an, const char *b, size_t bn) {
  size_t n = an < bn ? an : bn;
  int c = n ? memcmp(a, b, n) : 0;
  return c < 0 || (c == 0 && an < bn);
}

int pc_stream_id(const char *a, size_t alen, const char *b, size_t blen,
                 char out[PC_STREAM_ID_LEN + 1]) {
  if (bytes_less(b, blen, a, alen)) {
    const char *t = a;
    size_t tn = alen;
    a = b;
    alen = blen;
    b = t;
    blen = tn;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx) return -1;
  int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
           EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= PC_STREAM_ID_LEN / 2;
  EVP_MD_CTX_free(ctx);
  if (!ok) return -1;
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < PC_STREAM_ID_LEN / 2; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 0xF];
  }
  out[PC_STREAM_ID_LEN] = '\0';
  return 0;
}
