#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan, in a build directory
# of their own) and runs them.
#
#   tests/fuzz/run.sh                  every harness briefly (what scripts/test.sh runs):
#                                      its seeds once each, then FUZZ_TIME seconds (15)
#   tests/fuzz/run.sh NAME...          the same for some harnesses
#   tests/fuzz/run.sh --long NAME [--time S] [-- libFuzzer flags]
#                                      one harness until stopped (Ctrl-C) or S seconds
#   tests/fuzz/run.sh --list           the harness names
#
# The corpus a run grows is kept in BUILD/fuzz-corpus/NAME (never in git;
# later runs start from it), crashing inputs in BUILD/fuzz-artifacts/.  A
# crash or a fast/reference disagreement fails the run; replay one input
# with BUILD/tests/fuzz/fuzz_NAME FILE.  Environment: FUZZ_BUILD (build-fuzz),
# FUZZ_TIME, FUZZ_JOBS (harnesses run at once, 2), FUZZ_CC (clang).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
build="${FUZZ_BUILD:-build-fuzz}"
cc="${FUZZ_CC:-clang}"
seconds=""
long=0
names=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --long) long=1 ;;
    --time) seconds="$2"; shift ;;
    --list) ls tests/fuzz/corpus; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1") ;;
  esac
  shift
done
[ ${#names[@]} -gt 0 ] || mapfile -t names < <(ls tests/fuzz/corpus)
if [ "$long" = 1 ] && [ ${#names[@]} -ne 1 ]; then
  echo "run.sh: --long runs one harness: tests/fuzz/run.sh --long NAME (names: --list)" >&2
  exit 2
fi
for n in "${names[@]}"; do
  [ -d "tests/fuzz/corpus/$n" ] || { echo "run.sh: no harness '$n' (names: --list)" >&2; exit 2; }
done

# libFuzzer ships with clang; its runtime is in libclang-rt-dev on Debian.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
  > "$probe/p.c"
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "fuzz: SKIPPED ($cc is not installed; scripts/install-deps.sh test installs clang)"
  exit 0
fi
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >"$probe/log" 2>&1; then
  echo "fuzz: SKIPPED ($cc cannot link -fsanitize=fuzzer,address,undefined: $(grep -m1 -i error "$probe/log"); the runtimes are in libclang-rt-dev)"
  exit 0
fi

if [ ! -f "$build/build.ninja" ]; then
  CC="$cc" meson setup "$build" -Dfuzz=true -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$build" fuzz >/dev/null

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_odr_violation=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$build/fuzz-corpus" "$build/fuzz-artifacts" "$build/fuzz-logs"

# fuzz NAME MAX_TOTAL_TIME [flags...]: grows BUILD/fuzz-corpus/NAME from the seeds.
fuzz() {
  local name="$1" t="$2"
  shift 2
  mkdir -p "$build/fuzz-corpus/$name"
  "$build/tests/fuzz/fuzz_$name" -max_total_time="$t" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$name-" "$@" \
    "$build/fuzz-corpus/$name" "tests/fuzz/corpus/$name"
}

if [ "$long" = 1 ]; then
  echo "fuzz: ${names[0]} for ${seconds:-ever (Ctrl-C stops)}${seconds:+ s}; corpus in $build/fuzz-corpus/${names[0]}"
  fuzz "${names[0]}" "${seconds:-0}" "${extra[@]}"
  exit $?
fi
seconds="${seconds:-${FUZZ_TIME:-15}}"

# brief NAME: the seeds once each (regressions: crashing inputs are kept as
# seeds), then a bounded run; one summary line, the first report on failure.
brief() {
  local n="$1" log="$build/fuzz-logs/$1.log"
  if "$build/tests/fuzz/fuzz_$n" "tests/fuzz/corpus/$n"/* >"$log" 2>&1 &&
     fuzz "$n" "$seconds" "${extra[@]}" >>"$log" 2>&1; then
    local runs cov
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "fuzz: $n: ok (${runs:-?} executions in ${seconds}s, $cov)"
  else
    echo "fuzz: $n: FAILED (log $root/$log, inputs $root/$build/fuzz-artifacts/)"
    # A sanitizer's report, a failed check's, or libFuzzer's.
    sed -n '/ERROR: \|check failed\|runtime error/,$p' "$log" | head -30
    return 1
  fi
}

# FUZZ_JOBS harnesses at a time (default 2, the test machine's cores);
# each writes its summary to a file, printed in order at the end.
jobs="${FUZZ_JOBS:-2}"
status=0
for n in "${names[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || status=1; done
  brief "$n" >"$build/fuzz-logs/$n.summary" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || status=1; done
for n in "${names[@]}"; do cat "$build/fuzz-logs/$n.summary"; done
exit "$status"
