/* Request authentication policies for routes and websocket channels. */
#include "auth/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include "http/http.h"
#include "log/log.h"
#include "util/buf.h"

#define SUB_MAX 256

/* The token from `Authorization: Bearer <t>`, else, on a websocket upgrade
 * (browsers cannot set headers there), the `token` query parameter, else
 * NULL.  Ordinary requests never take it from the URL, where proxies,
 * logs and browser history keep it.  Borrowed from the request. */
static const char *request_token(notifd_req *req) {
  const char *a = nd_req_header(req, "Authorization");
  if (a) {
    while (*a == ' ' || *a == '\t') a++;
    if (strncasecmp(a, "Bearer", 6) == 0 && (a[6] == ' ' || a[6] == '\t')) {
      a += 6;
      while (*a == ' ' || *a == '\t') a++;
      if (*a) return a;
    }
  }
  const char *up = nd_req_header(req, "Upgrade");
  if (!up || strcasecmp(up, "websocket") != 0) return NULL;
  const char *q = nd_req_query(req, "token");
  return q && *q ? q : NULL;
}

static int check_token(notifd_host *h, notifd_req *req, const char *const *subjects,
                       const char **why) {
  const char *secret = h->cfg.jwt_secret;
  if (!secret || !*secret) {
    ND_WARN("auth", "token auth requested but auth.jwt_secret is not set: request refused");
    *why = "token authentication is not configured";
    return 401;
  }
  const char *tok = request_token(req);
  if (!tok) {
    *why = "missing token";
    return 401;
  }
  /* The token text may carry trailing whitespace from a header. */
  size_t n = strlen(tok);
  while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) n--;
  char *t = nd_strndup(tok, n);
  if (!t) {
    *why = "out of memory";
    return 401;
  }
  char sub[SUB_MAX];
  int64_t now = nd_wall_ms() / 1000;
  int rc = nd_jwt_verify(t, secret, now, sub, sizeof sub, why);
  free(t);
  if (rc < 0) return 401;
  if (subjects) {
    int match = 0;
    for (size_t i = 0; subjects[i]; i++)
      if (strcmp(subjects[i], sub) == 0) match = 1;
    if (!match) {
      /* Authenticated, but not as the user the request names. */
      *why = "the token's user may not act for the user named in the request";
      return 403;
    }
  }
  nd_req_set_auth_subject(req, sub);
  return 0;
}

/* Equal strings, in time independent of where they differ or how long the
 * secret is: compare SHA-256 digests. */
static int secret_equal(const char *a, const char *b) {
  unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
  unsigned int la = 0, lb = 0;
  if (!EVP_Digest(a, strlen(a), da, &la, EVP_sha256(), NULL) ||
      !EVP_Digest(b, strlen(b), db, &lb, EVP_sha256(), NULL) || la != lb)
    return 0;
  return CRYPTO_memcmp(da, db, la) == 0;
}

static int check_internal(notifd_host *h, notifd_req *req, const char **why) {
  if (nd_req_is_internal_local(req)) return 0; /* a plugin of this process */
  const char *want = h->cfg.internal_token;
  if (!want || !*want) {
    ND_WARN("auth", "internal auth requested but auth.internal_token is not set: request refused");
    *why = "internal authentication is not configured";
    return 401;
  }
  const char *got = nd_req_header(req, ND_INTERNAL_TOKEN_HEADER);
  if (!got || !*got) {
    *why = "missing internal token";
    return 401;
  }
  if (!secret_equal(got, want)) {
    *why = "bad internal token";
    return 401;
  }
  return 0;
}

int nd_auth_check(notifd_host *h, uint32_t policy, notifd_req *req,
                  const char *const *subjects, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  *why = NULL;
  switch (policy) {
  case NOTIFD_AUTH_NONE: return 0;
  case NOTIFD_AUTH_TOKEN: return check_token(h, req, subjects, why);
  case NOTIFD_AUTH_INTERNAL: return check_internal(h, req, why);
  default: *why = "unknown auth policy"; return 401;
  }
}
