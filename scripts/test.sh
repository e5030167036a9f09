#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the unit and crash suites in an
# optimized build (with benchmark smoke runs), with clang and its thread-safety analysis, under
# AddressSanitizer + UndefinedBehaviorSanitizer, and the concurrency tests under
# ThreadSanitizer. Each build has its own directory under build-test/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

jobs=$(nproc)
run_suite() {  # name, meson options..., -- test args...
  local name=$1; shift
  local opts=() args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  args=("$@")
  local dir=build-test/$name t0=$(date +%s)
  echo "== $name: building"
  if [ ! -f "$dir/build.ninja" ]; then
    CXX=${SUITE_CXX:-c++} meson setup "$dir" -Dwerror=true "${opts[@]}" >/dev/null
  else
    meson configure "$dir" -Dwerror=true "${opts[@]}" >/dev/null  # options may have changed
  fi
  ninja -C "$dir" -j "$jobs" >/dev/null
  echo "== $name: testing"
  meson test -C "$dir" --print-errorlogs "${args[@]}"
  echo "== $name: built and tested in $(( $(date +%s) - t0 )) s"
}

start=$(date +%s)
# One Go build cache for every build below (replication/'s raft library builds once, not 4 times).
export POBJ_GOCACHE=$PWD/build-test/go-cache
prefix=$PWD/build-test/prefix
# libdir lib64: the layout meson picks on a Debian machine without dpkg-dev, whose lib64 Debian's
# CMake never searches; the CMake package must be found anyway (it lies in share/cmake/pobj).
run_suite release --buildtype=debugoptimized -Dcrash_points=200 --prefix="$prefix" --libdir=lib64 --

# The installed pobj, as a user outside the tree meets it (tests/installed_test.sh).
tests/installed_test.sh build-test/release "$prefix"
# For CI's time (30 minutes on 2 cores), the other builds skip what the release build covers:
# clang (there for its thread-safety analysis and a second compiler's warnings) skips the crash
# suite and the replicated groups' process tests ('replication', 'jepsen'); the sanitizer build
# skips 'jepsen' and crashes at fewer random points (every fence of the small workloads still).
SUITE_CXX=clang++-14 run_suite clang --buildtype=debugoptimized -Dbench=false -Dexamples=false -Dcrash_points=40 -- \
  --no-suite jepsen --no-suite crash --no-suite replication
run_suite asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dcrash_points=16 -Dbench=false -- \
  --timeout-multiplier 3 --no-suite jepsen
# ThreadSanitizer: the tests that run several threads (the core's, and generated classes').
run_suite tsan --buildtype=debug -Db_sanitize=thread -Dexamples=false -Dbench=false -- pobj codegen \
  --test-args '[threads]' --timeout-multiplier 3
echo "== all suites passed in $(( $(date +%s) - start )) s"
