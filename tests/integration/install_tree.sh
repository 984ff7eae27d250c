#!/usr/bin/env bash
# `meson install` gives a runnable daemon: install into a DESTDIR and run
# what was installed, with nothing from the checkout or the build dir.
#  - the installed notifd.yaml, web client, templates, plugins, data dir and
#    systemd unit are where the README says; no source or build path in them;
#  - `notifd --help` names the compiled-in config (sysconfdir/notifd/notifd.yaml);
#  - the installed notifd, started with no -c, serves the web client and
#    one chat round trip over HTTP + websocket, twice: relocated (the
#    config found through NOTIFD_CONFIG, the DESTDIR's paths given by the
#    config's own NOTIFD_*_DIR variables) and as installed (the DESTDIR
#    bound over /usr/local in a private mount namespace: no path given);
#  - the installed programs start without LD_LIBRARY_PATH (RUNPATH), shown
#    by the embedding example linked against the installed libnotifd.
# Usage: install_tree.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"; src="$(cd "$2" && pwd)"
# shellcheck source=installed_lib.sh
. "$src/tests/integration/installed_lib.sh"

D="$tmp/root"
DESTDIR="$D" meson install -C "$build" --no-rebuild --quiet >/dev/null
intro() { meson introspect "$build" --buildoptions | python3 -c "import json,sys
o={x['name']:x['value'] for x in json.load(sys.stdin)}; print(o['$1'])"; }
prefix="$(intro prefix)"; libdir="$(intro libdir)"; bindir="$(intro bindir)"
sysconfdir="$(intro sysconfdir)"; datadir="$(intro datadir)"; localstatedir="$(intro localstatedir)"
abs() { case "$1" in /*) echo "$1" ;; *) echo "$prefix/$1" ;; esac; }
conf="$(abs "$sysconfdir")/notifd/notifd.yaml"
plugins="$(abs "$libdir")/notifd/plugins"
share="$(abs "$datadir")/notifd"
state="$(abs "$localstatedir")/lib/notifd"
exe="$D$(abs "$bindir")/notifd"

# -- the layout --
for f in "$conf" "$share/web/index.html" "$share/web/client/notifd.js" "$share/templates/chat.tmpl" \
         "$share/openapi.json" \
         "$plugins/chat_ws.so" "$plugins/chat_persistence.so" "$plugins/email.so"; do
  [ -f "$D$f" ] || fail "$f not installed"
done
[ -d "$D$state" ] || fail "data dir $state not installed"
unit="$(find "$D" -name notifd.service | head -n1)"
[ -n "$unit" ] || fail "notifd.service not installed"
for f in "$D$conf" "$unit"; do
  if grep -nF -e "$src" -e "$build" "$f"; then fail "$f names the checkout or build dir"; fi
done
grep -q "^  - \${NOTIFD_PLUGIN_DIR:-$plugins}\$" "$D$conf" || fail "installed config: plugin dir is not $plugins"
grep -q "static_dir: \${NOTIFD_WEB_DIR:-$share/web}\$" "$D$conf" || fail "installed config: web dir"
grep -q "^data_dir: \${NOTIFD_DATA_DIR:-$state}\$" "$D$conf" || fail "installed config: data dir"
grep -q "^ExecStart=$(abs "$bindir")/notifd -c $conf\$" "$unit" || fail "unit: ExecStart"
grep -qF "$conf" <<<"$("$exe" --help)" || fail "notifd --help does not name $conf"
# Nothing installed at the real path and no NOTIFD_CONFIG: usage, exit 2, as before.
if [ ! -e "$conf" ]; then
  rc=0; env -u NOTIFD_CONFIG "$exe" >/dev/null 2>"$tmp/usage" || rc=$?
  [ "$rc" -eq 2 ] && grep -q '^usage: notifd -c FILE' "$tmp/usage" ||
    fail "no -c, no config: expected usage and exit 2, got $rc"
fi

# -- no LD_LIBRARY_PATH: the embedding example links libnotifd.so.1 --
ex="$D$(abs "$(intro libexecdir)")/notifd/embed_example"
[ -x "$ex" ] || fail "embed_example not installed"
libs="$(env -u LD_LIBRARY_PATH ldd "$ex")"
if grep -q 'not found' <<<"$libs"; then echo "$libs"; fail "installed embed_example misses a library"; fi
grep -q "$D.*libnotifd.so.1" <<<"$libs" || { echo "$libs"; fail "libnotifd not found by RUNPATH"; }
app=$(freeport); nd=$(freeport)
env -u LD_LIBRARY_PATH "$ex" "$app" "$nd" "$D$plugins" >"$tmp/embed.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$nd/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(curl -fsS "http://127.0.0.1:$nd/hello?name=Ada")" = '{"message":"Hi, Ada!"}' ] \
  || { cat "$tmp/embed.log"; fail "installed embed_example did not answer"; }
# The API description the library serves is the installed one.
curl -fsS "http://127.0.0.1:$nd/openapi.json" | cmp -s - "$D$share/openapi.json" \
  || fail "GET /openapi.json differs from the installed $share/openapi.json"
kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?; pid=""
[ "$rc" -eq 0 ] || fail "embed_example exited $rc"

# -- the installed daemon, no -c --
# 1. The DESTDIR tree where it is, as any relocated tree runs: the config
#    by NOTIFD_CONFIG, its paths by the config's own variables.
mkdir -p "$tmp/data"
chat_through "relocated (NOTIFD_CONFIG + NOTIFD_*_DIR)" env NOTIFD_CONFIG="$D$conf" \
  NOTIFD_PLUGIN_DIR="$D$plugins" NOTIFD_WEB_DIR="$D$share/web" \
  NOTIFD_TEMPLATES_DIR="$D$share/templates" NOTIFD_DATA_DIR="$tmp/data" "$exe"

# 2. As installed: in a private mount namespace the DESTDIR's /usr/local and
#    /var/local are bound over the real ones (for this process only), and
#    notifd runs with no -c and no path at all: the compiled-in config and
#    the config's installed defaults.  Needs root or user namespaces and the
#    default prefix; otherwise said and skipped (run 1 covers the daemon).
if [ "$prefix" = /usr/local ] && [ "$(abs "$localstatedir")" = /var/local ] &&
   [ -d /var/local ] && unshare --mount --propagation private true 2>/dev/null; then
  chat_through "as installed (no -c, no paths)" env -u NOTIFD_CONFIG -u NOTIFD_PLUGIN_DIR \
    -u NOTIFD_WEB_DIR -u NOTIFD_TEMPLATES_DIR -u NOTIFD_DATA_DIR unshare --mount --propagation private sh -c \
    'mount --bind "$1/usr/local" /usr/local && mount --bind "$1/var/local" /var/local && exec /usr/local/bin/notifd' \
    sh "$D"
  grep -q "plugin chat_ws .* loaded from $plugins/chat_ws.so" "$tmp/notifd.log" ||
    fail "as installed: chat_ws not loaded from $plugins"
  [ -f "$D$state/auth.secret" ] || fail "as installed: the data dir $state was not used"
  # `notifd user` without -c reads the installed config too.
  users="$(env -u NOTIFD_CONFIG unshare --mount --propagation private sh -c \
    'mount --bind "$1/usr/local" /usr/local && mount --bind "$1/var/local" /var/local &&
     exec /usr/local/bin/notifd user list' sh "$D")" || fail "as installed: notifd user list"
  grep -q '^alice' <<<"$users" && grep -q '^bob' <<<"$users" ||
    fail "as installed: notifd user list shows no alice and bob: $users"
else
  echo "SKIPPED check: as-installed run (needs prefix /usr/local and unshare --mount)"
fi
echo "install tree: layout, no checkout paths, RUNPATH, installed notifd chatted with no -c"
echo "1 passed, 0 failed"
