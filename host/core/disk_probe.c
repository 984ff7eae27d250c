/* Data-dir write probe on its own thread (a sync can take a while on a busy
 * disk; the loop never waits for it). */
#include "core/disk_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

#define PROBE_BYTES 4096

struct nd_disk_probe {
  char *dir;
  char *path;
  int64_t interval_ms;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  atomic_int err; /* 0 = writable, else the errno of the last probe */
};

/* 0 or an errno. */
static int probe_once(const char *path) {
  static const char block[PROBE_BYTES];
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno ? errno : EIO;
  int err = 0;
  size_t off = 0;
  while (off < sizeof block) {
    ssize_t w = write(fd, block + off, sizeof block - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    off += (size_t)w;
  }
  if (!err && fdatasync(fd) < 0) err = errno;
  if (close(fd) < 0 && !err) err = errno;
  unlink(path);
  return err;
}

static void *probe_main(void *arg) {
  nd_disk_probe *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    pthread_mutex_unlock(&p->mu);
    int err = probe_once(p->path);
    int was = atomic_exchange(&p->err, err);
    if (err && !was)
      ND_ERROR("host", "data_dir %s is not writable (%s): /readyz reports not ready", p->dir,
               strerror(err));
    else if (!err && was)
      ND_INFO("host", "data_dir %s is writable again", p->dir);
    nd_log_limited_flush();
    pthread_mutex_lock(&p->mu);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(p->interval_ms / 1000);
    until.tv_nsec += (long)(p->interval_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &until) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

nd_disk_probe *nd_disk_probe_start(const char *dir, int64_t interval_ms) {
  if (!dir || !*dir) dir = ".";
  nd_disk_probe *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->dir = strdup(dir);
  size_t n = strlen(dir) + 64;
  p->path = malloc(n);
  if (!p->dir || !p->path) goto fail;
  /* One name per host object: two hosts in one process may share a dir. */
  snprintf(p->path, n, "%s/.notifd-write-probe-%ld-%p", dir, (long)getpid(), (void *)p);
  p->interval_ms = interval_ms > 0 ? interval_ms : ND_DISK_PROBE_INTERVAL_MS;
  atomic_init(&p->err, 0);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
  if (pthread_create(&p->th, NULL, probe_main, p) != 0) {
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    goto fail;
  }
  return p;
fail:
  free(p->dir);
  free(p->path);
  free(p);
  return NULL;
}

int nd_disk_probe_ok(nd_disk_probe *p, int *err) {
  int e = p ? atomic_load(&p->err) : 0;
  if (err) *err = e;
  return e == 0;
}

void nd_disk_probe_stop(nd_disk_probe *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->th, NULL);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->dir);
  free(p->path);
  free(p);
}
