/* MongoDB store through a libmongoc client pool (each call pops a client;
 * runs on worker threads only).  Collection `chat` (configurable), the Go
 * service's document shape:
 *   {_id: string | ObjectId, content, created_at: Date, stream_id,
 *    sender_id, receiver_id}
 * indexed {stream_id: 1, created_at: -1} for history.  Inserts come in
 * group-commit batches (mg_insert_batch: one unordered insert_many; a
 * duplicate _id is a retried message_id, answered as "existing").
 *
 * Change capture for the built-in relay: an outbox collection
 * (`chat_outbox`, configurable) holds one record per message not yet
 * published - the message's fields plus {o: this store's random owner id,
 * seq: its sequence number} - written right after the message (no
 * multi-document transactions in FerretDB v1).  The relay gets each batch's
 * records handed over, publishes them, and deletes them by (o, seq) once
 * the bus acknowledged them; a catch-up reads the outbox oldest first
 * (created_at, _id) and deletes by _id.  The outbox stays as small
 * as the records in flight, which matters on FerretDB v1: its finds and
 * deletes other than inserts scan the collection (no index use beyond the
 * _id uniqueness), so a flag on each message document (`_published`,
 * before) made every relay cycle read the whole history.
 *
 * Conversation state lives in a second collection (`conversations`,
 * configurable), one document per user and stream:
 *   {_id: "<len(user)>:<user>:<stream>", user_id, stream_id, peer_id,
 *    last_at: Date, last_key, unread, v, read_key}
 * `last_key` / `read_key` spell a message's position in the stream's
 * history order as a string that sorts the same way
 * ("<ms, 15 digits>:<1 string id | 2 ObjectId>:<id>", see msg_key).  No
 * multi-document transactions (FerretDB v1 has none), so every write is
 * order-tolerant: $max moves the last message and the read mark, never
 * back; the receiver's unread gets $inc only while its read mark is
 * before the message (conditional updates, per batch: conv_apply), and
 * only when the message insert really inserted (a retried message_id is
 * not counted again).  A
 * read recounts the peer's messages after the mark and stores the number
 * only if no $inc came in between (`v` counts them: compare and set,
 * retried).  A crash between a message insert and its conversation
 * updates leaves the count one short until the user's next read. */
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_buf.h"
#include "chat_extjson.h"
#include "chat_oid.h"
#include "chat_time.h"
#include "cp_store.h"

#define DUPLICATE_KEY 11000

typedef struct mg_store {
  cp_store base;
  mongoc_client_pool_t *pool;
  char *db, *coll, *conv, *outbox;
  int capture;
  char owner[33];    /* this store's outbox records: {o: owner, seq} */
  int64_t next_seq;  /* atomic */
} mg_store;

static mongoc_collection_t *conv_pop(mg_store *s, mongoc_client_t **c) {
  *c = mongoc_client_pool_pop(s->pool);
  return mongoc_client_get_collection(*c, s->db, s->conv);
}

static mongoc_collection_t *coll_pop(mg_store *s, mongoc_client_t **c) {
  *c = mongoc_client_pool_pop(s->pool);
  return mongoc_client_get_collection(*c, s->db, s->coll);
}

static void coll_push(mg_store *s, mongoc_client_t *c, mongoc_collection_t *coll) {
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(s->pool, c);
}

static void append_id(bson_t *b, const char *key, const char *id, int is_oid) {
  if (is_oid) {
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, id);
    BSON_APPEND_OID(b, key, &oid);
  } else {
    BSON_APPEND_UTF8(b, key, id);
  }
}

static char *iter_dup_utf8(const bson_iter_t *it) {
  uint32_t len = 0;
  const char *s = bson_iter_utf8(it, &len);
  return chat_strndup(s, len);
}

/* A BSON string's length, NUL bytes included (content may hold them). */
static size_t strlen_utf8_iter(const bson_iter_t *it) {
  uint32_t len = 0;
  bson_iter_utf8(it, &len);
  return len;
}

/* Reads a stored document; -1 on OOM. Missing or odd fields read as empty,
 * as the Go driver's decoder would leave them. */
static int doc_to_msg(const bson_t *doc, chat_message *m) {
  chat_message_init(m);
  bson_iter_t it;
  if (bson_iter_init(&it, doc)) {
    while (bson_iter_next(&it)) {
      const char *k = bson_iter_key(&it);
      char **slot = NULL;
      if (strcmp(k, "_id") == 0) {
        char num[32];
        if (BSON_ITER_HOLDS_OID(&it)) {
          char hex[25];
          bson_oid_to_string(bson_iter_oid(&it), hex);
          free(m->message_id);
          m->message_id = strdup(hex);
          m->id_is_oid = 1;
        } else if (BSON_ITER_HOLDS_UTF8(&it)) {
          free(m->message_id);
          m->message_id = iter_dup_utf8(&it);
        } else if (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it)) {
          snprintf(num, sizeof num, "%lld", (long long)bson_iter_as_int64(&it));
          free(m->message_id);
          m->message_id = strdup(num);
        }
        continue;
      }
      if (strcmp(k, "created_at") == 0) {
        if (BSON_ITER_HOLDS_DATE_TIME(&it)) m->created_at_ms = bson_iter_date_time(&it);
        continue;
      }
      if (strcmp(k, "content") == 0) slot = &m->content;
      else if (strcmp(k, "stream_id") == 0) slot = &m->stream_id;
      else if (strcmp(k, "sender_id") == 0) slot = &m->sender_id;
      else if (strcmp(k, "receiver_id") == 0) slot = &m->receiver_id;
      if (slot && BSON_ITER_HOLDS_UTF8(&it)) {
        free(*slot);
        *slot = iter_dup_utf8(&it);
        if (slot == &m->content) m->content_len = *slot ? strlen_utf8_iter(&it) : 0;
      }
    }
  }
  if (chat_message_fill(m) < 0) {
    chat_message_free(m);
    return -1;
  }
  return 0;
}

/* The filter matching a message id: a 24-hex id may be an ObjectId or a
 * client string. */
static void id_filter(bson_t *f, const char *id) {
  if (chat_oid_is_hex(id)) {
    bson_t in, arr;
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, id);
    BSON_APPEND_DOCUMENT_BEGIN(f, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    BSON_APPEND_UTF8(&arr, "0", id);
    BSON_APPEND_OID(&arr, "1", &oid);
    bson_append_array_end(&in, &arr);
    bson_append_document_end(f, &in);
  } else {
    BSON_APPEND_UTF8(f, "_id", id);
  }
}

static int find_one(mg_store *s, const bson_t *filter, chat_message *out, char *err,
                    size_t errlen) {
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, &c);
  bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
  const bson_t *doc;
  int rc = 0;
  if (mongoc_cursor_next(cur, &doc)) {
    rc = doc_to_msg(doc, out) == 0 ? 1 : -1;
    if (rc < 0) snprintf(err, errlen, "out of memory");
  }
  bson_error_t be;
  if (rc == 0 && mongoc_cursor_error(cur, &be)) {
    snprintf(err, errlen, "mongodb find: %s", be.message);
    rc = -1;
  }
  mongoc_cursor_destroy(cur);
  bson_destroy(opts);
  coll_push(s, c, coll);
  return rc;
}

