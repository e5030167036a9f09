#!/usr/bin/env bash
# What a pool copy costs the group: a 3-member pobj-kv group holds about SIZE_MIB of data; a
# follower is stopped, the log is compacted past it, and it comes back: the leader copies its
# pool for it while 50 clients keep writing (bench/replication/loadgen, unpipelined) and a probe
# client writes one key at a time, timing each write. Reported per build and mode: the copy's
# data, how long copying took, the pause the leader counted (INFO raft_snapshot_last_pause_us),
# the transfer time, the probe's slowest write and writes/s while the copy was taken (the pause a
# client sees), and the loadgen's throughput over the whole run.
# Usage: bench/replication/snapshot.sh BINARY [BINARY...] -- [SIZE_MIB] [ROUNDS] [DISK_DIR]
#   (defaults 256, 2, bench/results/.replication-disk). Binaries alternate each round; modes:
#   cache_line on /dev/shm and page on DISK_DIR (MODES="page" for one). Results in
#   bench/results/replication-snapshot-*.txt; the members' logs of a run whose lead moved in
#   DISK_DIR/logs.
# Needs the loadgen of a build-bench tree (meson setup build-bench --buildtype=release).
set -euo pipefail
cd "$(dirname "$0")/../.."
bins=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do bins+=("$1"); shift; done
[ $# -gt 0 ] && shift
size=${1:-256} rounds=${2:-2} disk=${3:-bench/results/.replication-disk}
loadgen=build-bench/bench/replication_loadgen
[ ${#bins[@]} -gt 0 ] || { echo "usage: $0 BINARY [BINARY...] -- [SIZE_MIB] [ROUNDS] [DISK_DIR]" >&2; exit 2; }
[ -x "$loadgen" ] || { echo "no $loadgen: build build-bench first" >&2; exit 2; }
command -v redis-benchmark >/dev/null || scripts/install-deps.sh
mkdir -p "$disk" bench/results
out=bench/results/replication-snapshot-$(date +%Y%m%d-%H%M%S).txt
pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT

leader_port() {  # base -> the leader's client port
  local base=$1 i
  for _ in $(seq 200); do
    for i in 1 2 3; do
      redis-cli -p $((base + i)) INFO replication 2>/dev/null | grep -q "^role:master" && { echo $((base + i)); return; }
    done
    sleep 0.1
  done
  echo "no leader" >&2
  exit 1
}

# The probe: SETs one at a time until the file $1 exists, each retried until it succeeds (a
# failover answers TRYAGAIN or READONLY meanwhile; its latency runs from the first try); prints
# its slowest write (ms) and its writes/s between the leader's "copying" and "copied" lines (log
# $3), and how many tries failed, as "max_ms writes_per_s failed_tries".
probe() {
  /usr/bin/python3 - "$@" <<'EOF'
import os, re, sys, time, datetime
import redis
stop, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = redis.Redis(port=port, socket_timeout=30)
samples = []
i = failed = 0
while not os.path.exists(stop):
    t = time.time()
    while True:
        try:
            r.set(f"probe{i % 100}", i)
            break
        except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError):
            failed += 1
            if time.time() - t > 60:
                raise
            time.sleep(0.01)
    samples.append((t, time.time() - t))
    i += 1
def when(pattern):
    for line in open(log, errors="replace"):
        if re.search(pattern, line):
            stamp = re.search(r"(\d\d \w\w\w \d{4} \d\d:\d\d:\d\d\.\d{3})", line).group(1)
            d = datetime.datetime.strptime(stamp, "%d %b %Y %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
            return d.timestamp()
    return None
start, end = when("copying the pool for|copied the pool at entry") , when("copied the pool at entry")
if start is None or end is None:
    print(f"nan nan {failed}")
    sys.exit(0)
# (the old code logs only "copied": its copy is the pause; count from a second before it then)
if start == end:
    start = end - 2.0
inside = [s for s in samples if s[0] + s[1] >= start and s[0] <= end + 0.001]
print(f"{max(d for _, d in inside) * 1000:.1f} {len(inside) / max(end - start, 0.001):.0f} {failed}" if inside
      else f"nan nan {failed}")
EOF
}

run_one() {  # binary base mode dir -> one result line
  local bin=$1 base=$2 mode=$3 dir=$4 i
  rm -rf "$dir"; mkdir -p "$dir"
  local list="1=127.0.0.1:$((base + 11)),2=127.0.0.1:$((base + 12)),3=127.0.0.1:$((base + 13))"
  start_member() {
    "$bin" --port $((base + $1)) --pool "$dir/m$1.pool" --pool-size 2g --persist-mode "$mode" --replica-id "$1" \
      --replicas "$list" --replica-bootstrap yes --raft-log-entries 1000 >>"$dir/m$1.log" 2>&1 &
    pids[$1]=$!
  }
  pids=()
  for i in 1 2 3; do start_member $i; done
  local lead; lead=$(leader_port "$base")
  for _ in $(seq 100); do redis-cli -p "$lead" SET warm 1 2>/dev/null | grep -q OK && break; sleep 0.1; done
  # SIZE_MIB of data: 64 KiB values under distinct keys.
  /usr/bin/python3 - "$lead" "$size" <<'EOF'
import sys
import redis
r = redis.Redis(port=int(sys.argv[1]), socket_timeout=60)
value = b"v" * 65536
n = int(sys.argv[2]) * 16
for at in range(0, n, 64):
    p = r.pipeline(transaction=False)
    for k in range(at, min(n, at + 64)):
        p.set(f"fill:{k}", value)
    p.execute()
EOF
  local term0; term0=$(redis-cli -p "$lead" INFO replication | tr -d '\r' | sed -n 's/^raft_term://p')
  local id=$(( lead - base == 3 ? 2 : 3 ))  # a follower
  kill -9 "${pids[$id]}"; wait "${pids[$id]}" 2>/dev/null || true
  redis-benchmark -p "$lead" -t set -r 100000 -n 6000 -c 1 -q >/dev/null 2>&1  # compacted past it
  local stopfile="$dir/stop"
  probe "$stopfile" "$lead" "$dir/m$((lead - base)).log" >"$dir/probe.out" &
  local probe_pid=$!
  "$loadgen" --proto resp --port "$lead" --clients 50 --pipeline 1 --seconds 12 >"$dir/load.out" 2>&1 &
  local load_pid=$!
  sleep 1
  start_member "$id"
  local info="" t0=$SECONDS
  while [ $((SECONDS - t0)) -lt 60 ]; do
    info=$(redis-cli -p "$lead" INFO replication | tr -d '\r')
    echo "$info" | grep -q "^raft_snapshots_sent:[1-9]" && break
    sleep 0.2
  done
  wait "$load_pid" || true
  touch "$stopfile"; wait "$probe_pid" || true
  info=$(redis-cli -p "$lead" INFO replication | tr -d '\r')
  field() { echo "$info" | sed -n "s/^$1://p"; }
  local term=0 t
  for i in 1 2 3; do
    t=$(redis-cli -p $((base + i)) INFO replication 2>/dev/null | tr -d '\r' | sed -n 's/^raft_term://p')
    [ -n "$t" ] && [ "$t" -gt "$term" ] && term=$t
  done
  local copy_ms; copy_ms=$(field raft_snapshot_last_copy_ms)
  echo "$(( $(field raft_snapshot_last_copy_bytes) >> 20 )) ${copy_ms:-na} $(field raft_snapshot_last_pause_us) \
$(field raft_snapshot_last_transfer_ms) $(cat "$dir/probe.out") $(awk '{print $6}' "$dir/load.out") $((term - term0))"
  kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true
  pids=()
  if [ $((term - term0)) -gt 0 ]; then  # the members' logs say why the lead moved
    mkdir -p "$disk/logs"; for i in 1 2 3; do cp "$dir/m$i.log" "$disk/logs/$mode-$base-m$i.log"; done
  fi
  rm -rf "$dir"
}

{
  echo "# A pool copy under write load, 3 members on loopback, $(date -u +%FT%TZ), $(nproc) cores, ~$size MiB"
  for b in "${bins[@]}"; do echo "# binary: $b"; done
  echo "# commit: $(git log -1 --format=%h)"
  echo "# columns: mode round binary copy_MiB copy_ms pause_us transfer_ms probe_max_ms probe_writes/s_during_copy"
  echo "#          probe_failed_tries load_writes/s leader_changes(terms after the fill)"
} | tee "$out"
for mode in ${MODES:-cache_line page}; do
  dir=$([ "$mode" = cache_line ] && echo /dev/shm/pobj-snapshot-bench || echo "$disk/snapshot")
  for r in $(seq "$rounds"); do
    n=0
    for b in "${bins[@]}"; do
      echo "$mode $r $n $(run_one "$b" $((47300 + 100 * n)) "$mode" "$dir")" | tee -a "$out"
      n=$((n + 1))
    done
  done
done
echo "results: $out"
