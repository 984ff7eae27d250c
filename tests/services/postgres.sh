#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests (FerretDB's backend), on loopback.
# Debian's postgresql package (scripts/install-deps.sh test): initdb into a
# fresh directory, the server started with pg_ctl on a free port below the
# ephemeral range, stopped by pid.
#
#   postgres.sh start DIR [PORT]  prints "postgres://ferretdb@127.0.0.1:PORT/postgres"
#                                 once the server accepts connections
#   postgres.sh stop DIR          stops the server started in DIR (by pid)
#                                 and removes its cluster directory
#
# The cluster: superuser `ferretdb`, trust authentication, TCP on 127.0.0.1
# only (no Unix socket), fsync on, synchronous_commit=off: a commit returns
# before its WAL flush, which follows within ~0.6 s (wal_writer_delay) -
# what MongoDB's default write concern ({w: 1}, journal flushed every
# 100 ms) promises, and a crash of the server never corrupts the cluster.
# PostgreSQL refuses to run as root: as root the cluster lives in a
# directory of its own under ${TMPDIR:-/tmp} owned by the `postgres` user
# (DIR may sit below a directory that user cannot enter), and
# DIR/pgdata.path names it.
#
# Exit status 2 means "cannot run here" (no PostgreSQL binaries, initdb
# failed, the server did not start); the reason is on stderr.
set -u

# shellcheck source=service_lib.sh
. "$(dirname "$0")/service_lib.sh"

pg_bindir() {
  local d
  if [ -n "${NOTIFD_PG_BINDIR:-}" ] && [ -x "$NOTIFD_PG_BINDIR/initdb" ]; then
    echo "$NOTIFD_PG_BINDIR"; return 0
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

# as_pg CMD...: runs CMD as the cluster's owner (postgres when we are root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A free loopback port below the ephemeral range (services bound there do
# not collide with the outgoing connections of everything else running).
free_low_port() {
  python3 - "$@" <<'EOF'
import random, socket, sys
avoid = set(int(a) for a in sys.argv[1:])
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    lo = 32768
for _ in range(2000):
    p = random.randrange(10000, max(lo, 10001))
    if p in avoid:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    sys.exit(0)
sys.exit(1)
EOF
}

start() {
  local dir="$1" port="${2:-}" bin data
  bin=$(pg_bindir) || die_skip "PostgreSQL not installed (Debian package postgresql)"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die_skip "running as root and there is no postgres user"
    command -v runuser >/dev/null 2>&1 || die_skip "running as root and runuser is missing"
  fi
  mkdir -p "$dir" || exit 1
  dir="$(cd "$dir" && pwd)"
  if [ "$(id -u)" -eq 0 ]; then
    data=$(mktemp -d "${TMPDIR:-/tmp}/notifd-pg.XXXXXX") || die_skip "mktemp failed"
    chown postgres: "$data" || die_skip "cannot chown $data"
  else
    data="$dir/pgdata"
    mkdir -p "$data" || exit 1
  fi
  echo "$data" >"$dir/pgdata.path"
  [ -n "$port" ] || port=$(free_low_port) || die_skip "no free port"
  as_pg "$bin/initdb" -D "$data/db" -U ferretdb --auth=trust -E UTF8 --locale=C.UTF-8 \
      --no-instructions >"$dir/initdb.log" 2>&1 ||
    as_pg "$bin/initdb" -D "$data/db" -U ferretdb --auth=trust -E UTF8 --locale=C \
      >"$dir/initdb.log" 2>&1 ||
    die_skip "initdb failed (see $dir/initdb.log)"
  # pg_ctl's -l log must be writable by the server's user.
  as_pg "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories= \
          -c synchronous_commit=off -c max_connections=200 -c shared_buffers=128MB \
          -c log_min_messages=warning" start >"$dir/pg_ctl.log" 2>&1 ||
    { cp "$data/server.log" "$dir/server.log" 2>/dev/null
      die_skip "postgres did not start (see $dir/pg_ctl.log, $dir/server.log)"; }
  local pid
  pid=$(head -n 1 "$data/db/postmaster.pid" 2>/dev/null)
  [ -n "$pid" ] || die_skip "postgres started but left no postmaster.pid"
  echo "$pid" >"$dir/postgres.pid"
  echo "$port" >"$dir/postgres.port"
  ln -sf "$data/server.log" "$dir/server.log"
  for _ in $(seq 1 200); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U ferretdb -d postgres; then
      echo "postgres://ferretdb@127.0.0.1:$port/postgres"
      return 0
    fi
    alive "$pid" || die_skip "postgres exited during startup (see $dir/server.log)"
    sleep 0.05
  done
  stop "$dir"
  die_skip "postgres did not accept connections within 10 s"
}

# SIGINT = PostgreSQL's "fast" shutdown (SIGTERM waits for every client).
stop() {
  local dir="$1" pid data
  if [ -f "$dir/postgres.pid" ]; then
    pid=$(cat "$dir/postgres.pid")
    if alive "$pid"; then
      kill -INT "$pid" 2>/dev/null
      for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$dir/postgres.pid"
  fi
  if [ -f "$dir/pgdata.path" ]; then
    data=$(cat "$dir/pgdata.path")
    # only what start made: a notifd-pg.* directory or DIR/pgdata
    case "$data" in
      */notifd-pg.* | "$dir/pgdata") cp "$data/server.log" "$dir/server.log.last" 2>/dev/null
                                     rm -rf "$data" ;;
    esac
    rm -f "$dir/pgdata.path" "$dir/server.log"
  fi
  return 0
}

case "${1:-}" in
  start) [ $# -ge 2 ] || { echo "usage: $0 start DIR [PORT]" >&2; exit 1; }; start "$2" "${3:-}" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 1; }; stop "$2" ;;
  *) echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 1 ;;
esac
