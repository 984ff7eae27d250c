# Shared by install_tree.sh and deb_package.sh (sourced): a scratch dir
# removed at exit with the daemon it started, and one chat round trip
# through an installed notifd.  Needs $src (the source dir) set.
tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$tmp/notifd.log" ] && tail -n 40 "$tmp/notifd.log"; exit 1; }
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# chat_through LABEL CMD...: starts CMD (an installed notifd, no -c) on
# free loopback ports (NOTIFD_ADDRESS/PORT/ADMIN_PORT; the email role's
# SMTP server a closed port), waits for /readyz, runs chat_round_trip.py,
# checks the access log (websocket lines, no token), SIGTERM, exit 0.
# The daemon's log is $tmp/notifd.log.
chat_through() {
  local label="$1" port admin rc
  shift
  port=$(freeport); admin=$(freeport)
  ( cd "$tmp" && exec env -u LD_LIBRARY_PATH NOTIFD_ADDRESS=127.0.0.1 NOTIFD_PORT="$port" \
      NOTIFD_ADMIN_PORT="$admin" NOTIFD_SMTP_URL=smtp://127.0.0.1:9 "$@" ) >"$tmp/notifd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null || fail "$label: notifd not ready"
  /usr/bin/python3 "$src/tests/integration/chat_round_trip.py" "http://127.0.0.1:$port" ||
    fail "$label: chat round trip"
  grep -q 'comp=access msg="ws open"' "$tmp/notifd.log" || fail "$label: no access line for the websockets"
  if grep -q 'token=' "$tmp/notifd.log"; then fail "$label: a token reached the log"; fi
  kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?; pid=""
  [ "$rc" -eq 0 ] || fail "$label: notifd exited $rc after SIGTERM"
  echo "$label: chatted"
}
