/* `notifd bus produce|tail`: inject and inspect bus records from a shell,
 * against whichever backend a config selects (or --brokers / --data-dir). */
#include "bus/bus_ctl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/bus_internal.h"
#include "config/config_default.h"
#include "core/host.h"
#include "log/log.h"
#include "util/buf.h"

static const char usage_text[] =
    "usage: notifd bus produce [OPTIONS] TOPIC [VALUE]\n"
    "       notifd bus tail [OPTIONS] TOPIC...\n"
    "\n"
    "Backend (one of):\n"
    "  -c, --config FILE      use the bus configured in FILE (backends.kafka or embedded;\n"
    "                         default $NOTIFD_CONFIG, else the installed config)\n"
    "  -b, --brokers LIST     Kafka bootstrap servers (host:port,...)\n"
    "  -d, --data-dir DIR     embedded bus in DIR/bus.db\n"
    "\n"
    "produce: writes one record; VALUE absent or '-' reads it from stdin.\n"
    "  -k, --key KEY          record key (default: none)\n"
    "  -H, --header NAME=VAL  add a header (repeatable)\n"
    "  Exit 0 once the bus confirmed the record as durable.\n"
    "\n"
    "tail: prints records as JSON lines {topic,partition,offset,timestamp,key,\n"
    "headers,value} (key/value as key_base64/value_base64 when not UTF-8).\n"
    "Reads with a private group that commits nothing.\n"
    "  -n, --count N          print at most N records: the last N of each partition\n"
    "                         (or the oldest with -B), and exit once those that exist\n"
    "                         are printed, even if fewer than N\n"
    "  -f, --follow           with -n: wait for new records until N were printed\n"
    "                         (without -n tail always follows, until -t or a signal)\n"
    "  -t, --idle DURATION    exit after DURATION without a record (e.g. 5s)\n"
    "  -B, --from-beginning   start at the oldest retained record (default: the end)\n"
    "\n"
    "Exit status: 0 ok, 1 bus error, 2 usage or config error.\n";

typedef struct ctl {
  struct event_base *base;
  notifd_host *host;
  nd_bus *bus;
  int status;        /* exit code */
  int done, config_loaded;
  int64_t count, max_count, idle_ms;
  int follow;        /* keep waiting at the end of the partitions */
  notifd_consumer *tail_consumer;
  struct event *idle_ev, *sigint_ev, *sigterm_ev, *end_ev;
} ctl;

static int usage(const char *msg) {
  if (msg) fprintf(stderr, "notifd bus: %s\n", msg);
  fputs(usage_text, msg ? stderr : stdout);
  return 2;
}

static int mkdir_p(const char *dir) {
  char *tmp = strdup(dir);
  if (!tmp) return -1;
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST) break;
    *p = '/';
  }
  int rc = mkdir(tmp, 0750) < 0 && errno != EEXIST ? -1 : 0;
  free(tmp);
  return rc;
}

static nd_cfg_node *cfg_node(nd_cfg_kind kind, const char *key, const char *str) {
  nd_cfg_node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = kind;
  n->file = "<command line>";
  n->key = key ? strdup(key) : NULL;
  n->str = str ? strdup(str) : NULL;
  if ((key && !n->key) || (str && !n->str)) {
    free(n->key);
    free(n->str);
    free(n);
    return NULL;
  }
  return n;
}

static void print_errors(const nd_errors *errs, const char *what) {
  char buf[4096];
  nd_errors_format(errs, buf, sizeof buf);
  fprintf(stderr, "notifd bus: %s%s%s\n", what, buf[0] ? ": " : "", buf);
}

/* The host the bus reads: from a config file, or from --brokers /
 * --data-dir alone (nodes built here, no config file needed). */
