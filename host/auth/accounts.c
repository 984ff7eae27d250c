/* HTTP side of the built-in accounts.  Each request validates its body on
 * the loop, then hashes or verifies on a worker (Argon2id is slow on
 * purpose) and answers from the completion. */
#include "auth/accounts.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/jwt_internal.h"
#include "auth/password.h"
#include "auth/user_store.h"
#include "core/loop_services.h"
#include "http/http.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "util/buf.h"
#include "util/ratelimit.h"

/* Buckets kept per limiter: beyond it the least recently used key starts
 * over (memory stays bounded under a spray of user ids). */
#define LIMIT_KEYS 65536

struct nd_accounts {
  notifd_host *h;
  nd_user_store *store;
  nd_metric *logins;         /* notifd_auth_logins_total{result} */
  nd_metric *registrations;  /* notifd_auth_registrations_total{result} */
  nd_ratelimit *per_user;    /* login attempts per user id, or NULL */
  nd_ratelimit *per_ip;      /* logins + registrations per client address, or NULL */
};

enum job_kind { JOB_REGISTER, JOB_LOGIN, JOB_REFRESH };

typedef struct acct_job {
  nd_accounts *a;
  notifd_req *req;
  int kind;
  char user[ND_USER_ID_MAX + 1];
  char *password;            /* wiped and freed after the work */
  size_t password_len;
  int64_t token_iat;         /* refresh: the presented token's iat (0 = unknown) */
  int rc;                    /* outcome, set by the work */
} acct_job;

char *nd_accounts_db_path(const nd_config *cfg) {
  nd_buf b;
  nd_buf_init(&b);
  nd_buf_printf(&b, "%s/users.db", cfg->data_dir && *cfg->data_dir ? cfg->data_dir : ".");
  return nd_buf_steal(&b, NULL);
}

static void count(nd_metric *m, const char *result) {
  const char *v[] = {result};
  nd_metric_add(m, v, 1);
}

/* ---- tokens ---------------------------------------------------------------- */

