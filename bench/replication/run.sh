#!/usr/bin/env bash
# Replicated writes on this machine (issue 16's benchmark; docs/performance.md, "Replication"):
# the same SETs (puts), 50 clients, pipelines of 1 and 16, random keys out of 1M, 3-byte values,
# driven by bench/replication/loadgen.cpp (one epoll thread), against
#   pobj-kv single node            no replication: the ceiling
#   pobj-kv, 3 members             every write on a majority's pools before it is acknowledged
#   redis-server + 2 replicas      each batch of writes followed by WAIT 1 0 (Redis's nearest:
#                                  asynchronous replication, WAIT only waits; a failover can
#                                  still lose acknowledged writes, and none happens by itself)
#   etcd 3.4, 3 members            puts through its HTTP/JSON gateway (/v3/kv/put); HTTP/1.1 has no
#                                  concurrent pipelining, so it gets clients x pipeline connections
# in two pairs: memory speed (pobj-kv cache_line on /dev/shm; Redis without persistence; etcd's
# data on /dev/shm) and disk (pobj-kv page mode, Redis appendfsync always, etcd's data, all on
# DISK_DIR). Every member runs on this machine, over loopback. Every server of a pair runs for the
# whole pair; the rounds alternate the servers, and the summary gives medians of per-round ratios.
# Then failover: SIGKILL of the leader to the first write acknowledged through another member.
# Usage: bench/replication/run.sh [SECONDS_PER_RUN] [ROUNDS] [DISK_DIR]   (defaults 5, 3,
# bench/results/.replication-disk). Results in bench/results/replication-*.txt.
seconds=${1:-5}
rounds=${2:-3}
source "$(dirname "$0")/../kv/servers.sh" replication "${3:-}" kvstore/pobj-kv bench/replication_loadgen
scripts/install-deps.sh etcd
out=bench/results/replication-$stamp.txt
loadgen=build-bench/bench/replication_loadgen

start_group() {  # base-port dir mode: a 3-member pobj-kv group, client ports base+1..3, raft base+11..13
  local base=$1 dir=$2 mode=$3 i
  local list="1=127.0.0.1:$((base + 11)),2=127.0.0.1:$((base + 12)),3=127.0.0.1:$((base + 13))"
  for i in 1 2 3; do
    PMEM2_FORCE_GRANULARITY=$([ "$mode" = cache_line ] && echo CACHE_LINE || echo PAGE) \
      build-bench/kvstore/pobj-kv --port $((base + i)) --pool "$dir/m$i.pool" --pool-size 2g --persist-mode "$mode" \
      --replica-id $i --replicas "$list" --replica-bootstrap yes >"$dir/m$i.log" 2>&1 &
    pids+=($!)
    disown  # (killed with SIGKILL for the failover: no notice from bash)
  done
}
group_leader() {  # base-port: the leading member's client port (waits up to 15 s)
  local i
  for _ in $(seq 150); do
    for i in 1 2 3; do
      if redis-cli -p $(($1 + i)) INFO replication 2>/dev/null | grep -q "^role:master"; then
        echo $(($1 + i)); return
      fi
    done
    sleep 0.1
  done
  echo "no leader in the group at $1" >&2; exit 1
}
group_pid=()  # client port -> pid of each pobj-kv member (for the failover)

start_redis_group() {  # base-port dir extra-args: a master on base+1, replicas on base+2, base+3
  local base=$1 dir=$2 i
  shift 2
  for i in 1 2 3; do
    mkdir -p "$dir/r$i"
    if [ $i = 1 ]; then start_redis $((base + i)) "$dir/r$i" "$@"
    else start_redis $((base + i)) "$dir/r$i" --replicaof 127.0.0.1 $((base + 1)) "$@"; fi
  done
}
redis_synced() {  # master-port: waits until both replicas are online
  for _ in $(seq 150); do
    [ "$(redis-cli -p "$1" INFO replication | tr -d '\r' | grep -c 'state=online')" = 2 ] && return
    sleep 0.1
  done
  echo "the Redis replicas did not sync" >&2; exit 1
}