static int load_host(ctl *c, const char *config, const char *brokers, const char *data_dir) {
  notifd_host *h = calloc(1, sizeof *h);
  if (!h) return -1;
  nd_errors_init(&h->errs);
  h->base = c->base;
  c->host = h;
  if (config) {
    nd_cfg_tree tree = {0};
    if (nd_cfg_parse_file(config, &tree, &h->errs) < 0) {
      nd_cfg_tree_free(&tree);
      print_errors(&h->errs, config);
      return -1;
    }
    c->config_loaded = 1;
    if (nd_config_load(&tree, &h->cfg, &h->errs) < 0) {
      print_errors(&h->errs, config);
      return -1;
    }
  } else if (brokers) {
    nd_cfg_node *k = cfg_node(ND_CFG_MAP, "kafka", NULL);
    nd_cfg_node *b = cfg_node(ND_CFG_SCALAR, "brokers", brokers);
    nd_cfg_node **items = malloc(sizeof *items);
    if (!k || !b || !items) {
      nd_cfg_node_free(k);
      nd_cfg_node_free(b);
      free(items);
      return -1;
    }
    items[0] = b;
    k->items = items;
    k->n = 1;
    h->cfg.kafka = k;
  } else {
    if (!(h->cfg.data_dir = strdup(data_dir))) return -1;
  }
  if (!h->cfg.kafka && h->cfg.data_dir && mkdir_p(h->cfg.data_dir) < 0) {
    fprintf(stderr, "notifd bus: data_dir %s: %s\n", h->cfg.data_dir, strerror(errno));
    return -1;
  }
  h->phase = ND_PHASE_INIT; /* consumers may register */
  if (nd_bus_open(h, &c->bus, &h->errs) < 0) {
    print_errors(&h->errs, "cannot open the bus");
    return -1;
  }
  return 0;
}

static void free_host(ctl *c) {
  if (c->bus) nd_bus_free(c->bus);
  c->bus = NULL;
  notifd_host *h = c->host;
  if (h) {
    if (c->config_loaded) {
      nd_config_free(&h->cfg);
    } else {
      nd_cfg_node_free(h->cfg.kafka);
      free(h->cfg.data_dir);
    }
    nd_errors_free(&h->errs);
    free(h);
  }
  c->host = NULL;
}

static void on_stopped(void *ud) {
  ctl *c = ud;
  c->done = 1;
  event_base_loopbreak(c->base);
}

static void stop_bus(ctl *c) {
  if (c->bus && !c->bus->stopping) nd_bus_stop(c->bus, on_stopped, c);
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  stop_bus(arg);
}

/* Runs the loop until the bus reports stopped (the command is done). */
static void run_until_stopped(ctl *c) {
  c->sigint_ev = evsignal_new(c->base, SIGINT, on_signal, c);
  c->sigterm_ev = evsignal_new(c->base, SIGTERM, on_signal, c);
  if (c->sigint_ev) event_add(c->sigint_ev, NULL);
  if (c->sigterm_ev) event_add(c->sigterm_ev, NULL);
  while (!c->done) {
    if (event_base_loop(c->base, EVLOOP_ONCE) < 0) break;
  }
  if (c->sigint_ev) event_free(c->sigint_ev);
  if (c->sigterm_ev) event_free(c->sigterm_ev);
  c->sigint_ev = c->sigterm_ev = NULL;
}

/* ---- produce ---- */

static void on_produced(int32_t status, void *ud) {
  ctl *c = ud;
  if (status < 0) {
    fprintf(stderr, "notifd bus: produce failed (%d)\n", (int)status);
    c->status = 1;
  } else {
    c->status = 0;
  }
  stop_bus(c);
}

static char *read_stdin(size_t *len) {
  nd_buf b;
  nd_buf_init(&b);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) nd_buf_append(&b, chunk, n);
  if (ferror(stdin) || b.oom) {
    nd_buf_free(&b);
    return NULL;
  }
  if (!b.data) nd_buf_puts(&b, "");
  return nd_buf_steal(&b, len);
}

static int cmd_produce(ctl *c, const char *topic, const char *value_arg, const char *key,
                       char **headers) {
  size_t vlen;
  char *stdin_value = NULL;
  const char *value = value_arg;
  if (!value || strcmp(value, "-") == 0) {
    stdin_value = read_stdin(&vlen);
    if (!stdin_value) {
      fprintf(stderr, "notifd bus: cannot read the value from stdin\n");
      return 1;
    }
    value = stdin_value;
  } else {
    vlen = strlen(value);
  }
  c->status = 1;
  int rc = nd_bus_produce(c->bus, topic, key, key ? strlen(key) : 0, value, vlen,
                          (const char *const *)headers, on_produced, c);
  free(stdin_value);
  if (rc < 0) {
    fprintf(stderr, "notifd bus: produce refused (%d)\n", rc);
    return 1;
  }
  run_until_stopped(c);
  return c->status;
}

