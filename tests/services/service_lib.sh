# Sourced by the service scripts in this directory (kafka.sh, ferretdb.sh,
# redis.sh), tests/distributed/stack.sh and bench/run_system_bench.sh: free
# ports, readiness probes and stopping by pid.

# Exit status 2 means "cannot run here"; the reason goes to stderr.
die_skip() { echo "$*" >&2; exit 2; }

# free_port [PORT...]: a free loopback port other than the ones given (two
# quick binds can get the same ephemeral port, and a service's two
# listeners would then collide).
free_port() {
  local p _
  for _ in $(seq 1 50); do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])') || return 1
    case " $* " in *" $p "*) continue ;; esac
    echo "$p"
    return 0
  done
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Running and not a zombie (an orphan exits to init, which may reap it late).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# stop_pid PID TENTHS: SIGTERM, then SIGKILL if it is still there after
# TENTHS tenths of a second.
stop_pid() {
  local pid="$1" tenths="$2" _
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 "$tenths"); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}

# stop_pidfile FILE SECONDS: stop_pid on the process in FILE, remove FILE.
stop_pidfile() {
  [ -f "$1" ] || return 0
  stop_pid "$(cat "$1")" $(($2 * 10))
  rm -f "$1"
}

# venv_ready DIR PACKAGES: DIR is a venv whose setup with PACKAGES finished.
venv_ready() { [ "$(cat "$1/.complete" 2>/dev/null)" = "$2" ]; }

# venv_setup DIR PACKAGES TIMEOUT [CHECK [VENV_ARGS...]]: a cached venv in
# DIR with PACKAGES (space-separated pip requirements) from PyPI, built on
# Debian's /usr/bin/python3 (python3 -m venv VENV_ARGS), one builder at a
# time (flock on DIR.lock); CHECK, a function given DIR, must pass before
# the venv counts as done (DIR/.complete holds PACKAGES).  Log: DIR.log.
# Returns 0 when ready; exits 2 (die_skip) with the reason otherwise.
venv_setup() {
  local dir="$1" pkgs="$2" limit="$3" check="${4:-}"
  shift 3
  [ $# -gt 0 ] && shift
  venv_ready "$dir" "$pkgs" && return 0
  mkdir -p "$(dirname "$dir")" || die_skip "cannot create $(dirname "$dir")"
  # One setup at a time (parallel suites may all ask at once).
  exec 9>"$dir.lock"
  flock 9
  venv_ready "$dir" "$pkgs" && return 0
  rm -rf "$dir"
  /usr/bin/python3 -m venv "$@" "$dir" >"$dir.log" 2>&1 ||
    die_skip "python3 -m venv failed (python3-venv missing?), see $dir.log"
  # shellcheck disable=SC2086
  timeout "$limit" "$dir/bin/python" -m pip install --disable-pip-version-check -q $pkgs \
      >>"$dir.log" 2>&1 ||
    die_skip "pip could not install $pkgs (offline?), see $dir.log"
  if [ -n "$check" ]; then "$check" "$dir" >>"$dir.log" 2>&1 || die_skip "$check failed, see $dir.log"; fi
  echo "$pkgs" >"$dir/.complete"
}