/* ---- inserts: group commit ----
 *
 * A batch is one unordered insert_many of the messages (a duplicate _id is
 * a retried message_id: that message answers as "existing"), then the
 * conversation updates of the inserted ones (conv_apply: two bulk writes),
 * then, with capture, one unordered insert_many of their change records
 * into the outbox collection.  No multi-document transactions: a message
 * whose change record could not be written answers as an error, and the
 * client's retry (same message_id: "existing") writes the record again.
 * Each written record is handed to the relay (`changes`), which publishes
 * it without reading it back and deletes it from the outbox once the bus
 * acknowledged it (`del`: own records by sequence number). */

static void msg_doc(bson_t *doc, const chat_message *m) {
  append_id(doc, "_id", m->message_id, m->id_is_oid);
  bson_append_utf8(doc, "content", -1, m->content, (int)m->content_len);
  BSON_APPEND_DATE_TIME(doc, "created_at", m->created_at_ms);
  BSON_APPEND_UTF8(doc, "stream_id", m->stream_id);
  BSON_APPEND_UTF8(doc, "sender_id", m->sender_id);
  BSON_APPEND_UTF8(doc, "receiver_id", m->receiver_id);
}

/* The write errors of an unordered write's reply: codes[index] = the
 * error's code (unchanged for the documents written).  0, or -1 when the
 * reply names no write error (the command itself failed). */
static int write_errors(const bson_t *reply, int *codes, size_t n) {
  bson_iter_t it, arr;
  int any = 0;
  if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
      bson_iter_recurse(&it, &arr)) {
    while (bson_iter_next(&arr)) {
      bson_iter_t e;
      if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &e)) continue;
      int64_t idx = -1, code = -1;
      while (bson_iter_next(&e)) {
        if (strcmp(bson_iter_key(&e), "index") == 0) idx = bson_iter_as_int64(&e);
        else if (strcmp(bson_iter_key(&e), "code") == 0) code = bson_iter_as_int64(&e);
      }
      if (idx >= 0 && (size_t)idx < n) {
        codes[idx] = code ? (int)code : -1;
        any = 1;
      }
    }
  }
  return any ? 0 : -1;
}

/* insert_many(ordered: false) of docs[0..n) into `name`; codes[i] = 0 or
 * the document's write error.  0, or -1 when the command failed (err). */
static int insert_unordered(mongoc_client_t *c, mg_store *s, const char *name, bson_t *docs,
                            size_t n, int *codes, char *err, size_t errlen) {
  const bson_t **ptrs = calloc(n, sizeof *ptrs);
  if (!ptrs) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    ptrs[i] = &docs[i];
    codes[i] = 0;
  }
  mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, name);
  bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
  bson_t reply;
  bson_error_t be;
  int rc = 0;
  if (!mongoc_collection_insert_many(coll, ptrs, n, opts, &reply, &be) &&
      write_errors(&reply, codes, n) < 0) {
    snprintf(err, errlen, "mongodb insert into %s: %s", name, be.message);
    rc = -1;
  }
  bson_destroy(&reply);
  bson_destroy(opts);
  mongoc_collection_destroy(coll);
  free(ptrs);
  return rc;
}

/* Deletes this store's own outbox records `seqs` (published). */
static int outbox_delete_seqs(mongoc_client_t *c, mg_store *s, const int64_t *seqs, size_t n,
                              char *err, size_t errlen) {
  bson_t filter = BSON_INITIALIZER, in, arr;
  BSON_APPEND_UTF8(&filter, "o", s->owner);
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "seq", &in);
  BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
  for (size_t i = 0; i < n; i++) {
    char key[24];
    snprintf(key, sizeof key, "%zu", i);
    BSON_APPEND_INT64(&arr, key, seqs[i]);
  }
  bson_append_array_end(&in, &arr);
  bson_append_document_end(&filter, &in);
  mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, s->outbox);
  bson_error_t be;
  int rc = 0;
  if (!mongoc_collection_delete_many(coll, &filter, NULL, NULL, &be)) {
    snprintf(err, errlen, "mongodb outbox delete: %s", be.message);
    rc = -1;
  }
  mongoc_collection_destroy(coll);
  bson_destroy(&filter);
  return rc;
}

/* The change record of a message (key, value rendered now). */
static int change_fill(cp_change *ch, const chat_message *m, int64_t seq, int64_t now) {
  pc_buf k, v;
  pc_buf_init(&k);
  pc_buf_init(&v);
  memset(ch, 0, sizeof *ch);
  ch->status = -1;
  ch->seq = seq;
  ch->doc_id_is_oid = m->id_is_oid;
  ch->doc_id = strdup(m->message_id);
  int bad = chat_doc_key(m, &k) < 0 || chat_change_value(m, now, &v) < 0;
  ch->key = pc_buf_steal(&k, &ch->key_len);
  ch->value = pc_buf_steal(&v, &ch->value_len);
  pc_buf_free(&k);
  pc_buf_free(&v);
  return bad || !ch->doc_id || !ch->key || !ch->value ? -1 : 0;
}

/* Change records of the messages with rc >= 0 (inserted, or existing: a
 * retry writes the record again in case the first attempt stored the
 * message and not its record; consumers dedupe by key).  A message whose
 * record failed gets rc -1. */
static void outbox_add(mongoc_client_t *c, mg_store *s, chat_message *const *m, int *rc, size_t n,
                       cp_change *changes, char *err, size_t errlen) {
  bson_t *docs = calloc(n, sizeof *docs);
  size_t *map = calloc(n, sizeof *map);
  int64_t *seqs = calloc(n, sizeof *seqs);
  int *codes = calloc(n, sizeof *codes);
  size_t k = 0;
  if (!docs || !map || !seqs || !codes) {
    snprintf(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) rc[i] = -1;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (rc[i] < 0) continue;
    bson_init(&docs[k]);
    msg_doc(&docs[k], m[i]);
    seqs[k] = __atomic_add_fetch(&s->next_seq, 1, __ATOMIC_RELAXED);
    BSON_APPEND_UTF8(&docs[k], "o", s->owner);
    BSON_APPEND_INT64(&docs[k], "seq", seqs[k]);
    map[k++] = i;
  }
  if (k == 0) goto out;
  int cmd_failed = insert_unordered(c, s, s->outbox, docs, k, codes, err, errlen) < 0;
  int64_t now = chat_time_now_ms();
  for (size_t j = 0; j < k; j++) {
    size_t i = map[j];
    if (cmd_failed) {
      rc[i] = -1;
    } else if (codes[j] == DUPLICATE_KEY) {
      /* the record of a retried message is still waiting: nothing new */
    } else if (codes[j] != 0) {
      snprintf(err, errlen, "mongodb outbox insert: error %d", codes[j]);
      rc[i] = -1;
    } else if (changes && change_fill(&changes[i], m[i], seqs[j], now) < 0) {
      /* the relay reads it back from the outbox instead */
      free(changes[i].doc_id);
      free(changes[i].key);
      free(changes[i].value);
      memset(&changes[i], 0, sizeof changes[i]);
    }
  }
out:
  for (size_t j = 0; j < k; j++) bson_destroy(&docs[j]);
  free(docs);
  free(map);
  free(seqs);
  free(codes);
}

