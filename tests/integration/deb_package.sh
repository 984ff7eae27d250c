#!/usr/bin/env bash
# The Debian package, as a user of a fresh Debian 12 gets it: build the
# source tree with `dpkg-buildpackage -us -uc -b` (debian/, meson, debhelper
# compat 13), extract notifd, libnotifd1 and libnotifd-dev into a scratch
# root with `dpkg -x` (nothing is installed on this machine), check what
# each package holds, build examples/out-of-tree-plugin against
# libnotifd-dev, `systemd-analyze verify` the unit, and run the
# packaged daemon with the packaged config through one chat round trip,
# extracted where it is and, in a private mount namespace, as the unit runs
# it (its ExecStart line, unprivileged, no_new_privs).
#
# In the first run the daemon finds the extracted tree only through the
# config's documented variables (NOTIFD_CONFIG for the file, then
# NOTIFD_PLUGIN_DIR, NOTIFD_WEB_DIR, NOTIFD_TEMPLATES_DIR, NOTIFD_DATA_DIR
# for its paths: the root's prefix and nothing else); in the second the
# root is laid over / and no path is given.  Nothing comes from the
# checkout or a build dir.  Exit 77 (SKIPPED) without debhelper.
# Usage: deb_package.sh SOURCE_DIR
set -euo pipefail
src="$(cd "$1" && pwd)"
for tool in dpkg-buildpackage dh dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool not installed (scripts/install-deps.sh test installs debhelper)"; exit 77; }
done
# shellcheck source=installed_lib.sh
. "$src/tests/integration/installed_lib.sh"

# -- build, from a copy of the tracked (and new, unignored) files; or take
#    the .debs of an earlier build from $NOTIFD_DEB_DIR (for iterating on
#    this script; CI always builds) --
debs="$tmp"
if [ -n "${NOTIFD_DEB_DIR:-}" ]; then
  debs="$NOTIFD_DEB_DIR"
  echo "using the packages in $debs (NOTIFD_DEB_DIR), not building"
else
  mkdir "$tmp/src"
  if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
       grep -zv '^tests/browser/node_modules/' | xargs -0 cp --parents -t "$tmp/src")
  else
    tar -C "$src" --exclude='./build*' --exclude='./obj-*' --exclude=node_modules -cf - . |
      tar -C "$tmp/src" -xf -
  fi
  t0=$(date +%s)
  (cd "$tmp/src" && env -u LD_LIBRARY_PATH dpkg-buildpackage -us -uc -b -j2 >"$tmp/build.log" 2>&1) ||
    { tail -n 60 "$tmp/build.log"; fail "dpkg-buildpackage failed"; }
  echo "dpkg-buildpackage -us -uc -b: $(( $(date +%s) - t0 )) s"
  if grep -E '^(dh_missing|dpkg-shlibdeps): warning' "$tmp/build.log"; then fail "packaging warnings"; fi
fi

R="$tmp/root"
mkdir "$R"
for p in notifd libnotifd1 libnotifd-dev; do
  deb="$(ls "$debs"/${p}_*_*.deb)"
  dpkg-deb -c "$deb" | awk '{print $6}' > "$tmp/$p.list"
  dpkg -x "$deb" "$R"
done
has() { grep -qx "./$2" "$tmp/$1.list" || fail "$1 lacks /$2"; }
has notifd usr/bin/notifd
has notifd etc/notifd/notifd.yaml
has notifd lib/systemd/system/notifd.service
has notifd usr/share/notifd/web/index.html
has notifd usr/share/notifd/web/client/notifd.js
has notifd usr/share/notifd/templates/chat.tmpl
has notifd usr/share/notifd/openapi.json
grep -q '^\./usr/lib/.*/notifd/plugins/chat_ws\.so$' "$tmp/notifd.list" || fail "notifd lacks the plugins"
grep -q '^\./usr/lib/.*/libnotifd\.so\.1' "$tmp/libnotifd1.list" || fail "libnotifd1 lacks libnotifd.so.1"
has libnotifd-dev usr/include/notifd/plugin.h
has libnotifd-dev usr/include/notifd/embed.h
grep -q '^\./usr/lib/.*/pkgconfig/notifd-sdk\.pc$' "$tmp/libnotifd-dev.list" || fail "no notifd-sdk.pc"
grep -q '^\./usr/lib/.*/pkgconfig/notifd\.pc$' "$tmp/libnotifd-dev.list" || fail "no notifd.pc"
if grep -q '^\./var/lib/notifd' "$tmp/notifd.list"; then fail "/var/lib/notifd is systemd's to create"; fi
dpkg-deb -e "$(ls "$debs"/notifd_*_*.deb)" "$tmp/ctl"
grep -qx /etc/notifd/notifd.yaml "$tmp/ctl/conffiles" || fail "notifd.yaml is not a conffile"

# -- libnotifd-dev is enough to build a plugin (pkg-config notifd-sdk) --
cp -r "$src/examples/out-of-tree-plugin" "$tmp/plugin"
pcdir="$(dirname "$(find "$R/usr/lib" -name notifd-sdk.pc | head -n1)")"
PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$R" make -s -C "$tmp/plugin" >/dev/null 2>&1 ||
  fail "examples/out-of-tree-plugin does not build against libnotifd-dev"
[ -f "$tmp/plugin/greeter.so" ] || fail "no greeter.so from libnotifd-dev"

# -- nothing of the build machine in what is shipped --
if grep -rlF -e "$tmp/src" -e "$src" -e /obj-x86_64 "$R"; then fail "a shipped file names the build or source dir"; fi

