#!/usr/bin/env bash
# The distributed deployment on one machine, every server on loopback:
# Kafka (tests/services/kafka.sh), redis-server (redis.sh, with
# config/distributed/redis.conf: append-only, fsync every second), FerretDB as the
# MongoDB (ferretdb.sh; on its own PostgreSQL unless
# NOTIFD_FERRETDB_BACKEND=sqlite), an SMTP server (smtp_server.py, needs
# python3-aiosmtpd; without it the email role is left out), nginx in front
# (config/distributed/nginx.conf.template), and seven notifd processes run
# with the configs in config/distributed/:
#
#   P   chat_persistence      MongoDB store, poll relay -> Kafka
#   H   chat_change_handler   Kafka -> Redis dedupe -> forwards via nginx
#   W1  chat_ws               \ nginx: consistent hash of stream_id
#   W2  chat_ws               /  (presence between them on Kafka)
#   N1  notifications_ws      \ nginx: consistent hash of user_id; inbox in
#   N2  notifications_ws      / MongoDB; the notifications topic is consumed
#                               by one shared group and forwarded through
#                               nginx to the user's instance; each stored
#                               notification goes to notification-events
#   WP  webpush               notification-events -> Web Push (MongoDB store)
#   E   email                 notification-events -> MongoDB directory -> SMTP
#
#   stack.sh start DIR   start everything with its state under DIR, wait
#                        until every process is ready (/readyz on its admin
#                        port, Kafka partitions assigned), write DIR/stack.env
#                        (shell syntax: URLs, ports, pids, logs) and print
#                        "ready DIR/stack.env"
#   stack.sh stop DIR    stop everything started in DIR, by pid (also after a
#                        start that failed half-way); each notifd's exit
#                        status is left in DIR/<instance>/rc
#   stack.sh restart DIR INSTANCE
#                        SIGTERM one notifd (if running) and start it again
#                        with the same ports and settings (stack.env's pid
#                        for it is then stale: read DIR/<instance>/pid)
#
# Environment: NOTIFD_BUILD_ROOT (default <source>/build; notifd and the
# plugins are taken from there), NOTIFD_STACK_NO_EMAIL=1 leaves the email
# role out, NOTIFD_STACK_PARTITIONS (default 16) is the partition count of
# every topic the stack's Kafka creates.
# Exit status 2 means "cannot run here" (a service or tool is missing); the
# reason is on stderr so callers can report SKIPPED with it.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
services="$src/tests/services"
build="${NOTIFD_BUILD_ROOT:-$src/build}"
notifd="$build/host/notifd"
confdir="$src/config/distributed"
INSTANCES="P H W1 W2 N1 N2 WP E"

# shellcheck source=../services/service_lib.sh
. "$services/service_lib.sh" # alive, port_open, stop_pid
die_skip() { echo "stack: $*" >&2; exit 2; }
# Kafka and FerretDB start as background jobs of this shell (nothing else
# does): wait for them before stopping, so their pid files exist.
fail() { echo "stack: $*" >&2; wait; stop "$dir"; exit 1; }
skip_and_stop() { echo "stack: $*" >&2; wait; stop "$dir"; exit 2; }

role_of() {
  case "$1" in
    P) echo chat_persistence ;; H) echo chat_change_handler ;;
    W1 | W2) echo chat_ws ;; N1 | N2) echo notifications_ws ;; WP) echo webpush ;;
    E) echo email ;;
  esac
}

# N distinct free loopback ports (all bound at once, then released), taken
# below the kernel's ephemeral range when it leaves room: the processes
# start over several seconds, and meanwhile every outgoing connection on the
# machine takes a local port from the ephemeral range.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    lo = 32768
socks, tries = [], 0
while len(socks) < n and lo > 12000 and tries < 2000:
    tries += 1
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(10000, lo)))
        socks.append(s)
    except OSError:
        s.close()
while len(socks) < n:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Runs notifd for one instance in its own session; a small shell waits for
# it and records its exit status in DIR/<inst>/rc.
start_notifd() {
  local inst="$1" d="$dir/$1"
  mkdir -p "$d/data" || return 1
  rm -f "$d/rc" "$d/pid"
  (
    export NOTIFD_PORT="${port[$inst]}" NOTIFD_ADMIN_PORT="${admin[$inst]}"
    export NOTIFD_DATA_DIR="$d/data" NOTIFD_INSTANCE="$inst"
    setsid bash -c '"$1" -c "$2" & echo $! >"$3/pid"; wait $!; echo $? >"$3/rc"' \
      _ "$notifd" "$confdir/$(role_of "$inst").yaml" "$d" \
      </dev/null >>"$d/notifd.log" 2>&1 &
  )
  for _ in $(seq 1 100); do [ -s "$d/pid" ] && return 0; sleep 0.02; done
  return 1
}

