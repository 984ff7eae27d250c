/* Embedded bus backend: one SQLite file (WAL) in the data directory.
 *
 * Layout: one append-only `records` table for every topic; the offset is an
 * AUTOINCREMENT sequence (never reused, even after retention deletes the
 * newest rows), so offsets within a partition are increasing but not
 * contiguous.  Partition = FNV-1a(key) % partitions (round robin for null
 * keys); a topic's partition count is stored in `topics` by whoever first
 * uses it, so every process agrees.  Consumer groups are stored cursors
 * (next offset) per (group, topic, partition).
 *
 * Writes are batched: produced records and cursor moves of one loop
 * iteration go into one transaction (flush_ev, activated by the first of
 * them); produce callbacks run after COMMIT.  Durability: WAL with
 * synchronous=NORMAL by default - a committed transaction is in the OS page
 * cache before COMMIT returns, so kill -9 of the process loses nothing that
 * was confirmed; only a power loss or kernel crash can lose the last
 * transactions.  `bus.embedded.synchronous: full` fsyncs every commit
 * (power-loss safe, at the price of one fsync per batch).
 *
 * Wake-up: a commit in this process wakes the streams of the partitions it
 * touched at once; commits by other processes sharing the file are noticed
 * by polling PRAGMA data_version (bus.embedded.poll_interval).
 *
 * One process owns a consumer group: consumers of one group inside this
 * process split the partitions; two processes consuming the same group from
 * one file both get every record (use distinct groups, or Kafka).
 *
 * Checkpoints: a WAL checkpoint fsyncs, which would stall the loop for
 * milliseconds; a small thread with its own connection (util/sqlite_ckpt.h)
 * runs PASSIVE checkpoints (they never block the writer) every
 * bus.embedded.checkpoint_interval (200ms), and a large automatic
 * checkpoint on the writer (ND_SQLITE_CKPT_AUTO_FRAMES) only syncs and lets
 * the log restart, so the WAL file stays bounded.
 *
 * Retention (periodic): records older than retention.max_age, beyond the
 * newest retention.max_records of a partition, and the oldest ones while the
 * file's used pages exceed retention.max_bytes (default 1 GiB), are deleted
 * whether or not a group has consumed them (as Kafka does); a group that
 * falls that far behind skips them.  Freed pages are reused, so the file
 * stays near max_bytes plus what one retention interval adds. */
#include <inttypes.h>
#include <sqlite3.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus_internal.h"
#include "log/log.h"
#include "util/buf.h"
#include "util/sqlite_ckpt.h"
#include "util/sqlite_stmt.h"

#define LAG_INTERVAL_MS 5000
#define TRIM_CHUNK 5000
#define TRIM_BYTES_ROWS 20000 /* records one size-retention pass deletes at most */
#define TRIM_AGAIN_MS 50

typedef struct emb_topic {
  char *name;
  int32_t nparts;
  uint32_t rr; /* round robin for null keys */
} emb_topic;

typedef struct emb_stream {
  int64_t next_fetch;  /* first offset not yet fetched */
  int64_t commit_next; /* cursor to store */
  int64_t stored;      /* cursor last stored */
  int dirty, caught_up;
} emb_stream;

typedef struct emb {
  nd_bus *bus;
  sqlite3 *db;
  char *path;
  sqlite3_stmt *ins, *fetch, *cur_get, *cur_set, *top_get, *top_ins, *max_seq, *lag, *dv;
  sqlite3_stmt *begin, *commit, *rollback; /* the flush's transaction, prepared once */
  nd_bus_record *pend_head, *pend_tail;
  size_t npend;
  emb_topic *topics;
  size_t ntopics, cap_topics;
  struct event *flush_ev, *poll_ev, *trim_ev, *lag_ev, *cursor_ev;
  int64_t default_parts, fetch_batch, batch_max, poll_ms, max_age_ms, max_records, trim_ms;
  int64_t max_bytes; /* retention by size; 0 = off */
  int trim_again;    /* the size pass stopped early: run again soon */
  int64_t trim_period_ms; /* trim_ev's current period */
  int64_t cursor_delay_ms; /* cursor-only commits wait this long for company */
  int sync_full;
  int64_t data_version;
  int cursors_dirty;
  int in_flush;
  nd_buf scratch;
  int64_t checkpoint_ms;
  nd_sqlite_ckpt *ckpt; /* background checkpointer */
} emb;

static emb *E(nd_bus *b) { return b->impl; }

static int exec_sql(emb *e, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(e->db, sql, NULL, NULL, &err) != SQLITE_OK) {
    ND_ERROR_RL("bus", "embedded bus %s: %s: %s", e->path, sql, err ? err : "?");
    sqlite3_free(err);
    return -1;
  }
  return 0;
}

/* A prepared transaction statement (no re-parse per flush). */
static int run_stmt(emb *e, sqlite3_stmt *st) {
  return nd_sqlite_run(e->db, st, "bus", "embedded bus", e->path);
}

static uint32_t fnv1a(const void *p, size_t n) {
  const unsigned char *s = p;
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 16777619u;
  }
  return h;
}

/* ---- topics ---- */

static emb_topic *topic_cached(emb *e, const char *name) {
  for (size_t i = 0; i < e->ntopics; i++)
    if (strcmp(e->topics[i].name, name) == 0) return &e->topics[i];
  return NULL;
}

