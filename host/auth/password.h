/* Password hashing for built-in accounts: Argon2id from libargon2 (a
 * memory-hard KDF), stored in the PHC string format ("$argon2id$v=19$m=...,
 * t=...,p=...$salt$hash") so any Argon2 library can verify it.  Slow on
 * purpose (tens of milliseconds): call from a worker thread, never on the
 * loop. Thread-safe. */
#ifndef ND_PASSWORD_H
#define ND_PASSWORD_H

#include <stddef.h>

/* Longest encoded hash nd_password_hash writes, NUL included. */
#define ND_PASSWORD_HASH_MAX 160
#define ND_PASSWORD_MIN 8      /* bytes */
#define ND_PASSWORD_MAX 256

/* 1 when `pw` (n bytes) is an acceptable password: ND_PASSWORD_MIN to
 * ND_PASSWORD_MAX bytes, no NUL. */
int nd_password_acceptable(const char *pw, size_t n);
/* Hashes with a fresh random salt into out (ND_PASSWORD_HASH_MAX bytes).
 * 0, or -1 (out of memory, no randomness). */
int nd_password_hash(const char *pw, size_t n, char out[ND_PASSWORD_HASH_MAX]);
/* 1 = `pw` matches `encoded`, 0 = it does not (or `encoded` is malformed). */
int nd_password_verify(const char *encoded, const char *pw, size_t n);
/* Spends the time of one verification, for logins of unknown users (so the
 * answer time does not tell which user ids exist). */
void nd_password_burn(const char *pw, size_t n);

#endif
