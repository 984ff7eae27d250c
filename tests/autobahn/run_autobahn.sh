#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client against notifd's websocket
# layer (tests/autobahn/ws_echo_server) and writes the summary to
# tests/autobahn/REPORT.md.  Exit status: 0 when no case FAILED, 1 when
# some did, 0 with "SKIPPED: <reason>" when the suite cannot run here.
#
#   tests/autobahn/run_autobahn.sh [BUILD_DIR]     (default: build)
#
# Environment:
#   AUTOBAHN_CASES   JSON list of case patterns (default: every case; the
#                    permessage-deflate groups 12.* and 13.* report
#                    UNIMPLEMENTED because notifd does not negotiate it)
#   NOTIFD_CACHE     cache dir for the Python 2.7 virtualenv
#                    (default ~/.cache/notifd)
#   AUTOBAHN_EXCLUDE JSON list of case patterns to leave out (default none)
#   AUTOBAHN_TIMEOUT seconds allowed for the whole run (default 1500)
#   AUTOBAHN_SERVER  a prebuilt ws_echo_server to use (e.g. an ASan build)
#                    instead of building BUILD_DIR's
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
cache="${NOTIFD_CACHE:-$HOME/.cache/notifd}/autobahn"
cases="${AUTOBAHN_CASES:-[\"*\"]}"
excluded="${AUTOBAHN_EXCLUDE:-[]}"
timeout_s="${AUTOBAHN_TIMEOUT:-1500}"

skip() { echo "SKIPPED: $*"; exit 0; }

# ---- Python 2.7 and the test suite (idempotent) ----
py27=""
for cand in "$HOME"/.pyenv/versions/2.7*/bin/python2.7 "$(command -v python2.7 2>/dev/null)"; do
  if [ -n "$cand" ] && [ -x "$cand" ]; then py27="$cand"; break; fi
done
[ -n "$py27" ] || skip "no Python 2.7 interpreter (Autobahn|Testsuite needs 2.7; try pyenv install 2.7.18)"

wstest="$cache/venv/bin/wstest"
if [ ! -x "$wstest" ]; then
  echo "installing Autobahn|Testsuite into $cache/venv"
  mkdir -p "$cache"
  rm -rf "$cache/venv" "$cache/tools"
  if ! { "$py27" -m pip install -q --disable-pip-version-check --target "$cache/tools" 'virtualenv<20.22' &&
         PYTHONPATH="$cache/tools" "$py27" -m virtualenv -q "$cache/venv" &&
         "$cache/venv/bin/pip" install -q --disable-pip-version-check autobahntestsuite; } \
       >"$cache/install.log" 2>&1; then
    tail -5 "$cache/install.log"
    rm -rf "$cache/venv"
    skip "could not install autobahntestsuite for Python 2.7 (log: $cache/install.log)"
  fi
fi
"$wstest" --help >/dev/null 2>&1 || skip "wstest does not start (see $cache/install.log)"

# ---- the server under test ----
server="${AUTOBAHN_SERVER:-}"
if [ -z "$server" ]; then
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" >/dev/null || { echo "meson setup failed"; exit 1; }
  fi
  ninja -C "$build" -j2 tests/autobahn/ws_echo_server >/dev/null || { echo "build failed"; exit 1; }
  server="$build/tests/autobahn/ws_echo_server"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$server" 0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
port=""
for _ in $(seq 100); do
  port="$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/server.out")"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$port" ] || { echo "echo server did not start:"; cat "$work/server.err"; exit 1; }

cat >"$work/spec.json" <<JSON
{
  "outdir": "$work/reports",
  "servers": [{"agent": "notifd", "url": "ws://127.0.0.1:$port/echo?k=autobahn"}],
  "cases": $cases,
  "exclude-cases": $excluded,
  "exclude-agent-cases": {}
}
JSON

echo "running wstest -m fuzzingclient against 127.0.0.1:$port (cases $cases, excluding $excluded)"
(cd "$work" && timeout "$timeout_s" "$wstest" -m fuzzingclient -s "$work/spec.json" >"$work/wstest.log" 2>&1)
rc=$?
if [ ! -f "$work/reports/index.json" ]; then
  tail -20 "$work/wstest.log"
  echo "wstest produced no report (exit $rc)"
  exit 1