# Waits (bounded) until the instance answers /readyz with 200.
wait_ready() {
  local inst="$1" d="$dir/$1"
  for _ in $(seq 1 1200); do
    if [ -f "$d/rc" ]; then
      echo "stack: $inst exited $(cat "$d/rc"):" >&2
      tail -n 20 "$d/notifd.log" >&2
      return 1
    fi
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:${admin[$inst]}/readyz" && return 0
    sleep 0.1
  done
  echo "stack: $inst not ready after 120 s:" >&2
  tail -n 20 "$d/notifd.log" >&2
  return 1
}

# Waits (bounded) until the instance's Kafka consumer has its partitions.
wait_assigned() {
  local inst="$1" d="$dir/$1"
  for _ in $(seq 1 1200); do
    grep -q "partition(s) assigned" "$d/notifd.log" 2>/dev/null && return 0
    [ -f "$d/rc" ] && break
    sleep 0.1
  done
  echo "stack: $inst got no Kafka partitions within 120 s:" >&2
  tail -n 20 "$d/notifd.log" >&2
  return 1
}

# nginx server lines: servers_line PARAMS INSTANCE...
servers_line() {
  local params="$1" out="" i
  shift
  for i in "$@"; do out+="server 127.0.0.1:${port[$i]} $params; "; done
  echo "$out"
}

