#!/usr/bin/env bash
# pobj-kv beside redis-server 7 (Debian's), driven by redis-benchmark in one run, in the two fair
# pairs (docs/performance.md, "pobj-kv against Redis"):
#   memory speed: pobj-kv in cache_line mode with its pool on /dev/shm (what persistent memory
#                 costs) against Redis with no persistence at all;
#   on a disk:    pobj-kv in page mode (its journal) with its pool on the disk against Redis with its AOF
#                 and appendfsync always on the same disk.
# Each: SET GET INCR LPUSH HSET ZADD, 50 clients, pipelines of 1 and 16, random keys out of 1M.
# Results in bench/results/kv-*.
# Usage: bench/kv/run_kv.sh [REQUESTS] [DISK_DIR]   (default 200000 requests; the disk directory
# defaults to bench/results/.kv-disk, on the file system of the checkout)
requests=${1:-200000}
source "$(dirname "$0")/servers.sh" kv "${2:-}" kvstore/pobj-kv
out=bench/results/kv-$stamp.txt
bench() {  # port pipeline requests -> "SET 123.4 GET ..." (requests per second)
  redis-benchmark -p "$1" -n "$3" -c 50 -P "$2" -r 1000000 -t set,get,incr,lpush,hset,zadd -q 2>/dev/null | tr '\r' '\n' |
    awk '/per second/ { sub(":", "", $1); printf "%s %s ", $1, $2 }'
}
row() {  # label pobj-port redis-port pipeline requests
  local a b
  a=$(bench "$2" "$4" "$5")
  b=$(bench "$3" "$4" "$5")
  echo "$1 P$4 pobj-kv: $a" | tee -a "$out"
  echo "$1 P$4 redis:   $b" | tee -a "$out"
}

{
  echo "pobj-kv against redis-server $(redis-server --version | awk '{print $3}'), redis-benchmark -c 50 -r 1000000, $(nproc) cores"
  echo "requests per second (n=$requests memory speed, n=$((requests / 4)) disk)"
} | tee "$out"

start_pobj 7401 "$shm" cache_line
start_redis 7402 "$shm" --appendonly no
wait_port 7401; wait_port 7402
for p in 1 16; do row "memory-speed" 7401 7402 $p "$requests"; done
redis-cli -p 7401 INFO persistence | grep -E "persist_mode|group_commit_avg_size|fences" | tr -d '\r' | sed 's/^/  pobj-kv /' | tee -a "$out"

start_pobj 7403 "$disk" page
start_redis 7404 "$disk" --appendonly yes --appendfsync always
wait_port 7403; wait_port 7404
for p in 1 16; do row "disk" 7403 7404 $p "$((requests / 4))"; done
redis-cli -p 7403 INFO persistence | grep -E "persist_mode|group_commit_avg_size|journal_|batches_waiting" | tr -d '\r' | sed 's/^/  pobj-kv /' | tee -a "$out"
echo "results: $out"
