/* Kafka bus against a real broker (tests/services/kafka.sh: KRaft, jars
 * from Maven Central): order under retries, dead letters and poison,
 * at-least-once across a kill -9 of a consumer, two group members, commit
 * at graceful stop.  Exits 77 (skip) with "SKIPPED: reason" when the broker
 * cannot run here.  NOTIFD_TEST_KAFKA=host:port uses a running broker. */
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/bus.h"
#include "bus/bus_internal.h"
#include "bus_kv_test_util.h"
#include "nd_test.h"

static char broker[256];
static char broker_dir[512];
static pid_t suite_pid;

/* ---- broker ---- */

static void stop_broker(void) {
  if (getpid() != suite_pid || !broker_dir[0]) return;
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s/tests/services/kafka.sh stop '%s' >/dev/null 2>&1", ND_SOURCE_ROOT,
           broker_dir);
  if (system(cmd) != 0) fprintf(stderr, "kafka.sh stop failed\n");
  nd_test_rmrf(broker_dir);
}

static void start_broker_or_skip(void) {
  const char *given = getenv("NOTIFD_TEST_KAFKA");
  if (given && *given) {
    snprintf(broker, sizeof broker, "%s", given);
    return;
  }
  char *dir = nd_test_tmpdir();
  if (!dir) {
    printf("SKIPPED: no temporary directory\n");
    exit(77);
  }
  snprintf(broker_dir, sizeof broker_dir, "%s", dir);
  free(dir);
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s/tests/services/kafka.sh start '%s' 2>'%s/start.err'",
           ND_SOURCE_ROOT, broker_dir, broker_dir);
  FILE *p = popen(cmd, "r");
  char line[256] = "";
  if (p && !fgets(line, sizeof line, p)) line[0] = '\0';
  int st = p ? pclose(p) : -1;
  suite_pid = getpid();
  atexit(stop_broker);
  if (st != 0 || !line[0]) {
    char errpath[600];
    snprintf(errpath, sizeof errpath, "%s/start.err", broker_dir);
    char *why = nd_test_read_file(errpath);
    if (why) why[strcspn(why, "\n")] = '\0';
    printf("SKIPPED: kafka broker unavailable: %s\n", why && *why ? why : "kafka.sh failed");
    free(why);
    exit(77);
  }
  line[strcspn(line, "\n")] = '\0';
  snprintf(broker, sizeof broker, "%s", line);
}