start() {
  [ -x "$notifd" ] || die_skip "no notifd binary at $notifd (build first; NOTIFD_BUILD_ROOT)"
  local nginx_bin
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  [ -x "$nginx_bin" ] || die_skip "nginx not found (Debian package nginx-light)"
  command -v curl >/dev/null 2>&1 || die_skip "curl not found"
  command -v python3 >/dev/null 2>&1 || die_skip "python3 not found"
  mkdir -p "$dir" || exit 1
  dir="$(cd "$dir" && pwd)"
  [ -f "$dir/stack.env" ] && { echo "stack: $dir already holds a stack" >&2; exit 1; }
  local t0=$SECONDS

  # Backends in parallel; Kafka is the slow one.
  mkdir -p "$dir/kafka" "$dir/redis" "$dir/ferretdb" "$dir/smtp/mail" "$dir/nginx/run" \
           "$dir/nginx/logs" || exit 1
  # Topics get 16 partitions (NOTIFD_STACK_PARTITIONS): a consumer takes one
  # record per partition at a time, so the change handler forwards at most
  # that many messages at once (docs/operations.md, "Partitions").
  NOTIFD_KAFKA_PARTITIONS="${NOTIFD_STACK_PARTITIONS:-16}" \
    "$services/kafka.sh" start "$dir/kafka" >"$dir/kafka/start.out" 2>"$dir/kafka/start.err" &
  local kafka_job=$!
  # Ports: nginx public + internal, SMTP, FerretDB, Redis, then port and
  # admin port per instance.
  local ports p i
  ports=($(free_ports $((5 + 2 * 8)))) || fail "no free ports"
  declare -gA port admin
  local nginx_public=${ports[0]} nginx_internal=${ports[1]} smtp_port=${ports[2]}
  p=5
  for i in $INSTANCES; do port[$i]=${ports[$p]}; admin[$i]=${ports[$((p + 1))]}; p=$((p + 2)); done
  "$services/ferretdb.sh" start "$dir/ferretdb" "${ports[3]}" >"$dir/ferretdb/start.out" \
      2>"$dir/ferretdb/start.err" &
  local ferret_job=$!
  local redis_addr
  # Redis as shipped: append-only file, fsync every second (dedupe keys
  # survive a restart; docs/operations.md).
  redis_addr=$("$services/redis.sh" start "$dir/redis" "${ports[4]}" "$confdir/redis.conf" \
               2>"$dir/redis/start.err" | tail -n 1)
  [ -n "$redis_addr" ] || { skip_and_stop "redis: $(cat "$dir/redis/start.err")"; }

  # SMTP (optional: the email role needs it).
  local email=on email_reason=""
  if [ "${NOTIFD_STACK_NO_EMAIL:-}" = 1 ]; then
    email=off email_reason="NOTIFD_STACK_NO_EMAIL=1"
  elif ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
    email=off email_reason="python3-aiosmtpd is not installed"
  else
    ( setsid /usr/bin/python3 "$services/smtp_server.py" --port "$smtp_port" \
        --outdir "$dir/smtp/mail" </dev/null >"$dir/smtp/smtp.log" 2>&1 &
      echo $! >"$dir/smtp/smtp.pid" )
    local ok=0
    for _ in $(seq 1 200); do
      grep -q "^ready" "$dir/smtp/smtp.log" 2>/dev/null && { ok=1; break; }
      kill -0 "$(cat "$dir/smtp/smtp.pid")" 2>/dev/null || break
      sleep 0.05
    done
    [ $ok = 1 ] || { email=off email_reason="smtp_server.py did not start (see $dir/smtp/smtp.log)"; }
  fi
  [ $email = on ] || INSTANCES="P H W1 W2 N1 N2 WP"

  # The settings every notifd reads (config/distributed/*.yaml).
  export NOTIFD_INTERNAL_TOKEN
  NOTIFD_INTERNAL_TOKEN="stack-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  export NOTIFD_JWT_SECRET
  NOTIFD_JWT_SECRET="jwt-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  export NOTIFD_LISTEN_ADDRESS=127.0.0.1 NOTIFD_ADMIN_ADDRESS=127.0.0.1
  export NOTIFD_PLUGIN_DIR="$build/plugins" NOTIFD_TEMPLATES_DIR="$src/config/templates"
  export NOTIFD_REDIS_ADDRESS="$redis_addr"
  export NOTIFD_CHAT_WS_URL="http://127.0.0.1:$nginx_internal"
  export NOTIFD_NOTIFICATIONS_URL="http://127.0.0.1:$nginx_internal"
  export NOTIFD_SMTP_URL="smtp://127.0.0.1:$smtp_port" NOTIFD_EMAIL_FROM="notifd@stack.test"
  export NOTIFD_EMAIL_FROM_NAME="notifd stack"
  # The tests' push service listens on http://127.0.0.1 (real ones are https).
  export NOTIFD_PUSH_ALLOW_HTTP=true

  # nginx, while Kafka boots (every notifd role uses Kafka: chat_ws for
  # presence).
  local email_servers="server 127.0.0.1:1 down;"
  [ $email = on ] && email_servers=$(servers_line "max_fails=1 fail_timeout=10s" E)
  local user_line=""
  [ "$(id -u)" -eq 0 ] && user_line="user root;"
  sed -e "s|@USER@|$user_line|" \
      -e "s|@RUN_DIR@|$dir/nginx/run|g" -e "s|@LOG_DIR@|$dir/nginx/logs|g" \
      -e "s|@PUBLIC_LISTEN@|127.0.0.1:$nginx_public|" \
      -e "s|@INTERNAL_LISTEN@|127.0.0.1:$nginx_internal|" \
      -e "s|@CHAT_PERSISTENCE_SERVERS@|$(servers_line "max_fails=1 fail_timeout=10s" P)|" \
      -e "s|@CHAT_WS_SERVERS@|$(servers_line max_fails=0 W1 W2)|" \
      -e "s|@NOTIFICATIONS_WS_SERVERS@|$(servers_line max_fails=0 N1 N2)|" \
      -e "s|@WEBPUSH_SERVERS@|$(servers_line "max_fails=1 fail_timeout=10s" WP)|" \
      -e "s|@EMAIL_SERVERS@|$email_servers|" \
      "$confdir/nginx.conf.template" >"$dir/nginx/nginx.conf" || fail "nginx.conf"
  ( setsid "$nginx_bin" -p "$dir/nginx/run" -c "$dir/nginx/nginx.conf" \
      -e "$dir/nginx/logs/nginx-error.log" -g "daemon off;" \
      </dev/null >"$dir/nginx/logs/stdout.log" 2>&1 &
    echo $! >"$dir/nginx/nginx.master.pid" )

  wait "$kafka_job"
  local rc=$?
  [ $rc -eq 0 ] || { [ $rc -eq 2 ] && skip_and_stop "kafka: $(cat "$dir/kafka/start.err")"
                     fail "kafka: $(cat "$dir/kafka/start.err")"; }
  wait "$ferret_job"
  rc=$?
  [ $rc -eq 0 ] || { [ $rc -eq 2 ] && skip_and_stop "ferretdb: $(cat "$dir/ferretdb/start.err")"
                     fail "ferretdb: $(cat "$dir/ferretdb/start.err")"; }
  local kafka_addr mongo_uri
  kafka_addr=$(tail -n 1 "$dir/kafka/start.out")
  mongo_uri=$(tail -n 1 "$dir/ferretdb/start.out")
  export NOTIFD_KAFKA_BROKERS="$kafka_addr" NOTIFD_MONGODB_URI="$mongo_uri"

  # Topics exist before anyone subscribes (a consumer of a missing topic
  # waits for librdkafka's metadata refresh, minutes): one record each that
  # every consumer passes over (chat_ws's presence groups start after it).
  # chat_change_handler acknowledges a Debezium heartbeat; notifications_ws
  # dead-letters the unknown type on "notifications"; email and webpush pass
  # over the warmup event (a type email does not mail, a user with no
  # push subscription).
  "$notifd" bus produce -b "$kafka_addr" -k '{"serverName":"stack"}' \
      chat-persistence-change '{"ts_ms":0}' >"$dir/kafka/warmup.log" 2>&1 &&
  "$notifd" bus produce -b "$kafka_addr" -k stack notifications '{"type":"stack-warmup"}' \
      >>"$dir/kafka/warmup.log" 2>&1 &&
  "$notifd" bus produce -b "$kafka_addr" -k stack-warmup notification-events \
      '{"id":0,"user_id":"stack-warmup","notification_type":"stack_warmup","timestamp":"2026-01-01T00:00:00Z","payload":{}}' \
      >>"$dir/kafka/warmup.log" 2>&1 &&
  "$notifd" bus produce -b "$kafka_addr" -k stack chat-presence \
      '{"instance":"stack","kind":"warmup","users":[]}' \
      >>"$dir/kafka/warmup.log" 2>&1 || fail "cannot create the topics: $(tail -n 3 "$dir/kafka/warmup.log")"

  # What a restart of one instance needs (stack.sh restart).
  { export -p | grep -E '^declare -x NOTIFD_'
    for i in $INSTANCES; do echo "port[$i]=${port[$i]} admin[$i]=${admin[$i]}"; done
  } >"$dir/notifd.env"

  for i in N1 N2 WP H P W1 W2; do start_notifd "$i" || fail "cannot start $i"; done
  [ $email = on ] && { start_notifd E || fail "cannot start E"; }

  for _ in $(seq 1 200); do
    port_open "$nginx_public" && port_open "$nginx_internal" && break
    kill -0 "$(cat "$dir/nginx/nginx.master.pid")" 2>/dev/null || break
    sleep 0.05
  done
  port_open "$nginx_public" && port_open "$nginx_internal" ||
    fail "nginx did not start: $(tail -n 5 "$dir/nginx/logs/nginx-error.log" 2>/dev/null)"
  for i in $INSTANCES; do wait_ready "$i" || fail "$i not ready"; done
  local consumers="H N1 N2 WP W1 W2"
  [ $email = on ] && consumers+=" E"
  for i in $consumers; do wait_assigned "$i" || fail "$i has no partitions"; done

  {
    printf '%s=%q\n' STACK_DIR "$dir" \
      STACK_PUBLIC_URL "http://127.0.0.1:$nginx_public" \
      STACK_INTERNAL_URL "http://127.0.0.1:$nginx_internal" \
      STACK_PUBLIC_PORT "$nginx_public" STACK_INTERNAL_PORT "$nginx_internal" \
      STACK_NGINX_PID "$(cat "$dir/nginx/nginx.master.pid")" \
      STACK_NGINX_ACCESS_LOG "$dir/nginx/logs/nginx-access.log" \
      STACK_KAFKA "$kafka_addr" STACK_KAFKA_PID "$(cat "$dir/kafka/kafka.pid")" \
      STACK_REDIS "$redis_addr" STACK_REDIS_PID "$(cat "$dir/redis/redis.pid")" \
      STACK_MONGODB_URI "$mongo_uri" STACK_FERRETDB_PID "$(cat "$dir/ferretdb/ferretdb.pid")" \
      STACK_FERRETDB_BACKEND "$(cat "$dir/ferretdb/backend")" \
      STACK_MONGODB_DATABASE notifications \
      STACK_INTERNAL_TOKEN "$NOTIFD_INTERNAL_TOKEN" STACK_JWT_SECRET "$NOTIFD_JWT_SECRET" \
      STACK_EMAIL "$email" STACK_EMAIL_REASON "$email_reason" \
      STACK_SMTP_PORT "$([ $email = on ] && echo "$smtp_port")" \
      STACK_SMTP_PID "$([ $email = on ] && cat "$dir/smtp/smtp.pid")" \
      STACK_SMTP_OUTDIR "$dir/smtp/mail" \
      STACK_INSTANCES "$INSTANCES" STACK_START_SECONDS "$((SECONDS - t0))"
    for i in $INSTANCES; do
      printf '%s=%q\n' "STACK_${i}_ROLE" "$(role_of "$i")" "STACK_${i}_PORT" "${port[$i]}" \
        "STACK_${i}_ADMIN_PORT" "${admin[$i]}" "STACK_${i}_PID" "$(cat "$dir/$i/pid")" \
        "STACK_${i}_LOG" "$dir/$i/notifd.log"
    done
  } >"$dir/stack.env.tmp" && mv "$dir/stack.env.tmp" "$dir/stack.env"
  echo "ready $dir/stack.env"
}

