#!/usr/bin/env bash
# Installs the Debian packages notifd needs, only when something is missing
# (fast and idempotent).  Usage: scripts/install-deps.sh [build|test|bench]
# (test adds the test services, debhelper for the .deb test, and clang with
# its sanitizer and libFuzzer runtimes (libclang-rt-dev, only recommended by
# clang) for tests/fuzz; bench adds the tracers bench/run_request_cost.sh
# uses).
set -euo pipefail

build_pkgs=(build-essential pkg-config meson ninja-build
  libevent-dev libyaml-dev libjansson-dev libsqlite3-dev libssl-dev
  librdkafka-dev libhiredis-dev libmongoc-dev libbson-dev libcurl4-openssl-dev
  libargon2-dev curl python3-yaml)
test_pkgs=(check redis-server python3 python3-pytest python3-websockets python3-aiosmtpd python3-venv
  python3-jwt python3-cryptography python3-argon2
  openjdk-17-jre-headless maven nginx-light chromium nodejs npm
  debhelper dpkg-dev fakeroot postgresql
  clang libclang-rt-dev)
bench_pkgs=(strace heaptrack gdb)

want=("${build_pkgs[@]}")
if [ "${1:-build}" = "test" ]; then want+=("${test_pkgs[@]}"); fi
if [ "${1:-build}" = "bench" ]; then want+=("${bench_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# openjdk/maven and nodejs/npm may come from elsewhere on a developer
# machine: accept any java/mvn/node/npm on PATH.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    openjdk-*) command -v java >/dev/null 2>&1 && continue ;;
    maven) command -v mvn >/dev/null 2>&1 && continue ;;
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
  esac
  filtered+=("$p")
done
if [ ${#filtered[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install-deps: installing ${filtered[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
fi

# npm packages of the browser test and of the client library's tests:
# `npm ci` in tests/browser and clients/js when node_modules is missing or
# package-lock.json changed since the last run.
if [ "${1:-build}" = "test" ]; then
  root="$(cd "$(dirname "$0")/.." && pwd)"
  for npm_dir in "$root/tests/browser" "$root/clients/js"; do
    lock_sum=$(sha256sum "$npm_dir/package-lock.json" | cut -d' ' -f1)
    stamp="$npm_dir/node_modules/.notifd-lock-sha256"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
      echo "install-deps: npm ci in ${npm_dir#"$root"/}" >&2
      (cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
      echo "$lock_sum" > "$stamp"
    fi
  done
fi