static void create_topics(const char *const *names, int partitions) {
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", broker, err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ck_assert_ptr_nonnull(rk);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_NewTopic_t *nt[8];
  int n = 0;
  for (; names[n]; n++) nt[n] = rd_kafka_NewTopic_new(names[n], partitions, 1, err, sizeof err);
  rd_kafka_CreateTopics(rk, nt, (size_t)n, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
  ck_assert_ptr_nonnull(ev);
  const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
  size_t cnt;
  const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
  for (size_t i = 0; i < cnt; i++)
    ck_assert_msg(rd_kafka_topic_result_error(tr[i]) == 0 ||
                      rd_kafka_topic_result_error(tr[i]) == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS,
                  "create %s: %s", rd_kafka_topic_result_name(tr[i]),
                  rd_kafka_topic_result_error_string(tr[i]));
  rd_kafka_event_destroy(ev);
  for (int i = 0; i < n; i++) rd_kafka_NewTopic_destroy(nt[i]);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
}

static void unique(char *out, size_t n, const char *base) {
  snprintf(out, n, "%s-%ld-%lld", base, (long)getpid(), (long long)nd_wall_ms());
}

/* ---- a recording consumer (as in the embedded suite) ---- */

typedef struct tstate {
  int32_t dpart[8192];
  int64_t doff[8192];
  int dattempt[8192];
  int nd;
  int acks[8192];
  char ack_keys[8192][16];
  int nacked;
  int produced, produce_failed;
  int retry_mod, retry_until;
  int stopped;
  char dlq_err[64][32];
  char dlq_attempts[64][8];
  char dlq_topic[64][96];
  char dlq_group[64][32];
  char dlq_offset[64][24];
  int ndlq;
} tstate;

static int value_of(notifd_bus_msg *m) {
  size_t n;
  const char *v = nd_msg_value(m, &n);
  char buf[32];
  if (!v || n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, v, n);
  buf[n] = '\0';
  return buf[0] == 'v' ? atoi(buf + 1) : -1;
}

static void handler(notifd_bus_msg *m, void *ud) {
  tstate *t = ud;
  if (t->nd < 8192) {
    t->dpart[t->nd] = nd_msg_partition(m);
    t->doff[t->nd] = nd_msg_offset(m);
    t->dattempt[t->nd] = nd_msg_attempt(m);
    t->nd++;
  }
  size_t vl;
  const char *v = nd_msg_value(m, &vl);
  if (v && vl == 3 && memcmp(v, "bad", 3) == 0) {
    ck_assert_int_eq(nd_bus_drop(m, "invalid_format"), 0);
    return;
  }
  int val = value_of(m);
  if (t->retry_mod && val % t->retry_mod == 0 && nd_msg_attempt(m) < t->retry_until) {
    ck_assert_int_eq(nd_bus_retry(m, "again"), 0);
    return;
  }
  size_t kl;
  const char *k = nd_msg_key(m, &kl);
  if (t->nacked < 8192) {
    snprintf(t->ack_keys[t->nacked], 16, "%.*s", k ? (int)kl : 0, k ? k : "");
    t->acks[t->nacked++] = val;
  }
  ck_assert_int_eq(nd_bus_ack(m), 0);
}

static void dlq_handler(notifd_bus_msg *m, void *ud) {
  tstate *t = ud;
  if (t->ndlq < 64) {
    size_t n;
    const char *v = nd_msg_header(m, "notifd-error", &n);
    snprintf(t->dlq_err[t->ndlq], 32, "%.*s", v ? (int)n : 0, v ? v : "");
    v = nd_msg_header(m, "notifd-attempts", &n);
    snprintf(t->dlq_attempts[t->ndlq], 8, "%.*s", v ? (int)n : 0, v ? v : "");
    v = nd_msg_header(m, "notifd-original-topic", &n);
    snprintf(t->dlq_topic[t->ndlq], 96, "%.*s", v ? (int)n : 0, v ? v : "");
    v = nd_msg_header(m, "notifd-group", &n);
    snprintf(t->dlq_group[t->ndlq], 32, "%.*s", v ? (int)n : 0, v ? v : "");
    v = nd_msg_header(m, "notifd-original-offset", &n);
    snprintf(t->dlq_offset[t->ndlq], 24, "%.*s", v ? (int)n : 0, v ? v : "");
    t->ndlq++;
  }
  nd_bus_ack(m);
}

static void on_produced(int32_t status, void *ud) {
  tstate *t = ud;
  if (status == 0) t->produced++;
  else t->produce_failed++;
}

static void on_stopped(void *ud) { ((tstate *)ud)->stopped = 1; }

/* ---- fixture ---- */

typedef struct env {
  struct event_base *base;
  notifd_host *h;
  nd_bus *b;
} env;

static nd_cfg_node *kafka_cfg(void) {
  nd_cfg_node *k = tcfg_map();
  tcfg_set(k, "brokers", broker);
  tcfg_set(k, "client_id", "notifd-test");
  nd_cfg_node *p = tcfg_add(k, "properties", tcfg_map());
  tcfg_set(p, "topic.metadata.refresh.interval.ms", "1000");
  nd_cfg_node *c = tcfg_add(k, "consumer_properties", tcfg_map());
  tcfg_set(c, "session.timeout.ms", "6000");
  tcfg_set(c, "heartbeat.interval.ms", "500");
  tcfg_set(c, "auto.commit.interval.ms", "100");
  tcfg_set(c, "fetch.wait.max.ms", "20");
  nd_cfg_node *pp = tcfg_add(k, "producer_properties", tcfg_map());
  tcfg_set(pp, "linger.ms", "1");
  return k;
}

static void env_open(env *e) {
  if (!e->base) e->base = event_base_new();
  e->h = thost_new(e->base, NULL);
  e->h->cfg.kafka = kafka_cfg();
  ck_assert_int_eq(nd_bus_open(e->h, &e->b, &e->h->errs), 0);
}

static notifd_consumer *consume(env *e, const char *topic, const char *group, void *t,
                                int max_attempts, notifd_bus_handler h) {
  const char *topics[] = {topic, NULL};
  notifd_consumer_opts o;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.topics = topics;
  o.group = group;
  o.handler = h ? h : handler;
  o.ud = t;
  o.max_attempts = max_attempts;
  o.initial_interval_ms = 5;
  o.max_interval_ms = 20;
  o.multiplier = 1.0;
  notifd_consumer *c = NULL;
  ck_assert_int_eq(nd_bus_consume(e->b, NULL, &o, &c), 0);
  return c;
}

static void start(env *e) {
  e->h->phase = ND_PHASE_RUNNING;
  ck_assert_int_eq(nd_bus_start(e->b), 0);
}

static void produce_n(env *e, const char *topic, int from, int n, int nkeys, tstate *t) {
  for (int i = from; i < from + n; i++) {
    char key[16], val[16];
    snprintf(key, sizeof key, "k%d", nkeys ? i % nkeys : 0);
    snprintf(val, sizeof val, "v%d", i);
    ck_assert_int_eq(
        nd_bus_produce(e->b, topic, key, strlen(key), val, strlen(val), NULL, on_produced, t), 0);
  }
}

static int stopped_cond(void *a) { return ((tstate *)a)->stopped; }

static void env_close(env *e) {
  tstate st = {0};
  nd_bus_stop(e->b, on_stopped, &st);
  ck_assert(run_until(e->base, stopped_cond, &st, 20000));
  nd_bus_free(e->b);
  e->b = NULL;
  thost_free(e->h);
  e->h = NULL;
}

static void env_done(env *e) {
  if (e->b) nd_bus_free(e->b);
  if (e->h) thost_free(e->h);
  if (e->base) event_base_free(e->base);
  memset(e, 0, sizeof *e);
}

static int target;
static notifd_consumer *wait_c1, *wait_c2;
static int acked_cond(void *a) { return ((tstate *)a)->nacked >= target; }
static int produced_cond(void *a) { return ((tstate *)a)->produced >= target; }

/* Produces records 0..n-1 and waits until the broker acknowledged them. */
static void produce_acked(env *e, const char *topic, int n, int nkeys, tstate *t) {
  produce_n(e, topic, 0, n, nkeys, t);
  target = n;
  ck_assert(run_until(e->base, produced_cond, t, 30000));
}
static int dlq_cond(void *a) { return ((tstate *)a)->ndlq >= target; }
static int assigned_cond(void *a) {
  (void)a;
  return (int)wait_c1->nstreams == target && (!wait_c2 || (int)wait_c2->nstreams == target);
}

static tstate *tnew(void) {
  tstate *t = calloc(1, sizeof *t);
  ck_assert_ptr_nonnull(t);
  return t;
}

/* ---- tests ---- */

START_TEST(kafka_order_under_retries) {
  char topic[96];
  unique(topic, sizeof topic, "order");
  const char *names[] = {topic, NULL};
  create_topics(names, 4);
  env e = {0};
  tstate *t = tnew();
  t->retry_mod = 7;
  t->retry_until = 3;
  env_open(&e);
  wait_c1 = consume(&e, topic, "g-order", t, 5, NULL);
  wait_c2 = NULL;
  start(&e);
  target = 4;
  ck_assert_msg(run_until(e.base, assigned_cond, NULL, 30000), "no assignment");
  produce_n(&e, topic, 0, 200, 10, t);
  target = 200;
  ck_assert(run_until(e.base, produced_cond, t, 30000));
  ck_assert(run_until(e.base, acked_cond, t, 30000));
  ck_assert(nd_bus_ready(e.b));
  for (int k = 0; k < 10; k++) {
    char key[8];
    snprintf(key, sizeof key, "k%d", k);
    int last = -1;
    for (int i = 0; i < t->nacked; i++) {
      if (strcmp(t->ack_keys[i], key) != 0) continue;
      ck_assert_msg(t->acks[i] > last, "key %s: %d after %d", key, t->acks[i], last);
      last = t->acks[i];
    }
  }
  for (int p = 0; p < 4; p++) {
    int64_t last = -1;
    for (int i = 0; i < t->nd; i++) {
      if (t->dpart[i] != p) continue;
      ck_assert_msg(t->doff[i] >= last, "partition %d went back", p);
      if (t->doff[i] == last) ck_assert_int_gt(t->dattempt[i], 1);
      last = t->doff[i];
    }
  }
  int retried = 0;
  for (int v = 0; v < 200; v++) retried += v % 7 == 0;
  ck_assert_int_eq(t->nd, 200 + 2 * retried);
  env_close(&e);
  env_done(&e);
  free(t);
}
END_TEST

static void produce_value(env *e, const char *topic, const char *key, const char *val,
                          tstate *t) {
  ck_assert_int_eq(
      nd_bus_produce(e->b, topic, key, strlen(key), val, strlen(val), NULL, on_produced, t), 0);
}

START_TEST(kafka_dead_letter_and_poison) {
  char topic[96], dlq[128];
  unique(topic, sizeof topic, "dl");
  snprintf(dlq, sizeof dlq, "%s.dlq", topic);
  const char *names[] = {topic, dlq, NULL};
  create_topics(names, 2);
  env e = {0};
  tstate *t = tnew(), *d = tnew();
  t->retry_mod = 5;
  t->retry_until = 99; /* multiples of 5 always fail */
  env_open(&e);
  wait_c1 = consume(&e, topic, "g-dl", t, 2, NULL);
  consume(&e, dlq, "g-dl-reader", d, 1, dlq_handler);
  wait_c2 = NULL;
  start(&e);
  target = 2;
  ck_assert_msg(run_until(e.base, assigned_cond, NULL, 30000), "no assignment");
  for (int i = 0; i < 10; i++) {
    char v[8];
    snprintf(v, sizeof v, "v%d", i);
    produce_value(&e, topic, "one", v, t);
    if (i == 3) produce_value(&e, topic, "one", "bad", t);
  }
  target = 8;
  ck_assert(run_until(e.base, acked_cond, t, 30000));
  target = 3;
  ck_assert(run_until(e.base, dlq_cond, d, 30000));
  /* same partition: poison and exhausted records did not block the rest */
  int expect[] = {1, 2, 3, 4, 6, 7, 8, 9};
  for (int i = 0; i < 8; i++) ck_assert_int_eq(t->acks[i], expect[i]);
  int exhausted = 0, dropped = 0;
  for (int i = 0; i < d->ndlq; i++) {
    ck_assert_str_eq(d->dlq_topic[i], topic);
    ck_assert_str_eq(d->dlq_group[i], "g-dl");
    ck_assert_int_ge(atoll(d->dlq_offset[i]), 0);
    ck_assert(d->dlq_offset[i][0] != '\0');
    if (strcmp(d->dlq_err[i], "again") == 0) {
      exhausted++;
      ck_assert_str_eq(d->dlq_attempts[i], "2");
    } else {
      ck_assert_str_eq(d->dlq_err[i], "invalid_format");
      dropped++;
    }
  }
  ck_assert_int_eq(exhausted, 2);
  ck_assert_int_eq(dropped, 1);
  env_close(&e);
  env_done(&e);
  free(t);
  free(d);
}
END_TEST

/* ---- kill -9 of a consumer mid-batch ---- */

typedef struct slow {
  int fd;
  struct event_base *base;
} slow;

typedef struct slow_ack {
  slow *s;
  notifd_bus_msg *m;
  struct event *ev;
} slow_ack;

static void slow_ack_now(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  slow_ack *a = arg;
  char line[32];
  int n = snprintf(line, sizeof line, "H %d\n", value_of(a->m));
  if (write(a->s->fd, line, (size_t)n) != n) _exit(3);
  nd_bus_ack(a->m);
  event_free(a->ev);
  free(a);
}

static void slow_handler(notifd_bus_msg *m, void *ud) {
  slow *s = ud;
  slow_ack *a = malloc(sizeof *a);
  if (!a) _exit(4);
  a->s = s;
  a->m = m;
  a->ev = evtimer_new(s->base, slow_ack_now, a);
  struct timeval tv = {0, 3000};
  evtimer_add(a->ev, &tv);
}

static int seen_parent[1000];
static int nseen_parent;
static void seen_handler(notifd_bus_msg *m, void *ud) {
  (void)ud;
  int v = value_of(m);
  if (v >= 0 && v < 1000) {
    if (!seen_parent[v]) nseen_parent++;
    seen_parent[v]++;
  }
  nd_bus_ack(m);
}

static int count_h(const char *path, int *handled) {
  char *s = nd_test_read_file(path);
  int n = 0;
  for (char *p = s; p && *p;) {
    int v;
    if (sscanf(p, "H %d", &v) == 1) {
      n++;
      if (handled && v >= 0 && v < 1000) handled[v] = 1;
    }
    char *nl = strchr(p, '\n');
    if (!nl) break;
    p = nl + 1;
  }
  free(s);
  return n;
}

static int all_seen_cond(void *a) {
  int *handled = a;
  for (int v = 0; v < 300; v++)
    if (!handled[v] && !seen_parent[v]) return 0;
  return 1;
}

START_TEST(kafka_at_least_once_across_kill9) {
  char topic[96], group[96];
  unique(topic, sizeof topic, "crash");
  unique(group, sizeof group, "g-crash");
  const char *names[] = {topic, NULL};
  create_topics(names, 4);
  char *dir = nd_test_tmpdir();
  char logpath[600];
  snprintf(logpath, sizeof logpath, "%s/child.log", dir);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0) _exit(2);
    env c = {0};
    env_open(&c);
    slow s = {fd, c.base};
    consume(&c, topic, group, &s, 1, slow_handler);
    start(&c);
    run_for(c.base, 60000);
    _exit(0);
  }
  /* the parent produces only after the fork (no librdkafka threads then) */
  env e = {0};
  tstate *t = tnew();
  env_open(&e);
  produce_acked(&e, topic, 300, 12, t);
  int64_t end = nd_now_ms() + 45000;
  while (nd_now_ms() < end && count_h(logpath, NULL) < 100) run_for(e.base, 20);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  ck_assert(WIFSIGNALED(st));
  static int handled[1000];
  int nchild = count_h(logpath, handled);
  ck_assert_int_ge(nchild, 100);
  ck_assert_int_lt(nchild, 300); /* killed mid-batch */
  env_close(&e);

  /* restart the group: everything not committed comes back */
  env_open(&e);
  consume(&e, topic, group, NULL, 1, seen_handler);
  start(&e);
  ck_assert_msg(run_until(e.base, all_seen_cond, handled, 60000),
                "some records were skipped: child %d, restarted %d", nchild, nseen_parent);
  run_for(e.base, 300);
  /* progress had been committed before the crash: not everything again */
  ck_assert_int_lt(nseen_parent, 300);
  printf("kafka kill9: child handled %d, restarted consumer handled %d\n", nchild, nseen_parent);
  env_close(&e);
  env_done(&e);
  nd_test_rmrf(dir);
  free(dir);
  free(t);
}
END_TEST

