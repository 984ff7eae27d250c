/* The cryptography of Web Push, on OpenSSL 3's EVP interfaces only:
 *  - the application server's VAPID key (RFC 8292): loaded from a PEM file
 *    or a raw base64url private scalar, or generated once into a PEM file;
 *  - the VAPID JWT (ES256, raw r||s signature) and Authorization header;
 *  - the aes128gcm payload encryption of RFC 8291 / RFC 8188, one record;
 *  - checking a subscription's p256dh key.
 * Every function is thread-safe (the key is only read after loading). */
#ifndef WP_CRYPTO_H
#define WP_CRYPTO_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"

#define WP_POINT_LEN 65 /* uncompressed P-256 point: 0x04 || X || Y */
#define WP_AUTH_LEN 16  /* the subscription's auth secret */
#define WP_SALT_LEN 16
#define WP_RS 4096      /* record size we write */
/* Bytes aes128gcm adds to a plaintext: the header block
 * (salt, rs, idlen, keyid = our public point), the padding delimiter and
 * the GCM tag. */
#define WP_ECE_HEADER_LEN (WP_SALT_LEN + 4 + 1 + WP_POINT_LEN)
#define WP_ECE_OVERHEAD (WP_ECE_HEADER_LEN + 1 + 16)
/* The largest plaintext one record of WP_RS bytes holds. */
#define WP_ECE_MAX_PLAINTEXT (WP_RS - 1 - 16)

typedef struct wp_vapid {
  EVP_PKEY *key;
  unsigned char pub[WP_POINT_LEN];
  char pub_b64[90]; /* base64url of pub (87 characters) */
} wp_vapid;

/* `spec` is the config value: "" = use (or create, mode 0600) the PEM file
 * `default_path`; an existing file's path = that PEM file; otherwise the
 * base64url of a 32-byte private scalar.  0, or -1 with `err`.  *created
 * is set to 1 when a new key was generated. */
int wp_vapid_load(const char *spec, const char *default_path, wp_vapid *out, int *created,
                  char *err, size_t errlen);
void wp_vapid_free(wp_vapid *v);

/* The VAPID JWT for audience `aud` (an origin), expiring at `exp` (Unix
 * seconds), with subject `sub`, as the value of an Authorization header:
 * "vapid t=<jwt>, k=<public key>".  0, or -1 (OpenSSL failure or OOM). */
int wp_vapid_header(const wp_vapid *v, const char *aud, int64_t exp, const char *sub,
                    pc_buf *out);

/* The origin ("scheme://host[:port]", scheme and host lowercased, default
 * port dropped) of an http(s) URL into out.  0, or -1 when the URL is not
 * an absolute http/https URL with a host and no user information. */
int wp_url_origin(const char *url, char *out, size_t outlen);

/* 1 when p is a 65-byte uncompressed P-256 point on the curve. */
int wp_point_valid(const unsigned char *p, size_t n);

/* Encrypts `plain` (at most WP_ECE_MAX_PLAINTEXT bytes) for a subscription
 * with public key `ua_pub` and secret `auth`: a fresh ephemeral key pair and
 * a random salt, then wp_ece_encrypt_with.  Appends header block and record
 * to out.  0, or -1. */
int wp_ece_encrypt(const unsigned char ua_pub[WP_POINT_LEN], const unsigned char auth[WP_AUTH_LEN],
                   const void *plain, size_t len, pc_buf *out);
/* The same with a given ephemeral key (`as_key`, P-256) and salt: for the
 * RFC 8291 test vector. */
int wp_ece_encrypt_with(const unsigned char ua_pub[WP_POINT_LEN],
                        const unsigned char auth[WP_AUTH_LEN], EVP_PKEY *as_key,
                        const unsigned char salt[WP_SALT_LEN], const void *plain, size_t len,
                        pc_buf *out);

/* A P-256 key from a raw 32-byte private scalar (public part computed). */
EVP_PKEY *wp_key_from_scalar(const unsigned char d[32]);

#endif
