#!/usr/bin/env bash
# The coordination primitives (bench/kv/objects.cpp): pobj-kv's shared objects against the usual
# Redis recipes for the same primitives (INCR; a barrier from INCR plus BLPOP; a semaphore from a
# list of tokens; a future from LPUSH plus BRPOPLPUSH; a user object's method, the box office's
# reserve, against a Lua script), with 1, 10 and 100 clients, in the two fair
# pairs of run_kv.sh: on a disk (pobj-kv page mode against Redis with appendfsync always) and at
# memory speed (pobj-kv cache_line on /dev/shm against Redis with no persistence). pobj-kv's
# mutating calls go through ONCE, as its clients send them: exactly-once costs included.
# Results in bench/results/objects-*.
# Usage: bench/kv/run_objects.sh [SECONDS] [DISK_DIR]
seconds=${1:-1.5}
source "$(dirname "$0")/servers.sh" objects "${2:-}" kvstore/pobj-kv bench/objects_bench examples/box_office.so
# A user-defined object too: the box office's reserve against the same steps in a Lua script.
pobj_extra=(--objects-library build-bench/examples/box_office.so)
out=bench/results/objects-$stamp.txt
echo "coordination primitives, pobj-kv (ONCE) against Redis recipes, $(nproc) cores, ${seconds}s per figure" | tee "$out"
start_pobj 7411 "$disk" page 1g
start_redis 7412 "$disk" --appendonly yes --appendfsync always
wait_port 7411; wait_port 7412
echo "== disk: pobj-kv page mode vs Redis appendfsync always" | tee -a "$out"
build-bench/bench/objects_bench --port 7411 --server pobj --seconds "$seconds" --reserve | tee -a "$out"
build-bench/bench/objects_bench --port 7412 --server redis --seconds "$seconds" --reserve | tee -a "$out"
start_pobj 7413 "$shm" cache_line 1g
start_redis 7414 "$shm" --appendonly no
wait_port 7413; wait_port 7414
echo "== memory speed: pobj-kv cache_line on /dev/shm vs Redis without persistence" | tee -a "$out"
build-bench/bench/objects_bench --port 7413 --server pobj --seconds "$seconds" --reserve | tee -a "$out"
build-bench/bench/objects_bench --port 7414 --server redis --seconds "$seconds" --reserve | tee -a "$out"
echo "== the same pobj-kv without ONCE (what exactly-once costs)" | tee -a "$out"
build-bench/bench/objects_bench --port 7413 --server pobj --no-once --seconds "$seconds" --reserve | tee -a "$out"
echo "results: $out"
