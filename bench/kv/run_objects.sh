#!/usr/bin/env bash
# The coordination primitives (bench/kv/objects.cpp): pobj-kv's shared objects against the usual
# Redis recipes for the same primitives (INCR; a barrier from INCR plus BLPOP; a semaphore from a
# list of tokens; a future from LPUSH plus BRPOPLPUSH), with 1, 10 and 100 clients, in the two fair
# pairs of run_kv.sh: on a disk (pobj-kv page mode against Redis with appendfsync always) and at
# memory speed (pobj-kv cache_line on /dev/shm against Redis with no persistence). pobj-kv's
# mutating calls go through ONCE, as its clients send them: exactly-once costs included.
# Results in bench/results/objects-*.
# Usage: bench/kv/run_objects.sh [SECONDS] [DISK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-deps.sh
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Dtests=false >/dev/null
ninja -C build-bench kvstore/pobj-kv bench/objects_bench >/dev/null
seconds=${1:-1.5}
disk=${2:-$PWD/bench/results/.objects-disk}
stamp=$(date -u +%Y%m%d-%H%M%S)
out=bench/results/objects-$stamp.txt
shm=$(mktemp -d /dev/shm/pobj-objects-bench-XXXXXX)
mkdir -p "$disk"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$shm" "$disk"
}
trap cleanup EXIT
start_pobj() {  # port dir mode
  PMEM2_FORCE_GRANULARITY=$([ "$3" = cache_line ] && echo CACHE_LINE || echo PAGE) \
    build-bench/kvstore/pobj-kv --port "$1" --pool "$2/kv.pool" --pool-size 1g --persist-mode "$3" \
    >"$2/pobj-kv.log" 2>&1 &
  pids+=($!)
}
start_redis() {
  local port=$1 dir=$2
  shift 2
  redis-server --port "$port" --dir "$dir" --save "" "$@" >"$dir/redis.log" 2>&1 &
  pids+=($!)
}
wait_port() { for _ in $(seq 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.1; done; echo "no server on $1"; exit 1; }
echo "coordination primitives, pobj-kv (ONCE) against Redis recipes, $(nproc) cores, ${seconds}s per figure" | tee "$out"
start_pobj 7411 "$disk" page
start_redis 7412 "$disk" --appendonly yes --appendfsync always
wait_port 7411; wait_port 7412
echo "== disk: pobj-kv page mode vs Redis appendfsync always" | tee -a "$out"
build-bench/bench/objects_bench --port 7411 --server pobj --seconds "$seconds" | tee -a "$out"
build-bench/bench/objects_bench --port 7412 --server redis --seconds "$seconds" | tee -a "$out"
start_pobj 7413 "$shm" cache_line
start_redis 7414 "$shm" --appendonly no
wait_port 7413; wait_port 7414
echo "== memory speed: pobj-kv cache_line on /dev/shm vs Redis without persistence" | tee -a "$out"
build-bench/bench/objects_bench --port 7413 --server pobj --seconds "$seconds" | tee -a "$out"
build-bench/bench/objects_bench --port 7414 --server redis --seconds "$seconds" | tee -a "$out"
echo "== the same pobj-kv without ONCE (what exactly-once costs)" | tee -a "$out"
build-bench/bench/objects_bench --port 7413 --server pobj --no-once --seconds "$seconds" | tee -a "$out"
echo "results: $out"
