/* libcurl SMTP.  Why easy handles on worker threads rather than curl_multi
 * on the host loop: the SDK gives plugins no file-descriptor watchers, so
 * curl_multi_socket_action could only be driven by polling timers; a
 * blocking transfer on the host's worker pool is simple, bounded by the
 * plugin's max_concurrent, and keeps the connection alive per handle. */
#include "email_smtp.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct email_smtp {
  char *url, *username, *password, *from, *ca_file;
  int starttls, insecure, is_smtps;
  int64_t timeout_ms, connect_timeout_ms;
  atomic_int aborted;
  pthread_mutex_t mu;
  CURL **idle;          /* handles with (possibly) live connections */
  size_t nidle, cap;
};

typedef struct upload {
  const char *p;
  size_t left;
} upload;

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud) {
  upload *u = ud;
  size_t n = size * nitems;
  if (n > u->left) n = u->left;
  memcpy(buf, u->p, n);
  u->p += n;
  u->left -= n;
  return n;
}

static int progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  (void)dt;
  (void)dn;
  (void)ut;
  (void)un;
  email_smtp *s = ud;
  return atomic_load(&s->aborted) ? 1 : 0;
}

int email_smtp_new(const email_smtp_cfg *cfg, email_smtp **out) {
  *out = NULL;
  email_smtp *s = calloc(1, sizeof *s);
  if (!s) return -1;
  pthread_mutex_init(&s->mu, NULL);
  s->url = strdup(cfg->url);
  s->from = strdup(cfg->from_addr);
  s->username = cfg->username && *cfg->username ? strdup(cfg->username) : NULL;
  s->password = cfg->password ? strdup(cfg->password) : NULL;
  s->ca_file = cfg->ca_file && *cfg->ca_file ? strdup(cfg->ca_file) : NULL;
  if (!s->url || !s->from || (cfg->username && *cfg->username && !s->username) ||
      (cfg->password && !s->password) || (cfg->ca_file && *cfg->ca_file && !s->ca_file)) {
    email_smtp_free(s);
    return -1;
  }
  s->starttls = cfg->starttls;
  s->insecure = cfg->insecure;
  s->is_smtps = strncmp(cfg->url, "smtps://", 8) == 0;
  s->timeout_ms = cfg->timeout_ms;
  s->connect_timeout_ms = cfg->connect_timeout_ms;
  atomic_init(&s->aborted, 0);
  *out = s;
  return 0;
}

/* A handle with the options that never change between mails. */
static CURL *new_handle(email_smtp *s) {
  CURL *c = curl_easy_init();
  if (!c) return NULL;
  int bad = 0;
  bad |= curl_easy_setopt(c, CURLOPT_URL, s->url) != CURLE_OK;
  bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK; /* threads */
  bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps") != CURLE_OK;
  bad |= curl_easy_setopt(c, CURLOPT_UPLOAD, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms) != CURLE_OK;
  bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout_ms) != CURLE_OK;
  bad |= curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb) != CURLE_OK;
  bad |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
  bad |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb) != CURLE_OK;
  bad |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, s) != CURLE_OK;
  bad |= curl_easy_setopt(c, CURLOPT_MAIL_FROM, s->from) != CURLE_OK;
  if (!s->is_smtps && s->starttls != EMAIL_STARTTLS_NONE)
    bad |= curl_easy_setopt(c, CURLOPT_USE_SSL, s->starttls == EMAIL_STARTTLS_REQUIRED
                                                    ? (long)CURLUSESSL_ALL
                                                    : (long)CURLUSESSL_TRY) != CURLE_OK;
  if (s->username) {
    bad |= curl_easy_setopt(c, CURLOPT_USERNAME, s->username) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PASSWORD, s->password ? s->password : "") != CURLE_OK;
  }
  if (s->ca_file) bad |= curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file) != CURLE_OK;
  if (s->insecure) {
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK;
  }
  if (bad) {
    curl_easy_cleanup(c);
    return NULL;
  }
  return c;
}

static CURL *take_handle(email_smtp *s) {
  CURL *c = NULL;
  pthread_mutex_lock(&s->mu);
  if (s->nidle) c = s->idle[--s->nidle]; /* most recently used: warmest connection */
  pthread_mutex_unlock(&s->mu);
  return c ? c : new_handle(s);
}

static void give_back(email_smtp *s, CURL *c) {
  pthread_mutex_lock(&s->mu);
  if (s->nidle == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4;
    CURL **n = realloc(s->idle, cap * sizeof *n);
    if (!n) {
      pthread_mutex_unlock(&s->mu);
      curl_easy_cleanup(c);
      return;
    }
    s->idle = n;
    s->cap = cap;
  }
  s->idle[s->nidle++] = c;
  pthread_mutex_unlock(&s->mu);
}

int email_smtp_send(email_smtp *s, const char *rcpt, const char *msg, size_t len,
                    email_smtp_result *res) {
  memset(res, 0, sizeof *res);
  if (atomic_load(&s->aborted)) {
    res->curl_code = CURLE_ABORTED_BY_CALLBACK;
    snprintf(res->error, sizeof res->error, "shutting down");
    return -1;
  }
  CURL *c = take_handle(s);
  if (!c) {
    res->curl_code = CURLE_OUT_OF_MEMORY;
    snprintf(res->error, sizeof res->error, "cannot create a curl handle");
    return -1;
  }
  char rcpt_br[300];
  snprintf(rcpt_br, sizeof rcpt_br, "<%s>", rcpt);
  struct curl_slist *to = curl_slist_append(NULL, rcpt_br);
  if (!to) {
    give_back(s, c);
    res->curl_code = CURLE_OUT_OF_MEMORY;
    snprintf(res->error, sizeof res->error, "out of memory");
    return -1;
  }
  upload u = {msg, len};
  char errbuf[CURL_ERROR_SIZE];
  errbuf[0] = '\0';
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, to);
  curl_easy_setopt(c, CURLOPT_READDATA, &u);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  /* Nothing borrowed may outlive this call. */
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, NULL);
  curl_easy_setopt(c, CURLOPT_READDATA, NULL);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
  curl_slist_free_all(to);
  res->curl_code = (int)rc;
  res->smtp_code = code;
  if (rc != CURLE_OK)
    snprintf(res->error, sizeof res->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
  give_back(s, c);
  return rc == CURLE_OK ? 0 : -1;
}

void email_smtp_abort(email_smtp *s) {
  if (s) atomic_store(&s->aborted, 1);
}

void email_smtp_free(email_smtp *s) {
  if (!s) return;
  for (size_t i = 0; i < s->nidle; i++) curl_easy_cleanup(s->idle[i]);
  free(s->idle);
  pthread_mutex_destroy(&s->mu);
  free(s->url);
  free(s->username);
  free(s->password);
  free(s->from);
  free(s->ca_file);
  free(s);
}
