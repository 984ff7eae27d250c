#!/usr/bin/env bash
# What one chat message costs the single node in system calls and heap
# allocations: counts, not times, so the figures do not depend on how busy
# the machine is.
#
#   bench/run_request_cost.sh [--build DIR] [--count N] [--rate R] [--out DIR]
#
# Starts notifd with config/single-node.yaml as shipped (five roles,
# embedded backends, HTTP rate limit lifted), opens chat_bench's sockets
# (100 conversations, one chat socket each and one notification socket per
# receiver), sends 500 messages not counted, then N messages at R msg/s
# open loop twice: once with `strace -f` attached (system calls per
# message, by call, and by file for the storage calls) and once with
# `heaptrack -p` attached (allocation calls per message, by library).  Each
# message is one POST /chat/persist, its store and change record, the
# receiver's notification and event, and two websocket frames.
#
# Needs strace and heaptrack (scripts/install-deps.sh bench).  Loopback only,
# bounded by --count; prints a summary and leaves the raw outputs in --out.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build" count=3000 rate=300 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$(cd "$2" && pwd)"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--count N] [--rate R] [--out DIR]" >&2; exit 2 ;;
  esac
done
for t in strace heaptrack heaptrack_print; do
  command -v "$t" >/dev/null || { echo "$t not found (scripts/install-deps.sh bench)" >&2; exit 1; }
done
out="${out:-$(mktemp -d /tmp/notifd-reqcost.XXXXXX)}"
mkdir -p "$out"
secret=reqcost-secret-0123456789012345678901
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# A free loopback port below 32768 (and the next one for the admin port).
free_port() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randrange(20000, 32000)
    try:
        for q in (p, p + 1):
            s = socket.socket(); s.bind(("0.0.0.0", q)); s.close()
        print(p); break
    except OSError:
        continue
PY
}

run_notifd() { # $1: tool prefix for the measured window ("strace" or "heaptrack")
  local tag="$1" data="$out/data-$1" port
  rm -rf "$data"; mkdir -p "$data"
  sed 's/^http:$/http:\n  rate_limit: {rate: 1000000, burst: 1000000}/' \
    "$root/config/single-node.yaml" > "$out/notifd.yaml"
  port=$(free_port)
  NOTIFD_PORT=$port NOTIFD_ADDRESS=127.0.0.1 NOTIFD_ADMIN_PORT=$((port + 1)) NOTIFD_DATA_DIR=$data \
    NOTIFD_PLUGIN_DIR="$build/plugins" NOTIFD_WEB_DIR="$root/web" \
    NOTIFD_TEMPLATES_DIR="$root/config/templates" NOTIFD_INTERNAL_TOKEN=reqcost-token \
    NOTIFD_JWT_SECRET=$secret NOTIFD_AUTH_MODE=users NOTIFD_SMTP_URL=smtp://127.0.0.1:9 \
    "$build/host/notifd" -c "$out/notifd.yaml" > "$out/notifd-$tag.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "notifd exited; see $out/notifd-$tag.log" >&2; exit 1; }
    sleep 0.1
  done
  local bench=("$build/bench/chat_bench" --port "$port" --jwt-secret "$secret"
    --email-token reqcost-token --streams 100 --http-conns 32 --rate "$rate")
  "${bench[@]}" --count 500 --warmup 0 > "$out/warmup-$tag.json" 2>&1
  local tool
  if [ "$tag" = strace ]; then
    strace -f -y -o "$out/strace.txt" -p "$pid" 2>/dev/null &
    tool=$!
  else
    heaptrack -o "$out/heaptrack" -p "$pid" > "$out/heaptrack.log" 2>&1 &
    tool=$!
  fi
  sleep 2 # attaching takes a moment; an idle server makes no calls meanwhile
  "${bench[@]}" --count "$count" --warmup 0 > "$out/run-$tag.json" 2>"$out/run-$tag.err"
  if [ "$tag" = strace ]; then
    kill -INT "$tool"; wait "$tool" 2>/dev/null || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
  else
    # An attached heaptrack writes its data when the process exits (the
    # shutdown's few allocations are counted too).
    kill "$pid"; wait "$pid" 2>/dev/null || true
    wait "$tool" 2>/dev/null || true
  fi
  pid=""
}

run_notifd strace
run_notifd heaptrack
heaptrack_print -f "$out"/heaptrack*.zst --print-allocators 1 --print-peaks 0 \
  --print-temporary 0 --print-leaks 0 --peak-limit 12 --sub-peak-limit 0 \
  > "$out/heaptrack-allocators.txt" 2>/dev/null || true

python3 - "$out" "$count" <<'PY'
import re, sys
out, n = sys.argv[1], int(sys.argv[2])
print(f"per chat message ({n} messages; raw files in {out}):")
print("system calls:")
calls, files = {}, {}
for line in open(f"{out}/strace.txt"):
    m = re.match(r"^\d+\s+(\w+)\((?:(\d+)<([^>]*)>)?", line)
    if not m or "resumed>" in line:
        continue
    calls[m[1]] = calls.get(m[1], 0) + 1
    if m[3] and m[1] in ("pwrite64", "pread64", "fcntl", "fdatasync", "fsync"):
        k = (m[1], m[3].rsplit("/", 1)[-1])
        files[k] = files.get(k, 0) + 1
for c, v in sorted(calls.items(), key=lambda kv: -kv[1]):
    if v / n >= 0.05:
        print(f"  {c:<16} {v / n:8.2f}")
print(f"  {'all':<16} {sum(calls.values()) / n:8.2f}")
print("storage calls by file:")
for (c, f), v in sorted(files.items(), key=lambda kv: -kv[1]):
    if v / n >= 0.05:
        print(f"  {c:<10} {f:<28} {v / n:8.2f}")
alloc = open(f"{out}/heaptrack-allocators.txt").read()
m = re.search(r"calls to allocation functions: (\d+)", alloc)
print(f"heap allocation calls: {int(m[1]) / n:.1f}" if m else "heap allocation calls:")
for calls, sym, place in re.findall(r"^(\d+) calls to allocation functions with .*? from\n(.*)\n(.*)\n", alloc, re.M):
    if int(calls) / n >= 1:
        place = place.strip() if place.startswith("  ") and not place.strip().startswith("and ") else ""
        where = sym.strip() if not sym.startswith("0x") else ""
        print(f"  {int(calls) / n:8.1f}  {where} {place.rsplit('/', 1)[-1]}".rstrip())
PY
