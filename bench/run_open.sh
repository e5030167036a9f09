#!/usr/bin/env bash
# Pool open time with many live objects, pobj versus libpmemobj, cache_line emulation on /dev/shm.
# Usage: bench/run_open.sh [OBJECTS]   (default 10,000,000; POBJ_BENCH_KEEP=DIR keeps and reuses
# the populated libpmemobj pool, which takes it 10-20 s to fill here)
source "$(dirname "$0")/common.sh" open_bench
stdbuf -oL build-bench/bench/open_bench "${1:-10000000}" | tee bench/results/open-$stamp.txt
