#!/bin/sh
# Browser tests of the web chat client (web/): Debian chromium driven by
# playwright-core against the built notifd.
#
#   tests/browser/run.sh BUILD_ROOT SOURCE_ROOT ARTIFACT_DIR [TEST]
#
# TEST is the script tests/browser/TEST.test.mjs: chat (seed mode, the
# default), auth (accounts and tokens) or state (inbox, read state,
# presence, typing, push).  Exit 77 (meson: SKIP) with the
# reason when node, chromium or the npm packages are missing;
# scripts/install-deps.sh test installs all three.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

skip() { echo "SKIPPED: $*"; exit 77; }

command -v node >/dev/null 2>&1 || skip "node not found (scripts/install-deps.sh test installs it)"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$major" -ge 20 ] 2>/dev/null || skip "node $(node --version 2>/dev/null) is too old, playwright-core needs 20 or later"
chrome=${NOTIFD_CHROMIUM:-/usr/bin/chromium}
[ -x "$chrome" ] || skip "$chrome not found (Debian package chromium; scripts/install-deps.sh test)"
[ -f "$here/node_modules/playwright-core/package.json" ] ||
  skip "tests/browser/node_modules missing (scripts/install-deps.sh test runs npm ci there)"
[ -x "$1/host/notifd" ] || { echo "notifd not built in $1"; exit 1; }
script="$here/${4:-chat}.test.mjs"
[ -f "$script" ] || { echo "no browser test $script"; exit 1; }

NOTIFD_CHROMIUM=$chrome exec node "$script" "$1" "$2" "$3"