static void conv_apply(mongoc_client_t *c, mg_store *s, chat_message *const *m, const int *rc,
                       size_t n, char *err, size_t errlen);

static int insert_batch(mg_store *s, chat_message *const *m, int *rc, size_t n,
                        cp_change *changes, const int64_t *del, size_t ndel, int with_conv,
                        char *err, size_t errlen) {
  int result = 0;
  mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
  bson_t *docs = NULL;
  int *codes = NULL;
  if (ndel > 0 && outbox_delete_seqs(c, s, del, ndel, err, errlen) < 0) {
    result = -1;
    goto out;
  }
  if (n == 0) goto out;
  docs = calloc(n, sizeof *docs);
  codes = calloc(n, sizeof *codes);
  if (!docs || !codes) {
    snprintf(err, errlen, "out of memory");
    result = -1;
    goto out;
  }
  int64_t now = chat_time_now_ms();
  for (size_t i = 0; i < n; i++) {
    m[i]->created_at_ms = now;
    bson_init(&docs[i]);
    msg_doc(&docs[i], m[i]);
  }
  result = insert_unordered(c, s, s->coll, docs, n, codes, err, errlen);
  for (size_t i = 0; i < n; i++) bson_destroy(&docs[i]);
  if (result < 0) goto out;
  int any_new = 0;
  for (size_t i = 0; i < n; i++) {
    if (codes[i] == 0) {
      rc[i] = 0;
      any_new = 1;
      continue;
    }
    if (codes[i] != DUPLICATE_KEY) {
      snprintf(err, errlen, "mongodb insert: error %d", codes[i]);
      rc[i] = -1;
      continue;
    }
    /* A retried message_id: answer with what is stored. */
    bson_t filter = BSON_INITIALIZER;
    append_id(&filter, "_id", m[i]->message_id, m[i]->id_is_oid);
    chat_message stored;
    int r = find_one(s, &filter, &stored, err, errlen);
    bson_destroy(&filter);
    if (r == 0) snprintf(err, errlen, "message %s: duplicate key but not found", m[i]->message_id);
    if (r != 1) {
      rc[i] = -1;
      continue;
    }
    chat_message_free(m[i]);
    *m[i] = stored;
    rc[i] = 1;
  }
  /* The conversation state follows in mg_conv_apply, after the answer;
   * a lone insert (mg_insert) does it here.  Stored and about to be
   * delivered: a failed update is reported in err with rc 0 (logged as a
   * warning); the next read recounts. */
  if (any_new && with_conv) conv_apply(c, s, m, rc, n, err, errlen);
  if (s->capture) outbox_add(c, s, m, rc, n, changes, err, errlen);
out:
  mongoc_client_pool_push(s->pool, c);
  free(docs);
  free(codes);
  if (result < 0)
    for (size_t i = 0; i < n; i++) rc[i] = -1;
  return result;
}

static int mg_insert_batch(cp_store *bs, chat_message *const *m, int *rc, size_t n,
                           cp_change *changes, const int64_t *del, size_t ndel, char *err,
                           size_t errlen) {
  return insert_batch((mg_store *)bs, m, rc, n, changes, del, ndel, 0, err, errlen);
}

static int mg_insert(cp_store *bs, chat_message *m, char *err, size_t errlen) {
  int rc;
  return insert_batch((mg_store *)bs, &m, &rc, 1, NULL, NULL, 0, 1, err, errlen) < 0 ? -1 : rc;
}

static int mg_conv_apply(cp_store *bs, chat_message *const *m, size_t n, char *err,
                         size_t errlen) {
  mg_store *s = (mg_store *)bs;
  int *rc = calloc(n ? n : 1, sizeof *rc); /* all 0: inserted */
  if (!rc) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  err[0] = '\0';
  mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
  conv_apply(c, s, m, rc, n, err, errlen);
  mongoc_client_pool_push(s->pool, c);
  free(rc);
  return err[0] ? -1 : 0;
}

static int mg_get(cp_store *bs, const char *id, chat_message *out, char *err, size_t errlen) {
  bson_t filter = BSON_INITIALIZER;
  id_filter(&filter, id);
  int rc = find_one((mg_store *)bs, &filter, out, err, errlen);
  bson_destroy(&filter);
  return rc;
}

/* ---- conversations ---- */

/* The conversation document id of (user, stream): length-prefixed, so no
 * choice of ids can make two pairs collide.  malloc'd or NULL. */
static char *conv_id(const char *user, const char *stream) {
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_printf(&b, "%zu:%s:%s", strlen(user), user, stream);
  return pc_buf_steal(&b, NULL);
}

/* A message's position in the history order (created_at, then _id with
 * every string before every ObjectId, as BSON sorts them) as a string
 * with the same order.  malloc'd or NULL. */
static char *msg_key(const chat_message *m) {
  pc_buf b;
  pc_buf_init(&b);
  pc_buf_printf(&b, "%015" PRId64 ":%c:%s", m->created_at_ms, m->id_is_oid ? '2' : '1',
                m->message_id);
  return pc_buf_steal(&b, NULL);
}

/* Back from msg_key to a cursor (and the id); -1 if malformed. */
static int key_cursor(const char *key, cp_cursor *c) {
  memset(c, 0, sizeof *c);
  char *end = NULL;
  long long ms = strtoll(key, &end, 10);
  if (end != key + 15 || end[0] != ':' || (end[1] != '1' && end[1] != '2') || end[2] != ':')
    return -1;
  c->ms = ms;
  c->kind = end[1] == '2' ? CP_CUR_OID : CP_CUR_STR_ID;
  if (c->kind == CP_CUR_OID && !chat_oid_is_hex(end + 3)) return -1;
  c->id = strdup(end + 3);
  return c->id ? 0 : -1;
}

static void conv_fields(bson_t *set, const char *user, const char *stream, const char *peer) {
  BSON_APPEND_UTF8(set, "user_id", user);
  BSON_APPEND_UTF8(set, "stream_id", stream);
  BSON_APPEND_UTF8(set, "peer_id", peer);
}

/* The conversation documents an insert batch touches, one entry each. */
typedef struct conv_agg {
  char *cid;
  const char *user, *peer, *stream;
  int64_t max_ms;
  const char *max_key;  /* the newest message's key */
  const char **keys;    /* messages counted as unread for `user` */
  size_t nkeys, capkeys;
  const char *min_key;
} conv_agg;