fi
kill -0 "$server_pid" 2>/dev/null || { echo "the echo server died during the run:"; tail -20 "$work/server.err"; exit 1; }

version="$("$cache/venv/bin/pip" show autobahntestsuite 2>/dev/null | sed -n 's/^Version: //p')"
python3 - "$work/reports/index.json" "$here/REPORT.md" "$version" "$cases" "$excluded" <<'PY'
import json, sys, datetime
index, out, version, cases, excluded = sys.argv[1:6]
results = json.load(open(index))["notifd"]

def key(case_id):
    return [int(p) for p in case_id.split(".")]

ids = sorted(results, key=key)
by_behavior, by_close, notable, failed = {}, {}, [], []
for cid in ids:
    r = results[cid]
    b, bc = r.get("behavior", "?"), r.get("behaviorClose", "?")
    by_behavior[b] = by_behavior.get(b, 0) + 1
    by_close[bc] = by_close.get(bc, 0) + 1
    if b == "FAILED" or bc == "FAILED":
        failed.append(cid)
    if b not in ("OK", "UNIMPLEMENTED") or bc not in ("OK", "INFORMATIONAL"):
        notable.append((cid, b, bc, r.get("remoteCloseCode")))

groups = {}
for cid in ids:
    g = cid.split(".")[0]
    groups.setdefault(g, {})
    b = results[cid].get("behavior", "?")
    groups[g][b] = groups[g].get(b, 0) + 1

lines = []
lines.append("# Autobahn|Testsuite report (fuzzingclient)")
lines.append("")
lines.append("Generated by `tests/autobahn/run_autobahn.sh` on %s UTC against "
             "`tests/autobahn/ws_echo_server` (notifd's websocket layer: own RFC 6455 "
             "framing on libevent, echo channel `/echo?k=...`)." %
             datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"))
lines.append("")
lines.append("- autobahntestsuite %s (Python 2.7)" % (version or "?"))
lines.append("- cases: `%s`, excluded: `%s`" % (cases, excluded))
lines.append("- 12.x and 13.x test permessage-deflate, which notifd does not negotiate: "
             "UNIMPLEMENTED is the expected result there")
lines.append("- cases run: %d" % len(ids))
lines.append("")
lines.append("## Behavior")
lines.append("")
lines.append("| behavior | cases |")
lines.append("|---|---|")
for b in sorted(by_behavior):
    lines.append("| %s | %d |" % (b, by_behavior[b]))
lines.append("")
lines.append("## Close behavior")
lines.append("")
lines.append("| behaviorClose | cases |")
lines.append("|---|---|")
for b in sorted(by_close):
    lines.append("| %s | %d |" % (b, by_close[b]))
lines.append("")
lines.append("## Per case group")
lines.append("")
lines.append("| group | results |")
lines.append("|---|---|")
for g in sorted(groups, key=int):
    lines.append("| %s | %s |" % (g, ", ".join("%s %d" % (b, n) for b, n in sorted(groups[g].items()))))
lines.append("")
lines.append("## FAILED")
lines.append("")
lines.append("none" if not failed else "\n".join("- %s" % c for c in failed))
lines.append("")
lines.append("## Not plain OK (UNIMPLEMENTED compression cases left out)")
lines.append("")
if notable:
    lines.append("| case | behavior | behaviorClose | remote close code |")
    lines.append("|---|---|---|---|")
    for cid, b, bc, code in notable:
        lines.append("| %s | %s | %s | %s |" % (cid, b, bc, code))
else:
    lines.append("none")
lines.append("")
open(out, "w").write("\n".join(lines))
print("\n".join(lines))
sys.exit(1 if failed else 0)
PY
status=$?
if [ $status -ne 0 ]; then echo "Autobahn: some cases FAILED"; else echo "Autobahn: no case FAILED"; fi
exit $status
