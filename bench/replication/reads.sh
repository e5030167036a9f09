#!/usr/bin/env bash
# GETs through a 3-member pobj-kv group's leader, two builds side by side (a change to the read
# path measured before and after it), in both persistence modes: cache_line on /dev/shm and page
# on DISK_DIR. redis-benchmark, 50 clients, 1,000 keys written first, unpipelined (40,000 GETs)
# and pipelines of 16 (200,000 GETs). Rounds alternate the builds; each round starts fresh groups.
# Usage: bench/replication/reads.sh BEFORE_BINARY AFTER_BINARY [ROUNDS] [DISK_DIR]
#   (defaults 3, bench/results/.replication-disk). Results in bench/results/replication-reads-*.txt.
# Both binaries must run from a build tree (their libraries are found beside them).
set -euo pipefail
cd "$(dirname "$0")/../.."
before=$1 after=$2 rounds=${3:-3} disk=${4:-bench/results/.replication-disk}
command -v redis-benchmark >/dev/null || scripts/install-deps.sh
mkdir -p "$disk" bench/results
out=bench/results/replication-reads-$(date +%Y%m%d-%H%M%S).txt
pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT

run_group() {  # binary base-port mode dir -> "P1 P16 confirmed-reads proposals"
  local bin=$1 base=$2 mode=$3 dir=$4 i lead=""
  rm -rf "$dir"; mkdir -p "$dir"
  local list="1=127.0.0.1:$((base + 11)),2=127.0.0.1:$((base + 12)),3=127.0.0.1:$((base + 13))"
  pids=()
  for i in 1 2 3; do
    "$bin" --port $((base + i)) --pool "$dir/m$i.pool" --pool-size 1g --persist-mode "$mode" --replica-id $i \
      --replicas "$list" --replica-bootstrap yes >"$dir/m$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 150); do
    for i in 1 2 3; do
      redis-cli -p $((base + i)) INFO replication 2>/dev/null | grep -q "^role:master" && lead=$((base + i))
    done
    [ -n "$lead" ] && break
    sleep 0.1
  done
  [ -n "$lead" ] || { echo "no leader" >&2; exit 1; }
  for _ in $(seq 100); do redis-cli -p "$lead" SET warm 1 2>/dev/null | grep -q OK && break; sleep 0.1; done
  redis-benchmark -p "$lead" -t set -r 1000 -n 20000 -c 50 -q >/dev/null 2>&1
  local p1 p16 inf
  p1=$(redis-benchmark -p "$lead" -t get -r 1000 -n 40000 -c 50 -P 1 -q 2>/dev/null | grep -o "[0-9.]* requests per second" | awk '{print $1}')
  p16=$(redis-benchmark -p "$lead" -t get -r 1000 -n 200000 -c 50 -P 16 -q 2>/dev/null | grep -o "[0-9.]* requests per second" | awk '{print $1}')
  inf=$(redis-cli -p "$lead" INFO replication | tr -d '\r')
  echo "$p1 $p16 $(echo "$inf" | sed -n 's/^raft_reads_confirmed://p') $(echo "$inf" | sed -n 's/^raft_proposals://p')"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  pids=()
  rm -rf "$dir"
}

{
  echo "# GETs through a 3-member group's leader, $(date -u +%FT%TZ), $(nproc) cores"
  echo "# before: $before ($(git log -1 --format=%h)); after: $after"
  echo "# columns: mode round build GET/s(P1) GET/s(P16) reads-confirmed proposals"
} | tee "$out"
for mode in cache_line page; do
  dir=$([ "$mode" = cache_line ] && echo /dev/shm/pobj-reads-bench || echo "$disk/reads")
  for r in $(seq "$rounds"); do
    echo "$mode $r before $(run_group "$before" 47100 "$mode" "$dir")" | tee -a "$out"
    echo "$mode $r after $(run_group "$after" 47200 "$mode" "$dir")" | tee -a "$out"
  done
done
# Medians of the per-round ratios (after / before), per mode and pipeline.
awk '$3 == "before" { b1[$1, $2] = $4; b16[$1, $2] = $5 }
     $3 == "after"  { r1[$1] = r1[$1] " " $4 / b1[$1, $2]; r16[$1] = r16[$1] " " $5 / b16[$1, $2] }
     function median(s,   a, n, i, j, t) { n = split(s, a, " ");
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { for (m in r1) printf "%s: after/before, median of rounds: P1 %.2fx, P16 %.2fx\n", m, median(r1[m]), median(r16[m]) }' \
  "$out" | tee -a "$out"
echo "results: $out"
