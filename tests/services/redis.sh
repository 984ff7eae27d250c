#!/usr/bin/env bash
# A real redis-server for tests, on a free loopback port, state in DIR.
#
#   redis.sh start DIR [PORT [CONF]]  prints "127.0.0.1:PORT" once it answers PING
#   redis.sh stop DIR                 stops the server started in DIR (by pid)
#
# Without CONF: no persistence (a restart forgets every key).  With CONF
# (e.g. config/distributed/redis.conf: appendonly, fsync every second) the
# file's settings apply and only address, port, dir and log file are set
# here; restarting in the same DIR reloads the append-only file.
#
# Exit status 2 means "cannot run here" (no redis-server); reason on stderr.
set -u

# shellcheck source=service_lib.sh
. "$(dirname "$0")/service_lib.sh"

start() {
  local dir="$1" port="${2:-}" conf="${3:-}"
  command -v redis-server >/dev/null 2>&1 || { echo "redis-server not found" >&2; exit 2; }
  mkdir -p "$dir" || exit 1
  [ -n "$port" ] || port=$(free_port)
  local persistence=(--save '' --appendonly no)
  if [ -n "$conf" ]; then
    [ -r "$conf" ] || { echo "redis config $conf not readable" >&2; exit 1; }
    persistence=()
    conf=$(cd "$(dirname "$conf")" && pwd)/$(basename "$conf")
  fi
  redis-server ${conf:+"$conf"} --bind 127.0.0.1 --port "$port" --dir "$dir" "${persistence[@]}" \
      --daemonize no --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/redis.pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { echo "redis-server exited (see $dir/redis.log)" >&2; exit 2; }
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
      echo "127.0.0.1:$port"
      return 0
    fi
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null
  echo "redis-server did not answer within 5 s" >&2
  exit 2
}

stop() { stop_pidfile "$1/redis.pid" 5; }

case "${1:-}" in
  start) [ $# -ge 2 ] || { echo "usage: $0 start DIR [PORT [CONF]]" >&2; exit 1; }
         start "$2" "${3:-}" "${4:-}" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 1; }; stop "$2" ;;
  *) echo "usage: $0 start DIR [PORT [CONF]] | stop DIR" >&2; exit 1 ;;
esac
