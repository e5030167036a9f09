# Sourced by bench/kv/run_*.sh: installs what is missing, builds the named targets in the release
# tree (build-bench/), and starts pobj-kv and redis-server side by side, stopping them (and
# removing their directories) when the script exits.
#   source bench/kv/servers.sh NAME DISK_DIR TARGET...   sets $stamp, $shm (on /dev/shm), $disk
# (an empty DISK_DIR: bench/results/.NAME-disk, on the checkout's file system)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
scripts/install-deps.sh
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Dtests=false >/dev/null
bench_name=$1
disk=${2:-$PWD/bench/results/.$1-disk}
shift 2
ninja -C build-bench "$@" >/dev/null
stamp=$(date -u +%Y%m%d-%H%M%S)
shm=$(mktemp -d "/dev/shm/pobj-$bench_name-bench-XXXXXX")
mkdir -p "$disk"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$shm" "$disk"
}
trap cleanup EXIT

pobj_extra=()  # more arguments for every pobj-kv started (--objects-library ...)
start_pobj() {  # port dir mode [pool-size]
  PMEM2_FORCE_GRANULARITY=$([ "$3" = cache_line ] && echo CACHE_LINE || echo PAGE) \
    build-bench/kvstore/pobj-kv --port "$1" --pool "$2/kv.pool" --pool-size "${4:-2g}" --persist-mode "$3" \
    "${pobj_extra[@]}" >"$2/pobj-kv.log" 2>&1 &
  pids+=($!)
}
start_redis() {  # port dir extra-args...
  local port=$1 dir=$2
  shift 2
  redis-server --port "$port" --dir "$dir" --save "" "$@" >"$dir/redis.log" 2>&1 &
  pids+=($!)
}
wait_port() { for _ in $(seq 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.1; done; echo "no server on $1"; exit 1; }
