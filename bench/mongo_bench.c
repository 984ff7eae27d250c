/* What a MongoDB server (here FerretDB) sustains by itself, through the
 * same driver notifd uses (libmongoc), with chat-message-shaped documents:
 *
 *   mongo_bench --uri mongodb://127.0.0.1:PORT/ [--db mongo_bench]
 *               [--count 20000] [--batch 256] [--singles 3000]
 *               [--finds 500] [--threads 1] [--seconds 30]
 *
 * Phases, each bounded by its count and by --seconds (then it stops early
 * and reports what it did):
 *   insert_many   --count documents in unordered insert_many calls of
 *                 --batch (a group commit)
 *   insert_one    --singles documents, one insert_one each (round trip)
 *   find_id       --finds finds by _id (the unique index)
 *   find_stream   --finds finds of one stream's newest 50 (the
 *                 {stream_id: 1, created_at: -1} index; history)
 *   outbox        the relay's steady state: --singles records inserted into
 *                 a small collection in --batch calls, each batch read back
 *                 (find, sorted) and deleted by _id $in
 * --threads T runs T clients in parallel for insert_many and insert_one
 * (notifd's worker pool is 4).  One JSON object per phase on stdout:
 * ops, seconds, ops_per_s, docs_per_s, p50_ms, p99_ms, max_ms (per call). */
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct stats {
  double *lat;
  size_t n, cap;
  long docs;
} stats;

static void st_add(stats *s, double v) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 1024;
    s->lat = realloc(s->lat, s->cap * sizeof *s->lat);
    if (!s->lat) abort();
  }
  s->lat[s->n++] = v;
}

static void report(const char *phase, stats *s, double secs, int threads, long batch) {
  double p50 = 0, p99 = 0, mx = 0;
  if (s->n) {
    qsort(s->lat, s->n, sizeof *s->lat, cmp_d);
    p50 = s->lat[s->n / 2];
    p99 = s->lat[(size_t)((double)(s->n - 1) * 0.99)];
    mx = s->lat[s->n - 1];
  }
  printf("{\"phase\": \"%s\", \"threads\": %d, \"batch\": %ld, \"ops\": %zu, \"docs\": %ld, "
         "\"seconds\": %.3f, \"ops_per_s\": %.1f, \"docs_per_s\": %.1f, \"p50_ms\": %.3f, "
         "\"p99_ms\": %.3f, \"max_ms\": %.3f}\n",
         phase, threads, batch, s->n, s->docs, secs, secs > 0 ? (double)s->n / secs : 0,
         secs > 0 ? (double)s->docs / secs : 0, p50 * 1e3, p99 * 1e3, mx * 1e3);
  fflush(stdout);
  free(s->lat);
  memset(s, 0, sizeof *s);
}

static const char *g_db = "mongo_bench";
static double g_deadline;

/* A chat message document: 100 streams, ~60 bytes of content. */
static void make_doc(bson_t *d, const char *prefix, long i) {
  char id[64], stream[32], content[96];
  snprintf(id, sizeof id, "%s-%ld", prefix, i);
  snprintf(stream, sizeof stream, "stream-%03ld", i % 100);
  snprintf(content, sizeof content, "message %ld with some ordinary chat text in it, about 60 b", i);
  BSON_APPEND_UTF8(d, "_id", id);
  BSON_APPEND_UTF8(d, "content", content);
  BSON_APPEND_DATE_TIME(d, "created_at", (int64_t)(now_s() * 1000));
  BSON_APPEND_UTF8(d, "stream_id", stream);
  BSON_APPEND_UTF8(d, "sender_id", "user-a");
  BSON_APPEND_UTF8(d, "receiver_id", "user-b");
}

typedef struct worker {
  mongoc_client_pool_t *pool;
  const char *coll;
  const char *prefix;
  long from, to, batch;
  stats st;
  long errors;
} worker;

static void *insert_worker(void *ud) {
  worker *w = ud;
  mongoc_client_t *c = mongoc_client_pool_pop(w->pool);
  mongoc_collection_t *coll = mongoc_client_get_collection(c, g_db, w->coll);
  bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
  for (long i = w->from; i < w->to && now_s() < g_deadline; i += w->batch) {
    long n = w->to - i < w->batch ? w->to - i : w->batch;
    bson_t *docs = calloc((size_t)n, sizeof *docs);
    const bson_t **ptrs = calloc((size_t)n, sizeof *ptrs);
    for (long k = 0; k < n; k++) {
      bson_init(&docs[k]);
      make_doc(&docs[k], w->prefix, i + k);
      ptrs[k] = &docs[k];
    }
    bson_error_t be;
    double t0 = now_s();
    bool ok = n == 1 ? mongoc_collection_insert_one(coll, ptrs[0], NULL, NULL, &be)
                     : mongoc_collection_insert_many(coll, ptrs, (size_t)n, opts, NULL, &be);
    st_add(&w->st, now_s() - t0);
    if (ok) w->st.docs += n;
    else if (w->errors++ == 0) fprintf(stderr, "insert: %s\n", be.message);
    for (long k = 0; k < n; k++) bson_destroy(&docs[k]);
    free(docs);
    free(ptrs);
  }
  bson_destroy(opts);
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(w->pool, c);
  return NULL;
}

