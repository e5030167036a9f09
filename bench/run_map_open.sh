#!/usr/bin/env bash
# Restart with a big hash map and a big ordered map: fill, close, reopen, time the open and the
# first lookup; cache_line emulation on /dev/shm.
# Usage: bench/run_map_open.sh [ENTRIES [hash|ordered]]   (default 10,000,000, both)
source "$(dirname "$0")/common.sh" map_open_bench
stdbuf -oL build-bench/bench/map_open_bench "${1:-10000000}" ${2:+"$2"} | tee bench/results/map-open-$stamp.txt