static conv_agg *agg_get(conv_agg *a, size_t *na, const char *user, const char *peer,
                         const char *stream) {
  char *cid = conv_id(user, stream);
  if (!cid) return NULL;
  for (size_t i = 0; i < *na; i++)
    if (strcmp(a[i].cid, cid) == 0) {
      free(cid);
      return &a[i];
    }
  conv_agg *g = &a[(*na)++];
  memset(g, 0, sizeof *g);
  g->cid = cid;
  g->user = user;
  g->peer = peer;
  g->stream = stream;
  return g;
}

static void agg_see(conv_agg *g, const chat_message *m, const char *key) {
  if (!g->max_key || strcmp(key, g->max_key) > 0) {
    g->max_key = key;
    g->max_ms = m->created_at_ms;
  }
}

/* Bulk writes of at most CONV_BULK_MAX updates per command: FerretDB v1
 * holds one PostgreSQL connection per update of a command until the
 * command ends, and a command with more updates than its pool has
 * connections (pool_max_conns, 50 by default) waits forever. */
#define CONV_BULK_MAX 32

typedef struct bulk_run {
  mongoc_collection_t *coll;
  const bson_t *opts;
  mongoc_bulk_operation_t *b;
  size_t n;
  int64_t matched;
  int failed;
  char *err;
  size_t errlen;
} bulk_run;

static void bulk_exec(bulk_run *br) {
  if (!br->b) return;
  bson_t reply;
  bson_error_t be;
  if (!mongoc_bulk_operation_execute(br->b, &reply, &be)) {
    snprintf(br->err, br->errlen, "mongodb conversation update: %s", be.message);
    br->failed = 1;
  } else {
    bson_iter_t it;
    if (bson_iter_init_find(&it, &reply, "nMatched")) br->matched += bson_iter_as_int64(&it);
  }
  bson_destroy(&reply);
  mongoc_bulk_operation_destroy(br->b);
  br->b = NULL;
  br->n = 0;
}

static void bulk_add(bulk_run *br, const bson_t *f, const bson_t *u, const bson_t *opts) {
  if (!br->b) br->b = mongoc_collection_create_bulk_operation_with_opts(br->coll, br->opts);
  mongoc_bulk_operation_update_one_with_opts(br->b, f, u, opts, NULL);
  if (++br->n == CONV_BULK_MAX) bulk_exec(br);
}

/* {$inc: {unread: n, v: n}}: `v` counts every increment (mark_read's
 * compare and set). */
static void append_inc_unread(bson_t *u, int64_t n) {
  bson_t d;
  BSON_APPEND_DOCUMENT_BEGIN(u, "$inc", &d);
  BSON_APPEND_INT64(&d, "unread", n);
  BSON_APPEND_INT64(&d, "v", n);
  bson_append_document_end(u, &d);
}

/* Conversation state for the messages of a batch that were inserted (rc
 * 0), in two bulk writes (of CONV_BULK_MAX updates each) whatever the
 * number of messages:
 *   A. per touched document an upsert: participants, $max of the last
 *      message, unread/v 0 when new;
 *   B. per document with messages from the peer: $inc of unread (and v) by
 *      their number, only while the read mark is before the oldest of them.
 * Only when B matched fewer documents than it addressed (a read mark past
 * one of the new messages, a race with a read) does a third bulk count the
 * messages after the mark one by one, on exactly the documents B left
 * alone (their mark is at or after that oldest message).  Failures go to
 * err; the next read recounts. */
static void conv_apply(mongoc_client_t *c, mg_store *s, chat_message *const *m, const int *rc,
                       size_t n, char *err, size_t errlen) {
  char **keys = calloc(n, sizeof *keys);
  conv_agg *a = calloc(2 * n, sizeof *a);
  size_t na = 0;
  int oom = !keys || !a;
  for (size_t i = 0; !oom && i < n; i++) {
    if (rc[i] != 0) continue;
    const chat_message *x = m[i];
    if (!(keys[i] = msg_key(x))) {
      oom = 1;
      break;
    }
    conv_agg *g = agg_get(a, &na, x->sender_id, x->receiver_id, x->stream_id);
    if (!g) {
      oom = 1;
      break;
    }
    agg_see(g, x, keys[i]);
    if (strcmp(x->sender_id, x->receiver_id) == 0) continue;
    g = agg_get(a, &na, x->receiver_id, x->sender_id, x->stream_id);
    if (!g) {
      oom = 1;
      break;
    }
    agg_see(g, x, keys[i]);
    if (g->nkeys == g->capkeys) {
      size_t cap = g->capkeys ? g->capkeys * 2 : 4;
      const char **v = realloc(g->keys, cap * sizeof *v);
      if (!v) {
        oom = 1;
        break;
      }
      g->keys = v;
      g->capkeys = cap;
    }
    g->keys[g->nkeys++] = keys[i];
    if (!g->min_key || strcmp(keys[i], g->min_key) < 0) g->min_key = keys[i];
  }
  if (oom) {
    snprintf(err, errlen, "out of memory (conversation update)");
    goto out;
  }
  mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, s->conv);
  bson_t *bopts = BCON_NEW("ordered", BCON_BOOL(false));
  bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
  bulk_run br = {coll, bopts, NULL, 0, 0, 0, err, errlen};
  /* A */
  for (size_t i = 0; i < na; i++) {
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, d;
    BSON_APPEND_UTF8(&f, "_id", a[i].cid);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &d);
    conv_fields(&d, a[i].user, a[i].stream, a[i].peer);
    bson_append_document_end(&u, &d);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$max", &d);
    BSON_APPEND_DATE_TIME(&d, "last_at", a[i].max_ms);
    BSON_APPEND_UTF8(&d, "last_key", a[i].max_key);
    bson_append_document_end(&u, &d);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$setOnInsert", &d);
    BSON_APPEND_INT64(&d, "unread", 0);
    BSON_APPEND_INT64(&d, "v", 0);
    bson_append_document_end(&u, &d);
    bulk_add(&br, &f, &u, upsert);
    bson_destroy(&f);
    bson_destroy(&u);
  }
  bulk_exec(&br);
  /* B */
  size_t nb = 0;
  br.matched = 0;
  for (size_t i = 0; !br.failed && i < na; i++) {
    if (!a[i].nkeys) continue;
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, or, alt, cond;
    BSON_APPEND_UTF8(&f, "_id", a[i].cid);
    BSON_APPEND_ARRAY_BEGIN(&f, "$or", &or);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&alt, "read_key", &cond);
    BSON_APPEND_BOOL(&cond, "$exists", false);
    bson_append_document_end(&alt, &cond);
    bson_append_document_end(&or, &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&alt, "read_key", &cond);
    BSON_APPEND_UTF8(&cond, "$lt", a[i].min_key);
    bson_append_document_end(&alt, &cond);
    bson_append_document_end(&or, &alt);
    bson_append_array_end(&f, &or);
    append_inc_unread(&u, (int64_t)a[i].nkeys);
    bulk_add(&br, &f, &u, NULL);
    bson_destroy(&f);
    bson_destroy(&u);
    nb++;
  }
  bulk_exec(&br);
  /* C: only the documents whose mark is at or after their oldest new
   * message match (read_key >= min_key); those B counted do not. */
  if (!br.failed && br.matched < (int64_t)nb) {
    for (size_t i = 0; i < na; i++) {
      for (size_t k = 0; k < a[i].nkeys; k++) {
        if (a[i].keys[k] == a[i].min_key) continue; /* never after the mark */
        bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, cond;
        BSON_APPEND_UTF8(&f, "_id", a[i].cid);
        BSON_APPEND_DOCUMENT_BEGIN(&f, "read_key", &cond);
        BSON_APPEND_UTF8(&cond, "$gte", a[i].min_key);
        BSON_APPEND_UTF8(&cond, "$lt", a[i].keys[k]);
        bson_append_document_end(&f, &cond);
        append_inc_unread(&u, 1);
        bulk_add(&br, &f, &u, NULL);
        bson_destroy(&f);
        bson_destroy(&u);
      }
    }
    bulk_exec(&br);
  }
  bson_destroy(upsert);
  bson_destroy(bopts);
  mongoc_collection_destroy(coll);
