#!/usr/bin/env bash
# System benchmarks of notifd (issue 7).  Loopback only; every run is
# bounded in count and time.  Method and recorded numbers: bench/README.md.
#
#   bench/run_system_bench.sh [--build DIR] [--out DIR] [--rounds N] [--quick]
#                             [--compare REV] [PART...]
#
# PART (default: latency ingest ws distributed):
#   latency      POST /chat/persist -> websocket latency at 1,000 msg/s, single
#                node (config/single-node.yaml: all five roles, embedded backends)
#   ingest       highest rate with every message delivered, single node: a
#                closed-loop maximum (five roles; five roles with
#                bus.partitions 16; the chat path alone, no email role) and an
#                open-loop ladder of rates (five roles; chat path alone)
#   ws           idle memory per websocket connection (tens of thousands, from
#                127.0.0.x) and fan-out deliveries/s, all roles loaded
#                (bench/run_ws_bench.py)
#   distributed  latency with the roles in separate processes, through
#                tests/distributed/stack.sh (Kafka, Redis, FerretDB on
#                PostgreSQL, nginx, 7 notifd): as shipped at 1,000 msg/s, then
#                without the email role and with chat_persistence on the
#                SQLite store + outbox relay to Kafka at 1,000 msg/s
#                (linger.ms=1, as config/distributed ships); when stack.sh
#                cannot run: Kafka + Redis + 4 notifd, SQLite store
#   distcompare  needs --compare REV: the distributed stack as shipped, REV
#                then this tree, per round: latency at 1,000 msg/s and a
#                closed loop (256 connections), same stack script and
#                configs (this tree's), then the ratios; --rev-build DIR
#                reuses a build of REV
#   iothreads    the latency and closed-loop ingest runs of compare, this tree
#                with websocket.io_threads 0 and 2 alternating
#   compare      needs --compare REV: builds REV (git archive) and runs the
#                latency and closed-loop ingest runs alternately for REV and this
#                tree, then prints the ratios (same machine, same minutes)
#
# --build DIR (default build) is set up with meson if missing and built with
# ninja.  --rounds N (default 3) repeats each latency / closed-loop run.
# --dist-count N sets the messages per distributed run (default 20000).
# --quick shortens every run (a smoke test, not a measurement).  Results:
# one JSON file per run in --out (default a new /tmp/notifd-sysbench.*), and
# a summary at the end (bench/sysbench_summary.py).
set -u

root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
out=""
rounds=3
quick=0
compare_rev=""
rev_build=""
dist_count_opt=""
parts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$(cd "$2" 2>/dev/null && pwd || echo "$2")"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --compare) compare_rev="$2"; shift 2 ;;
    --rev-build) rev_build="$(cd "$2" && pwd)"; shift 2 ;;
    --dist-count) dist_count_opt="$2"; shift 2 ;;
    -h | --help) sed -n '2,40p' "$0"; exit 0 ;;
    latency | ingest | ws | distributed | compare | distcompare | iothreads) parts+=("$1"); shift ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#parts[@]} -eq 0 ] && parts=(latency ingest ws distributed)
[ -n "$compare_rev" ] && ! printf '%s\n' "${parts[@]}" | grep -qx 'compare\|distcompare' &&
  parts+=(compare)
case "$build" in /*) ;; *) build="$root/$build" ;; esac

py=/usr/bin/python3 # Debian's python3 (the integration tests' interpreter)
tmp="$(mktemp -d /tmp/notifd-sysbench.XXXXXX)"
[ -n "$out" ] || out="$tmp/results"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
pids=()   # started here, stopped by pid at exit
stack_dir=""
svc_dirs=()

cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "$stack_dir" ] && "$root/tests/distributed/stack.sh" stop "$stack_dir" >/dev/null 2>&1
  for d in "${svc_dirs[@]}"; do
    "$root/tests/services/${d%%:*}" stop "${d#*:}" >/dev/null 2>&1
  done
  # Data directories, server logs, Kafka state: after a clean run only the
  # results stay (kept for a look after a failure).
  if [ $rc -eq 0 ]; then
    find "$tmp" -mindepth 1 -maxdepth 1 ! -path "$out" -exec rm -rf {} + 2>/dev/null
    rmdir "$tmp" 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# ---- build, limits, machine -------------------------------------------------

log "building $build"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" >/dev/null || exit 1
fi
ninja -C "$build" >/dev/null || exit 1
cb="$build/bench/chat_bench"

# Tens of thousands of sockets need descriptors: as many as allowed.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile="$(ulimit -n)"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet 2>/dev/null || echo +changes)"
  echo "nproc: $(nproc)"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor)' | sed 's/  */ /g'
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
  echo "kernel: $(uname -r)"
  echo "nofile: $nofile"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"
