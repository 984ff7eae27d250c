#!/usr/bin/env bash
# Third-party proof: install the SDK into a scratch root, build
# examples/out-of-tree-plugin against it with pkg-config only, load the
# result into notifd and call its route.
# Usage: out_of_tree_plugin.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"; src="$(cd "$2" && pwd)"
tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

DESTDIR="$tmp/root" meson install -C "$build" --no-rebuild --quiet >/dev/null
pcdir="$(dirname "$(find "$tmp/root" -name notifd-sdk.pc | head -n1)")"
[ -f "$pcdir/notifd-sdk.pc" ] || { echo "FAIL: notifd-sdk.pc not installed"; exit 1; }
[ -f "$pcdir/notifd.pc" ] || { echo "FAIL: notifd.pc not installed"; exit 1; }

cp -r "$src/examples/out-of-tree-plugin" "$tmp/plugin"
PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$tmp/root" make -s -C "$tmp/plugin" >/dev/null
[ -f "$tmp/plugin/greeter.so" ] || { echo "FAIL: plugin did not build"; exit 1; }

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > "$tmp/notifd.yaml" <<YAML
listen: {address: 127.0.0.1, port: $port}
admin: {port: -1}
data_dir: $tmp/data
plugins:
  - name: greeter
    path: $tmp/plugin/greeter.so
YAML
"$build/host/notifd" -c "$tmp/notifd.yaml" >"$tmp/notifd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
body="$(curl -fsS "http://127.0.0.1:$port/greeter/ada")"
expected='{"greeting":"greetings, ada","from":"greeter 2.0"}'
if [ "$body" != "$expected" ]; then
  echo "FAIL: got '$body', expected '$expected'"; cat "$tmp/notifd.log"; exit 1
fi
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?; pid=""
[ "$rc" -eq 0 ] || { echo "FAIL: notifd exited $rc after SIGTERM"; exit 1; }
echo "out-of-tree plugin: built with pkg-config, loaded, answered: $body"
echo "1 passed, 0 failed"
