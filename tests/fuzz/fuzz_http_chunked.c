/* Chunked request bodies (host/http/parse.c nd_chunked_feed).  Input: a
 * seed byte for the piece lengths, then the body bytes.  The body is
 * decoded twice, all at once and in pieces as reads deliver it; both runs
 * must end with the same status and the same decoded bytes, and a
 * completed body never exceeds the limit. */
#include <event2/buffer.h>
#include <string.h>

#include "fuzz.h"
#include "http/http_internal.h"

#define LIMIT 65536
#define MAX_TRAILER 1024

typedef struct outcome {
  int rc;
  nd_buf body;
} outcome;

/* Feeds data[0..size) in pieces (all at once when sp is NULL), as the
 * connection does: append what was read, decode, stop on an answer. */
static void decode(const uint8_t *data, size_t size, fuzz_split *sp, outcome *o) {
  nd_chunked c;
  memset(&c, 0, sizeof c);
  nd_buf_init(&o->body);
  struct evbuffer *in = evbuffer_new();
  FUZZ_CHECK(in != NULL, "out of memory");
  o->rc = 0;
  size_t off = 0;
  while (off < size && o->rc == 0) {
    size_t n = sp ? fuzz_split_next(sp, size - off) : size - off;
    evbuffer_add(in, data + off, n);
    off += n;
    o->rc = nd_chunked_feed(&c, in, &o->body, LIMIT, MAX_TRAILER);
  }
  if (o->rc == 1) FUZZ_CHECK(o->body.len <= LIMIT, "%zu bytes over the limit", o->body.len);
  if (o->rc == 400 && c.why) FUZZ_CHECK(c.why[0] != '\0', "empty reason");
  evbuffer_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  fuzz_split sp = {data[0]};
  data++, size--;
  outcome whole, pieces;
  decode(data, size, NULL, &whole);
  decode(data, size, &sp, &pieces);
  FUZZ_CHECK(whole.rc == 0 || whole.rc == 1 || whole.rc == 400 || whole.rc == 413 ||
                 whole.rc == 431,
             "status %d", whole.rc);
  FUZZ_CHECK(whole.rc == pieces.rc, "status %d at once, %d in pieces", whole.rc, pieces.rc);
  if (whole.rc == 1)
    FUZZ_CHECK(whole.body.len == pieces.body.len &&
                   (whole.body.len == 0 ||
                    memcmp(whole.body.data, pieces.body.data, whole.body.len) == 0),
               "bodies differ (%zu and %zu bytes)", whole.body.len, pieces.body.len);
  nd_buf_free(&whole.body);
  nd_buf_free(&pieces.body);
  return 0;
}
