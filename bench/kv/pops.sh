#!/usr/bin/env bash
# A work queue's pattern: N elements pushed onto a list, then popped in rounds, from the head
# (LPOP) and then, pushed again, from the tail (RPOP), one client at -P 16. The rate of each round
# should be flat: a pop's cost must not grow with the elements popped before it (it did, until the
# ordered map removed the inner nodes that erases from one end leave empty). Memory speed pair:
# pobj-kv cache_line on /dev/shm beside redis-server with no persistence.
#   bench/kv/pops.sh [N] [ROUNDS]     (default 1000000 elements, 5 rounds)
n=${1:-1000000}
rounds=${2:-5}
source "$(dirname "$0")/servers.sh" pops "" kvstore/pobj-kv
per_round=$((n / rounds))
out=bench/results/pops-$stamp.txt
start_pobj 7460 "$shm" cache_line
mkdir -p "$shm/redis"
start_redis 7461 "$shm/redis"
wait_port 7460
wait_port 7461
rate() { redis-benchmark -p "$1" -t "$2" -n "$3" -P 16 -c 1 --csv | tail -n 1 | cut -d, -f2 | tr -d '"'; }
{
  echo "# bench/kv/pops.sh $n $rounds, $(date -u +%FT%TZ), $(nproc) cores"
  echo "# requests/s per round of $per_round pops, one client, -P 16; pobj-kv cache_line on /dev/shm, redis-server no persistence"
  printf '%-6s %-6s %s\n' server op "rounds 1..$rounds"
  for op in lpop rpop; do
    for port in 7460 7461; do
      redis-cli -p "$port" DEL mylist >/dev/null
      redis-benchmark -p "$port" -t lpush -n "$n" -P 16 -c 50 -q >/dev/null
      [ "$(redis-cli -p "$port" LLEN mylist)" = "$n" ] || { echo "LPUSH did not make $n elements on $port"; exit 1; }
      line=""
      for _ in $(seq "$rounds"); do line+="$(rate "$port" "$op" "$per_round") "; done
      printf '%-6s %-6s %s\n' "$([ "$port" = 7460 ] && echo pobj-kv || echo redis)" "$op" "$line"
    done
  done
} | tee "$out"
echo "written: $out"
