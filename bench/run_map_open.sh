#!/usr/bin/env bash
# Restart with a big hash map: fill, close, reopen, time the open and the first lookup; cache_line
# emulation on /dev/shm. Usage: bench/run_map_open.sh [ENTRIES]   (default 10,000,000)
source "$(dirname "$0")/common.sh" map_open_bench
stdbuf -oL build-bench/bench/map_open_bench "${1:-10000000}" | tee bench/results/map-open-$stamp.txt
