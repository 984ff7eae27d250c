/* Unpadded base64url (RFC 4648 section 5), the encoding Web Push, JWS and
 * JWK use for keys, secrets and signatures. */
#ifndef PC_B64_H
#define PC_B64_H

#include <stddef.h>

#include "pc_buf.h"

/* Appends the unpadded base64url text of p[0..n). */
void pc_b64url_put(pc_buf *b, const void *p, size_t n);

/* Decodes s[0..n) into out (room for `cap` bytes).  Trailing '=' padding
 * is tolerated (some clients add it); anything else outside the alphabet,
 * a dangling 6-bit group, non-zero unused bits (a non-canonical text) or a
 * result longer than `cap` gives -1.  Returns the decoded length. */
long pc_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap);

#endif
