/* The host's token verifier: the policy from auth.jwt.* (algorithms,
 * issuer, audience, lifetime, leeway), the HMAC secret taken at start, and
 * the JWKS cache; token checks and the wait for unknown keys go through
 * here. */
#include "auth/verifier.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwks.h"
#include "log/log.h"
#include "util/buf.h"

struct nd_verifier {
  uint32_t algs;
  char *secret;     /* copy of h->cfg.jwt_secret at start; NULL if unset */
  nd_jwks *jwks;    /* NULL without auth.jwt.jwks_url */
};

static uint32_t default_algs(const nd_config *c, const char *secret) {
  if (c->jwt_algs) return c->jwt_algs;
  uint32_t a = 0;
  if (secret && *secret) a |= ND_JWT_BIT(ND_JWT_HS256);
  if (c->jwt_jwks_url)
    a |= ND_JWT_BIT(ND_JWT_RS256) | ND_JWT_BIT(ND_JWT_ES256) | ND_JWT_BIT(ND_JWT_EDDSA);
  return a;
}

static void log_summary(const nd_config *c, const nd_verifier *v) {
  nd_buf names;
  nd_buf_init(&names);
  for (int a = 0; a < ND_JWT_NALGS; a++)
    if (v->algs & ND_JWT_BIT(a)) nd_buf_printf(&names, "%s%s", names.len ? "," : "", nd_jwt_alg_name(a));
  ND_INFO("auth", "token verification: algorithms=%s jwks=%s issuer=%s audience=%s",
          names.data ? names.data : "none", c->jwt_jwks_url ? c->jwt_jwks_url : "none",
          c->jwt_issuer ? c->jwt_issuer : "any", c->jwt_audience ? c->jwt_audience[0] : "any");
  nd_buf_free(&names);
  if ((v->algs & ND_JWT_HMAC_ALGS) && !v->secret)
    ND_WARN("auth", "auth.jwt.algorithms lists HMAC algorithms but auth.jwt_secret is not set: "
                    "HS tokens are refused");
}

int nd_auth_start(notifd_host *h) {
  if (h->verifier) return 0;
  const nd_config *c = &h->cfg;
  nd_verifier *v = calloc(1, sizeof *v);
  if (!v) goto oom;
  if (c->jwt_secret && *c->jwt_secret && !(v->secret = strdup(c->jwt_secret))) goto oom;
  v->algs = default_algs(c, v->secret);
  if (c->jwt_jwks_url && !(v->jwks = nd_jwks_new(h, c->jwt_jwks_url, c->jwt_jwks_refresh_ms)))
    goto oom;
  h->verifier = v;
  if (v->secret || v->jwks) log_summary(c, v);
  return 0;
oom:
  if (v) {
    free(v->secret);
    free(v);
  }
  nd_errors_add(&h->errs, NULL, 0, 0, "auth: out of memory creating the token verifier");
  return -1;
}

void nd_auth_stop(notifd_host *h) {
  nd_verifier *v = h ? h->verifier : NULL;
  if (!v) return;
  h->verifier = NULL;
  nd_jwks_free(v->jwks);
  if (v->secret) OPENSSL_cleanse(v->secret, strlen(v->secret));
  free(v->secret);
  free(v);
}

/* The policy of this host now (keys as currently cached). */
static void policy_of(notifd_host *h, nd_jwt_policy *p) {
  const nd_config *c = &h->cfg;
  const nd_verifier *v = h->verifier;
  p->secret = v ? v->secret : c->jwt_secret;
  p->algs = v ? v->algs : default_algs(c, p->secret);
  p->keys = v ? nd_jwks_keys(v->jwks) : NULL;
  p->issuer = c->jwt_issuer;
  p->audience = c->jwt_audience;
  p->max_lifetime_s = c->jwt_max_lifetime_ms / 1000;
  p->leeway_s = c->jwt_leeway_ms / 1000;
}

int nd_verifier_configured(notifd_host *h) {
  const nd_verifier *v = h->verifier;
  return v ? (v->secret || v->jwks) : h->cfg.jwt_secret && *h->cfg.jwt_secret;
}

int nd_verifier_check(notifd_host *h, const char *token, char *sub, size_t sublen,
                      const char **why) {
  nd_jwt_policy p;
  policy_of(h, &p);
  int rc = nd_jwt_verify_policy(token, &p, nd_wall_ms() / 1000, sub, sublen, why);
  if (rc == ND_JWT_NO_KEY) {
    /* Not waited for here (a local: call, or the wait is over): refresh
     * anyway, rate-limited, so the next request may succeed. */
    nd_jwks_refresh_for_unknown(h->verifier ? h->verifier->jwks : NULL);
    return -1;
  }
  return rc;
}

int nd_verifier_wait(notifd_host *h, const char *token, nd_auth_resume_fn fn, void *ud,
                     nd_auth_waiter **w) {
  nd_verifier *v = h->verifier;
  if (!v || !v->jwks) return 0;
  int alg = -1;
  char kid[ND_JWT_KID_MAX + 1];
  if (nd_jwt_peek(token, &alg, kid, sizeof kid) < 0 || alg < 0 ||
      !(v->algs & ND_JWT_BIT(alg)) || (ND_JWT_BIT(alg) & ND_JWT_HMAC_ALGS))
    return 0;
  const nd_jwkset *keys = nd_jwks_keys(v->jwks);
  if (keys && (!*kid || nd_jwkset_has_kid(keys, kid))) return 0;
  /* The first fetch is still under way, or the kid is new to us. */
  if (keys && !nd_jwks_refresh_for_unknown(v->jwks)) return 0;
  *w = nd_jwks_wait(v->jwks, fn, ud);
  return *w != NULL;
}