# -- the unit --
unit="$R/lib/systemd/system/notifd.service"
for k in DynamicUser=yes StateDirectory=notifd ProtectSystem=strict NoNewPrivileges=yes \
         PrivateTmp=yes ProtectHome=yes 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
         'ExecStart=/usr/bin/notifd -c /etc/notifd/notifd.yaml'; do
  grep -qx "$k" "$unit" || fail "unit lacks $k"
done
if grep -q '^ExecReload=' "$unit"; then fail "ExecReload: notifd has no reload (a swap is a restart)"; fi
if command -v systemd-analyze >/dev/null; then
  # ExecStart must exist for verify: point it at the extracted binary.
  mkdir "$tmp/unit"
  sed "s|^ExecStart=/usr/bin/notifd|ExecStart=$R/usr/bin/notifd|" "$unit" >"$tmp/unit/notifd.service"
  out="$(systemd-analyze verify "$tmp/unit/notifd.service" 2>&1)" || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  echo "systemd-analyze verify: clean"
  # The hardening as systemd scores it (0 = locked down, 10 = exposed):
  # 1.2 as shipped; fail if it slips past 2.0.
  score="$(systemd-analyze security --offline=yes "$tmp/unit/notifd.service" 2>/dev/null |
           sed -n 's/.*exposure level for notifd.service: \([0-9.]*\).*/\1/p')" || true
  if [ -n "$score" ]; then
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "systemd-analyze security: exposure $score > 2.0"
    echo "systemd-analyze security: exposure $score"
  else
    echo "SKIPPED check: systemd-analyze security --offline (systemd < 250)"
  fi
else
  echo "SKIPPED check: systemd-analyze not installed, unit not verified"
fi

# -- the packaged daemon with the packaged config --
conf="$R/etc/notifd/notifd.yaml"
plugins="$(dirname "$(find "$R/usr/lib" -name chat_ws.so | head -n1)")"
grep -q "^  - \${NOTIFD_PLUGIN_DIR:-${plugins#"$R"}}\$" "$conf" || fail "config: plugin dir"
grep -q '^data_dir: ${NOTIFD_DATA_DIR:-/var/lib/notifd}$' "$conf" || fail "config: data dir"
nplugins() { grep -c "plugin .* loaded from $1/" "$tmp/notifd.log" || true; }
roles=$(grep -c '^  - name:' "$conf")   # every role of the packaged config

# 1. The extracted tree where it is: the packaged config through
#    NOTIFD_CONFIG, its paths through the config's own variables.
mkdir "$tmp/data"
chat_through "extracted root (NOTIFD_CONFIG + NOTIFD_*_DIR)" env NOTIFD_CONFIG="$conf" \
  NOTIFD_PLUGIN_DIR="$plugins" NOTIFD_WEB_DIR="$R/usr/share/notifd/web" \
  NOTIFD_TEMPLATES_DIR="$R/usr/share/notifd/templates" NOTIFD_DATA_DIR="$tmp/data" \
  "$R/usr/bin/notifd"
[ "$(nplugins "$plugins")" -eq "$roles" ] || fail "expected the $roles roles loaded from the package"

# 2. As the unit runs it: in a private mount namespace the package's /etc,
#    /usr/bin, /usr/lib/<triplet> and /usr/share are laid over the real ones
#    (read-only overlays, this process only), then the unit's ExecStart
#    line runs as is, with the unit's NOTIFD_DATA_DIR pointing at a scratch
#    dir (systemd's StateDirectory), as an unprivileged user with
#    no_new_privs and no capabilities (DynamicUser=, NoNewPrivileges=).
#    Needs root and overlayfs; otherwise said and skipped (run 1 covers
#    the daemon).
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
triplet_dir="$(dirname "$(dirname "$plugins")")"   # $R/usr/lib/<triplet>
lower() { echo "lowerdir=$R$1:$1"; }
if unshare --mount --propagation private sh -c \
     "mount -t overlay overlay -o $(lower /etc) /etc" 2>/dev/null && command -v setpriv >/dev/null; then
  chmod 0755 "$tmp"
  rm -rf "$tmp/data" && mkdir "$tmp/data" && chown 65534:65534 "$tmp/data"
  lib="${triplet_dir#"$R"}"
  # shellcheck disable=SC2086
  chat_through "as the unit runs it (overlaid root, nobody, no_new_privs)" \
    env -u NOTIFD_CONFIG -u NOTIFD_PLUGIN_DIR -u NOTIFD_WEB_DIR -u NOTIFD_TEMPLATES_DIR \
    NOTIFD_DATA_DIR="$tmp/data" unshare --mount --propagation private sh -c '
      for d in /etc /usr/bin "$2" /usr/share; do
        mount -t overlay overlay -o "lowerdir=$1$d:$d" "$d" || exit 1
      done
      shift 2
      exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \
        --inh-caps=-all --bounding-set=-all "$@"' sh "$R" "$lib" $exec_start
  [ "$(nplugins "${plugins#"$R"}")" -eq "$roles" ] || fail "as the unit: the roles were not loaded from ${plugins#"$R"}"
  [ -f "$tmp/data/auth.secret" ] || fail "as the unit: the data dir was not used"
else
  echo "SKIPPED check: run as the unit (needs root, overlayfs and setpriv)"
fi
echo "deb package: built, extracted, unit verified, packaged notifd chatted"
echo "1 passed, 0 failed"