cat "$out/machine.txt" >&2

# free_port [PORT...] (a free port other than the ones given)
# shellcheck source=../tests/services/service_lib.sh
. "$root/tests/services/service_lib.sh"

wait_http() { # URL [seconds]
  local i
  for i in $(seq 1 $((${2:-20} * 10))); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  return 1
}

# ---- SMTP sink for the email role --------------------------------------------

smtp_port=""
smtp_start() {
  [ -n "$smtp_port" ] && return 0
  mkdir -p "$tmp/mail"
  $py "$root/tests/services/smtp_server.py" --port 0 --outdir "$tmp/mail" >"$tmp/smtp.out" 2>&1 &
  pids+=($!)
  local i
  for i in $(seq 1 100); do
    smtp_port="$(sed -n 's/^ready //p' "$tmp/smtp.out")"
    [ -n "$smtp_port" ] && return 0
    sleep 0.1
  done
  echo "SMTP sink did not start: $(cat "$tmp/smtp.out")" >&2
  return 1
}

# ---- single node ---------------------------------------------------------------

token="sysbench-$$"
# Users sign in (auth.mode users as shipped): chat_bench signs each user's
# token with this secret.  SYSBENCH_AUTH_MODE=none runs the seed-compatible
# open mode instead (no tokens), for the cost of authentication.
jwt_secret="sysbench-jwt-$$-$RANDOM"
auth_mode="${SYSBENCH_AUTH_MODE:-users}"
auth_args=()
[ "$auth_mode" = users ] && auth_args=(--jwt-secret "$jwt_secret")
sn_pid=""
sn_port=""
# single_start KIND BUILD: KIND all = config/single-node.yaml as shipped (five
# roles), chat = the same without the email role, all16 = all with
# bus.partitions 16 (embedded default 4), allfull = all with
# chat_persistence sqlite_synchronous: full (an fsync per group commit).
# The configs come from $cfg_root (the tree measured: compare points it at
# the other revision's sources, whose config that build understands).
cfg_root="$root"
single_start() {
  local kind="$1" bdir="$2" cfg="$cfg_root/config/single-node.yaml"
  if [ "$kind" = chat ]; then
    cfg="$tmp/chat-only.yaml"
    sed '/^  - name: email/,$d' "$cfg_root/config/single-node.yaml" >"$cfg"
  elif [ "$kind" = all16 ]; then
    cfg="$tmp/all16.yaml"
    sed 's/^plugins:/bus:\n  partitions: 16\n\nplugins:/' "$cfg_root/config/single-node.yaml" >"$cfg"
  elif [ "$kind" = allfull ]; then
    cfg="$tmp/allfull.yaml"
    sed 's/^\( *sqlite_synchronous:\) normal$/\1 full/' "$cfg_root/config/single-node.yaml" >"$cfg"
    grep -q 'sqlite_synchronous: full' "$cfg" || { echo "allfull: no sqlite_synchronous line" >&2; return 1; }
  fi
  # The load is 100 users sending up to 240 messages a second each: lift
  # the per-user write limit (shipped: 20/s, burst 100), keep its check.
  # (A revision before the limit has no such key.)
  if grep -q 'rate_limit' "$cfg_root/host/config/config_load.c"; then
    sed 's/^http:$/http:\n  rate_limit: {rate: 1000000, burst: 1000000}/' "$cfg" >"$tmp/$kind-bench.yaml"
    grep -q 'rate_limit' "$tmp/$kind-bench.yaml" || { echo "no http: section in $cfg" >&2; return 1; }
    cfg="$tmp/$kind-bench.yaml"
  fi
  smtp_start || return 1
  local data
  data="$(mktemp -d "$tmp/sn-data.XXXX")"
  sn_port="$(free_port)"
  NOTIFD_PORT="$sn_port" NOTIFD_ADDRESS=127.0.0.1 NOTIFD_ADMIN_PORT="$(free_port "$sn_port")" \
    NOTIFD_DATA_DIR="$data" NOTIFD_PLUGIN_DIR="$bdir/plugins" NOTIFD_WEB_DIR="$root/web" \
    NOTIFD_SMTP_URL="smtp://127.0.0.1:$smtp_port" NOTIFD_TEMPLATES_DIR="$root/config/templates" \
    NOTIFD_INTERNAL_TOKEN="$token" NOTIFD_JWT_SECRET="$jwt_secret" NOTIFD_AUTH_MODE="$auth_mode" \
    "$bdir/host/notifd" -c "$cfg" >"$data/notifd.log" 2>&1 &
  sn_pid=$!
  pids+=("$sn_pid")
  wait_http "http://127.0.0.1:$sn_port/healthz" || { echo "notifd did not start: $data/notifd.log" >&2; return 1; }
}

