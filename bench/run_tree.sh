#!/usr/bin/env bash
# Runs the ordered map and queue benchmarks (pobj beside a volatile baseline and libpmemobj) in
# cache_line emulation on /dev/shm, and keeps the output in bench/results/.
# Usage: bench/run_tree.sh [google-benchmark flags]
source "$(dirname "$0")/common.sh" tree_bench
build-bench/bench/tree_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out=bench/results/tree-$stamp.json --benchmark_out_format=json "$@" | tee bench/results/tree-$stamp.txt
