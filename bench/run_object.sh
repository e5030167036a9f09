#!/usr/bin/env bash
# Runs the object benchmarks (proxies beside DRAM structs, plain pointers into the mapping and
# libpmemobj) in cache_line emulation on /dev/shm, and keeps the output in bench/results/.
# Usage: bench/run_object.sh [google-benchmark flags]
source "$(dirname "$0")/common.sh" object_bench
build-bench/bench/object_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out=bench/results/object-$stamp.json --benchmark_out_format=json "$@" | tee bench/results/object-$stamp.txt