single_stop() {
  [ -n "$sn_pid" ] || return 0
  kill "$sn_pid" 2>/dev/null
  wait "$sn_pid" 2>/dev/null
  sn_pid=""
}

# run_cb NAME KIND [chat_bench args...]: one chat_bench run against the
# single node started last; JSON in $out/NAME.json, a line on stderr.
run_cb() {
  local name="$1" kind="$2"
  shift 2
  local extra=()
  [ "$kind" != chat ] && extra=(--email-token "$token")
  "$cb" --port "$sn_port" --server-pid "$sn_pid" "${extra[@]}" "${auth_args[@]}" "$@" >"$out/$name.json" \
    2>"$out/$name.err"
  $py "$root/bench/sysbench_summary.py" --line "$out/$name.json" "$name" >&2
}

if [ $quick = 1 ]; then
  lat_count=3000 max_count=10000 step_s=3 ws_idle=3000 dist_count=3000
else
  lat_count=30000 max_count=60000 step_s=10 ws_idle=40000 dist_count=20000
fi
[ -n "$dist_count_opt" ] && dist_count="$dist_count_opt"

part_latency() {
  log "latency: single node, all roles, 1000 msg/s, $lat_count messages x $rounds"
  local r
  for r in $(seq 1 "$rounds"); do
    single_start all "$build" || return 1
    run_cb "latency-single-r$r" all --rate 1000 --count "$lat_count" --warmup 1000 \
      --streams 100 --http-conns 32
    single_stop
  done
  log "latency: the same with chat_persistence sqlite_synchronous: full (an fsync per commit)"
  for r in $(seq 1 "$rounds"); do
    single_start allfull "$build" || return 1
    run_cb "latency-single-syncfull-r$r" allfull --rate 1000 --count "$lat_count" \
      --warmup 1000 --streams 100 --http-conns 32
    single_stop
  done
}

# ladder KIND RATES...: open loop, fresh server per rate, stop at the first
# rate that is not sustained (after one retry).
ladder() {
  local kind="$1" rate ok try
  shift
  for rate in "$@"; do
    ok=0
    for try in 1 2; do
      single_start "$kind" "$build" || return 1
      run_cb "ingest-$kind-rate$rate-t$try" "$kind" --rate "$rate" --count $((rate * step_s)) \
        --warmup 2000 --streams 100 --http-conns "$ingest_conns" --drain 20
      single_stop
      if $py "$root/bench/sysbench_summary.py" --sustained "$rate" \
          "$out/ingest-$kind-rate$rate-t$try.json"; then
        ok=1
        break
      fi
    done
    [ $ok = 1 ] || break
  done
}

# POSTs in flight: a POST waits for its group commit (~12 ms at 20 000/s),
# so by Little's law 20 000 msg/s needs ~250 requests outstanding; 512
# connections keep the generator from being the limit.
ingest_conns=512

part_ingest() {
  local kind r
  for kind in all all16 chat; do
    log "ingest: closed loop ($kind), $max_count messages x $rounds"
    for r in $(seq 1 "$rounds"); do
      single_start "$kind" "$build" || return 1
      run_cb "max-$kind-r$r" "$kind" --rate 0 --count "$max_count" --warmup 2000 --streams 100 \
        --http-conns "$ingest_conns"
      single_stop
    done
  done
  log "ingest: open-loop ladder, ${step_s}s per rate"
  ladder all 12000 14000 16000 18000 19000 20000 21000 22000 24000
  ladder chat 14000 16000 18000 20000 22000 24000 26000
}

