#!/usr/bin/env bash
# Installs what is missing, builds pobj, and runs the main job: today the guestbook example on a
# default pool (./guestbook.pool); pobj-kv takes its place once it exists. Extra arguments go to
# the example: scripts/run.sh [POOL] [MESSAGE]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release -Dtests=false -Dbench=false >/dev/null
fi
ninja -C build examples/guestbook >/dev/null
exec build/examples/guestbook "$@"
