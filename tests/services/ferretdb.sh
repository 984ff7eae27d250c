#!/usr/bin/env bash
# A real FerretDB v1 (MongoDB wire protocol) for tests, on loopback, on one
# of its two backends:
#   postgresql (default)  a throwaway PostgreSQL cluster of its own
#                         (postgres.sh, Debian's postgresql), started and
#                         stopped with the server; falls back to sqlite,
#                         with a note on stderr, when PostgreSQL is not
#                         installed
#   sqlite                FerretDB's SQLite handler (one file per database
#                         in DIR/state): ~150 inserts/s here and "database
#                         is locked" under concurrent writers (bench/README.md)
# chosen with NOTIFD_FERRETDB_BACKEND=postgresql|sqlite.
# The binary is built here from the FerretDB Go module (go mod download +
# go build; `go install` of a v1 tag stops on the module proxy's version list).
#
#   ferretdb.sh build           build the binary into the cache (idempotent);
#                               prints its path
#   ferretdb.sh start DIR [PORT] start a server with its state in DIR; prints
#                               "mongodb://127.0.0.1:PORT/" once it answers
#                               (DIR/backend says which backend runs)
#   ferretdb.sh stop DIR        stop the server started in DIR (by pid), then
#                               its PostgreSQL
#
# Binary: $NOTIFD_FERRETDB, else `ferretdb` on PATH, else the cache
# ($NOTIFD_FERRETDB_CACHE or ${XDG_CACHE_HOME:-$HOME/.cache}/notifd/ferretdb).
# Exit status 2 means "cannot run here" (no binary and no Go toolchain, module
# not obtainable, build failed); the reason is on stderr so callers can report
# SKIPPED with it.
set -u

version="${NOTIFD_FERRETDB_VERSION:-v1.24.2}"
cache="${NOTIFD_FERRETDB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/notifd/ferretdb}"
cached="$cache/bin/ferretdb-$version"

# shellcheck source=service_lib.sh
. "$(dirname "$0")/service_lib.sh"

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go; return 0; fi
  [ -x /usr/local/go/bin/go ] && { echo /usr/local/go/bin/go; return 0; }
  return 1
}

binary() {
  if [ -n "${NOTIFD_FERRETDB:-}" ] && [ -x "$NOTIFD_FERRETDB" ]; then echo "$NOTIFD_FERRETDB"; return 0; fi
  if command -v ferretdb >/dev/null 2>&1; then command -v ferretdb; return 0; fi
  [ -x "$cached" ] && { echo "$cached"; return 0; }
  return 1
}

build() {
  local go src work
  binary && return 0
  go=$(find_go) || die_skip "no ferretdb binary and no Go toolchain to build one"
  mkdir -p "$cache/bin" || die_skip "cannot create $cache"
  # One build at a time (parallel test binaries may all ask at once).
  exec 9>"$cache/.lock"
  flock 9
  [ -x "$cached" ] && { echo "$cached"; return 0; }
  src=$(cd /tmp && timeout 600 "$go" mod download -json "github.com/FerretDB/FerretDB@$version" \
          2>"$cache/build.log" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] && [ -d "$src" ] ||
    die_skip "go mod download FerretDB@$version failed (see $cache/build.log)"
  work=$(mktemp -d "${TMPDIR:-/tmp}/notifd-ferretdb-build.XXXXXX") || die_skip "mktemp failed"
  cp -r "$src/." "$work/" && chmod -R u+w "$work" || { rm -rf "$work"; die_skip "copy failed"; }
  # build/version reads version.txt (normally written from git describe).
  echo "$version" >"$work/build/version/version.txt"
  if ! (cd "$work" && timeout 1800 "$go" build -trimpath -o "$cached.tmp" ./cmd/ferretdb) \
        >>"$cache/build.log" 2>&1; then
    rm -rf "$work" "$cached.tmp"
    die_skip "building FerretDB $version failed (see $cache/build.log)"
  fi
  rm -rf "$work"
  mv "$cached.tmp" "$cached"
  echo "$cached"
}

start() {
  local dir="$1" port="${2:-}" bin
  bin=$(build | tail -n 1)
  [ -n "$bin" ] && [ -x "$bin" ] || exit 2
  mkdir -p "$dir/state" || exit 1
  [ -n "$port" ] || port=$(free_port) || die_skip "no free port"
  local dport backend="${NOTIFD_FERRETDB_BACKEND:-postgresql}" handler_args pg_url
  dport=$(free_port "$port") || die_skip "no free port"
  case "$backend" in
    postgresql | postgres | pg)
      pg_url=$("$(dirname "$0")/postgres.sh" start "$dir/postgres" 2>"$dir/postgres.err" | tail -n 1)
      if [ -n "$pg_url" ]; then
        backend=postgresql
        # FerretDB v1 holds a PostgreSQL connection per update of a
        # command until the command ends; its default pool (50) is the
        # limit on updates in flight (the cluster allows 200 connections).
        handler_args=(--handler=postgresql --postgresql-url="$pg_url?pool_max_conns=150")
      elif grep -q "not installed" "$dir/postgres.err"; then
        echo "ferretdb: $(cat "$dir/postgres.err"); using the SQLite handler" >&2
        backend=sqlite
      else
        die_skip "postgres for ferretdb: $(cat "$dir/postgres.err")"
      fi ;;
    sqlite) ;;
    *) echo "NOTIFD_FERRETDB_BACKEND: expected postgresql or sqlite, got '$backend'" >&2; exit 1 ;;
  esac
  [ "$backend" = sqlite ] && handler_args=(--handler=sqlite --sqlite-url="file:$dir/state/")
  echo "$backend" >"$dir/backend"
  setsid "$bin" "${handler_args[@]}" \
      --listen-addr="127.0.0.1:$port" --debug-addr="127.0.0.1:$dport" \
      --telemetry=disable --state-dir="$dir/state" --log-level=warn \
      >"$dir/ferretdb.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/ferretdb.pid"
  echo "mongodb://127.0.0.1:$port/" >"$dir/ferretdb.uri"
  for _ in $(seq 1 400); do
    kill -0 "$pid" 2>/dev/null || { stop "$dir"; die_skip "ferretdb exited during startup (see $dir/ferretdb.log)"; }
    if port_open "$port"; then
      echo "mongodb://127.0.0.1:$port/"
      return 0
    fi
    sleep 0.05
  done
  stop "$dir"
  die_skip "ferretdb did not listen within 20 s"
}

stop() {
  stop_pidfile "$1/ferretdb.pid" 10
  [ -d "$1/postgres" ] && "$(dirname "$0")/postgres.sh" stop "$1/postgres"
  return 0
}

case "${1:-}" in
  build) build ;;
  start) [ $# -ge 2 ] || { echo "usage: $0 start DIR [PORT]" >&2; exit 1; }; start "$2" "${3:-}" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 1; }; stop "$2" ;;
  *) echo "usage: $0 build | start DIR [PORT] | stop DIR" >&2; exit 1 ;;
esac