/* Looks the topic up, creating it with the default partition count; call
 * inside a write transaction so two processes cannot disagree. */
static emb_topic *topic_get(emb *e, const char *name) {
  emb_topic *t = topic_cached(e, name);
  if (t) return t;
  sqlite3_reset(e->top_ins);
  sqlite3_bind_text(e->top_ins, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(e->top_ins, 2, e->default_parts);
  int rc = sqlite3_step(e->top_ins);
  sqlite3_reset(e->top_ins);
  if (rc != SQLITE_DONE) return NULL;
  sqlite3_reset(e->top_get);
  sqlite3_bind_text(e->top_get, 1, name, -1, SQLITE_STATIC);
  int64_t n = -1;
  if (sqlite3_step(e->top_get) == SQLITE_ROW) n = sqlite3_column_int64(e->top_get, 0);
  sqlite3_reset(e->top_get);
  if (n < 1 || n > 100000) return NULL;
  if (e->ntopics == e->cap_topics) {
    size_t cap = e->cap_topics ? e->cap_topics * 2 : 8;
    emb_topic *v = realloc(e->topics, cap * sizeof *v);
    if (!v) return NULL;
    e->topics = v;
    e->cap_topics = cap;
  }
  char *copy = strdup(name);
  if (!copy) return NULL;
  t = &e->topics[e->ntopics++];
  t->name = copy;
  t->nparts = (int32_t)n;
  t->rr = 0;
  return t;
}

/* ---- headers blob: [u32 name_len][name][u32 value_len | ~0 = null][value] ---- */

static void put_u32(nd_buf *b, uint32_t v) {
  unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                        (unsigned char)(v >> 8), (unsigned char)v};
  nd_buf_append(b, x, 4);
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void encode_headers(nd_buf *b, const nd_bus_record *r) {
  b->len = 0;
  for (size_t i = 0; i < r->nhdrs; i++) {
    size_t nl = strlen(r->hdrs[i].name);
    put_u32(b, (uint32_t)nl);
    nd_buf_append(b, r->hdrs[i].name, nl);
    put_u32(b, r->hdrs[i].value ? (uint32_t)r->hdrs[i].len : 0xFFFFFFFFu);
    if (r->hdrs[i].value) nd_buf_append(b, r->hdrs[i].value, r->hdrs[i].len);
  }
}

/* Counts headers and the bytes their NUL-terminated names need; -1 if the
 * blob is malformed. */
static int scan_headers(const unsigned char *p, size_t n, size_t *count, size_t *bytes) {
  size_t i = 0;
  *count = *bytes = 0;
  while (i < n) {
    if (n - i < 4) return -1;
    uint32_t nl = get_u32(p + i);
    i += 4;
    if (n - i < (size_t)nl + 4) return -1;
    i += nl;
    uint32_t vl = get_u32(p + i);
    i += 4;
    if (vl != 0xFFFFFFFFu) {
      if (n - i < vl) return -1;
      i += vl;
      *bytes += vl;
    }
    *bytes += nl + 1;
    (*count)++;
  }
  return 0;
}

/* ---- produce / flush ---- */

static int bind_blob_or_null(sqlite3_stmt *st, int i, const void *p, size_t n) {
  if (!p) return sqlite3_bind_null(st, i);
  return n ? sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC) : sqlite3_bind_zeroblob(st, i, 0);
}

static int insert_record(emb *e, nd_bus_record *r, int32_t *part_out) {
  emb_topic *t = topic_get(e, r->topic);
  if (!t) return -1;
  int32_t part = r->key ? (int32_t)(fnv1a(r->key, r->key_len) % (uint32_t)t->nparts)
                        : (int32_t)(t->rr++ % (uint32_t)t->nparts);
  encode_headers(&e->scratch, r);
  if (e->scratch.oom) return -1;
  sqlite3_stmt *st = e->ins;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, r->topic, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, part);
  sqlite3_bind_int64(st, 3, nd_wall_ms());
  bind_blob_or_null(st, 4, r->key, r->key_len);
  bind_blob_or_null(st, 5, r->value, r->value_len);
  if (r->nhdrs) sqlite3_bind_blob64(st, 6, e->scratch.data, e->scratch.len, SQLITE_STATIC);
  else sqlite3_bind_null(st, 6);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  *part_out = part;
  return rc == SQLITE_DONE ? 0 : -1;
}

static int store_cursor(emb *e, notifd_consumer *c, nd_bus_stream *s, int64_t next) {
  sqlite3_stmt *st = e->cur_set;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, c->group, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, s->topic, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, s->partition);
  sqlite3_bind_int64(st, 4, next);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

typedef struct touched {
  const char *topic;
  int32_t part;
} touched;

static void wake_partitions(emb *e, const touched *tp, size_t n) {
  nd_bus *b = e->bus;
  for (size_t i = 0; i < b->nconsumers; i++) {
    notifd_consumer *c = b->consumers[i];
    for (size_t j = 0; j < c->nstreams; j++) {
      nd_bus_stream *s = c->streams[j];
      for (size_t k = 0; k < n; k++) {
        if (tp[k].part == s->partition && strcmp(tp[k].topic, s->topic) == 0) {
          ((emb_stream *)s->impl)->caught_up = 0;
          nd_bus_stream_wake(s);
          break;
        }
      }
    }
  }
}

/* Work arriving while a flush runs (callbacks producing or acking) goes to
 * the next loop turn; re-activating from inside would starve I/O and timers
 * when callbacks keep producing. */