out:
  for (size_t i = 0; a && i < na; i++) {
    free(a[i].cid);
    free(a[i].keys);
  }
  free(a);
  for (size_t i = 0; keys && i < n; i++) free(keys[i]);
  free(keys);
}

/* The peers' read marks for a page: one query for every peer's document of
 * the page's streams; each mark becomes the message id it names (a mark
 * that cannot be parsed is left out, as if nothing were read). */
static int peer_reads(mg_store *s, cp_conv_page *page, char *err, size_t errlen) {
  if (page->n == 0) return 0;
  bson_t filter = BSON_INITIALIZER, id, in;
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &id);
  BSON_APPEND_ARRAY_BEGIN(&id, "$in", &in);
  int result = 0;
  for (size_t i = 0; i < page->n; i++) {
    char *cid = conv_id(page->items[i].peer_id, page->items[i].stream_id);
    char idx[24];
    if (!cid) {
      result = -1;
      break;
    }
    snprintf(idx, sizeof idx, "%zu", i);
    BSON_APPEND_UTF8(&in, idx, cid);
    free(cid);
  }
  bson_append_array_end(&id, &in);
  bson_append_document_end(&filter, &id);
  if (result < 0) {
    bson_destroy(&filter);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  bson_t *opts = BCON_NEW("projection", "{", "user_id", BCON_INT32(1), "stream_id",
                          BCON_INT32(1), "read_key", BCON_INT32(1), "}");
  mongoc_client_t *c;
  mongoc_collection_t *coll = conv_pop(s, &c);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
  const bson_t *doc;
  while (result == 0 && mongoc_cursor_next(cur, &doc)) {
    bson_iter_t it;
    const char *who = NULL, *stream = NULL, *key = NULL;
    if (!bson_iter_init(&it, doc)) continue;
    while (bson_iter_next(&it)) {
      if (!BSON_ITER_HOLDS_UTF8(&it)) continue;
      const char *k = bson_iter_key(&it), *v = bson_iter_utf8(&it, NULL);
      if (strcmp(k, "user_id") == 0) who = v;
      else if (strcmp(k, "stream_id") == 0) stream = v;
      else if (strcmp(k, "read_key") == 0) key = v;
    }
    cp_cursor mark;
    if (!who || !stream || !key || key_cursor(key, &mark) < 0) continue;
    for (size_t i = 0; i < page->n; i++) {
      cp_conv *cv = &page->items[i];
      if (cv->peer_read_id || strcmp(cv->peer_id, who) != 0 || strcmp(cv->stream_id, stream) != 0)
        continue;
      cv->peer_read_id = strdup(mark.id);
      if (!cv->peer_read_id) result = -1;
      break;
    }
    cp_cursor_free(&mark);
  }
  bson_error_t be;
  if (result < 0) snprintf(err, errlen, "out of memory");
  else if (mongoc_cursor_error(cur, &be)) {
    snprintf(err, errlen, "mongodb read marks: %s", be.message);
    result = -1;
  }
  mongoc_cursor_destroy(cur);
  coll_push(s, c, coll);
  bson_destroy(opts);
  bson_destroy(&filter);
  return result;
}

static int mg_conversations(cp_store *bs, const char *user, const cp_cursor *before,
                            size_t limit, cp_conv_page *out, char *err, size_t errlen) {
  mg_store *s = (mg_store *)bs;
  memset(out, 0, sizeof *out);
  out->items = calloc(limit + 1, sizeof *out->items);
  char **keys = calloc(limit + 1, sizeof *keys);
  if (!out->items || !keys) {
    free(keys);
    free(out->items);
    out->items = NULL;
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  bson_t filter = BSON_INITIALIZER, cond, or, alt;
  BSON_APPEND_UTF8(&filter, "user_id", user);
  if (before && before->kind == CP_CUR_TIME) {
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "last_at", &cond);
    BSON_APPEND_DATE_TIME(&cond, "$lte", before->ms);
    bson_append_document_end(&filter, &cond);
  } else if (before && before->kind == CP_CUR_STR_ID) {
    BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &or);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&alt, "last_at", &cond);
    BSON_APPEND_DATE_TIME(&cond, "$lt", before->ms);
    bson_append_document_end(&alt, &cond);
    bson_append_document_end(&or, &alt);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &alt);
    BSON_APPEND_DATE_TIME(&alt, "last_at", before->ms);
    BSON_APPEND_DOCUMENT_BEGIN(&alt, "stream_id", &cond);
    BSON_APPEND_UTF8(&cond, "$lt", before->id ? before->id : "");
    bson_append_document_end(&alt, &cond);
    bson_append_document_end(&or, &alt);
    bson_append_array_end(&filter, &or);
  }
  bson_t *opts = BCON_NEW("sort", "{", "last_at", BCON_INT32(-1), "stream_id", BCON_INT32(-1),
                          "}", "limit", BCON_INT64((int64_t)limit + 1));
  mongoc_client_t *c;
  mongoc_collection_t *coll = conv_pop(s, &c);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
  const bson_t *doc;
  int result = 0;
  while (out->n <= limit && mongoc_cursor_next(cur, &doc)) {
    cp_conv *cv = &out->items[out->n];
    chat_message_init(&cv->last);
    bson_iter_t it;
    if (bson_iter_init(&it, doc)) {
      while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "stream_id") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
          free(cv->stream_id);
          cv->stream_id = iter_dup_utf8(&it);
        } else if (strcmp(k, "peer_id") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
          free(cv->peer_id);
          cv->peer_id = iter_dup_utf8(&it);
        } else if (strcmp(k, "last_key") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
          free(keys[out->n]);
          keys[out->n] = iter_dup_utf8(&it);
        } else if (strcmp(k, "last_at") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it)) {
          cv->last_ms = bson_iter_date_time(&it);
        } else if (strcmp(k, "unread") == 0 && BSON_ITER_HOLDS_NUMBER(&it)) {
          cv->unread = bson_iter_as_int64(&it);
        }
      }
    }
    out->n++;
    if (!cv->stream_id) cv->stream_id = strdup("");
    if (!cv->peer_id) cv->peer_id = strdup("");
    if (!cv->stream_id || !cv->peer_id) {
      snprintf(err, errlen, "out of memory");
      result = -1;
      break;
    }
  }
  bson_error_t be;
  if (result == 0 && mongoc_cursor_error(cur, &be)) {
    snprintf(err, errlen, "mongodb conversations: %s", be.message);
    result = -1;
  }
  mongoc_cursor_destroy(cur);
  coll_push(s, c, coll);
  bson_destroy(opts);
  bson_destroy(&filter);
  if (result == 0 && cp_conv_page_trim(out, limit) < 0) {
    snprintf(err, errlen, "out of memory");
    result = -1;
  }
  /* The last messages, one lookup each by _id (a conversation whose
   * message cannot be read keeps an empty one: rendered as null). */
  for (size_t i = 0; result == 0 && i < out->n; i++) {
    cp_cursor k;
    if (!keys[i] || key_cursor(keys[i], &k) < 0) continue;
    bson_t f = BSON_INITIALIZER;
    append_id(&f, "_id", k.id, k.kind == CP_CUR_OID);
    chat_message_free(&out->items[i].last);
    if (find_one(s, &f, &out->items[i].last, err, errlen) < 0) result = -1;
    bson_destroy(&f);
    cp_cursor_free(&k);
  }
  for (size_t i = 0; i <= limit; i++) free(keys[i]);
  free(keys);
  if (result == 0) result = peer_reads(s, out, err, errlen);
  if (result < 0) cp_conv_page_free(out);
  return result;
}