part_ws() {
  log "ws: $ws_idle idle connections, fan-out (all roles loaded; then ws_bench alone)"
  $py "$root/bench/run_ws_bench.py" --build "$build" --idle "$ws_idle" --roles all \
    >"$out/ws-all.json" 2>"$out/ws-all.err" ||
    $py "$root/bench/run_ws_bench.py" --build "$build" --idle "$ws_idle" --roles all \
      >"$out/ws-all.json" 2>>"$out/ws-all.err" || echo "ws (all roles) failed: $out/ws-all.err" >&2
  $py "$root/bench/run_ws_bench.py" --build "$build" --idle $((ws_idle / 4)) --roles none \
    >"$out/ws-none.json" 2>"$out/ws-none.err" || echo "ws (ws_bench alone) failed" >&2
}

# Kafka + Redis + P (SQLite store, outbox relay to Kafka), H, W1 (chat_ws),
# W2 (notifications_ws): the fallback when stack.sh cannot run here.
dist_fallback() {
  local kd="$tmp/kafka" rd="$tmp/redis" kafka redis
  kafka="$("$root/tests/services/kafka.sh" start "$kd" | tail -n 1)" || return 2
  svc_dirs+=("kafka.sh:$kd")
  redis="$("$root/tests/services/redis.sh" start "$rd" | tail -n 1)" || return 2
  svc_dirs+=("redis.sh:$rd")
  local inst port admin cfg d
  declare -gA dport dpid
  for inst in W1 W2 P H; do dport[$inst]="$(free_port "${dport[@]}")"; done
  for inst in W1 W2 P H; do
    d="$tmp/dist-$inst"
    mkdir -p "$d"
    admin="$(free_port "${dport[@]}")"
    cfg="$d/notifd.yaml"
    {
      echo "listen: {address: 127.0.0.1, port: ${dport[$inst]}}"
      echo "admin: {address: 127.0.0.1, port: $admin}"
      echo "data_dir: $d"
      echo "logging: {level: warn}"
      echo "auth: {mode: $auth_mode, internal_token: $token, jwt_secret: $jwt_secret}"
      echo "plugin_dirs: [$build/plugins]"
      case $inst in
        P) echo "backends: {kafka: {brokers: \"$kafka\"}}" ;;
        H) echo "backends: {kafka: {brokers: \"$kafka\"}, redis: {address: \"$redis\"}}" ;;
      esac
      echo "plugins:"
      case $inst in
        W1) echo "  - name: chat_ws" ;;
        W2) printf '  - name: notifications_ws\n    config: {topic: ""}\n' ;;
        P) printf '  - name: chat_persistence\n    config: {store: sqlite}\n' ;;
        H) printf '  - name: chat_change_handler\n    config: {chat_ws_url: "http://127.0.0.1:%s", notifications_url: "http://127.0.0.1:%s"}\n' \
             "${dport[W1]}" "${dport[W2]}" ;;
      esac
    } >"$cfg"
    "$build/host/notifd" -c "$cfg" >"$d/notifd.log" 2>&1 &
    dpid[$inst]=$!
    pids+=($!)
    wait_http "http://127.0.0.1:$admin/readyz" 120 || { echo "$inst not ready: $d/notifd.log" >&2; return 1; }
  done
  log "distributed (fallback: SQLite store for chat_persistence, no nginx, no email)"
  sleep 5 # the handler's consumer group gets its partitions
  "$cb" --port "${dport[P]}" --chat-port "${dport[W1]}" --notif-port "${dport[W2]}" \
    --server-pid "${dpid[P]},${dpid[H]},${dpid[W1]},${dpid[W2]}" "${auth_args[@]}" --rate 1000 \
    --count "$dist_count" --warmup 1000 --streams 100 --http-conns 32 \
    >"$out/latency-distributed-fallback.json" 2>"$out/latency-distributed-fallback.err"
  $py "$root/bench/sysbench_summary.py" --line "$out/latency-distributed-fallback.json" \
    latency-distributed-fallback >&2
}

