#!/usr/bin/env bash
# A real Apache Kafka broker for tests: KRaft combined broker+controller on
# loopback, jars from Maven Central (kafka-pom.xml), small heap.
#
#   kafka.sh fetch              download the jars into the cache (idempotent)
#   kafka.sh start DIR          start a broker with its state in DIR; prints
#                               "127.0.0.1:PORT" once it accepts connections
#   kafka.sh stop DIR           stop the broker started in DIR (by pid)
#   kafka.sh kill DIR           kill -9 the broker started in DIR (fault tests)
#   kafka.sh restart DIR        start the broker of DIR again (same ports, same
#                               data, no format) after a kill or stop; prints
#                               "127.0.0.1:PORT" once it accepts connections
#
# Exit status 2 means "cannot run here" (no java/mvn, jars unobtainable); the
# reason is on stderr so callers can report SKIPPED with it.
# NOTIFD_KAFKA_PARTITIONS (default 4): partitions of each auto-created topic.
# Cache: $NOTIFD_KAFKA_CACHE or ${XDG_CACHE_HOME:-$HOME/.cache}/notifd/kafka.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
cache="${NOTIFD_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/notifd/kafka}"
libs="$cache/libs"

# shellcheck source=service_lib.sh
. "$here/service_lib.sh"

fetch() {
  command -v java >/dev/null 2>&1 || die_skip "java not found"
  if [ -f "$libs/.complete" ] && cmp -s "$here/kafka-pom.xml" "$cache/pom.xml"; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die_skip "mvn not found and no cached Kafka jars"
  mkdir -p "$cache" || die_skip "cannot create $cache"
  # One fetch at a time (parallel test binaries may all ask at once).
  exec 9>"$cache/.lock"
  flock 9
  if [ -f "$libs/.complete" ] && cmp -s "$here/kafka-pom.xml" "$cache/pom.xml"; then
    return 0
  fi
  rm -rf "$libs.tmp"
  cp "$here/kafka-pom.xml" "$cache/pom.xml.tmp"
  if ! timeout 900 mvn -B -q -f "$cache/pom.xml.tmp" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs.tmp" >"$cache/mvn.log" 2>&1; then
    die_skip "mvn could not fetch the Kafka jars (see $cache/mvn.log)"
  fi
  ls "$libs.tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die_skip "kafka jars missing after mvn"
  rm -rf "$libs"
  mv "$libs.tmp" "$libs"
  mv "$cache/pom.xml.tmp" "$cache/pom.xml"
  touch "$libs/.complete"
}

start() {
  local dir="$1"
  fetch || exit $?
  mkdir -p "$dir/data" || exit 1
  local port cport
  port=$(free_port) && cport=$(free_port "$port") || die_skip "no free port"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=${NOTIFD_KAFKA_PARTITIONS:-4}
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=1000000
EOF
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/kafka.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
  local jopts=(-Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
               -Djava.awt.headless=true -Dlog4j.configuration="file:$dir/log4j.properties")
  local uuid
  uuid=$(python3 -c 'import uuid,base64; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
  if ! java "${jopts[@]}" -cp "$libs/*" kafka.tools.StorageTool format -t "$uuid" \
        -c "$dir/server.properties" >"$dir/format.log" 2>&1; then
    die_skip "kafka storage format failed (see $dir/format.log)"
  fi
  echo "127.0.0.1:$port" >"$dir/kafka.addr"
  launch "$dir" "$port"
}

# launch DIR PORT: runs the broker configured in DIR, waits until PORT listens.
launch() {
  local dir="$1" port="$2"
  local jopts=(-Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
               -Djava.awt.headless=true -Dlog4j.configuration="file:$dir/log4j.properties")
  setsid java "${jopts[@]}" -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
      >>"$dir/stdout.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/kafka.pid"
  for _ in $(seq 1 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      die_skip "kafka exited during startup (see $dir/stdout.log, $dir/kafka.log)"
    fi
    if port_open "$port"; then
      echo "127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
  die_skip "kafka did not listen within 60 s"
}

stop() { stop_pidfile "$1/kafka.pid" 10; }

kill9() {
  [ -f "$1/kafka.pid" ] || return 0
  kill -KILL "$(cat "$1/kafka.pid")" 2>/dev/null
  for _ in $(seq 1 100); do alive "$(cat "$1/kafka.pid")" || break; sleep 0.05; done
  rm -f "$1/kafka.pid"
}

restart() {
  local dir="$1"
  [ -f "$dir/server.properties" ] && [ -f "$dir/kafka.addr" ] || { echo "kafka: no broker in $dir" >&2; exit 1; }
  fetch || exit $?
  [ -f "$dir/kafka.pid" ] && alive "$(cat "$dir/kafka.pid")" && { echo "kafka: $dir still runs" >&2; exit 1; }
  local addr
  addr=$(cat "$dir/kafka.addr")
  launch "$dir" "${addr##*:}"
}

case "${1:-}" in
  fetch) fetch ;;
  start) [ $# -eq 2 ] || { echo "usage: $0 start DIR" >&2; exit 1; }; start "$2" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 1; }; stop "$2" ;;
  kill) [ $# -eq 2 ] || { echo "usage: $0 kill DIR" >&2; exit 1; }; kill9 "$2" ;;
  restart) [ $# -eq 2 ] || { echo "usage: $0 restart DIR" >&2; exit 1; }; restart "$2" ;;
  *) echo "usage: $0 fetch | start DIR | stop DIR | kill DIR | restart DIR" >&2; exit 1 ;;
esac
