#!/usr/bin/env bash
# YCSB-style workloads A, B, C, D, F (zipfian keys; D latest) over records of 10 fields x 100 bytes
# stored as hashes, on pobj-kv in cache_line mode (pool on /dev/shm) and redis-server with no
# persistence, side by side in one run (bench/kv/ycsb.cpp). Results in bench/results/ycsb-*.txt.
# Usage: bench/kv/run_ycsb.sh [RECORDS] [OPS] [THREADS] [PIPELINE]   (default 100000 200000 4 8)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-deps.sh
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Dtests=false >/dev/null
ninja -C build-bench kvstore/pobj-kv bench/ycsb >/dev/null
records=${1:-100000} ops=${2:-200000} threads=${3:-4} pipeline=${4:-8}
stamp=$(date -u +%Y%m%d-%H%M%S)
out=bench/results/ycsb-$stamp.txt
dir=$(mktemp -d /dev/shm/pobj-kv-ycsb-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
PMEM2_FORCE_GRANULARITY=CACHE_LINE build-bench/kvstore/pobj-kv --port 7421 --pool "$dir/kv.pool" \
  --pool-size 2g --persist-mode cache_line >"$dir/kv.log" 2>&1 & pids+=($!)
redis-server --port 7422 --dir "$dir" --save "" --appendonly no >"$dir/redis.log" 2>&1 & pids+=($!)
for p in 7421 7422; do until redis-cli -p $p PING >/dev/null 2>&1; do sleep 0.05; done; done
echo "YCSB-style, $records records of 10 x 100 B hashes, $ops operations, $threads threads x $pipeline in flight" | tee "$out"
for p in 7421 7422; do
  name=$([ $p = 7421 ] && echo "pobj-kv (cache_line)" || echo "redis (no persistence)")
  echo "$name: $(build-bench/bench/ycsb --port $p --records "$records" --threads "$threads" --pipeline "$pipeline" load)" | tee -a "$out"
  for w in A B C D F; do
    echo "$name: $(build-bench/bench/ycsb --port $p --records "$records" --ops "$ops" --threads "$threads" --pipeline "$pipeline" run $w)" | tee -a "$out"
  done
done
echo "results: $out"
