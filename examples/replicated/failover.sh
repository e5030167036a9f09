#!/usr/bin/env bash
# A 3-member pobj-kv group on this machine, and a failover seen through redis-cli
# (docs/replication.md). Run from the repository root after building (scripts/run.sh builds):
#   examples/replicated/failover.sh [BUILD_DIR]
# It starts three members (client ports 7501-7503, raft ports 7601-7603, pools in a temporary
# directory), writes through the leader, kills the leader with SIGKILL, shows another member
# taking over with every write, restarts the old leader and shows it caught up. Every process it
# starts is stopped when it ends, however it ends.
set -euo pipefail
build=${1:-build}
kv="$build/kvstore/pobj-kv"
[ -x "$kv" ] || { echo "failover.sh: no $kv: build first (scripts/run.sh or meson setup $build && ninja -C $build)" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "failover.sh: needs redis-cli (apt-get install redis-tools)" >&2; exit 2; }
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
replicas=1=127.0.0.1:7601,2=127.0.0.1:7602,3=127.0.0.1:7603
start() {  # member id [more flags]
  local id=$1; shift
  "$kv" --port "750$id" --pool "$dir/m$id.pool" --pool-size 64m --replica-id "$id" --replicas "$replicas" "$@" \
    >>"$dir/m$id.log" 2>&1 &
  pids[$id]=$!
}
field() {  # port field: a field of INFO replication
  redis-cli -p "$1" INFO replication 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}
leader() {  # waits (at most 15 s) until a member leads; prints its id
  for _ in $(seq 150); do
    for i in 1 2 3; do
      if [ "$(field "750$i" role)" = master ]; then echo "$i"; return; fi
    done
    sleep 0.1
  done
  echo "failover.sh: no leader after 15 s; logs in $dir" >&2
  exit 1
}

# The founders' first start makes their new pools a group (--replica-bootstrap yes: never again).
for i in 1 2 3; do start "$i" --replica-bootstrap yes; done
l=$(leader)
echo "== member $l leads; writing 100 keys through it"
for n in $(seq 100); do redis-cli -p "750$l" SET "key:$n" "$n" >/dev/null; done
redis-cli -p "750$l" INCRBY visits 100
f=$(( l % 3 + 1 ))
echo "== a follower (member $f) relays its clients to the leader; ROLE names it:"
redis-cli -p "750$f" GET key:1
redis-cli -p "750$f" ROLE | tr '\n' ' '; echo
echo "== SIGKILL the leader (member $l)"
kill -9 "${pids[$l]}"
wait "${pids[$l]}" 2>/dev/null || true
start_ms=$(date +%s%3N)
n=$(leader)
until redis-cli -p "750$n" SET after-failover yes 2>/dev/null | grep -q OK; do sleep 0.05; n=$(leader); done
echo "== member $n leads now ($(( $(date +%s%3N) - start_ms )) ms to the first acknowledged write); what it holds:"
got=$(redis-cli -p "750$n" MGET key:1 key:100 visits after-failover | tr '\n' ' ')
echo "key:1 key:100 visits after-failover = $got"
[ "$got" = "1 100 100 yes " ] || { echo "failover.sh: the new leader lacks acknowledged writes" >&2; exit 1; }
echo "== the old leader (member $l) restarts and catches up"
start "$l"
want=$(field "750$n" raft_applied_index)
for _ in $(seq 100); do
  [ "$(field "750$l" raft_applied_index)" = "$want" ] && break
  sleep 0.1
done
for i in 1 2 3; do
  echo "member $i: role $(field "750$i" role), applied index $(field "750$i" raft_applied_index)"
done
[ "$(field "750$l" raft_applied_index)" = "$want" ] || { echo "failover.sh: member $l did not catch up" >&2; exit 1; }