static void bound_clause(bson_t *and, const cp_cursor *c, int older, int *and_idx);

static int mg_mark_read(cp_store *bs, const char *user, const chat_message *m, int64_t *unread,
                        char *err, size_t errlen) {
  mg_store *s = (mg_store *)bs;
  const char *peer = strcmp(user, m->sender_id) == 0 ? m->receiver_id : m->sender_id;
  char *cid = conv_id(user, m->stream_id), *key = msg_key(m), *rk = NULL;
  if (!cid || !key) {
    free(cid);
    free(key);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  mongoc_client_t *c;
  mongoc_collection_t *coll = conv_pop(s, &c);
  mongoc_collection_t *msgs = mongoc_client_get_collection(c, s->db, s->coll);
  bson_error_t be;
  int result = 0;
  /* 1. The mark only moves forward ($max). */
  bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, d;
  BSON_APPEND_UTF8(&filter, "_id", cid);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &d);
  conv_fields(&d, user, m->stream_id, peer);
  bson_append_document_end(&update, &d);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$max", &d);
  BSON_APPEND_UTF8(&d, "read_key", key);
  bson_append_document_end(&update, &d);
  BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &d);
  BSON_APPEND_DATE_TIME(&d, "last_at", m->created_at_ms);
  BSON_APPEND_UTF8(&d, "last_key", key);
  BSON_APPEND_INT64(&d, "unread", 0);
  BSON_APPEND_INT64(&d, "v", 0);
  bson_append_document_end(&update, &d);
  bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
  if (!mongoc_collection_update_one(coll, &filter, &update, upsert, NULL, &be)) {
    snprintf(err, errlen, "mongodb read mark: %s", be.message);
    result = -1;
  }
  bson_destroy(upsert);
  bson_destroy(&update);
  /* 2. Recount the peer's messages after the mark and store the number
   * unless an $inc (v) or a later mark came in between; then again. */
  *unread = 0;
  int stored = 0;
  for (int attempt = 0; result == 0 && !stored && attempt < 8; attempt++) {
    int64_t v = 0;
    free(rk);
    rk = NULL;
    bson_t *fopts = BCON_NEW("limit", BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, fopts, NULL);
    const bson_t *doc;
    if (mongoc_cursor_next(cur, &doc)) {
      bson_iter_t it;
      if (bson_iter_init_find(&it, doc, "read_key") && BSON_ITER_HOLDS_UTF8(&it))
        rk = iter_dup_utf8(&it);
      if (bson_iter_init_find(&it, doc, "v") && BSON_ITER_HOLDS_NUMBER(&it))
        v = bson_iter_as_int64(&it);
    }
    if (mongoc_cursor_error(cur, &be)) {
      snprintf(err, errlen, "mongodb read mark lookup: %s", be.message);
      result = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(fopts);
    cp_cursor mark;
    if (result == 0 && (!rk || key_cursor(rk, &mark) < 0)) {
      snprintf(err, errlen, "conversation %s: no valid read mark", cid);
      result = -1;
    }
    if (result < 0) break;
    int64_t n = 0;
    if (strcmp(peer, user) != 0) {
      bson_t q = BSON_INITIALIZER, and;
      int idx = 0;
      BSON_APPEND_UTF8(&q, "stream_id", m->stream_id);
      BSON_APPEND_UTF8(&q, "sender_id", peer);
      BSON_APPEND_ARRAY_BEGIN(&q, "$and", &and);
      bound_clause(&and, &mark, 0, &idx);
      bson_append_array_end(&q, &and);
      n = mongoc_collection_count_documents(msgs, &q, NULL, NULL, NULL, &be);
      bson_destroy(&q);
    }
    cp_cursor_free(&mark);
    if (n < 0) {
      snprintf(err, errlen, "mongodb unread count: %s", be.message);
      result = -1;
      break;
    }
    bson_t cas = BSON_INITIALIZER, set = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&cas, "_id", cid);
    BSON_APPEND_UTF8(&cas, "read_key", rk);
    BSON_APPEND_INT64(&cas, "v", v);
    BSON_APPEND_DOCUMENT_BEGIN(&set, "$set", &d);
    BSON_APPEND_INT64(&d, "unread", n);
    bson_append_document_end(&set, &d);
    bson_t reply;
    if (!mongoc_collection_update_one(coll, &cas, &set, NULL, &reply, &be)) {
      snprintf(err, errlen, "mongodb unread update: %s", be.message);
      result = -1;
    } else {
      bson_iter_t it;
      stored = bson_iter_init_find(&it, &reply, "matchedCount") && bson_iter_as_int64(&it) > 0;
      if (stored) *unread = n;
    }
    bson_destroy(&reply);
    bson_destroy(&cas);
    bson_destroy(&set);
  }
  if (result == 0 && !stored) {
    snprintf(err, errlen, "conversation %s: unread count kept changing", cid);
    result = -1;
  }
  bson_destroy(&filter);
  mongoc_collection_destroy(msgs);
  coll_push(s, c, coll);
  free(rk);
  free(cid);
  free(key);
  return result;
}