# stack_run NAME RATE COUNT [CONNS]: chat_bench through the stack's nginx
# (public listener; registrations on the internal one when the email role
# runs); RATE 0 = closed loop.
stack_run() {
  local name="$1" rate="$2" count="$3" conns="${4:-32}" sd="$stack_dir"
  local spids
  spids="$(cat "$sd/P/pid"),$STACK_H_PID,$STACK_W1_PID,$STACK_W2_PID,$STACK_N1_PID,$STACK_N2_PID"
  local extra=()
  if [ "$STACK_EMAIL" = on ]; then
    spids="$spids,$STACK_E_PID"
    extra=(--email-token "$STACK_INTERNAL_TOKEN" --email-port "$STACK_INTERNAL_PORT")
  fi
  [ "$auth_mode" = users ] && extra+=(--jwt-secret "$STACK_JWT_SECRET")
  local warm="$((rate > 0 && rate < 1000 ? rate : 1000))"
  # CPU of every server of the stack over the run, warm-up included:
  # $name.cpu (bench/stack_cpu.py).
  $py "$root/bench/stack_cpu.py" snapshot "$sd" >"$out/$name.cpu0" 2>/dev/null
  "$cb" --port "$STACK_PUBLIC_PORT" --server-pid "$spids" "${extra[@]}" --rate "$rate" \
    --count "$count" --warmup "$warm" --streams 100 \
    --http-conns "$conns" >"$out/$name.json" 2>"$out/$name.err"
  $py "$root/bench/stack_cpu.py" snapshot "$sd" >"$out/$name.cpu1" 2>/dev/null &&
    $py "$root/bench/stack_cpu.py" diff "$out/$name.cpu0" "$out/$name.cpu1" \
      --messages "$((count + warm))" >"$out/$name.cpu" 2>/dev/null
  $py "$root/bench/sysbench_summary.py" --line "$out/$name.json" "$name" >&2
}

stack_start() { # DIR [env...]
  local sd="$1" rc
  shift
  env NOTIFD_BUILD_ROOT="$build" "$@" NOTIFD_AUTH_MODE="$auth_mode" "$root/tests/distributed/stack.sh" start "$sd" \
    >"$sd.out" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "stack.sh could not run (exit $rc): $(tail -n 3 "$sd.out")" >&2
    "$root/tests/distributed/stack.sh" stop "$sd" >/dev/null 2>&1
    return $rc
  fi
  stack_dir="$sd"
  # shellcheck disable=SC1091
  . "$sd/stack.env"
}

stack_stop() {
  [ -n "$stack_dir" ] && "$root/tests/distributed/stack.sh" stop "$stack_dir" >/dev/null 2>&1
  stack_dir=""
}

# Replaces the stack's chat_persistence (MongoDB store, poll relay) by one on
# the same ports with the SQLite store and the outbox relay to Kafka.
stack_sqlite_p() {
  local sd="$stack_dir" old cfg="$tmp/p-sqlite.yaml" i
  old="$(cat "$sd/P/pid")"
  kill -TERM "$old" 2>/dev/null
  wait "$old" 2>/dev/null # a replacement started here earlier is our child
  for i in $(seq 1 150); do
    { [ -f "$sd/P/rc" ] || ! kill -0 "$old" 2>/dev/null; } && break
    sleep 0.1
  done
  sed -e 's/^\( *\)store: mongodb/\1store: sqlite/' "$root/config/distributed/chat_persistence.yaml" >"$cfg"
  mkdir -p "$sd/P/data-sqlite"
  (
    set +u -a
    declare -A port admin # notifd.env also records stack.sh's port tables
    # shellcheck disable=SC1091
    . "$sd/notifd.env"
    NOTIFD_PORT="$STACK_P_PORT" NOTIFD_ADMIN_PORT="$STACK_P_ADMIN_PORT" \
      NOTIFD_DATA_DIR="$sd/P/data-sqlite" NOTIFD_CHAT_RELAY=outbox \
      exec "$build/host/notifd" -c "$cfg" >>"$sd/P/notifd-sqlite.log" 2>&1
  ) &
  local pid=$!
  pids+=("$pid")
  echo "$pid" >"$sd/P/pid"
  rm -f "$sd/P/rc"
  wait_http "http://127.0.0.1:$STACK_P_ADMIN_PORT/readyz" 60 ||
    { echo "SQLite chat_persistence not ready: $sd/P/notifd-sqlite.log" >&2; return 1; }
}

part_distributed() {
  local r
  if [ -x "$root/tests/distributed/stack.sh" ]; then
    log "distributed 1/2: stack as shipped (P on FerretDB/PostgreSQL, live relay; email on), 1000 msg/s"
    if stack_start "$tmp/stack1"; then
      stack_run "latency-distributed-ferretdb" 1000 "$dist_count"
      stack_stop
      log "distributed 2/2: stack without email, P on SQLite + outbox relay (linger.ms=1 as shipped), 1000 msg/s"
      if stack_start "$tmp/stack2" NOTIFD_STACK_NO_EMAIL=1 && stack_sqlite_p; then
        # A fresh Kafka broker JIT-compiles its hot paths under the first
        # load (on these 2 vCPUs a 100+ ms tail in the first run); a real
        # broker is long-running, so 15 s of traffic first, kept but not
        # tabulated.
        stack_run "warmup-distributed-sqlite" 1000 15000
        for r in $(seq 1 "$rounds"); do
          stack_run "latency-distributed-sqlite-r$r" 1000 "$dist_count"
        done
      fi
      stack_stop
      return 0
    fi
  fi
  dist_fallback || echo "distributed: Kafka or Redis cannot run here; skipped" >&2
}

