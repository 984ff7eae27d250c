#!/usr/bin/env bash
# A Python virtual environment for tests that need packages Debian does not
# ship, from PyPI: http_ece (RFC 8188 / RFC 8291 Web Push decryption) and
# py_vapid (RFC 8292) for the Web Push suite; schemathesis (the API fuzzer)
# and openapi-spec-validator for the OpenAPI suite.  Built on Debian's /usr/bin/python3 with
# --system-site-packages, so pytest, cryptography and PyJWT still come from
# Debian.  Created once and cached; idempotent; safe to call concurrently.
#
#   pyenv.sh setup     create / complete the venv; prints its python path
#   pyenv.sh python    prints the venv's python path if it is complete
#
# Exit status 2 means "cannot run here" (no venv module, PyPI unreachable);
# the reason is on stderr so callers can report SKIPPED with it.
# Cache: $NOTIFD_PYVENV or ${XDG_CACHE_HOME:-$HOME/.cache}/notifd/pyvenv.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
venv="${NOTIFD_PYVENV:-${XDG_CACHE_HOME:-$HOME/.cache}/notifd/pyvenv}"
# The packages and the versions the suites were written against.
packages="http_ece==1.2.1 py_vapid==1.9.2 schemathesis==4.32.5 openapi-spec-validator==0.9.0"

# shellcheck source=service_lib.sh
. "$here/service_lib.sh"

complete() { venv_ready "$venv" "$packages"; }

setup() {
  venv_setup "$venv" "$packages" 600 "" --system-site-packages
  echo "$venv/bin/python"
}

case "${1:-}" in
  setup) setup ;;
  python) complete || die_skip "no complete venv at $venv (run pyenv.sh setup)"
          echo "$venv/bin/python" ;;
  *) echo "usage: $0 setup|python" >&2; exit 64 ;;
esac