/* ---- tail ---- */

static json_t *bytes_field(const void *p, size_t n) {
  if (nd_utf8_valid(p, n)) return json_stringn(p, n);
  return NULL;
}

static char *base64(const unsigned char *p, size_t n) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                 (i + 2 < n ? p[i + 2] : 0);
    *o++ = tbl[v >> 18 & 63];
    *o++ = tbl[v >> 12 & 63];
    *o++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
    *o++ = i + 2 < n ? tbl[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

static void set_bytes(json_t *obj, const char *name, const void *p, size_t n) {
  if (!p) {
    json_object_set_new(obj, name, json_null());
    return;
  }
  json_t *s = bytes_field(p, n);
  if (s) {
    json_object_set_new(obj, name, s);
    return;
  }
  char key[32], *b = base64(p, n);
  snprintf(key, sizeof key, "%s_base64", name);
  if (b) json_object_set_new(obj, key, json_string(b));
  free(b);
}

static void tail_handler(notifd_bus_msg *m, void *ud) {
  ctl *c = ud;
  json_t *o = json_object();
  if (o) {
    size_t kl, vl;
    const void *k = nd_msg_key(m, &kl), *v = nd_msg_value(m, &vl);
    json_object_set_new(o, "topic", json_string(nd_msg_topic(m)));
    json_object_set_new(o, "partition", json_integer(nd_msg_partition(m)));
    json_object_set_new(o, "offset", json_integer(nd_msg_offset(m)));
    json_object_set_new(o, "timestamp", json_integer(nd_msg_timestamp_ms(m)));
    set_bytes(o, "key", k, kl);
    json_t *h = json_object();
    for (size_t i = 0; h && i < m->nhdrs; i++) set_bytes(h, m->hdrs[i].name, m->hdrs[i].value, m->hdrs[i].len);
    if (h) json_object_set_new(o, "headers", h);
    set_bytes(o, "value", v, vl);
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line) {
      fputs(line, stdout);
      fputc('\n', stdout);
      fflush(stdout);
      free(line);
    }
    json_decref(o);
  }
  nd_bus_ack(m);
  c->count++;
  if (c->max_count > 0 && c->count >= c->max_count) stop_bus(c);
  if (c->idle_ev) {
    struct timeval tv = {(time_t)(c->idle_ms / 1000), (suseconds_t)((c->idle_ms % 1000) * 1000)};
    event_add(c->idle_ev, &tv);
  }
}

static void on_idle(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  stop_bus(arg);
}

/* Without --follow, tail exits once it printed every record that exists
 * (the backends say when a partition was read to its end). */
#define TAIL_END_CHECK_MS 20

static void on_end_check(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ctl *c = arg;
  if (nd_bus_consumer_caught_up(c->tail_consumer)) stop_bus(c);
}

static int cmd_tail(ctl *c, char **topics, int from_beginning) {
  char group[96];
  snprintf(group, sizeof group, "notifd-tail-%ld-%" PRId64, (long)getpid(), nd_wall_ms());
  notifd_consumer_opts o;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.topics = (const char *const *)topics;
  o.group = group;
  o.handler = tail_handler;
  o.ud = c;
  o.max_attempts = 1;
  o.start_from_latest = !from_beginning;
  notifd_consumer *cons;
  int rc = nd_bus_consume(c->bus, NULL, &o, &cons);
  if (rc < 0) {
    fprintf(stderr, "notifd bus: cannot consume (%d %s)\n", rc, notifd_strerror(rc));
    return 1;
  }
  nd_bus_consumer_set_ephemeral(cons);
  if (!from_beginning && c->max_count > 0) cons->tail_last = c->max_count;
  c->tail_consumer = cons;
  if (c->max_count > 0 && !c->follow) {
    struct timeval every = {0, TAIL_END_CHECK_MS * 1000};
    c->end_ev = event_new(c->base, -1, EV_PERSIST, on_end_check, c);
    if (!c->end_ev || event_add(c->end_ev, &every) < 0) {
      fprintf(stderr, "notifd bus: out of memory\n");
      return 1;
    }
  }
  c->host->phase = ND_PHASE_RUNNING;
  if (c->idle_ms > 0) {
    c->idle_ev = evtimer_new(c->base, on_idle, c);
    struct timeval tv = {(time_t)(c->idle_ms / 1000), (suseconds_t)((c->idle_ms % 1000) * 1000)};
    if (c->idle_ev) event_add(c->idle_ev, &tv);
  }
  if (nd_bus_start(c->bus) < 0) {
    fprintf(stderr, "notifd bus: cannot start consuming\n");
    return 1;
  }
  run_until_stopped(c);
  if (c->idle_ev) event_free(c->idle_ev);
  if (c->end_ev) event_free(c->end_ev);
  c->idle_ev = c->end_ev = NULL;
  return 0;
}

