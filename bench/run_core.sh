#!/usr/bin/env bash
# Runs the pobj core benchmarks side by side with libpmemobj, in cache_line emulation on /dev/shm,
# and keeps the output in bench/results/. Usage: bench/run_core.sh [google-benchmark flags]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Dtests=false >/dev/null
ninja -C build-bench bench/core_bench >/dev/null
export PMEM2_FORCE_GRANULARITY=CACHE_LINE PMEM_IS_PMEM_FORCE=1
stamp=$(date -u +%Y%m%d-%H%M%S)
build-bench/bench/core_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out=bench/results/core-$stamp.json --benchmark_out_format=json "$@" | tee bench/results/core-$stamp.txt