START_TEST(kafka_two_members_split_partitions) {
  char topic[96], group[96];
  unique(topic, sizeof topic, "split");
  unique(group, sizeof group, "g-split");
  const char *names[] = {topic, NULL};
  create_topics(names, 4);
  env a = {0}, b = {0};
  tstate *ta = tnew(), *tb = tnew();
  env_open(&a);
  b.base = a.base; /* one loop, two hosts */
  env_open(&b);
  wait_c1 = consume(&a, topic, group, ta, 1, NULL);
  wait_c2 = consume(&b, topic, group, tb, 1, NULL);
  start(&a);
  start(&b);
  target = 2;
  ck_assert_msg(run_until(a.base, assigned_cond, NULL, 40000), "partitions not split: %zu/%zu",
                wait_c1->nstreams, wait_c2->nstreams);
  produce_n(&a, topic, 0, 100, 20, ta);
  int64_t end = nd_now_ms() + 30000;
  while (ta->nacked + tb->nacked < 100 && nd_now_ms() < end) run_for(a.base, 20);
  ck_assert_int_eq(ta->nacked + tb->nacked, 100);
  ck_assert_int_gt(ta->nacked, 0);
  ck_assert_int_gt(tb->nacked, 0);
  int seen[100] = {0};
  for (int i = 0; i < ta->nacked; i++) seen[ta->acks[i]]++;
  for (int i = 0; i < tb->nacked; i++) seen[tb->acks[i]]++;
  for (int v = 0; v < 100; v++) ck_assert_int_eq(seen[v], 1);
  env_close(&b);
  b.base = NULL;
  env_close(&a);
  env_done(&a);
  free(ta);
  free(tb);
}
END_TEST

