#!/usr/bin/env bash
# Runs examples/embed: its own evhttp listener and notifd on one loop.
# Usage: embed_example.sh BUILD_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
app=$(freeport); nd=$(freeport)
log="$(mktemp)"
"$build/examples/embed_example" "$app" "$nd" "$build/plugins" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$nd/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
a="$(curl -fsS "http://127.0.0.1:$app/app")"
h="$(curl -fsS "http://127.0.0.1:$nd/hello?name=Ada")"
[ "$a" = "app ok" ] || { echo "FAIL: app said '$a'"; cat "$log"; exit 1; }
[ "$h" = '{"message":"Hi, Ada!"}' ] || { echo "FAIL: plugin said '$h'"; cat "$log"; exit 1; }
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ "$rc" -eq 0 ] || { echo "FAIL: exit $rc"; cat "$log"; exit 1; }
echo "embedding example: app + notifd on one loop, clean exit"
echo "1 passed, 0 failed"
