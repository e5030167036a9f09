#!/usr/bin/env bash
# Runs the pobj core benchmarks side by side with libpmemobj, in cache_line emulation on /dev/shm,
# and keeps the output in bench/results/. Usage: bench/run_core.sh [google-benchmark flags]
source "$(dirname "$0")/common.sh" core_bench
build-bench/bench/core_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out=bench/results/core-$stamp.json --benchmark_out_format=json "$@" | tee bench/results/core-$stamp.txt
