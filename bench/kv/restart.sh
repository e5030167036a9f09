#!/usr/bin/env bash
# Restart with N keys (default 10,000,000): pobj-kv (cache_line mode, pool on /dev/shm) against
# Redis loading the same keys from its RDB file and from its AOF, on /dev/shm too. Each server
# is filled by redis-benchmark (SET of 100-byte values over N keys, pipelined), stopped, and
# started again; the time is from the start of the process to the first GET answered. Also the
# memory per key: pobj-kv's pool bytes in use, Redis's used_memory, each divided by the keys.
# Results in bench/results/kv-restart-*.txt. Usage: bench/kv/restart.sh [KEYS]
# POBJ_KV_MODE=page measures pobj-kv in page mode (its journal) instead; SKIP_REDIS=1 skips Redis.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/install-deps.sh
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Dtests=false >/dev/null
ninja -C build-bench kvstore/pobj-kv >/dev/null
keys=${1:-10000000}
mode=${POBJ_KV_MODE:-cache_line}
granularity=$([ "$mode" = cache_line ] && echo CACHE_LINE || echo PAGE)
stamp=$(date -u +%Y%m%d-%H%M%S)
out=bench/results/kv-restart-$stamp.txt
dir=$(mktemp -d /dev/shm/pobj-kv-restart-XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
now_ms() { date +%s%3N; }
wait_first_get() {  # port start-ms -> prints ms from start to the first GET answered
  until redis-cli -p "$1" GET key:000000000001 2>/dev/null | grep -q x; do sleep 0.002; done
  echo $(( $(now_ms) - $2 ))
}
fill() {  # port
  redis-benchmark -p "$1" -n "$keys" -r "$keys" -c 50 -P 32 -d 100 -t set -q >/dev/null 2>&1
  # the key the restarts read must exist whatever the random draw
  redis-cli -p "$1" SET key:000000000001 "$(printf 'x%.0s' $(seq 100))" >/dev/null
}
echo "restart with up to $keys keys (redis-benchmark -r $keys, 100-byte values), everything on /dev/shm" | tee "$out"

PMEM2_FORCE_GRANULARITY=$granularity build-bench/kvstore/pobj-kv --port 7411 --pool "$dir/kv.pool" \
  --pool-size 4g --persist-mode "$mode" >"$dir/kv.log" 2>&1 & pid=$!
until redis-cli -p 7411 PING >/dev/null 2>&1; do sleep 0.05; done
fill 7411
n=$(redis-cli -p 7411 DBSIZE)
used=$(redis-cli -p 7411 INFO memory | tr -d '\r' | awk -F: '/^pool_bytes_used/ {print $2}')
redis-cli -p 7411 SHUTDOWN >/dev/null 2>&1 || true; wait "$pid" || true
start=$(now_ms)
PMEM2_FORCE_GRANULARITY=$granularity build-bench/kvstore/pobj-kv --port 7411 --pool "$dir/kv.pool" \
  --persist-mode "$mode" >>"$dir/kv.log" 2>&1 & pid=$!
ms=$(wait_first_get 7411 "$start")
echo "pobj-kv ($mode): $n keys, $((used / n)) bytes per key in the pool; restart to first GET: $ms ms" | tee -a "$out"
redis-cli -p 7411 SHUTDOWN >/dev/null 2>&1 || true; wait "$pid" || true; pid=""
rm -f "$dir/kv.pool" "$dir/kv.pool.journal"
[ "${SKIP_REDIS:-0}" = 1 ] && exit 0

for mode in rdb aof; do
  if [ $mode = rdb ]; then opts=(--appendonly no --save ""); else opts=(--appendonly yes --appendfsync everysec --save ""); fi
  redis-server --port 7412 --dir "$dir" "${opts[@]}" >"$dir/redis.log" 2>&1 & pid=$!
  until redis-cli -p 7412 PING >/dev/null 2>&1; do sleep 0.05; done
  fill 7412
  n=$(redis-cli -p 7412 DBSIZE)
  used=$(redis-cli -p 7412 INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')
  if [ $mode = rdb ]; then redis-cli -p 7412 SAVE >/dev/null; fi
  redis-cli -p 7412 SHUTDOWN NOSAVE >/dev/null 2>&1 || true; wait "$pid" || true
  start=$(now_ms)
  redis-server --port 7412 --dir "$dir" "${opts[@]}" >>"$dir/redis.log" 2>&1 & pid=$!
  ms=$(wait_first_get 7412 "$start")
  echo "redis ($mode): $n keys, $((used / n)) bytes per key (used_memory); restart to first GET: $ms ms" | tee -a "$out"
  redis-cli -p 7412 SHUTDOWN NOSAVE >/dev/null 2>&1 || true; wait "$pid" || true; pid=""
  rm -f "$dir"/dump.rdb; rm -rf "$dir"/appendonlydir
done
echo "results: $out"