static void flush_soon(emb *e) {
  if (e->in_flush) {
    struct timeval zero = {0, 0};
    event_add(e->flush_ev, &zero);
  } else {
    event_active(e->flush_ev, EV_TIMEOUT, 0);
  }
}

static void fail_batch(nd_bus_record *r) {
  while (r) {
    nd_bus_record *n = r->next;
    if (r->cb) r->cb(NOTIFD_EBACKEND, r->ud);
    free(r);
    r = n;
  }
}

/* One transaction: pending records (up to batch_max) and dirty cursors. */
static void flush(emb *e) {
  nd_bus *b = e->bus;
  nd_bus_record *batch = e->pend_head, *last = NULL;
  size_t n = 0;
  for (nd_bus_record *r = batch; r && (int64_t)n < e->batch_max; r = r->next) {
    last = r;
    n++;
  }
  if (!n && !e->cursors_dirty) return;
  if (last) {
    e->pend_head = last->next;
    if (!e->pend_head) e->pend_tail = NULL;
    last->next = NULL;
    e->npend -= n;
  } else {
    batch = NULL;
  }
  touched stackt[16];
  touched *tp = stackt;
  size_t ntp = 0, cap_tp = 16;
  int ok = run_stmt(e, e->begin) == 0;
  int began = ok;
  for (nd_bus_record *r = batch; ok && r; r = r->next) {
    int32_t part;
    if (insert_record(e, r, &part) < 0) {
      ND_ERROR_RL("bus", "embedded bus: insert into %s failed: %s", r->topic, sqlite3_errmsg(e->db));
      ok = 0;
      break;
    }
    size_t k = 0;
    while (k < ntp && !(tp[k].part == part && strcmp(tp[k].topic, r->topic) == 0)) k++;
    if (k == ntp) {
      if (ntp == cap_tp) {
        touched *v = malloc(cap_tp * 2 * sizeof *v);
        if (!v) continue; /* only a missed wake-up; the poll catches it */
        memcpy(v, tp, ntp * sizeof *v);
        if (tp != stackt) free(tp);
        tp = v;
        cap_tp *= 2;
      }
      tp[ntp].topic = r->topic;
      tp[ntp].part = part;
      ntp++;
    }
  }
  int wrote_cursors = 0;
  if (ok && e->cursors_dirty) {
    for (size_t i = 0; ok && i < b->nconsumers; i++) {
      notifd_consumer *c = b->consumers[i];
      for (size_t j = 0; ok && j < c->nstreams; j++) {
        emb_stream *es = c->streams[j]->impl;
        if (!es->dirty) continue;
        if (store_cursor(e, c, c->streams[j], es->commit_next) < 0) ok = 0;
      }
    }
    wrote_cursors = ok;
  }
  if (ok && run_stmt(e, e->commit) < 0) ok = 0;
  if (!ok && began) run_stmt(e, e->rollback);
  if (ok && wrote_cursors) {
    e->cursors_dirty = 0;
    for (size_t i = 0; i < b->nconsumers; i++) {
      notifd_consumer *c = b->consumers[i];
      for (size_t j = 0; j < c->nstreams; j++) {
        emb_stream *es = c->streams[j]->impl;
        if (es->dirty) es->stored = es->commit_next;
        es->dirty = 0;
      }
    }
  }
  if (ok) {
    wake_partitions(e, tp, ntp);
    while (batch) {
      nd_bus_record *r = batch->next;
      if (batch->cb) batch->cb(0, batch->ud);
      free(batch);
      batch = r;
    }
  } else {
    fail_batch(batch);
  }
  if (tp != stackt) free(tp);
  if (e->pend_head) flush_soon(e);
  nd_bus_check_stop(b);
}

static void on_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  emb *e = arg;
  e->in_flush = 1;
  flush(e);
  e->in_flush = 0;
}

static int emb_produce(nd_bus *b, nd_bus_record *r) {
  emb *e = E(b);
  r->next = NULL;
  if (e->pend_tail) e->pend_tail->next = r;
  else e->pend_head = r;
  e->pend_tail = r;
  e->npend++;
  flush_soon(e);
  return 0;
}

static size_t emb_pending(nd_bus *b) { return E(b)->npend; }

/* A cursor move alone does not need its own transaction at once: it rides
 * along with the next produced batch, or commits after cursor_delay_ms.
 * Under load this halves the commits; after a crash at most that much more
 * work is redelivered (at-least-once either way). */
static void emb_commit(nd_bus_stream *s, int64_t next) {
  emb *e = E(s->consumer->bus);
  emb_stream *es = s->impl;
  if (next <= es->commit_next) return;
  es->commit_next = next;
  es->dirty = 1;
  e->cursors_dirty = 1;
  if (e->pend_head || e->cursor_delay_ms <= 0) {
    flush_soon(e);
  } else if (!evtimer_pending(e->cursor_ev, NULL)) {
    struct timeval tv = {(time_t)(e->cursor_delay_ms / 1000),
                         (suseconds_t)((e->cursor_delay_ms % 1000) * 1000)};
    evtimer_add(e->cursor_ev, &tv);
  }
}

/* ---- fetch ---- */