int nd_bus_ctl_main(int argc, char **argv) {
  if (argc < 2) return usage("missing command");
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
    return usage(NULL), 0;
  int is_produce = strcmp(cmd, "produce") == 0, is_tail = strcmp(cmd, "tail") == 0;
  if (!is_produce && !is_tail) return usage("unknown command");

  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'}, {"brokers", required_argument, NULL, 'b'},
      {"data-dir", required_argument, NULL, 'd'}, {"key", required_argument, NULL, 'k'},
      {"header", required_argument, NULL, 'H'}, {"count", required_argument, NULL, 'n'},
      {"idle", required_argument, NULL, 't'}, {"from-beginning", no_argument, NULL, 'B'},
      {"follow", no_argument, NULL, 'f'},
      {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  const char *config = NULL, *brokers = NULL, *data_dir = NULL, *key = NULL;
  char **headers = calloc((size_t)argc * 2 + 1, sizeof *headers);
  size_t nh = 0;
  int from_beginning = 0, rc = 2;
  ctl c;
  memset(&c, 0, sizeof c);
  if (!headers) return 1;
  optind = 1;
  int ch;
  while ((ch = getopt_long(argc - 1, argv + 1, "+c:b:d:k:H:n:t:Bfh", longopts, NULL)) != -1) {
    switch (ch) {
    case 'c': config = optarg; break;
    case 'b': brokers = optarg; break;
    case 'd': data_dir = optarg; break;
    case 'k': key = optarg; break;
    case 'H': {
      char *eq = strchr(optarg, '=');
      if (!eq || eq == optarg) {
        rc = usage("--header wants NAME=VALUE");
        goto out;
      }
      *eq = '\0';
      headers[nh++] = optarg;
      headers[nh++] = eq + 1;
      break;
    }
    case 'n': {
      char *end = NULL;
      c.max_count = strtoll(optarg, &end, 10);
      if (!*optarg || *end || c.max_count < 1) {
        rc = usage("--count wants a positive number");
        goto out;
      }
      break;
    }
    case 't':
      if (nd_parse_duration_ms(optarg, &c.idle_ms) < 0 || c.idle_ms <= 0) {
        rc = usage("--idle wants a duration such as 5s");
        goto out;
      }
      break;
    case 'B': from_beginning = 1; break;
    case 'f': c.follow = 1; break;
    case 'h': usage(NULL); rc = 0; goto out;
    default: rc = usage(NULL); goto out;
    }
  }
  int nargs = argc - 1 - optind;
  char **args = argv + 1 + optind;
  if (!config && !brokers && !data_dir) config = nd_config_default_path();
  if (!!config + !!brokers + !!data_dir != 1) {
    rc = usage("give exactly one of --config, --brokers, --data-dir");
    goto out;
  }
  if (is_produce && (nargs < 1 || nargs > 2)) {
    rc = usage("produce wants TOPIC [VALUE]");
    goto out;
  }
  if (is_tail && nargs < 1) {
    rc = usage("tail wants at least one TOPIC");
    goto out;
  }
  nd_log_configure(NOTIFD_LOG_WARN, 0);
  c.base = event_base_new();
  if (!c.base || load_host(&c, config, brokers, data_dir) < 0) {
    rc = c.base ? 2 : 1;
    goto out;
  }
  if (is_produce) {
    rc = cmd_produce(&c, args[0], nargs > 1 ? args[1] : NULL, key, headers);
  } else {
    char **topics = calloc((size_t)nargs + 1, sizeof *topics);
    if (!topics) {
      rc = 1;
      goto out;
    }
    for (int i = 0; i < nargs; i++) topics[i] = args[i];
    rc = cmd_tail(&c, topics, from_beginning);
    free(topics);
  }
out:
  free_host(&c);
  if (c.base) event_base_free(c.base);
  free(headers);
  return rc;
}