/* Appends to `or` (an array being built) the alternatives that place a
 * document strictly on one side of cursor `c` in the order
 * (created_at, _id) - descending for `older`, ascending otherwise.  BSON
 * orders every ObjectId after every string, so mixed ids need a type arm. */
static void side_of(bson_t *or, const cp_cursor *c, int older, int *idx) {
  char key[16];
  bson_t alt, cond;
  const char *cmp = older ? "$lt" : "$gt";
  /* A bare time includes its own millisecond (see the SQLite store). */
  const char *time_cmp = c->kind == CP_CUR_TIME ? (older ? "$lte" : "$gte") : cmp;
  snprintf(key, sizeof key, "%d", (*idx)++);
  BSON_APPEND_DOCUMENT_BEGIN(or, key, &alt);
  BSON_APPEND_DOCUMENT_BEGIN(&alt, "created_at", &cond);
  BSON_APPEND_DATE_TIME(&cond, time_cmp, c->ms);
  bson_append_document_end(&alt, &cond);
  bson_append_document_end(or, &alt);
  if (c->kind != CP_CUR_OID && c->kind != CP_CUR_STR_ID) return;
  snprintf(key, sizeof key, "%d", (*idx)++);
  BSON_APPEND_DOCUMENT_BEGIN(or, key, &alt);
  BSON_APPEND_DATE_TIME(&alt, "created_at", c->ms);
  BSON_APPEND_DOCUMENT_BEGIN(&alt, "_id", &cond);
  if (c->kind == CP_CUR_OID) {
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, c->id);
    BSON_APPEND_OID(&cond, cmp, &oid);
  } else {
    BSON_APPEND_UTF8(&cond, cmp, c->id);
  }
  bson_append_document_end(&alt, &cond);
  bson_append_document_end(or, &alt);
  /* older than an ObjectId: every string id in that millisecond too;
   * newer than a string: every ObjectId in it. */
  if ((older && c->kind == CP_CUR_OID) || (!older && c->kind == CP_CUR_STR_ID)) {
    snprintf(key, sizeof key, "%d", (*idx)++);
    BSON_APPEND_DOCUMENT_BEGIN(or, key, &alt);
    BSON_APPEND_DATE_TIME(&alt, "created_at", c->ms);
    BSON_APPEND_DOCUMENT_BEGIN(&alt, "_id", &cond);
    BSON_APPEND_UTF8(&cond, "$type", older ? "string" : "objectId");
    bson_append_document_end(&alt, &cond);
    bson_append_document_end(or, &alt);
  }
}

static void bound_clause(bson_t *and, const cp_cursor *c, int older, int *and_idx) {
  if (!c || c->kind == CP_CUR_NONE) return;
  char key[16];
  bson_t clause, or;
  int idx = 0;
  snprintf(key, sizeof key, "%d", (*and_idx)++);
  BSON_APPEND_DOCUMENT_BEGIN(and, key, &clause);
  BSON_APPEND_ARRAY_BEGIN(&clause, "$or", &or);
  side_of(&or, c, older, &idx);
  bson_append_array_end(&clause, &or);
  bson_append_document_end(and, &clause);
}

static int mg_history(cp_store *bs, const char *stream_id, const cp_cursor *before,
                      const cp_cursor *after, size_t limit, cp_page *out, char *err,
                      size_t errlen) {
  mg_store *s = (mg_store *)bs;
  memset(out, 0, sizeof *out);
  out->msgs = calloc(limit + 1, sizeof *out->msgs);
  if (!out->msgs) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  bson_t filter = BSON_INITIALIZER, and;
  BSON_APPEND_UTF8(&filter, "stream_id", stream_id);
  int and_idx = 0;
  if ((before && before->kind) || (after && after->kind)) {
    BSON_APPEND_ARRAY_BEGIN(&filter, "$and", &and);
    bound_clause(&and, before, 1, &and_idx);
    bound_clause(&and, after, 0, &and_idx);
    bson_append_array_end(&filter, &and);
  }
  bson_t *opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(-1), "_id", BCON_INT32(-1), "}",
                          "limit", BCON_INT64((int64_t)limit + 1));
  mongoc_client_t *c;
  mongoc_collection_t *coll = coll_pop(s, &c);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
  const bson_t *doc;
  int result = 0;
  while (out->n <= limit && mongoc_cursor_next(cur, &doc)) {
    if (doc_to_msg(doc, &out->msgs[out->n]) < 0) {
      snprintf(err, errlen, "out of memory");
      result = -1;
      break;
    }
    out->n++;
  }
  bson_error_t be;
  if (result == 0 && mongoc_cursor_error(cur, &be)) {
    snprintf(err, errlen, "mongodb history: %s", be.message);
    result = -1;
  }
  mongoc_cursor_destroy(cur);
  coll_push(s, c, coll);
  bson_destroy(opts);
  bson_destroy(&filter);
  if (result == 0 && out->n > limit) {
    chat_message_free(&out->msgs[limit]);
    out->n = limit;
    const chat_message *last = &out->msgs[limit - 1];
    out->next.kind = last->id_is_oid ? CP_CUR_OID : CP_CUR_STR_ID;
    out->next.ms = last->created_at_ms;
    out->next.id = strdup(last->message_id);
    if (!out->next.id) {
      snprintf(err, errlen, "out of memory");
      result = -1;
    }
  }
  if (result < 0) cp_page_free(out);
  return result;
}

/* Catch-up: the oldest records of the outbox (this store's and any other
 * writer's; other writers' records carry seq 0 here, so they never count
 * as this relay's own). */
static int mg_changes_fetch(cp_store *bs, size_t max, cp_change **outp, size_t *n, char *err,
                            size_t errlen) {
  mg_store *s = (mg_store *)bs;
  *outp = NULL;
  *n = 0;
  cp_change *out = calloc(max ? max : 1, sizeof *out);
  if (!out) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  bson_t filter = BSON_INITIALIZER;
  bson_t *opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(1), "_id", BCON_INT32(1), "}",
                          "limit", BCON_INT64((int64_t)max));
  mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
  mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, s->outbox);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
  const bson_t *doc;
  int result = 0;
  int64_t now = chat_time_now_ms();
  while (*n < max && mongoc_cursor_next(cur, &doc)) {
    chat_message m;
    if (doc_to_msg(doc, &m) < 0) {
      result = -1;
      break;
    }
    int64_t seq = 0;
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "o") && BSON_ITER_HOLDS_UTF8(&it) &&
        strcmp(bson_iter_utf8(&it, NULL), s->owner) == 0 &&
        bson_iter_init_find(&it, doc, "seq") && BSON_ITER_HOLDS_NUMBER(&it))
      seq = bson_iter_as_int64(&it);
    int bad = change_fill(&out[(*n)++], &m, seq, now) < 0;
    chat_message_free(&m);
    if (bad) {
      result = -1;
      break;
    }
  }
  if (result < 0) snprintf(err, errlen, "out of memory");
  bson_error_t be;
  if (result == 0 && mongoc_cursor_error(cur, &be)) {
    snprintf(err, errlen, "mongodb relay fetch: %s", be.message);
    result = -1;
  }
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(s->pool, c);
  bson_destroy(opts);
  if (result < 0) {
    cp_changes_free(out, *n);
    *n = 0;
    return -1;
  }
  *outp = out;
  return 0;
}