START_TEST(kafka_graceful_stop_commits) {
  char topic[96], group[96];
  unique(topic, sizeof topic, "commit");
  unique(group, sizeof group, "g-commit");
  const char *names[] = {topic, NULL};
  create_topics(names, 2);
  env e = {0};
  tstate *t = tnew();
  env_open(&e);
  wait_c1 = consume(&e, topic, group, t, 1, NULL);
  wait_c2 = NULL;
  start(&e);
  target = 2;
  ck_assert(run_until(e.base, assigned_cond, NULL, 30000));
  produce_n(&e, topic, 0, 50, 5, t);
  target = 50;
  ck_assert(run_until(e.base, acked_cond, t, 30000));
  env_close(&e); /* closes the consumer: final commit */

  tstate *t2 = tnew();
  env_open(&e);
  wait_c1 = consume(&e, topic, group, t2, 1, NULL);
  start(&e);
  target = 2;
  ck_assert(run_until(e.base, assigned_cond, NULL, 30000));
  run_for(e.base, 1500);
  ck_assert_int_eq(t2->nd, 0);
  produce_n(&e, topic, 50, 1, 1, t2);
  target = 1;
  ck_assert(run_until(e.base, acked_cond, t2, 30000));
  ck_assert_int_eq(t2->acks[0], 50);
  env_close(&e);
  env_done(&e);
  free(t);
  free(t2);
}
END_TEST


