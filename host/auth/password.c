/* Argon2id password hashes (RFC 9106) through libargon2. */
#include "auth/password.h"

#include <argon2.h>
#include <openssl/rand.h>
#include <string.h>

/* OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane.  A worker thread
 * spends ~30-60 ms per hash on this machine's cores. */
#define T_COST 2
#define M_COST_KIB (19 * 1024)
#define LANES 1
#define SALT_LEN 16
#define HASH_LEN 32

int nd_password_acceptable(const char *pw, size_t n) {
  return pw && n >= ND_PASSWORD_MIN && n <= ND_PASSWORD_MAX && !memchr(pw, '\0', n);
}

int nd_password_hash(const char *pw, size_t n, char out[ND_PASSWORD_HASH_MAX]) {
  unsigned char salt[SALT_LEN];
  if (!pw || RAND_bytes(salt, sizeof salt) != 1) return -1;
  size_t need = argon2_encodedlen(T_COST, M_COST_KIB, LANES, SALT_LEN, HASH_LEN, Argon2_id);
  if (need > ND_PASSWORD_HASH_MAX) return -1;
  int rc = argon2id_hash_encoded(T_COST, M_COST_KIB, LANES, pw, n, salt, sizeof salt, HASH_LEN,
                                 out, ND_PASSWORD_HASH_MAX);
  return rc == ARGON2_OK ? 0 : -1;
}

int nd_password_verify(const char *encoded, const char *pw, size_t n) {
  if (!encoded || !pw || strncmp(encoded, "$argon2id$", 10) != 0) return 0;
  return argon2id_verify(encoded, pw, n) == ARGON2_OK;
}

void nd_password_burn(const char *pw, size_t n) {
  char scratch[ND_PASSWORD_HASH_MAX];
  (void)nd_password_hash(pw ? pw : "", pw ? n : 0, scratch);
}
