/* notifd: the thin daemon around libnotifd. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <notifd/embed.h>
#include <sqlite3.h>

#include "auth/user_ctl.h"
#include "bus/bus_ctl.h"
#include "config/config_default.h"
#include "core/host.h"

typedef struct daemon_state {
  struct event_base *base;
  struct event *sigterm, *sigint;
  notifd_host *host;
  int stopping;
} daemon_state;

static void usage(FILE *out) {
  fprintf(out,
          "usage: notifd -c FILE            run with the YAML config FILE\n"
          "       notifd --check -c FILE    validate config, load and init every plugin, exit\n"
          "       notifd bus produce|tail   inject or inspect bus records (notifd bus --help)\n"
          "       notifd user add|passwd|del|list  manage built-in accounts (notifd user --help)\n"
          "       notifd --version          print host version and plugin ABI\n"
          "       notifd --help\n"
          "Without -c: $NOTIFD_CONFIG if set, else the installed config\n"
          "  %s%s\n",
          nd_config_installed_path(),
          access(nd_config_installed_path(), R_OK) == 0 ? "" : " (not found)");
}

static void on_stopped(notifd_host *h, void *ud) {
  (void)h;
  daemon_state *d = ud;
  /* Our own signal events are the last ones on the base. */
  event_del(d->sigterm);
  event_del(d->sigint);
}

static void on_signal(evutil_socket_t sig, short what, void *ud) {
  (void)what;
  daemon_state *d = ud;
  if (d->stopping) {
    fprintf(stderr, "notifd: signal %d again while stopping; exiting now\n", (int)sig);
    exit(1);
  }
  d->stopping = 1;
  notifd_host_stop(d->host, on_stopped, d);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "bus") == 0) return nd_bus_ctl_main(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "user") == 0) return nd_user_ctl_main(argc - 1, argv + 1);

  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"check", no_argument, NULL, 'k'},
                                       {"version", no_argument, NULL, 'V'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *config = NULL;
  int check = 0, c;
  while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 'k': check = 1; break;
    case 'V':
      printf("notifd %s (plugin ABI %d.%d)\n", notifd_version(), NOTIFD_ABI_MAJOR,
             NOTIFD_ABI_MINOR);
      return 0;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!config) config = nd_config_default_path();
  if (!config || optind != argc) {
    usage(stderr);
    return 2;
  }

  signal(SIGPIPE, SIG_IGN);
  /* Past a file-size limit a write fails with EFBIG instead of killing the
   * daemon: the store answers 500 and /readyz turns 503, as on a full disk. */
  signal(SIGXFSZ, SIG_IGN);
  /* SQLite's memory statistics take one process-wide mutex per allocation;
   * with the loop, the kv writer and the chat store's workers all in SQLite
   * that lock is contended, and notifd never reads the statistics.  Only
   * the daemon sets it: an embedding program owns its process's SQLite. */
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  daemon_state d = {0};
  d.base = event_base_new();
  if (!d.base) {
    fprintf(stderr, "notifd: cannot create the event loop\n");
    return 1;
  }
  static char err[65536];
  /* --check reports the host config's errors together with the plugins'. */
  int rc = check ? nd_host_new_for_check(config, d.base, &d.host, err, sizeof err)
                 : notifd_host_new_from_file(config, d.base, &d.host, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "%s\n", err);
    event_base_free(d.base);
    return 1;
  }
  if (check) {
    rc = notifd_host_check(d.host, err, sizeof err);
    if (rc < 0) fprintf(stderr, "%s\n", err);
    else printf("%s: OK\n", config);
    notifd_host_free(d.host);
    event_base_free(d.base);
    return rc < 0 ? 1 : 0;
  }
  d.sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
  d.sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
  if (!d.sigterm || !d.sigint || event_add(d.sigterm, NULL) < 0 || event_add(d.sigint, NULL) < 0) {
    fprintf(stderr, "notifd: cannot install signal handlers\n");
    return 1;
  }
  rc = notifd_host_start(d.host, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "%s\n", err);
  } else {
    event_base_dispatch(d.base);
  }
  notifd_host_free(d.host);
  event_free(d.sigterm);
  event_free(d.sigint);
  event_base_free(d.base);
  return rc < 0 ? 1 : 0;
}
