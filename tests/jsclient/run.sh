#!/bin/sh
# Tests of the JavaScript client library (clients/js/) against the built
# notifd:
#
#   tests/jsclient/run.sh BUILD_ROOT SOURCE_ROOT ARTIFACT_DIR
#
# Exit 77 (meson: SKIP) with the reason when node (18 or later) or the
# npm packages are missing; scripts/install-deps.sh test installs both.
set -eu

skip() { echo "SKIPPED: $*"; exit 77; }

command -v node >/dev/null 2>&1 || skip "node not found (scripts/install-deps.sh test installs it)"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$major" -ge 18 ] 2>/dev/null || skip "node $(node --version 2>/dev/null) is too old, the client library needs 18 or later"
lib="$2/clients/js"
[ -f "$lib/node_modules/ws/package.json" ] ||
  skip "clients/js/node_modules missing (scripts/install-deps.sh test runs npm ci there)"
[ -x "$1/host/notifd" ] || { echo "notifd not built in $1"; exit 1; }
rm -rf "$3"
mkdir -p "$3"

cd "$lib"
NOTIFD_BIN="$1/host/notifd" NOTIFD_BUILD_ROOT="$1" NOTIFD_SOURCE_ROOT="$2" NOTIFD_TEST_LOG_DIR="$3" \
  exec node --test test/
