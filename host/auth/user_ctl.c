/* notifd user: account administration from the command line.  Passwords
 * are read from standard input (first line), prompted without echo on a
 * terminal, never taken from the command line (where `ps` shows them). */
#include "auth/user_ctl.h"

#include <getopt.h>
#include <notifd/plugin.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth/accounts.h"
#include "auth/password.h"
#include "auth/user_store.h"
#include "config/config.h"
#include "config/config_default.h"

static const char USAGE[] =
    "usage: notifd user add USER_ID -c FILE      create an account (password on stdin)\n"
    "       notifd user passwd USER_ID -c FILE   set a new password (password on stdin)\n"
    "       notifd user del USER_ID -c FILE      delete an account\n"
    "       notifd user list -c FILE             list accounts\n"
    "  -c, --config FILE      the daemon's config (its data_dir holds users.db;\n"
    "                         default $NOTIFD_CONFIG, else the installed config)\n"
    "  -d, --data-dir DIR     use DIR/users.db instead of a config\n"
    "The password is the first line of standard input; on a terminal it is\n"
    "prompted for without echo.  A running daemon sees changes at once.\n"
    "Exit status: 0 ok, 1 failure, 2 usage or config error.\n";

/* The users database path from -c or -d (malloc'd), or NULL after a
 * message. */
static char *db_path(const char *config, const char *data_dir) {
  nd_config cfg;
  memset(&cfg, 0, sizeof cfg);
  if (data_dir) {
    cfg.data_dir = (char *)data_dir;
    return nd_accounts_db_path(&cfg);
  }
  nd_errors e;
  nd_errors_init(&e);
  nd_cfg_tree tree = {0};
  char *path = NULL;
  if (nd_cfg_parse_file(config, &tree, &e) == 0 && nd_config_load(&tree, &cfg, &e) == 0) {
    if (!cfg.accounts)
      fprintf(stderr, "notifd user: note: %s has auth.accounts off; the daemon will not "
              "use these accounts\n", config);
    path = nd_accounts_db_path(&cfg);
  } else {
    if (tree.root) nd_cfg_tree_free(&tree);
    for (size_t i = 0; i < e.n; i++) fprintf(stderr, "%s\n", e.msgs[i]);
  }
  nd_config_free(&cfg);
  nd_errors_free(&e);
  return path;
}

/* Reads one line of password into buf; 0 or -1. */
static int read_password(char *buf, size_t len) {
  int tty = isatty(STDIN_FILENO);
  struct termios old, quiet;
  if (tty) {
    fprintf(stderr, "password: ");
    if (tcgetattr(STDIN_FILENO, &old) == 0) {
      quiet = old;
      quiet.c_lflag &= ~(tcflag_t)ECHO;
      tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    } else {
      tty = 0;
    }
  }
  char *got = fgets(buf, (int)len, stdin);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fprintf(stderr, "\n");
  }
  if (!got) return -1;
  buf[strcspn(buf, "\r\n")] = '\0';
  return 0;
}

static int set_password(nd_user_store *s, const char *cmd, const char *user) {
  char pw[ND_PASSWORD_MAX + 2], hash[ND_PASSWORD_HASH_MAX];
  if (read_password(pw, sizeof pw) < 0) {
    fprintf(stderr, "notifd user %s: no password on standard input\n", cmd);
    return 1;
  }
  size_t n = strlen(pw);
  int rc = 1;
  if (!nd_password_acceptable(pw, n)) {
    fprintf(stderr, "notifd user %s: the password must be %d to %d bytes\n", cmd,
            ND_PASSWORD_MIN, ND_PASSWORD_MAX);
  } else if (nd_password_hash(pw, n, hash) < 0) {
    fprintf(stderr, "notifd user %s: cannot hash the password\n", cmd);
  } else {
    int st = strcmp(cmd, "add") == 0 ? nd_user_store_add(s, user, hash)
                                     : nd_user_store_set_hash(s, user, hash);
    if (st == 0) {
      printf("%s: %s\n", user, strcmp(cmd, "add") == 0 ? "created" : "password changed");
      rc = 0;
    } else if (st == NOTIFD_EEXIST) {
      fprintf(stderr, "notifd user add: %s already exists\n", user);
    } else if (st == NOTIFD_ENOENT) {
      fprintf(stderr, "notifd user passwd: no user %s\n", user);
    } else {
      fprintf(stderr, "notifd user %s: database error\n", cmd);
    }
  }
  OPENSSL_cleanse(pw, sizeof pw);
  OPENSSL_cleanse(hash, sizeof hash);
  return rc;
}

static void print_user(const char *user, int64_t created_at, void *ud) {
  (void)ud;
  char when[32];
  time_t t = (time_t)created_at;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  printf("%s\t%s\n", user, when);
}

int nd_user_ctl_main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"data-dir", required_argument, NULL, 'd'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *config = NULL, *data_dir = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:d:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': config = optarg; break;
    case 'd': data_dir = optarg; break;
    case 'h': fputs(USAGE, stdout); return 0;
    default: fputs(USAGE, stderr); return 2;
    }
  }
  const char *cmd = optind < argc ? argv[optind] : NULL;
  int is_list = cmd && strcmp(cmd, "list") == 0;
  int known = cmd && (is_list || !strcmp(cmd, "add") || !strcmp(cmd, "passwd") ||
                      !strcmp(cmd, "del"));
  int want_args = is_list ? 1 : 2;
  if (!config && !data_dir) config = nd_config_default_path();
  if (!known || argc - optind != want_args || (!config == !data_dir)) {
    fputs(USAGE, stderr);
    return 2;
  }
  const char *user = is_list ? NULL : argv[optind + 1];
  if (user && !nd_user_id_valid(user)) {
    fprintf(stderr, "notifd user: '%s' is not a valid user id (1 to %d characters of "
            "A-Z a-z 0-9 . _ @ + -)\n", user, ND_USER_ID_MAX);
    return 2;
  }
  char *path = db_path(config, data_dir);
  if (!path) return 2;
  nd_user_store *s = NULL;
  char err[512];
  if (nd_user_store_open(path, &s, err, sizeof err) < 0) {
    fprintf(stderr, "notifd user: %s\n", err);
    free(path);
    return 1;
  }
  free(path);
  int rc = 0;
  if (is_list) {
    rc = nd_user_store_list(s, print_user, NULL) == 0 ? 0 : 1;
  } else if (strcmp(cmd, "del") == 0) {
    int st = nd_user_store_delete(s, user);
    if (st == 0) printf("%s: deleted\n", user);
    else fprintf(stderr, "notifd user del: %s\n", st == NOTIFD_ENOENT ? "no such user"
                                                                        : "database error");
    rc = st == 0 ? 0 : 1;
  } else {
    rc = set_password(s, cmd, user);
  }
  nd_user_store_close(s);
  return rc;
}