static void run_inserts(mongoc_client_pool_t *pool, const char *phase, const char *coll,
                        const char *prefix, long count, long batch, int threads) {
  worker *ws = calloc((size_t)threads, sizeof *ws);
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  long per = count / threads;
  double t0 = now_s();
  for (int t = 0; t < threads; t++) {
    ws[t] = (worker){pool, coll, prefix, t * per, t == threads - 1 ? count : (t + 1) * per, batch,
                     {0}, 0};
    pthread_create(&th[t], NULL, insert_worker, &ws[t]);
  }
  stats all = {0};
  long errors = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(th[t], NULL);
    for (size_t k = 0; k < ws[t].st.n; k++) st_add(&all, ws[t].st.lat[k]);
    all.docs += ws[t].st.docs;
    errors += ws[t].errors;
    free(ws[t].st.lat);
  }
  double secs = now_s() - t0;
  if (errors) fprintf(stderr, "%s: %ld failed calls\n", phase, errors);
  report(phase, &all, secs, threads, batch);
  free(ws);
  free(th);
}

static void run_finds(mongoc_client_pool_t *pool, const char *phase, long finds, long have,
                      int by_stream) {
  mongoc_client_t *c = mongoc_client_pool_pop(pool);
  mongoc_collection_t *coll = mongoc_client_get_collection(c, g_db, "chat");
  stats st = {0};
  double t0 = now_s();
  for (long i = 0; i < finds && now_s() < g_deadline; i++) {
    char v[64];
    bson_t *filter, *opts;
    if (by_stream) {
      snprintf(v, sizeof v, "stream-%03ld", (i * 37) % 100);
      filter = BCON_NEW("stream_id", BCON_UTF8(v));
      opts = BCON_NEW("sort", "{", "created_at", BCON_INT32(-1), "_id", BCON_INT32(-1), "}",
                      "limit", BCON_INT64(50));
    } else {
      snprintf(v, sizeof v, "m-%ld", (i * 7919) % (have ? have : 1));
      filter = BCON_NEW("_id", BCON_UTF8(v));
      opts = BCON_NEW("limit", BCON_INT64(1));
    }
    double t1 = now_s();
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    long got = 0;
    while (mongoc_cursor_next(cur, &doc)) got++;
    bson_error_t be;
    if (mongoc_cursor_error(cur, &be)) fprintf(stderr, "%s: %s\n", phase, be.message);
    mongoc_cursor_destroy(cur);
    st_add(&st, now_s() - t1);
    st.docs += got;
    bson_destroy(filter);
    bson_destroy(opts);
  }
  report(phase, &st, now_s() - t0, 1, 1);
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(pool, c);
}

/* insert a batch into a small collection, read it back sorted, delete it by
 * _id $in: one relay cycle per batch. */
static void run_outbox(mongoc_client_pool_t *pool, long count, long batch) {
  mongoc_client_t *c = mongoc_client_pool_pop(pool);
  mongoc_collection_t *coll = mongoc_client_get_collection(c, g_db, "outbox");
  stats st = {0};
  double t0 = now_s();
  bson_t *iopts = BCON_NEW("ordered", BCON_BOOL(false));
  for (long i = 0; i < count && now_s() < g_deadline; i += batch) {
    long n = count - i < batch ? count - i : batch;
    bson_t *docs = calloc((size_t)n, sizeof *docs);
    const bson_t **ptrs = calloc((size_t)n, sizeof *ptrs);
    for (long k = 0; k < n; k++) {
      bson_init(&docs[k]);
      make_doc(&docs[k], "o", i + k);
      ptrs[k] = &docs[k];
    }
    double t1 = now_s();
    bson_error_t be;
    if (!mongoc_collection_insert_many(coll, ptrs, (size_t)n, iopts, NULL, &be))
      fprintf(stderr, "outbox insert: %s\n", be.message);
    bson_t filter = BSON_INITIALIZER;
    bson_t *fopts = BCON_NEW("sort", "{", "created_at", BCON_INT32(1), "_id", BCON_INT32(1), "}",
                             "limit", BCON_INT64(batch));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, fopts, NULL);
    const bson_t *doc;
    bson_t del = BSON_INITIALIZER, in, arr;
    BSON_APPEND_DOCUMENT_BEGIN(&del, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    long got = 0;
    while (mongoc_cursor_next(cur, &doc)) {
      bson_iter_t it;
      if (bson_iter_init_find(&it, doc, "_id")) {
        char key[24];
        snprintf(key, sizeof key, "%ld", got);
        bson_append_iter(&arr, key, -1, &it);
      }
      got++;
    }
    mongoc_cursor_destroy(cur);
    bson_append_array_end(&in, &arr);
    bson_append_document_end(&del, &in);
    if (!mongoc_collection_delete_many(coll, &del, NULL, NULL, &be))
      fprintf(stderr, "outbox delete: %s\n", be.message);
    st_add(&st, now_s() - t1);
    st.docs += got;
    bson_destroy(&del);
    bson_destroy(fopts);
    for (long k = 0; k < n; k++) bson_destroy(&docs[k]);
    free(docs);
    free(ptrs);
  }
  report("outbox_cycle", &st, now_s() - t0, 1, batch);
  bson_destroy(iopts);
  mongoc_collection_destroy(coll);
  mongoc_client_pool_push(pool, c);
}

