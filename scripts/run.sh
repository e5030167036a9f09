#!/usr/bin/env bash
# Installs what is missing, builds pobj, and runs the main job: pobj-kv, the Redis-compatible
# server, on its default pool (./pobj-kv.pool, made if missing) and port (127.0.0.1:7379).
# Extra arguments go to the server: scripts/run.sh [--port N] [--pool PATH] ... (pobj-kv --help).
# Try it with: redis-cli -p 7379 SET greeting hello; redis-cli -p 7379 GET greeting
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release -Dtests=false -Dbench=false >/dev/null
fi
ninja -C build kvstore/pobj-kv >/dev/null
exec build/kvstore/pobj-kv "$@"