start_etcd() {  # base-port dir: members on client ports base+1..3, peer ports base+11..13
  local base=$1 dir=$2 i cluster=""
  for i in 1 2 3; do cluster+="e$i=http://127.0.0.1:$((base + 10 + i)),"; done
  for i in 1 2 3; do
    etcd --name e$i --data-dir "$dir/e$i" --listen-client-urls http://127.0.0.1:$((base + i)) \
      --advertise-client-urls http://127.0.0.1:$((base + i)) --listen-peer-urls http://127.0.0.1:$((base + 10 + i)) \
      --initial-advertise-peer-urls http://127.0.0.1:$((base + 10 + i)) --initial-cluster "${cluster%,}" \
      --initial-cluster-state new --log-level error >"$dir/etcd$i.log" 2>&1 &
    pids+=($!)
    disown
  done
}
etcd_leader() {  # base-port: the leader's client port (waits up to 15 s)
  local i
  for _ in $(seq 150); do
    for i in 1 2 3; do
      if etcdctl --endpoints http://127.0.0.1:$(($1 + i)) endpoint status -w fields 2>/dev/null |
         awk -F' : ' '/"MemberID"/ {m = $2} /"Leader"/ {l = $2} END {exit !(m != "" && m == l)}'; then
        echo $(($1 + i)); return
      fi
    done
    sleep 0.1
  done
  echo "no etcd leader at $1" >&2; exit 1
}