/* Deletes the outbox records of the changes with status 0 (published). */
static int mg_changes_done(cp_store *bs, const cp_change *ch, size_t n, char *err,
                           size_t errlen) {
  mg_store *s = (mg_store *)bs;
  bson_t filter = BSON_INITIALIZER, in, arr;
  BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
  BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (ch[i].status != 0) continue;
    char key[24];
    snprintf(key, sizeof key, "%zu", k++);
    append_id(&arr, key, ch[i].doc_id, ch[i].doc_id_is_oid);
  }
  bson_append_array_end(&in, &arr);
  bson_append_document_end(&filter, &in);
  int rc = 0;
  if (k > 0) {
    mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, s->db, s->outbox);
    bson_error_t be;
    if (!mongoc_collection_delete_many(coll, &filter, NULL, NULL, &be)) {
      snprintf(err, errlen, "mongodb outbox delete: %s", be.message);
      rc = -1;
    }
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, c);
  }
  bson_destroy(&filter);
  return rc;
}

static void mg_close(cp_store *bs) {
  mg_store *s = (mg_store *)bs;
  if (!s) return;
  if (s->pool) mongoc_client_pool_destroy(s->pool);
  free(s->db);
  free(s->coll);
  free(s->conv);
  free(s->outbox);
  free(s);
}

static const cp_store_ops mongo_ops = {
    .name = "mongodb",
    .insert = mg_insert,
    .insert_batch = mg_insert_batch,
    .conv_apply = mg_conv_apply,
    .get = mg_get,
    .history = mg_history,
    .conversations = mg_conversations,
    .mark_read = mg_mark_read,
    .changes_fetch = mg_changes_fetch,
    .changes_done = mg_changes_done,
    .close = mg_close,
};

static const cp_store_ops mongo_ops_no_capture = {
    .name = "mongodb",
    .insert = mg_insert,
    .insert_batch = mg_insert_batch,
    .conv_apply = mg_conv_apply,
    .get = mg_get,
    .history = mg_history,
    .conversations = mg_conversations,
    .mark_read = mg_mark_read,
    .close = mg_close,
};

int cp_store_mongo_open(const cp_mongo_opts *o, cp_store **out, char *err, size_t errlen) {
  *out = NULL;
  mongoc_init(); /* once per process (pthread_once inside); never cleaned up here */
  bson_error_t be;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(o->uri, &be);
  if (!uri) {
    snprintf(err, errlen, "backends.mongodb.uri: %s", be.message);
    return -1;
  }
  /* Fail requests in seconds, not the driver's 30 s, when the server is down. */
  if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
  mg_store *s = calloc(1, sizeof *s);
  if (!s) {
    mongoc_uri_destroy(uri);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->base.ops = o->capture ? &mongo_ops : &mongo_ops_no_capture;
  s->capture = o->capture;
  s->pool = mongoc_client_pool_new(uri);
  mongoc_uri_destroy(uri);
  s->db = strdup(o->database);
  s->coll = strdup(o->collection);
  s->conv = strdup(o->conversations);
  s->outbox = strdup(o->outbox);
  /* Outbox records are this store's by owner: 16 random bytes. */
  unsigned char rnd[16];
  FILE *ur = fopen("/dev/urandom", "rb");
  int have_rnd = ur && fread(rnd, 1, sizeof rnd, ur) == sizeof rnd;
  if (ur) fclose(ur);
  for (size_t i = 0; have_rnd && i < sizeof rnd; i++)
    snprintf(s->owner + 2 * i, 3, "%02x", rnd[i]);
  if (!have_rnd) {
    mongoc_client_pool_destroy(s->pool);
    s->pool = NULL;
  }
  if (!s->pool || !s->db || !s->coll || !s->conv || !s->outbox) {
    mg_close(&s->base);
    snprintf(err, errlen, "cannot create the MongoDB client pool");
    return -1;
  }
  mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(s->pool, "notifd-chat_persistence");
  *out = &s->base;
  return 0;
}

/* Creates index `name` on db.coll unless an index of that name exists:
 * FerretDB v1 (SQLite handler) drops the connection on a createIndexes of
 * indexes that already exist, so a restart would never get past setup.
 * 0 or -1 (err filled). */
static int ensure_index(mongoc_client_t *c, const char *db, const char *coll, const char *name,
                        bson_t *key, char *err, size_t errlen) {
  mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
  mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(col, NULL);
  const bson_t *doc;
  bson_iter_t it;
  int found = 0;
  while (!found && mongoc_cursor_next(cur, &doc))
    found = bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it) &&
            strcmp(bson_iter_utf8(&it, NULL), name) == 0;
  /* A missing collection lists no indexes (an error on some servers):
   * createIndexes below creates both. */
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(col);
  if (found) {
    bson_destroy(key);
    return 0;
  }
  bson_error_t be;
  bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(coll), "indexes", "[", "{", "key",
                         BCON_DOCUMENT(key), "name", BCON_UTF8(name), "}", "]");
  bson_destroy(key);
  bool ok = mongoc_client_command_simple(c, db, cmd, NULL, NULL, &be);
  bson_destroy(cmd);
  if (!ok) snprintf(err, errlen, "mongodb createIndexes %s on %s.%s: %s", name, db, coll,
                    be.message);
  return ok ? 0 : -1;
}

int cp_store_mongo_setup(cp_store *bs, char *err, size_t errlen) {
  mg_store *s = (mg_store *)bs;
  mongoc_client_t *c = mongoc_client_pool_pop(s->pool);
  bson_error_t be;
  bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
  bool ok = mongoc_client_command_simple(c, "admin", ping, NULL, NULL, &be);
  bson_destroy(ping);
  if (!ok) {
    snprintf(err, errlen, "mongodb ping: %s", be.message);
    mongoc_client_pool_push(s->pool, c);
    return -1;
  }
  int rc = ensure_index(c, s->db, s->coll, "stream_id_1_created_at_-1",
                        BCON_NEW("stream_id", BCON_INT32(1), "created_at", BCON_INT32(-1)), err,
                        errlen);
  /* The outbox has no index but _id: it holds only the records in flight
   * (a scan of it is cheap), and every index costs each record an insert
   * and a delete (on FerretDB/PostgreSQL an expression index each). */
  if (rc == 0)
    rc = ensure_index(c, s->db, s->conv, "user_id_1_last_at_-1_stream_id_-1",
                      BCON_NEW("user_id", BCON_INT32(1), "last_at", BCON_INT32(-1), "stream_id",
                               BCON_INT32(-1)),
                      err, errlen);
  mongoc_client_pool_push(s->pool, c);
  return rc;
}