int main(int argc, char **argv) {
  const char *uri_s = NULL;
  long count = 20000, batch = 256, singles = 3000, finds = 500, seconds = 30;
  int threads = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "%s needs a value\n", a); return 2; }
    if (strcmp(a, "--uri") == 0) uri_s = v;
    else if (strcmp(a, "--db") == 0) g_db = v;
    else if (strcmp(a, "--count") == 0) count = atol(v);
    else if (strcmp(a, "--batch") == 0) batch = atol(v);
    else if (strcmp(a, "--singles") == 0) singles = atol(v);
    else if (strcmp(a, "--finds") == 0) finds = atol(v);
    else if (strcmp(a, "--threads") == 0) threads = atoi(v);
    else if (strcmp(a, "--seconds") == 0) seconds = atol(v);
    else { fprintf(stderr, "unknown option %s (see the comment in mongo_bench.c)\n", a); return 2; }
    i++;
  }
  if (!uri_s || batch < 1 || threads < 1 || count < threads) {
    fprintf(stderr, "usage: mongo_bench --uri URI [--count N] [--batch B] [--singles N] "
                    "[--finds N] [--threads T] [--seconds S]\n");
    return 2;
  }
  mongoc_init();
  bson_error_t be;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_s, &be);
  if (!uri) { fprintf(stderr, "uri: %s\n", be.message); return 2; }
  mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
  mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_max_size(pool, (uint32_t)threads + 2);
  mongoc_client_t *c = mongoc_client_pool_pop(pool);
  bson_t *cmd = BCON_NEW("dropDatabase", BCON_INT32(1));
  if (!mongoc_client_command_simple(c, g_db, cmd, NULL, NULL, &be)) {
    fprintf(stderr, "dropDatabase: %s\n", be.message);
    return 1;
  }
  bson_destroy(cmd);
  cmd = BCON_NEW("createIndexes", BCON_UTF8("chat"), "indexes", "[", "{", "key", "{",
                 "stream_id", BCON_INT32(1), "created_at", BCON_INT32(-1), "}", "name",
                 BCON_UTF8("stream_id_1_created_at_-1"), "}", "]");
  if (!mongoc_client_command_simple(c, g_db, cmd, NULL, NULL, &be))
    fprintf(stderr, "createIndexes: %s\n", be.message);
  bson_destroy(cmd);
  mongoc_client_pool_push(pool, c);

  g_deadline = now_s() + (double)seconds;
  run_inserts(pool, "insert_many", "chat", "m", count, batch, threads);
  g_deadline = now_s() + (double)seconds;
  run_inserts(pool, "insert_one", "chat", "s", singles, 1, threads);
  g_deadline = now_s() + (double)seconds;
  run_finds(pool, "find_id", finds, count, 0);
  g_deadline = now_s() + (double)seconds;
  run_finds(pool, "find_stream", finds / 5 ? finds / 5 : 1, count, 1);
  g_deadline = now_s() + (double)seconds;
  run_outbox(pool, singles, batch);

  c = mongoc_client_pool_pop(pool);
  cmd = BCON_NEW("dropDatabase", BCON_INT32(1));
  mongoc_client_command_simple(c, g_db, cmd, NULL, NULL, &be);
  bson_destroy(cmd);
  mongoc_client_pool_push(pool, c);
  mongoc_client_pool_destroy(pool);
  mongoc_uri_destroy(uri);
  mongoc_cleanup();
  return 0;
}
