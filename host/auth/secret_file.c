#include "auth/secret_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "util/buf.h"

#define SECRET_BYTES 32
#define FILE_NAME "auth.secret"

static char *read_secret(const char *path, nd_errors *errs) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) == 0 && (st.st_mode & 077))
    ND_WARN("auth", "%s is readable by other users (mode %03o): anyone who reads it can sign "
            "tokens; chmod 600 it", path, (unsigned)(st.st_mode & 0777));
  char buf[256];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
  if (n < 32) {
    nd_errors_add(errs, NULL, 0, 0, "%s: too short to be a token secret (delete it to make a "
                  "new one; every issued token then stops working)", path);
    OPENSSL_cleanse(buf, sizeof buf);
    return NULL;
  }
  char *s = nd_strndup(buf, (size_t)n);
  OPENSSL_cleanse(buf, sizeof buf);
  if (!s) nd_errors_add(errs, NULL, 0, 0, "out of memory reading %s", path);
  return s;
}

char *nd_auth_secret_load_or_create(const char *data_dir, nd_errors *errs) {
  nd_buf path;
  nd_buf_init(&path);
  nd_buf_printf(&path, "%s/%s", data_dir && *data_dir ? data_dir : ".", FILE_NAME);
  if (path.oom) {
    nd_errors_add(errs, NULL, 0, 0, "out of memory");
    return NULL;
  }
  char *secret = NULL;
  int fd = open(path.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    if (!(secret = read_secret(path.data, errs)) && errs->n == 0)
      nd_errors_add(errs, NULL, 0, 0, "cannot read %s: %s", path.data, strerror(errno));
  } else if (fd < 0) {
    nd_errors_add(errs, NULL, 0, 0, "cannot create %s: %s", path.data, strerror(errno));
  } else {
    unsigned char raw[SECRET_BYTES];
    char hex[2 * SECRET_BYTES + 2];
    int ok = RAND_bytes(raw, sizeof raw) == 1;
    for (size_t i = 0; ok && i < sizeof raw; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * SECRET_BYTES] = '\n';
    ok = ok && write(fd, hex, sizeof hex - 1) == (ssize_t)(sizeof hex - 1) && fsync(fd) == 0;
    close(fd);
    if (ok) secret = nd_strndup(hex, 2 * SECRET_BYTES);
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(hex, sizeof hex);
    if (!secret) {
      unlink(path.data);
      nd_errors_add(errs, NULL, 0, 0, "cannot write a new token secret to %s", path.data);
    } else {
      ND_INFO("auth", "generated the token-signing secret %s", path.data);
    }
  }
  nd_buf_free(&path);
  return secret;
}