stop() {
  local d="$1" i pid
  [ -d "$d" ] || return 0
  # Producers first, then consumers, then the socket roles: all at once,
  # each gets its graceful shutdown deadline (config default 10 s).
  for i in P H E WP N1 N2 W1 W2; do
    [ -f "$d/$i/pid" ] && [ ! -f "$d/$i/rc" ] && kill -TERM "$(cat "$d/$i/pid")" 2>/dev/null
  done
  for i in P H E WP N1 N2 W1 W2; do
    [ -f "$d/$i/pid" ] || continue
    pid=$(cat "$d/$i/pid")
    for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    # the waiting shell writes rc right after
    for _ in $(seq 1 50); do [ -f "$d/$i/rc" ] && break; sleep 0.02; done
    rm -f "$d/$i/pid"
  done
  if [ -f "$d/nginx/nginx.master.pid" ]; then
    stop_pid "$(cat "$d/nginx/nginx.master.pid")" 50
    rm -f "$d/nginx/nginx.master.pid"
  fi
  if [ -f "$d/smtp/smtp.pid" ]; then
    stop_pid "$(cat "$d/smtp/smtp.pid")" 50
    rm -f "$d/smtp/smtp.pid"
  fi
  "$services/ferretdb.sh" stop "$d/ferretdb" 2>/dev/null
  "$services/redis.sh" stop "$d/redis" 2>/dev/null
  "$services/kafka.sh" stop "$d/kafka" 2>/dev/null
  if [ -f "$d/stack.env" ]; then mv "$d/stack.env" "$d/stack.env.stopped"; fi
  return 0
}