static void rfc3339(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A signed HS256 token for `user` issued at `now` (malloc'd).  It carries
 * the configured issuer and audience, so the same verifier that checks
 * an identity provider's tokens accepts it. */
static char *issue(const nd_config *cfg, const char *user, int64_t now) {
  json_t *c = json_pack("{s:s, s:I, s:I}", "sub", user, "iat", (json_int_t)now, "exp",
                        (json_int_t)(now + cfg->token_ttl_ms / 1000));
  if (c && cfg->jwt_issuer) json_object_set_new(c, "iss", json_string(cfg->jwt_issuer));
  if (c && cfg->jwt_audience && cfg->jwt_audience[0])
    json_object_set_new(c, "aud", json_string(cfg->jwt_audience[0]));
  char *tok = c ? nd_jwt_sign_claims(cfg->jwt_secret, c) : NULL;
  json_decref(c);
  return tok;
}

/* The `iat` of the request's (already verified) bearer token, 0 if none. */
static int64_t token_iat(notifd_req *r) {
  const char *a = nd_req_header(r, "Authorization");
  const char *d1 = a ? strchr(a, '.') : NULL, *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  if (!d2) return 0;
  size_t n = 0;
  unsigned char *raw = nd_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &n);
  json_t *claims = raw ? json_loadb((const char *)raw, n, 0, NULL) : NULL;
  free(raw);
  json_t *iat = json_object_get(claims, "iat");
  int64_t v = json_is_number(iat) ? (int64_t)json_number_value(iat) : 0;
  json_decref(claims);
  return v;
}

/* Answers 200 {"token","expires_at","expires_in","user_id"}. */
static void answer_token(nd_accounts *a, notifd_req *r, const char *user) {
  const nd_config *cfg = &a->h->cfg;
  int64_t now = nd_wall_ms() / 1000, ttl = cfg->token_ttl_ms / 1000;
  char *tok = issue(cfg, user, now);
  char exp[32];
  rfc3339(now + ttl, exp);
  json_t *o = tok ? json_pack("{s:s, s:s, s:I, s:s}", "token", tok, "expires_at", exp,
                              "expires_in", (json_int_t)ttl, "user_id", user)
                  : NULL;
  if (tok) OPENSSL_cleanse(tok, strlen(tok));
  free(tok);
  if (!o) {
    nd_respond_error(r, 500, "cannot issue a token");
    return;
  }
  nd_respond_json(r, 200, o);
  json_decref(o);
}

/* ---- worker side ----------------------------------------------------------- */

static void job_work(void *ud) {
  acct_job *j = ud;
  nd_user_store *s = j->a->store;
  char hash[ND_PASSWORD_HASH_MAX];
  int64_t set_at = 0;
  switch (j->kind) {
  case JOB_REGISTER:
    j->rc = nd_password_hash(j->password, j->password_len, hash) < 0
                ? NOTIFD_ENOMEM
                : nd_user_store_add(s, j->user, hash);
    break;
  case JOB_LOGIN:
    j->rc = nd_user_store_get(s, j->user, hash, sizeof hash, &set_at);
    if (j->rc == NOTIFD_ENOENT) {
      nd_password_burn(j->password, j->password_len);
    } else if (j->rc == 0 && !nd_password_verify(hash, j->password, j->password_len)) {
      j->rc = NOTIFD_EINVAL;
    }
    break;
  case JOB_REFRESH:
    j->rc = nd_user_store_get(s, j->user, hash, sizeof hash, &set_at);
    /* A password change ends the sessions that began before it. */
    if (j->rc == 0 && j->token_iat && j->token_iat < set_at) j->rc = NOTIFD_ESTATE;
    break;
  }
  OPENSSL_cleanse(hash, sizeof hash);
  if (j->password) {
    OPENSSL_cleanse(j->password, j->password_len);
    free(j->password);
    j->password = NULL;
  }
}

static void job_done(void *ud) {
  acct_job *j = ud;
  nd_accounts *a = j->a;
  notifd_req *r = j->req;
  switch (j->kind) {
  case JOB_REGISTER:
    if (j->rc == 0) {
      count(a->registrations, "created");
      ND_INFO("auth", "registered user %s", j->user);
      json_t *o = json_pack("{s:s}", "user_id", j->user);
      if (o) nd_respond_json(r, 201, o);
      else nd_respond_error(r, 500, "out of memory");
      json_decref(o);
    } else if (j->rc == NOTIFD_EEXIST) {
      count(a->registrations, "taken");
      nd_respond_error(r, 409, "user_id is already taken");
    } else {
      count(a->registrations, "error");
      nd_respond_error(r, 500, "cannot store the account");
    }
    break;
  case JOB_LOGIN:
    if (j->rc == 0) {
      count(a->logins, "ok");
      /* The user's own failed attempts stop counting once they are in. */
      if (a->per_user) nd_ratelimit_forget(a->per_user, j->user);
      answer_token(a, r, j->user);
    } else if (j->rc == NOTIFD_ENOENT || j->rc == NOTIFD_EINVAL) {
      count(a->logins, "refused");
      nd_respond_error(r, 401, "wrong user_id or password");
    } else {
      count(a->logins, "error");
      nd_respond_error(r, 500, "cannot check the password");
    }
    break;
  case JOB_REFRESH:
    if (j->rc == 0) answer_token(a, r, j->user);
    else if (j->rc == NOTIFD_ENOENT || j->rc == NOTIFD_ESTATE)
      nd_respond_error(r, 401, "session ended: sign in again");
    else nd_respond_error(r, 500, "cannot check the account");
    break;
  }
  free(j);
}

static void submit(nd_accounts *a, acct_job *j) {
  j->a = a;
  if (!a->store || nd_workers_submit(a->h->workers, job_work, job_done, j) < 0) {
    if (j->password) OPENSSL_cleanse(j->password, j->password_len);
    free(j->password);
    nd_respond_error(j->req, 503, "accounts are not available");
    free(j);
  }
}

/* ---- loop side --------------------------------------------------------------- */

/* The {"user_id","password"} body into a new job, or NULL after answering.
 * A login with an impossible user id or password gets the same 401 as a
 * wrong password: login answers never tell which ids exist. */
static acct_job *credentials(notifd_req *r, int kind) {
  json_t *body = nd_req_json_or_400(r);
  if (!body) return NULL;
  json_t *u = json_object_get(body, "user_id"), *p = json_object_get(body, "password");
  if (!json_is_object(body) || !json_is_string(u) || !json_is_string(p)) {
    nd_respond_error(r, 400, "body must be {\"user_id\": string, \"password\": string}");
    return NULL;
  }
  const char *user = json_string_value(u);
  size_t plen = json_string_length(p);
  int id_ok = nd_user_id_valid(user), pw_ok = nd_password_acceptable(json_string_value(p), plen);
  if (kind == JOB_LOGIN && (!id_ok || !pw_ok)) {
    nd_respond_error(r, 401, "wrong user_id or password");
    return NULL;
  }
  if (!id_ok) {
    nd_respond_error(r, 400, "user_id: 1 to 64 characters of A-Z a-z 0-9 . _ @ + -");
    return NULL;
  }
  if (!pw_ok) {
    nd_respond_error(r, 400, "password: 8 to 256 bytes");
    return NULL;
  }
  acct_job *j = calloc(1, sizeof *j);
  if (j) j->password = malloc(plen + 1);
  if (!j || !j->password) {
    free(j);
    nd_respond_error(r, 500, "out of memory");
    return NULL;
  }
  memcpy(j->password, json_string_value(p), plen + 1);
  j->password_len = plen;
  snprintf(j->user, sizeof j->user, "%s", user);
  j->req = r;
  j->kind = kind;
  return j;
}

/* 1 when `key` may try now; else answers 429 with Retry-After and
 * returns 0.  No limiter, or no key (address unknown), always passes. */
static int attempt_allowed(nd_ratelimit *rl, const char *key, notifd_req *r) {
  int64_t wait_ms = 0;
  if (!rl || !key || nd_ratelimit_take(rl, key, nd_now_ms(), &wait_ms)) return 1;
  char secs[24];
  snprintf(secs, sizeof secs, "%lld", (long long)((wait_ms + 999) / 1000));
  nd_resp_header(r, "Retry-After", secs);
  nd_respond_error(r, 429, "too many attempts; try again later");
  return 0;
}

static int address_allowed(nd_accounts *a, notifd_req *r) {
  char addr[64];
  return attempt_allowed(a->per_ip, nd_req_client_addr(r, addr, sizeof addr) == 0 ? addr : NULL,
                         r);
}

static void on_register(notifd_req *r, void *ud) {
  nd_accounts *a = ud;
  if (!a->h->cfg.registration_open) {
    count(a->registrations, "closed");
    nd_respond_error(r, 403, "registration is closed on this server");
    return;
  }
  if (!address_allowed(a, r)) {
    count(a->registrations, "rate_limited");
    return;
  }
  acct_job *j = credentials(r, JOB_REGISTER);
  if (j) submit(a, j);
}

static void on_login(notifd_req *r, void *ud) {
  nd_accounts *a = ud;
  acct_job *j = credentials(r, JOB_LOGIN);
  if (!j) return;
  if (!address_allowed(a, r) || !attempt_allowed(a->per_user, j->user, r)) {
    count(a->logins, "rate_limited");
    OPENSSL_cleanse(j->password, j->password_len);
    free(j->password);
    free(j);
    return;
  }
  submit(a, j);
}

static void on_refresh(notifd_req *r, void *ud) {
  nd_accounts *a = ud;
  const char *sub = nd_req_auth_subject(r);
  acct_job *j = calloc(1, sizeof *j);
  if (!j) {
    nd_respond_error(r, 500, "out of memory");
    return;
  }
  if (!sub || !nd_user_id_valid(sub)) {
    free(j);
    nd_respond_error(r, 401, "token is not for a built-in account");
    return;
  }
  snprintf(j->user, sizeof j->user, "%s", sub);
  j->req = r;
  j->kind = JOB_REFRESH;
  j->token_iat = token_iat(r);
  submit(a, j);
}

static void on_me(notifd_req *r, void *ud) {
  (void)ud;
  json_t *o = json_pack("{s:s}", "user_id", nd_req_auth_subject(r));
  if (o) nd_respond_json(r, 200, o);
  else nd_respond_error(r, 500, "out of memory");
  json_decref(o);
}

int nd_accounts_new(notifd_host *h, nd_accounts **out) {
  *out = NULL;
  nd_accounts *a = calloc(1, sizeof *a);
  if (!a) return NOTIFD_ENOMEM;
  a->h = h;
  const nd_config *cfg = &h->cfg;
  /* auth.login_limit: N attempts per minute, N in a burst. */
  if (cfg->login_per_user)
    a->per_user = nd_ratelimit_new(cfg->login_per_user / 60.0, cfg->login_per_user, LIMIT_KEYS);
  if (cfg->login_per_ip)
    a->per_ip = nd_ratelimit_new(cfg->login_per_ip / 60.0, cfg->login_per_ip, LIMIT_KEYS);
  if ((cfg->login_per_user && !a->per_user) || (cfg->login_per_ip && !a->per_ip)) {
    nd_accounts_free(a);
    return NOTIFD_ENOMEM;
  }
  static const char *const result[] = {"result", NULL};
  nd_metric_register(h->metrics, ND_METRIC_COUNTER, "notifd_auth_logins_total",
                     "Login attempts of built-in accounts, by result.", result, NULL, 0,
                     &a->logins);
  nd_metric_register(h->metrics, ND_METRIC_COUNTER, "notifd_auth_registrations_total",
                     "Registrations of built-in accounts, by result.", result, NULL, 0,
                     &a->registrations);
  static const struct {
    const char *method, *path;
    notifd_http_handler fn;
    uint32_t auth;
  } routes[] = {
      {"POST", "/auth/register", on_register, NOTIFD_AUTH_NONE},
      {"POST", "/auth/login", on_login, NOTIFD_AUTH_NONE},
      {"POST", "/auth/refresh", on_refresh, NOTIFD_AUTH_TOKEN},
      {"GET", "/auth/me", on_me, NOTIFD_AUTH_TOKEN},
  };
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    int rc = nd_router_add(h->router, routes[i].method, routes[i].path, routes[i].fn, a,
                           routes[i].auth, 4096, "host");
    if (rc < 0) {
      nd_accounts_free(a);
      return rc;
    }
  }
  *out = a;
  return 0;
}

int nd_accounts_start(nd_accounts *a) {
  char *path = nd_accounts_db_path(&a->h->cfg);
  char err[512];
  int rc = path ? nd_user_store_open(path, &a->store, err, sizeof err) : -1;
  if (rc < 0) nd_errors_add(&a->h->errs, NULL, 0, 0, "%s", path ? err : "out of memory");
  free(path);
  return rc;
}

void nd_accounts_free(nd_accounts *a) {
  if (!a) return;
  nd_ratelimit_free(a->per_user);
  nd_ratelimit_free(a->per_ip);
  nd_user_store_close(a->store);
  free(a);
}