# Builds REV (git archive) into $tmp/rev/build unless --rev-build gave one;
# prints the build directory.
rev_build_dir() {
  if [ -n "$rev_build" ]; then echo "$rev_build"; return 0; fi
  local rdir="$tmp/rev"
  if [ ! -x "$rdir/build/host/notifd" ]; then
    log "compare: building $compare_rev"
    mkdir -p "$rdir/src"
    git -C "$root" archive "$compare_rev" | tar -x -C "$rdir/src" || return 1
    meson setup "$rdir/build" "$rdir/src" -Dtests=false >/dev/null &&
      ninja -C "$rdir/build" >/dev/null || return 1
  fi
  echo "$rdir/build"
}

part_distcompare() {
  [ -n "$compare_rev" ] || { echo "distcompare needs --compare REV" >&2; return 1; }
  local rb r v b
  rb="$(rev_build_dir)" || return 1
  for r in $(seq 1 "$rounds"); do
    for v in rev cur; do
      b="$build"
      [ $v = rev ] && b="$rb"
      log "distcompare round $r: $v ($b)"
      stack_start "$tmp/dc-$v-$r" NOTIFD_BUILD_ROOT="$b" || return 1
      stack_run "warmup-dist-$v-r$r" 1000 5000
      stack_run "compare-$v-dist-latency-r$r" 1000 "$dist_count"
      stack_run "compare-$v-dist-max-r$r" 0 "$dist_count" 256
      stack_stop
    done
  done
}

part_compare() {
  [ -n "$compare_rev" ] || { echo "compare needs --compare REV" >&2; return 1; }
  local rdir="$tmp/rev" r v b
  log "compare: building $compare_rev"
  mkdir -p "$rdir/src"
  git -C "$root" archive "$compare_rev" | tar -x -C "$rdir/src" || return 1
  meson setup "$rdir/build" "$rdir/src" -Dtests=false >/dev/null && ninja -C "$rdir/build" >/dev/null ||
    return 1
  local cur_auth=("${auth_args[@]}")
  for r in $(seq 1 "$rounds"); do
    for v in rev cur; do
      b="$build" cfg_root="$root" auth_args=("${cur_auth[@]}")
      # The revision runs its own config; without auth.mode it takes no tokens.
      if [ $v = rev ]; then
        b="$rdir/build" cfg_root="$rdir/src"
        grep -q '"mode"' "$rdir/src/host/config/config_load.c" || auth_args=()
      fi
      ab_side "compare-$v" "$b" "$r" || return 1
    done
  done
  cfg_root="$root" auth_args=("${cur_auth[@]}")
}

# ab_side TAG BUILD ROUND: one side of an A/B round: latency at 1 000 msg/s
# (all roles), closed-loop ingest (all roles; the chat path alone).
ab_side() {
  local tag="$1" b="$2" r="$3"
  single_start all "$b" || return 1
  run_cb "$tag-latency-r$r" all --rate 1000 --count "$lat_count" --warmup 1000 \
    --streams 100 --http-conns 32
  single_stop
  single_start all "$b" || return 1
  run_cb "$tag-max-all-r$r" all --rate 0 --count "$max_count" --warmup 2000 \
    --streams 100 --http-conns "$ingest_conns"
  single_stop
  single_start chat "$b" || return 1
  run_cb "$tag-max-chat-r$r" chat --rate 0 --count "$max_count" --warmup 2000 \
    --streams 100 --http-conns "$ingest_conns"
  single_stop
}

# iothreads: the same runs with websocket.io_threads 0 and 2 alternating
# (NOTIFD_WS_IO_THREADS, read by the server), this tree only.
part_iothreads() {
  local r v
  for r in $(seq 1 "$rounds"); do
    for v in 0 2; do
      NOTIFD_WS_IO_THREADS=$v ab_side "io$v" "$build" "$r" || return 1
    done
  done
}

for p in "${parts[@]}"; do "part_$p"; done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
$py "$root/bench/sysbench_summary.py" --report "$out"
echo "results: $out" >&2
