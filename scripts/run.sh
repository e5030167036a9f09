#!/usr/bin/env bash
# Installs what is missing, builds pobj, and runs the main job: today the bank example on a default
# pool (./bank.pool): each run applies a batch of failure-atomic transactions to the bank the
# previous runs left and audits it. pobj-kv takes its place once it exists. Extra arguments go to
# the example: scripts/run.sh [--pool PATH] [--transactions N] ...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release -Dtests=false -Dbench=false >/dev/null
fi
ninja -C build examples/bank >/dev/null
exec build/examples/bank "$@"