declare -A rate p50 p99  # "pair config P round" -> figure
measure() {  # pair config proto port pipeline round [loadgen args]
  local pair=$1 config=$2 proto=$3 port=$4 p=$5 r=$6 line
  shift 6
  line=$($loadgen --proto "$proto" --port "$port" --clients 50 --pipeline "$p" --seconds "$seconds" "$@")
  read -r _ _ _ _ _ w l50 l99 e <<<"$line"
  rate["$pair $config $p $r"]=$w; p50["$pair $config $p $r"]=$l50; p99["$pair $config $p $r"]=$l99
  printf '%-7s %-15s P%-2s round %s: %8s writes/s  p50 %6s us  p99 %7s us  errors %s\n' \
    "$pair" "$config" "$p" "$r" "$w" "$l50" "$l99" "$e" | tee -a "$out"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratios() {  # pair P a b: the median over rounds of rate(a)/rate(b)
  local r list=""
  for r in $(seq "$rounds"); do
    list+=" $(awk -v a="${rate["$1 $3 $2 $r"]}" -v b="${rate["$1 $4 $2 $r"]}" 'BEGIN {printf "%.3f", a / b}')"
  done
  echo "$list" | median
}
medians() {  # pair config P: median rate, p50, p99 over rounds
  local r a="" b="" c=""
  for r in $(seq "$rounds"); do a+=" ${rate["$1 $2 $3 $r"]}"; b+=" ${p50["$1 $2 $3 $r"]}"; c+=" ${p99["$1 $2 $3 $r"]}"; done
  echo "$(echo "$a" | median) $(echo "$b" | median) $(echo "$c" | median)"
}

failover() {  # base-port leader-port pid probe: ms from SIGKILL of the leader to the first write
  # another member acknowledges (probe PORT succeeds once it has)
  local base=$1 leader=$2 pid=$3 probe=$4 i other t0
  t0=$(date +%s%3N)
  kill -9 "$pid"
  while true; do
    for i in 1 2 3; do
      other=$((base + i))
      [ "$other" = "$leader" ] && continue
      if "$probe" "$other"; then echo $(( $(date +%s%3N) - t0 )); return; fi
    done
    [ $(( $(date +%s%3N) - t0 )) -gt 30000 ] && { echo "none in 30 s"; return; }
  done
}
probe_pobj() { [ "$(timeout 1 redis-cli -p "$1" SET failover-probe x 2>/dev/null)" = OK ]; }
probe_etcd() { etcdctl --endpoints "http://127.0.0.1:$1" --command-timeout=1s put failover-probe x >/dev/null 2>&1; }
failover_pobj() {  # base-port
  local leader
  leader=$(group_leader "$1")
  failover "$1" "$leader" "${group_pid[$leader]}" probe_pobj
}
failover_etcd() {  # base-port data-dir
  local leader
  leader=$(etcd_leader "$1")
  failover "$1" "$leader" "$(pgrep -f "etcd --name e$((leader - $1)) --data-dir $2/")" probe_etcd
}

pair() {  # name dir mode redis-persistence-args...
  local name=$1 dir=$2 mode=$3 r p c
  shift 3
  mkdir -p "$dir/single" "$dir/group" "$dir/redis" "$dir/etcd"
  start_pobj 7701 "$dir/single" "$mode"
  start_group 7710 "$dir/group" "$mode"
  group_pid=([7711]=${pids[-3]} [7712]=${pids[-2]} [7713]=${pids[-1]})
  start_redis_group 7730 "$dir/redis" "$@"
  start_etcd 7750 "$dir/etcd"
  wait_port 7701
  local gl el
  gl=$(group_leader 7710)
  redis_synced 7731
  el=$(etcd_leader 7750)
  echo "== $name: pobj-kv $mode, the group's leader on $gl; Redis $*; etcd leader on $el" | tee -a "$out"
  for r in $(seq "$rounds"); do
    for p in 1 16; do
      # the order rotates each round so that no server always runs first or last
      local order=(single group redis etcd)
      order=("${order[@]:$(( (r - 1) % 4 ))}" "${order[@]:0:$(( (r - 1) % 4 ))}")
      for c in "${order[@]}"; do
        case $c in
          single) measure "$name" pobj-kv-single resp 7701 $p "$r" ;;
          group) measure "$name" pobj-kv-3 resp "$gl" $p "$r" ;;
          redis) measure "$name" redis+2+WAIT resp-wait 7731 $p "$r" --wait-replicas 1 ;;
          etcd) measure "$name" etcd-3 etcd "$el" $p "$r" ;;
        esac
      done
    done
  done
  {
    echo "-- $name: medians over $rounds rounds (writes/s, p50 us, p99 us) and medians of per-round ratios"
    for p in 1 16; do
      for c in pobj-kv-single pobj-kv-3 redis+2+WAIT etcd-3; do
        printf '   P%-2s %-15s %s\n' $p $c "$(medians "$name" $c $p)"
      done
      printf '   P%-2s pobj-kv-3 / pobj-kv-single %s   pobj-kv-3 / etcd-3 %s   pobj-kv-3 / redis+2+WAIT %s\n' $p \
        "$(ratios "$name" $p pobj-kv-3 pobj-kv-single)" "$(ratios "$name" $p pobj-kv-3 etcd-3)" \
        "$(ratios "$name" $p pobj-kv-3 redis+2+WAIT)"
    done
    # CPU seconds each server used over the runs (the group's members share this machine's cores)
    echo "   CPU seconds used over the runs: $(for p in "${pids[@]}"; do
      ps -o times=,comm= -p "$p" 2>/dev/null | awk '{printf "%s %s, ", $2, $1}'; done)"
    echo "   failover (SIGKILL of the leader to the first write acknowledged by another member):"
    echo "     pobj-kv-3 $(failover_pobj 7710) ms; etcd-3 $(failover_etcd 7750 "$dir/etcd") ms; redis: none (a replica is promoted only by Sentinel or an operator)"
  } | tee -a "$out"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do  # gone before the next pair takes their ports
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  { wait; } 2>/dev/null || true
  pids=()
}

{
  echo "replicated writes: pobj-kv single and 3 members, redis-server $(redis-server --version | awk '{print $3}') + 2 replicas + WAIT 1 0,"
  echo "$(etcd --version | head -1), 3 members; loadgen 50 clients, ${seconds} s per run, $rounds rounds, $(nproc) cores, loopback"
} | tee "$out"
pair memory "$shm" cache_line --appendonly no
pair disk "$disk" page --appendonly yes --appendfsync always
echo "results: $out"
