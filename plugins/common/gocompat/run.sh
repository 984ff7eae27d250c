#!/bin/sh
# Differential test of plugins/common against the real Go stack the seed
# used (gin v1.11 ShouldBindJSON + validator v10.29 + encoding/json): the
# same random bodies go through both, and every answer (bound JSON or
# error text) must be identical.  Needs a Go toolchain and the modules of
# go.sum (from the module proxy or the local module cache); exits 77
# (skipped) without them.
#   run.sh CBIND_EXECUTABLE [CASES_PER_RUN]
set -u
cbind=$1
count=${2:-20000}
dir=$(cd "$(dirname "$0")" && pwd)
if ! command -v go >/dev/null 2>&1; then
  echo "SKIPPED: no Go toolchain on PATH"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
if ! (cd "$dir/goref" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go build -o "$work/goref" .) \
    >"$work/build.log" 2>&1; then
  echo "SKIPPED: cannot build the Go reference binder (modules unreachable?):"
  tail -5 "$work/build.log"
  exit 77
fi
py=$(command -v python3)
status=0
for spec in "general 1" "general 2" "general 3" "time 1" "time 2" "float 1"; do
  set -- $spec
  "$py" "$dir/gen_cases.py" "$1" "$2" "$count" >"$work/cases"
  "$work/goref" <"$work/cases" >"$work/go.out" || { echo "Go reference failed"; exit 1; }
  "$cbind" <"$work/cases" >"$work/c.out" || { echo "C binder failed"; exit 1; }
  diffs=$(paste "$work/cases" "$work/go.out" "$work/c.out" | awk -F'\t' '$3 != $4' | wc -l)
  echo "$1 seed $2: $count cases, $diffs differences"
  if [ "$diffs" -ne 0 ]; then
    status=1
    paste "$work/cases" "$work/go.out" "$work/c.out" | awk -F'\t' '$3 != $4' | head -5 |
      while IFS="$(printf '\t')" read -r model body go c; do
        echo "  $model body: $(printf '%s' "$body" | base64 -d | head -c 300)"
        echo "    go: $(printf '%s' "$go" | base64 -d)"
        echo "    c : $(printf '%s' "$c" | base64 -d)"
      done
  fi
done
exit $status
