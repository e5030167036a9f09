#!/usr/bin/env bash
# Runs the durable-types benchmarks (pobj's maps beside a volatile baseline and libpmemobj) in
# cache_line emulation on /dev/shm, and keeps the output in bench/results/.
# Usage: bench/run_types.sh [google-benchmark flags]
source "$(dirname "$0")/common.sh" map_bench
build-bench/bench/map_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out=bench/results/types-$stamp.json --benchmark_out_format=json "$@" | tee bench/results/types-$stamp.txt
