#!/usr/bin/env bash
# The README's run command: install what is missing, build, and start
# notifd in single-node mode (embedded backends, no external servers).
# Environment: NOTIFD_PORT (8080), NOTIFD_ADMIN_PORT (9090), NOTIFD_DATA_DIR (./data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
scripts/build.sh build
export NOTIFD_PLUGIN_DIR="${NOTIFD_PLUGIN_DIR:-$PWD/build/plugins}"
exec build/host/notifd -c "${NOTIFD_CONFIG:-config/single-node.yaml}" "$@"