typedef struct holder {
  notifd_bus_msg *held;
  int held_val;
  int deliveries[16];
  int acked[16];
} holder;

/* Holds the first record it gets; acks everything else. */
static void hold_first_handler(notifd_bus_msg *m, void *ud) {
  holder *h = ud;
  int v = value_of(m);
  if (v >= 0 && v < 16) h->deliveries[v]++;
  if (!h->held && h->held_val < 0) {
    h->held = m;
    h->held_val = v;
    return;
  }
  if (v >= 0 && v < 16) h->acked[v]++;
  nd_bus_ack(m);
}

static holder *hold_a, *hold_b;
static int redelivered_cond(void *a) {
  (void)a;
  int v = hold_a->held_val;
  return v >= 0 && hold_a->deliveries[v] + hold_b->deliveries[v] >= 2 &&
         hold_a->acked[1] + hold_b->acked[1] >= 1 && hold_a->acked[2] + hold_b->acked[2] >= 1;
}

START_TEST(kafka_revoke_orphans_in_flight) {
  char topic[96], group[96];
  unique(topic, sizeof topic, "revoke");
  unique(group, sizeof group, "g-revoke");
  const char *names[] = {topic, NULL};
  create_topics(names, 1);
  env a = {0}, b = {0};
  holder ha = {.held_val = -1}, hb = {.held_val = 99};
  hold_a = &ha;
  hold_b = &hb;
  tstate *t = tnew();
  env_open(&a);
  wait_c1 = consume(&a, topic, group, &ha, 1, hold_first_handler);
  wait_c2 = NULL;
  start(&a);
  target = 1;
  ck_assert(run_until(a.base, assigned_cond, NULL, 30000));
  produce_n(&a, topic, 0, 3, 1, t);
  /* A holds record 0, so records 1 and 2 wait behind it */
  int64_t end = nd_now_ms() + 20000;
  while (!ha.held && nd_now_ms() < end) run_for(a.base, 10);
  ck_assert_ptr_nonnull(ha.held);
  ck_assert_int_eq(ha.held_val, 0);
  /* a second member joins: the partition is revoked from A mid-record */
  b.base = a.base;
  env_open(&b);
  consume(&b, topic, group, &hb, 1, hold_first_handler);
  start(&b);
  ck_assert_msg(run_until(a.base, redelivered_cond, NULL, 40000),
                "record 0 not redelivered after the revoke");
  /* the orphan can still be finished; it commits nothing */
  ck_assert_int_eq(nd_bus_ack(ha.held), 0);
  ck_assert_int_eq(ha.acked[0] + hb.acked[0], 1);
  env_close(&b);
  b.base = NULL;
  env_close(&a);
  env_done(&a);
  free(t);
}
END_TEST