# Stops one notifd instance (SIGTERM, graceful) and starts it again with
# the same ports and settings; waits until it is ready.
restart() {
  local inst="$1" d="$dir/$1"
  [ -f "$dir/notifd.env" ] && [ -d "$d" ] || { echo "stack: no instance $inst in $dir" >&2; exit 1; }
  declare -gA port admin
  # shellcheck disable=SC1091
  . "$dir/notifd.env"
  if [ -f "$d/pid" ] && [ ! -f "$d/rc" ]; then stop_pid "$(cat "$d/pid")" 150; fi
  for _ in $(seq 1 50); do [ -f "$d/rc" ] && break; sleep 0.02; done
  mv -f "$d/rc" "$d/rc.previous" 2>/dev/null
  start_notifd "$inst" || { echo "stack: cannot start $inst" >&2; exit 1; }
  wait_ready "$inst" || exit 1
  echo "$inst pid $(cat "$d/pid")"
}

case "${1:-}" in
  restart) [ $# -eq 3 ] || { echo "usage: $0 restart DIR INSTANCE" >&2; exit 1; }; dir="$2"
           restart "$3" ;;
  start) [ $# -eq 2 ] || { echo "usage: $0 start DIR" >&2; exit 1; }; dir="$2"; start ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 1; }; dir="$2"; stop "$2" ;;
  *) echo "usage: $0 start DIR | stop DIR | restart DIR INSTANCE" >&2; exit 1 ;;
esac
