/* Small helpers of the email plugin: strdup variants, random bytes, and
 * address/text checks. */
#include "email_util.h"

#include "chat_json.h" /* chat_utf8_valid: chat_common is compiled into the plugin */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

char *email_strdup(const char *s) { return s ? strdup(s) : NULL; }

char *email_strndup(const char *s, size_t n) { return s ? strndup(s, n) : NULL; }

void email_random(void *out, size_t n) {
  unsigned char *p = out;
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(p + got, n - got, 0);
    if (r > 0) {
      got += (size_t)r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  if (got == n) return;
  /* No getrandom (very old kernel): identifiers only need to be unique,
   * not secret, so time, pid and address entropy are enough. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
               (uint64_t)(uintptr_t)out;
  for (; got < n; got++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[got] = (unsigned char)x;
  }
}

int email_utf8_printable(const char *s, size_t n) {
  /* Control bytes are ASCII; bytes >= 0x80 belong to multi-byte sequences,
   * which chat_utf8_valid checks. */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\t') || c == 0x7F) return 0;
  }
  return chat_utf8_valid(s, n);
}

int email_addr_valid(const char *s) {
  if (!s) return 0;
  const char *at = strrchr(s, '@');
  size_t n = strlen(s);
  if (!at || at == s || !at[1] || n > 254) return 0;
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c <= 0x20 || c >= 0x7F || c == '<' || c == '>' || c == '"' || c == '(' || c == ')' ||
        c == ',' || c == ';' || c == '\\' || c == '[' || c == ']')
      return 0;
  }
  return 1;
}
