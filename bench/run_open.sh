#!/usr/bin/env bash
# Pool open time with many live objects, pobj versus libpmemobj, cache_line emulation on /dev/shm.
# Usage: bench/run_open.sh [OBJECTS]   (default 10,000,000; libpmemobj needs ~11 minutes to
# populate that many here, pobj ~6 s)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Dtests=false >/dev/null
ninja -C build-bench bench/open_bench >/dev/null
export PMEM2_FORCE_GRANULARITY=CACHE_LINE PMEM_IS_PMEM_FORCE=1
stamp=$(date -u +%Y%m%d-%H%M%S)
stdbuf -oL build-bench/bench/open_bench "${1:-10000000}" | tee bench/results/open-$stamp.txt