static notifd_bus_msg *row_to_msg(sqlite3_stmt *st) {
  int kt = sqlite3_column_type(st, 3), vt = sqlite3_column_type(st, 4);
  const void *k = sqlite3_column_blob(st, 3);
  size_t kl = (size_t)sqlite3_column_bytes(st, 3);
  const void *v = sqlite3_column_blob(st, 4);
  size_t vl = (size_t)sqlite3_column_bytes(st, 4);
  const unsigned char *h = sqlite3_column_blob(st, 5);
  size_t hl = (size_t)sqlite3_column_bytes(st, 5);
  size_t nh = 0, hbytes = 0;
  if (h && scan_headers(h, hl, &nh, &hbytes) < 0) nh = hbytes = 0; /* corrupt: no headers */
  /* +2: key and value get a NUL after them so text payloads are strings. */
  void *extra;
  notifd_bus_msg *m = nd_bus_msg_alloc(nh * sizeof(nd_bus_hdr) + kl + vl + 2 + hbytes, &extra);
  if (!m) return NULL;
  m->offset = sqlite3_column_int64(st, 0);
  m->timestamp_ms = sqlite3_column_int64(st, 1);
  nd_bus_hdr *hdrs = extra;
  char *p = (char *)extra + nh * sizeof(nd_bus_hdr);
  if (kt != SQLITE_NULL) {
    if (kl) memcpy(p, k, kl);
    p[kl] = '\0';
    m->key = p;
    m->key_len = kl;
    p += kl + 1;
  }
  if (vt != SQLITE_NULL) {
    if (vl) memcpy(p, v, vl);
    p[vl] = '\0';
    m->value = p;
    m->value_len = vl;
    p += vl + 1;
  }
  size_t i = 0;
  for (size_t idx = 0; idx < nh; idx++) {
    uint32_t nl = get_u32(h + i);
    i += 4;
    memcpy(p, h + i, nl);
    p[nl] = '\0';
    hdrs[idx].name = p;
    p += nl + 1;
    i += nl;
    uint32_t vlen = get_u32(h + i);
    i += 4;
    hdrs[idx].value = NULL;
    hdrs[idx].len = 0;
    if (vlen != 0xFFFFFFFFu) {
      if (vlen) memcpy(p, h + i, vlen);
      hdrs[idx].value = p;
      hdrs[idx].len = vlen;
      p += vlen;
      i += vlen;
    }
  }
  m->hdrs = nh ? hdrs : NULL;
  m->nhdrs = nh;
  return m;
}

static void emb_refill(nd_bus_stream *s) {
  nd_bus *b = s->consumer->bus;
  emb *e = E(b);
  emb_stream *es = s->impl;
  if (b->stopping || es->caught_up || (int64_t)s->queued >= e->fetch_batch) return;
  sqlite3_stmt *st = e->fetch;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, s->topic, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, s->partition);
  sqlite3_bind_int64(st, 3, es->next_fetch);
  sqlite3_bind_int64(st, 4, e->fetch_batch);
  int64_t rows = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    notifd_bus_msg *m = row_to_msg(st);
    if (!m) break; /* OOM: try again on the next wake-up */
    rows++;
    es->next_fetch = m->offset + 1;
    nd_bus_stream_push(s, m);
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    ND_ERROR_RL("bus", "embedded bus: fetch %s/%d: %s", s->topic, (int)s->partition,
             sqlite3_errmsg(e->db));
  sqlite3_reset(st);
  if (rc == SQLITE_DONE && rows < e->fetch_batch) es->caught_up = s->at_end = 1;
}

/* ---- timers ---- */

static void wake_all(emb *e) {
  nd_bus *b = e->bus;
  for (size_t i = 0; i < b->nconsumers; i++) {
    notifd_consumer *c = b->consumers[i];
    for (size_t j = 0; j < c->nstreams; j++) {
      ((emb_stream *)c->streams[j]->impl)->caught_up = 0;
      c->streams[j]->at_end = 0; /* another process may have added records */
      nd_bus_stream_wake(c->streams[j]);
    }
  }
}

static int64_t data_version(emb *e) {
  int64_t v = -1;
  sqlite3_reset(e->dv);
  if (sqlite3_step(e->dv) == SQLITE_ROW) v = sqlite3_column_int64(e->dv, 0);
  sqlite3_reset(e->dv);
  return v;
}

/* Another process committed to the file: look for new records. */
static void on_poll(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  emb *e = arg;
  int64_t v = data_version(e);
  if (v != e->data_version) {
    e->data_version = v;
    wake_all(e);
  }
}

