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
#include "auth/password.h"
#include "auth/user_store.h"
#include "core/loop_services.h"
#include "http/http.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "util/buf.h"

struct nd_accounts {
  notifd_host *h;
  nd_user_store *store;
  nd_metric *logins;         /* notifd_auth_logins_total{result} */
  nd_metric *registrations;  /* notifd_auth_registrations_total{result} */
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

/* Answers 200 {"token","expires_at","expires_in","user_id"}. */
static void answer_token(nd_accounts *a, notifd_req *r, const char *user) {
  const nd_config *cfg = &a->h->cfg;
  int64_t now = nd_wall_ms() / 1000, ttl = cfg->token_ttl_ms / 1000;
  char *tok = nd_jwt_sign(cfg->jwt_secret, user, now + ttl);
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

static void on_register(notifd_req *r, void *ud) {
  nd_accounts *a = ud;
  if (!a->h->cfg.registration_open) {
    count(a->registrations, "closed");
    nd_respond_error(r, 403, "registration is closed on this server");
    return;
  }
  acct_job *j = credentials(r, JOB_REGISTER);
  if (j) submit(a, j);
}

static void on_login(notifd_req *r, void *ud) {
  nd_accounts *a = ud;
  acct_job *j = credentials(r, JOB_LOGIN);
  if (j) submit(a, j);
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
      free(a);
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
  nd_user_store_close(a->store);
  free(a);
}