/* backends.kafka's recovery settings: a heartbeat that is not below the
 * session timeout is refused at open with the key named; valid ones open. */
START_TEST(kafka_recovery_settings_checked) {
  env e = {0};
  e.base = event_base_new();
  e.h = thost_new(e.base, NULL);
  e.h->cfg.kafka = kafka_cfg();
  tcfg_set(e.h->cfg.kafka, "session_timeout", "2s");
  tcfg_set(e.h->cfg.kafka, "heartbeat_interval", "2s");
  ck_assert_int_lt(nd_bus_open(e.h, &e.b, &e.h->errs), 0);
  e.b = NULL;
  ck_assert_uint_ge(e.h->errs.n, 1);
  ck_assert_ptr_nonnull(strstr(e.h->errs.msgs[0], "heartbeat_interval"));
  thost_free(e.h);
  e.h = thost_new(e.base, NULL);
  e.h->cfg.kafka = kafka_cfg();
  tcfg_set(e.h->cfg.kafka, "session_timeout", "8s");
  tcfg_set(e.h->cfg.kafka, "heartbeat_interval", "500ms");
  tcfg_set(e.h->cfg.kafka, "reconnect_backoff_max", "50ms");
  ck_assert_int_eq(nd_bus_open(e.h, &e.b, &e.h->errs), 0);
  env_close(&e);
  env_done(&e);
}
END_TEST

