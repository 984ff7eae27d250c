/* Classifies one record of the change topic (contract 4.1 and
 * debezium-samples/README.md).  Accepted shapes:
 *  - the Debezium MongoDB envelope {before, after, op, ts_ms, ...}, with or
 *    without the JsonConverter {"schema":…,"payload":…} wrapper; `after` is
 *    an Extended JSON string (canonical or relaxed);
 *  - ExtractNewDocumentState output (the document itself, no `op`; its
 *    optional __op / __deleted fields are honoured);
 *  - tombstones (no value, JSON null, {"schema":null,"payload":null}),
 *    heartbeats ({"ts_ms":N}) and transaction markers, ignored.
 * Never crashes on input: anything else is a drop with a reason. */
#ifndef CHAT_DEBEZIUM_H
#define CHAT_DEBEZIUM_H

#include <stddef.h>

#include "chat_model.h"

typedef enum chat_change_kind {
  CHAT_CHANGE_FORWARD = 1, /* a create: deliver `msg` */
  CHAT_CHANGE_SKIP,        /* a real change not forwarded (u, d, r, ...) */
  CHAT_CHANGE_IGNORE,      /* not a change (tombstone, heartbeat, ...) */
  CHAT_CHANGE_DROP,        /* malformed; `detail` says why */
  CHAT_CHANGE_NOMEM
} chat_change_kind;

typedef struct chat_change {
  int kind;             /* chat_change_kind */
  /* Metric label for FORWARD and SKIP: the op (c, u, d, r, t, m, or any
   * other short token as sent), "other" for an op that is not a token. */
  char op[17];
  const char *what;     /* IGNORE: tombstone | heartbeat | transaction */
  char detail[200];     /* DROP: human-readable reason */
  chat_message msg;     /* FORWARD only; free with chat_change_free */
} chat_change;

typedef struct chat_change_opts {
  int forward_reads;    /* also forward snapshot reads (op r); default no */
} chat_change_opts;

/* value may be NULL (tombstone).  Always fills `out`; free it afterwards. */
void chat_change_parse(const void *value, size_t len, const chat_change_opts *opts,
                       chat_change *out);
void chat_change_free(chat_change *c);

/* The two halves chat_change_parse combines, exposed for tests.  _fast
 * walks the bytes of the common record without jansson and answers (1)
 * only where _slow, the jansson reading, certainly gives the same result;
 * otherwise 0 with `out` empty.  _slow answers everything. */
int chat_change_parse_fast(const void *value, size_t len, const chat_change_opts *opts,
                           chat_change *out);
void chat_change_parse_slow(const void *value, size_t len, const chat_change_opts *opts,
                            chat_change *out);

/* Whether a record key can serve as the dedupe key verbatim: present,
 * non-empty, at most `max` bytes, no NUL.  0, or -1 with *why set. */
int chat_change_key_ok(const void *key, size_t len, size_t max, const char **why);

#endif
