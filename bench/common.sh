# Sourced by the bench/run_*.sh scripts: installs what is missing, builds the named benchmark in a
# release tree (build-bench/), and sets the cache_line emulation both pobj and libpmemobj use.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f build-bench/build.ninja ] || meson setup build-bench --buildtype=release -Dtests=false >/dev/null
ninja -C build-bench "bench/$1" >/dev/null
export PMEM2_FORCE_GRANULARITY=CACHE_LINE PMEM_IS_PMEM_FORCE=1
stamp=$(date -u +%Y%m%d-%H%M%S)