/* Lines of `notifd bus tail -b broker ARGS... topic` (exit status in *rc). */
static int tail_lines(const char *topic, const char *a1, const char *a2, const char *a3,
                      int *rc) {
  char *dir = nd_test_tmpdir(), log[600];
  snprintf(log, sizeof log, "%s/tail.log", dir);
  char *argv[10] = {ND_TEST_NOTIFD, "bus", "tail", "-b", broker};
  size_t k = 5;
  const char *rest[] = {a1, a2, a3};
  for (size_t i = 0; i < 3; i++)
    if (rest[i]) argv[k++] = (char *)rest[i];
  argv[k++] = (char *)topic;
  argv[k] = NULL;
  pid_t pid = nd_test_spawn(argv, log);
  *rc = nd_test_wait_exit(pid, 60000); /* joining the group takes seconds */
  char *out = nd_test_read_file(log);
  int n = 0;
  for (const char *p = out; p && (p = strstr(p, "\"offset\":")) != NULL; p++) n++;
  if (*rc != 0) fprintf(stderr, "tail: %s\n", out ? out : "");
  free(out);
  nd_test_rmrf(dir);
  free(dir);
  return n;
}

/* `bus tail -n 10` with 5 records in 3 partitions prints them and exits
 * (partition EOF), without -B the last ones of each partition. */
START_TEST(kafka_tail_prints_what_exists) {
  char topic[96];
  unique(topic, sizeof topic, "tail");
  create_topics((const char *const[]){topic, NULL}, 3);
  env e = {0};
  tstate *t = tnew();
  env_open(&e);
  produce_acked(&e, topic, 5, 5, t);
  env_close(&e);
  env_done(&e);
  free(t);
  int rc;
  ck_assert_int_eq(tail_lines(topic, "-B", "-n", "10", &rc), 5);
  ck_assert_int_eq(rc, 0);
  int last = tail_lines(topic, "-n", "1", NULL, &rc);
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(last, 1);
}
END_TEST

static void suite_add(Suite *s, const char *name, const TTest *tt, int timeout) {
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, timeout);
  tcase_add_test(tc, tt);
  suite_add_tcase(s, tc);
}

Suite *nd_test_suite(void) {
  start_broker_or_skip();
  Suite *s = suite_create("bus_kafka");
  suite_add(s, "order", kafka_order_under_retries, 120);
  suite_add(s, "dead_letter", kafka_dead_letter_and_poison, 120);
  suite_add(s, "kill9", kafka_at_least_once_across_kill9, 180);
  suite_add(s, "split", kafka_two_members_split_partitions, 120);
  suite_add(s, "commit", kafka_graceful_stop_commits, 120);
  suite_add(s, "revoke", kafka_revoke_orphans_in_flight, 120);
  suite_add(s, "recovery_settings", kafka_recovery_settings_checked, 60);
  suite_add(s, "tail", kafka_tail_prints_what_exists, 180);
  return s;
}