static int64_t pragma_int(emb *e, const char *sql) {
  sqlite3_stmt *st = NULL;
  int64_t v = -1;
  if (sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Bytes of the file in use (pages minus free pages), as this connection sees
 * it inside the retention transaction. */
static int64_t used_bytes(emb *e) {
  int64_t pages = pragma_int(e, "PRAGMA page_count");
  int64_t free_pages = pragma_int(e, "PRAGMA freelist_count");
  int64_t size = pragma_int(e, "PRAGMA page_size");
  if (pages < 0 || free_pages < 0 || size <= 0) return -1;
  return (pages - free_pages) * size;
}

/* Retention by size: deletes the oldest records (every topic) until the used
 * pages are under 90% of max_bytes, estimating the records to delete from
 * the average record size; a few rounds, each re-measured, and at most
 * TRIM_BYTES_ROWS records per pass (the loop waits for it): when more must
 * go, the next pass runs TRIM_AGAIN_MS later. */
static int trim_bytes(emb *e, int64_t *deleted) {
  int64_t used = used_bytes(e);
  if (used < 0) return -1;
  if (used <= e->max_bytes) return 0;
  int64_t target = e->max_bytes - e->max_bytes / 10;
  sqlite3_stmt *span = NULL, *del = NULL;
  int ok = sqlite3_prepare_v2(e->db, "SELECT MIN(seq), MAX(seq) FROM records", -1, &span,
                              NULL) == SQLITE_OK &&
           sqlite3_prepare_v2(e->db,
                              "DELETE FROM records WHERE seq IN (SELECT seq FROM records ORDER "
                              "BY seq LIMIT ?1)",
                              -1, &del, NULL) == SQLITE_OK;
  int64_t budget = TRIM_BYTES_ROWS; /* per pass: the loop waits for it */
  for (int round = 0; ok && round < 16 && used > target && budget > 0; round++) {
    sqlite3_reset(span);
    if (sqlite3_step(span) != SQLITE_ROW || sqlite3_column_type(span, 0) == SQLITE_NULL) break;
    /* seq has holes (deleted records), so this overestimates the count and
     * underestimates a record's size: rounds converge from below. */
    int64_t rows = sqlite3_column_int64(span, 1) - sqlite3_column_int64(span, 0) + 1;
    if (rows < 1) break;
    double per = (double)used / (double)rows;
    int64_t n = (int64_t)((double)(used - target) / (per > 1 ? per : 1)) + 1;
    if (n > budget) n = budget;
    budget -= n;
    sqlite3_reset(del);
    sqlite3_bind_int64(del, 1, n);
    if (sqlite3_step(del) != SQLITE_DONE) {
      ok = 0;
      break;
    }
    int ch = sqlite3_changes(e->db);
    *deleted += ch;
    int64_t now = used_bytes(e);
    if (ch == 0 || now < 0 || now >= used) break; /* nothing left, or no page freed */
    used = now;
  }
  /* Not there yet: the next pass comes soon instead of after `interval`. */
  e->trim_again = ok && used > target && budget <= 0;
  sqlite3_finalize(span);
  sqlite3_finalize(del);
  return ok ? 0 : -1;
}

static void trim(emb *e) {
  if (exec_sql(e, "BEGIN IMMEDIATE") < 0) return;
  int ok = 1;
  int64_t deleted = 0;
  if (e->max_age_ms > 0) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(e->db,
                           "DELETE FROM records WHERE seq IN (SELECT seq FROM records ORDER BY "
                           "seq LIMIT ?1) AND ts < ?2",
                           -1, &st, NULL) != SQLITE_OK) {
      ok = 0;
    } else {
      /* Oldest first, in chunks, so a quiet trim costs one index probe. */
      for (int round = 0; ok && round < 200; round++) {
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, TRIM_CHUNK);
        sqlite3_bind_int64(st, 2, nd_wall_ms() - e->max_age_ms);
        if (sqlite3_step(st) != SQLITE_DONE) ok = 0;
        int ch = sqlite3_changes(e->db);
        deleted += ch;
        if (ch == 0) break;
      }
    }
    sqlite3_finalize(st);
  }
  if (ok && e->max_records > 0) {
    sqlite3_stmt *tl = NULL, *del = NULL;
    if (sqlite3_prepare_v2(e->db, "SELECT topic, partitions FROM topics", -1, &tl, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(e->db,
                           "DELETE FROM records WHERE topic=?1 AND part=?2 AND seq <= (SELECT "
                           "seq FROM records WHERE topic=?1 AND part=?2 ORDER BY seq DESC "
                           "LIMIT 1 OFFSET ?3)",
                           -1, &del, NULL) != SQLITE_OK) {
      ok = 0;
    }
    while (ok && sqlite3_step(tl) == SQLITE_ROW) {
      int64_t np = sqlite3_column_int64(tl, 1);
      for (int64_t p = 0; ok && p < np; p++) {
        sqlite3_reset(del);
        sqlite3_bind_text(del, 1, (const char *)sqlite3_column_text(tl, 0), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(del, 2, p);
        sqlite3_bind_int64(del, 3, e->max_records);
        if (sqlite3_step(del) != SQLITE_DONE) ok = 0;
        deleted += sqlite3_changes(e->db);
      }
    }
    sqlite3_finalize(tl);
    sqlite3_finalize(del);
  }
  if (ok && e->max_bytes > 0) ok = trim_bytes(e, &deleted) == 0;
  if (ok && exec_sql(e, "COMMIT") == 0) {
    if (deleted) ND_INFO("bus", "embedded bus retention removed %" PRId64 " records", deleted);
  } else {
    ND_ERROR_RL("bus", "embedded bus retention failed: %s", sqlite3_errmsg(e->db));
    exec_sql(e, "ROLLBACK");
  }
}

static int add_timer(struct event *ev, int64_t ms);

static void on_trim(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  emb *e = arg;
  e->trim_again = 0;
  trim(e);
  int64_t want = e->trim_again ? TRIM_AGAIN_MS : e->trim_ms;
  if (want != e->trim_period_ms) {
    e->trim_period_ms = want;
    add_timer(e->trim_ev, want);
  }
}

static void on_lag(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  emb *e = arg;
  nd_bus *b = e->bus;
  if (!b->m.lag) return;
  for (size_t i = 0; i < b->nconsumers; i++) {
    notifd_consumer *c = b->consumers[i];
    for (size_t j = 0; j < c->nstreams; j++) {
      nd_bus_stream *s = c->streams[j];
      sqlite3_reset(e->lag);
      sqlite3_bind_text(e->lag, 1, s->topic, -1, SQLITE_STATIC);
      sqlite3_bind_int(e->lag, 2, s->partition);
      sqlite3_bind_int64(e->lag, 3, ((emb_stream *)s->impl)->commit_next);
      if (sqlite3_step(e->lag) == SQLITE_ROW) nd_bus_set_lag(s, sqlite3_column_int64(e->lag, 0));
      sqlite3_reset(e->lag);
    }
  }
}

static int add_timer(struct event *ev, int64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
  return event_add(ev, &tv);
}

/* ---- lifecycle ---- */

/* The offset `last` records before the end of s's partition (0 when it
 * holds fewer): offsets are global sequence numbers, so count rows.  Only
 * the operator tail asks, once per partition: not a prepared statement. */
static int64_t tail_cursor(emb *e, nd_bus_stream *s, int64_t last) {
  sqlite3_stmt *st = NULL;
  int64_t next = 0;
  if (sqlite3_prepare_v2(e->db,
                         "SELECT seq FROM records WHERE topic=?1 AND part=?2 ORDER BY seq DESC "
                         "LIMIT 1 OFFSET ?3",
                         -1, &st, NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    return 0;
  }
  sqlite3_bind_text(st, 1, s->topic, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, s->partition);
  sqlite3_bind_int64(st, 3, last - 1);
  if (sqlite3_step(st) == SQLITE_ROW) next = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return next;
}

static int64_t initial_cursor(emb *e, notifd_consumer *c, nd_bus_stream *s, int *found) {
  *found = 0;
  int64_t next = 0;
  sqlite3_reset(e->cur_get);
  sqlite3_bind_text(e->cur_get, 1, c->group, -1, SQLITE_STATIC);
  sqlite3_bind_text(e->cur_get, 2, s->topic, -1, SQLITE_STATIC);
  sqlite3_bind_int(e->cur_get, 3, s->partition);
  if (sqlite3_step(e->cur_get) == SQLITE_ROW) {
    next = sqlite3_column_int64(e->cur_get, 0);
    *found = 1;
  }
  sqlite3_reset(e->cur_get);
  if (*found || !c->start_from_latest) return next;
  if (c->tail_last > 0) return tail_cursor(e, s, c->tail_last);
  sqlite3_reset(e->max_seq);
  sqlite3_bind_text(e->max_seq, 1, s->topic, -1, SQLITE_STATIC);
  sqlite3_bind_int(e->max_seq, 2, s->partition);
  if (sqlite3_step(e->max_seq) == SQLITE_ROW) next = sqlite3_column_int64(e->max_seq, 0) + 1;
  sqlite3_reset(e->max_seq);
  return next;
}

/* Consumers of one group in this process split each topic's partitions. */
static void group_slot(nd_bus *b, notifd_consumer *c, const char *topic, size_t *idx, size_t *n) {
  *idx = *n = 0;
  for (size_t i = 0; i < b->nconsumers; i++) {
    notifd_consumer *o = b->consumers[i];
    if (strcmp(o->group, c->group) != 0) continue;
    int has = 0;
    for (size_t t = 0; t < o->ntopics; t++) has |= strcmp(o->topics[t], topic) == 0;
    if (!has) continue;
    if (o == c) *idx = *n;
    (*n)++;
  }
}

static int emb_start(nd_bus *b) {
  emb *e = E(b);
  if (exec_sql(e, "BEGIN IMMEDIATE") < 0) return NOTIFD_EBACKEND;
  int ok = 1;
  for (size_t i = 0; ok && i < b->nconsumers; i++) {
    notifd_consumer *c = b->consumers[i];
    for (size_t t = 0; ok && t < c->ntopics; t++) {
      emb_topic *tp = topic_get(e, c->topics[t]);
      if (!tp) {
        ok = 0;
        break;
      }
      size_t idx, n;
      group_slot(b, c, c->topics[t], &idx, &n);
      for (int32_t p = 0; ok && p < tp->nparts; p++) {
        if ((size_t)p % n != idx) continue;
        emb_stream *es = calloc(1, sizeof *es);
        nd_bus_stream *s = es ? nd_bus_stream_add(c, c->topics[t], p) : NULL;
        if (!s) {
          free(es);
          ok = 0;
          break;
        }
        s->impl = es;
        int found;
        int64_t next = initial_cursor(e, c, s, &found);
        es->next_fetch = es->commit_next = es->stored = next;
        /* Persist where a new group starts, so "latest" is not re-evaluated
         * on every restart. */
        if (!found && !c->ephemeral && store_cursor(e, c, s, next) < 0) ok = 0;
      }
    }
  }
  if (ok && exec_sql(e, "COMMIT") == 0) {
    e->data_version = data_version(e);
    wake_all(e);
    if (b->nconsumers) {
      add_timer(e->poll_ev, e->poll_ms);
      add_timer(e->lag_ev, LAG_INTERVAL_MS);
    }
    return 0;
  }
  ND_ERROR("bus", "embedded bus: starting consumers failed: %s", sqlite3_errmsg(e->db));
  exec_sql(e, "ROLLBACK");
  return NOTIFD_EBACKEND;
}

static void emb_stop_fetching(nd_bus *b) {
  emb *e = E(b);
  event_del(e->poll_ev);
  event_del(e->lag_ev);
}

static void emb_finish_stop(nd_bus *b) {
  emb *e = E(b);
  while (e->pend_head || e->cursors_dirty) {
    size_t before = e->npend;
    int dirty = e->cursors_dirty;
    flush(e);
    if (e->npend == before && e->cursors_dirty == dirty) break; /* failing: give up */
  }
  event_del(e->trim_ev);
  event_del(e->cursor_ev);
  nd_bus_backend_stopped(b);
}

static int emb_ready(nd_bus *b) { return E(b)->db != NULL; }

static void emb_stream_free(nd_bus_stream *s) {
  free(s->impl);
  s->impl = NULL;
}

static void emb_free(nd_bus *b) {
  emb *e = E(b);
  if (!e) return;
  nd_sqlite_ckpt_stop(e->ckpt);
  nd_bus_record *r = e->pend_head;
  while (r) {
    nd_bus_record *n = r->next;
    free(r); /* abrupt: never confirmed, callbacks dropped */
    r = n;
  }
  struct event *evs[] = {e->flush_ev, e->poll_ev, e->trim_ev, e->lag_ev, e->cursor_ev};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
    if (evs[i]) event_free(evs[i]);
  sqlite3_stmt *sts[] = {e->ins,     e->fetch,   e->cur_get, e->cur_set, e->top_get, e->top_ins,
                         e->max_seq, e->lag,     e->dv,      e->begin,   e->commit,  e->rollback};
  for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++) sqlite3_finalize(sts[i]);
  if (e->db) sqlite3_close(e->db);
  for (size_t i = 0; i < e->ntopics; i++) free(e->topics[i].name);
  free(e->topics);
  nd_buf_free(&e->scratch);
  free(e->path);
  free(e);
  b->impl = NULL;
}

const nd_bus_ops nd_bus_embedded_ops = {
    .name = "embedded",
    .start = emb_start,
    .stop_fetching = emb_stop_fetching,
    .finish_stop = emb_finish_stop,
    .pending = emb_pending,
    .free = emb_free,
    .ready = emb_ready,
    .produce = emb_produce,
    .commit = emb_commit,
    .refill = emb_refill,
    .stream_free = emb_stream_free,
    .msg_release = NULL,
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS records(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " topic TEXT NOT NULL, part INTEGER NOT NULL, ts INTEGER NOT NULL,"
    " key BLOB, value BLOB, headers BLOB);"
    "CREATE INDEX IF NOT EXISTS records_by_partition ON records(topic, part, seq);"
    "CREATE TABLE IF NOT EXISTS topics(topic TEXT PRIMARY KEY,"
    " partitions INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS cursors(grp TEXT NOT NULL, topic TEXT NOT NULL,"
    " part INTEGER NOT NULL, next_seq INTEGER NOT NULL,"
    " PRIMARY KEY(grp, topic, part)) WITHOUT ROWID;";

static int prepare(emb *e, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v3(e->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK)
    return 0;
  ND_ERROR("bus", "embedded bus: prepare '%s': %s", sql, sqlite3_errmsg(e->db));
  return -1;
}

static int read_config(emb *e, nd_cfg_node *bc, nd_errors *errs) {
  nd_cfg_node *emb_cfg = bc ? nd_cfg_get(bc, "embedded") : NULL;
  nd_cfg_node *ret = bc ? nd_cfg_get(bc, "retention") : NULL;
  const char *sync = NULL, *path = NULL;
  int bad = 0;
  bad |= nd_bus_cfg_int(bc, "partitions", 4, &e->default_parts, errs) < 0;
  bad |= nd_bus_cfg_str(emb_cfg, "path", NULL, &path, errs) < 0;
  bad |= nd_bus_cfg_str(emb_cfg, "synchronous", "normal", &sync, errs) < 0;
  bad |= nd_bus_cfg_dur(emb_cfg, "poll_interval", 100, &e->poll_ms, errs) < 0;
  bad |= nd_bus_cfg_int(emb_cfg, "fetch_batch", 256, &e->fetch_batch, errs) < 0;
  bad |= nd_bus_cfg_int(emb_cfg, "batch_max", 4096, &e->batch_max, errs) < 0;
  bad |= nd_bus_cfg_dur(emb_cfg, "checkpoint_interval", 200, &e->checkpoint_ms, errs) < 0;
  bad |= nd_bus_cfg_dur(emb_cfg, "cursor_commit_delay", 5, &e->cursor_delay_ms, errs) < 0;
  bad |= nd_bus_cfg_dur(ret, "max_age", 168LL * 3600 * 1000, &e->max_age_ms, errs) < 0;
  bad |= nd_bus_cfg_int(ret, "max_records", 0, &e->max_records, errs) < 0;
  bad |= nd_bus_cfg_dur(ret, "interval", 60000, &e->trim_ms, errs) < 0;
  bad |= nd_bus_cfg_bytes(ret, "max_bytes", 1LL << 30, &e->max_bytes, errs) < 0;
  if (bad) return -1;
  if (e->default_parts < 1 || e->default_parts > 1024) {
    nd_errors_add(errs, NULL, 0, 0, "bus.partitions: must be between 1 and 1024");
    return -1;
  }
  if (strcmp(sync, "normal") == 0) e->sync_full = 0;
  else if (strcmp(sync, "full") == 0) e->sync_full = 1;
  else {
    nd_errors_add(errs, NULL, 0, 0, "bus.embedded.synchronous: expected normal or full, got '%s'",
                  sync);
    return -1;
  }
  if (e->poll_ms < 1) e->poll_ms = 1;
  if (e->checkpoint_ms < 10) e->checkpoint_ms = 10;
  if (e->cursor_delay_ms > 1000) e->cursor_delay_ms = 1000;
  if (e->fetch_batch < 1) e->fetch_batch = 1;
  if (e->batch_max < 1) e->batch_max = 1;
  if (e->trim_ms < 10) e->trim_ms = 10;
  if (e->max_records < 0) e->max_records = 0;
  if (e->max_bytes < 0) e->max_bytes = 0;
  if (path) {
    e->path = strdup(path);
  } else {
    const char *dir = e->bus->host->cfg.data_dir;
    nd_buf p;
    nd_buf_init(&p);
    nd_buf_printf(&p, "%s/bus.db", dir && *dir ? dir : ".");
    e->path = nd_buf_steal(&p, NULL);
  }
  return e->path ? 0 : -1;
}

int nd_bus_embedded_open(nd_bus *b, nd_errors *errs) {
  emb *e = calloc(1, sizeof *e);
  if (!e) return NOTIFD_ENOMEM;
  e->bus = b;
  b->impl = e;
  b->ops = &nd_bus_embedded_ops;
  nd_buf_init(&e->scratch);
  if (read_config(e, b->host->cfg.bus_cfg, errs) < 0) {
    emb_free(b);
    return NOTIFD_EINVAL;
  }
  if (b->host->check_only) return 0; /* --check: settings validated, bus.db untouched */
  int rc = sqlite3_open_v2(e->path, &e->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    nd_errors_add(errs, NULL, 0, 0, "embedded bus %s: %s", e->path,
                  e->db ? sqlite3_errmsg(e->db) : sqlite3_errstr(rc));
    emb_free(b);
    return NOTIFD_EBACKEND;
  }
  sqlite3_busy_timeout(e->db, 5000);
  char pragmas[160];
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA wal_autocheckpoint=%d;",
           e->sync_full ? "FULL" : "NORMAL", ND_SQLITE_CKPT_AUTO_FRAMES);
  if (exec_sql(e, pragmas) < 0 || exec_sql(e, schema) < 0 ||
      prepare(e,
              "INSERT INTO records(topic, part, ts, key, value, headers) VALUES(?1,?2,?3,?4,?5,?6)",
              &e->ins) < 0 ||
      prepare(e,
              "SELECT seq, ts, part, key, value, headers FROM records WHERE topic=?1 AND part=?2 "
              "AND seq>=?3 ORDER BY seq LIMIT ?4",
              &e->fetch) < 0 ||
      prepare(e, "SELECT next_seq FROM cursors WHERE grp=?1 AND topic=?2 AND part=?3",
              &e->cur_get) < 0 ||
      prepare(e,
              "INSERT INTO cursors(grp, topic, part, next_seq) VALUES(?1,?2,?3,?4) "
              "ON CONFLICT(grp, topic, part) DO UPDATE SET next_seq=excluded.next_seq",
              &e->cur_set) < 0 ||
      prepare(e, "SELECT partitions FROM topics WHERE topic=?1", &e->top_get) < 0 ||
      prepare(e, "INSERT OR IGNORE INTO topics(topic, partitions) VALUES(?1,?2)", &e->top_ins) <
          0 ||
      prepare(e, "SELECT COALESCE(MAX(seq), 0) FROM records WHERE topic=?1 AND part=?2",
              &e->max_seq) < 0 ||
      prepare(e, "SELECT count(*) FROM records WHERE topic=?1 AND part=?2 AND seq>=?3",
              &e->lag) < 0 ||
      prepare(e, "PRAGMA data_version", &e->dv) < 0 ||
      prepare(e, "BEGIN IMMEDIATE", &e->begin) < 0 || prepare(e, "COMMIT", &e->commit) < 0 ||
      prepare(e, "ROLLBACK", &e->rollback) < 0) {
    nd_errors_add(errs, NULL, 0, 0, "embedded bus %s: %s", e->path, sqlite3_errmsg(e->db));
    emb_free(b);
    return NOTIFD_EBACKEND;
  }
  e->flush_ev = event_new(b->base, -1, 0, on_flush, e);
  e->poll_ev = event_new(b->base, -1, EV_PERSIST, on_poll, e);
  e->trim_ev = event_new(b->base, -1, EV_PERSIST, on_trim, e);
  e->lag_ev = event_new(b->base, -1, EV_PERSIST, on_lag, e);
  e->cursor_ev = evtimer_new(b->base, on_flush, e);
  if (!e->flush_ev || !e->poll_ev || !e->trim_ev || !e->lag_ev || !e->cursor_ev) {
    emb_free(b);
    return NOTIFD_ENOMEM;
  }
  e->trim_period_ms = e->trim_ms;
  if (e->max_age_ms > 0 || e->max_records > 0 || e->max_bytes > 0) add_timer(e->trim_ev, e->trim_ms);
  if (!(e->ckpt = nd_sqlite_ckpt_start(e->path, e->checkpoint_ms)))
    exec_sql(e, "PRAGMA wal_autocheckpoint=1000"); /* no thread: checkpoint inline */
  return 0;
}
