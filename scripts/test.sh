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
  local dir=build-test/$name
  echo "== $name: building"
  if [ ! -f "$dir/build.ninja" ]; then
    CXX=${SUITE_CXX:-c++} meson setup "$dir" -Dwerror=true "${opts[@]}" >/dev/null
  else
    meson configure "$dir" -Dwerror=true "${opts[@]}" >/dev/null  # options may have changed
  fi
  ninja -C "$dir" -j "$jobs" >/dev/null
  echo "== $name: testing"
  meson test -C "$dir" --print-errorlogs "${args[@]}"
}

start=$(date +%s)
prefix=$PWD/build-test/prefix
# libdir lib64: the layout meson picks on a Debian machine without dpkg-dev, whose lib64 Debian's
# CMake never searches; the CMake package must be found anyway (it lies in share/cmake/pobj).
run_suite release --buildtype=debugoptimized -Dcrash_points=200 --prefix="$prefix" --libdir=lib64 --

# The installed pobj, as a user outside the tree meets it, from a clean prefix and with no
# LD_LIBRARY_PATH: the installed programs find libpobj.so by their rpath, and the programs meson
# and CMake build against the install by the rpath each gives a library outside the loader's path.
echo "== installed: meson install, the installed programs, examples/external with meson and with CMake, the Python client"
rm -rf "$prefix" build-test/external-meson build-test/external-cmake
meson install -C build-test/release --quiet >/dev/null
libdir=$(dirname "$(find "$prefix" -name libpobj.so | head -n 1)")
"$prefix/bin/pobj-kv" --help >/dev/null
PATH=$prefix/bin:$PATH PKG_CONFIG_PATH=$libdir/pkgconfig \
  meson setup build-test/external-meson examples/external >/dev/null
ninja -C build-test/external-meson >/dev/null
cmake -S examples/external -B build-test/external-cmake -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build-test/external-cmake >/dev/null
pool=$(mktemp -d)/orders.pool
build-test/external-meson/external "$pool"
build-test/external-cmake/external "$pool" | grep -q "^1 orders before"
"$prefix/bin/pobj-check" --quiet "$pool"
rm -rf "$(dirname "$pool")"
# The installed pobj-kv loads each build's shared-objects library and runs its methods.
for lib in build-test/external-meson/tally.so build-test/external-cmake/tally.so; do
  dir=$(mktemp -d)
  "$prefix/bin/pobj-kv" --port 0 --pool "$dir/kv.pool" --pool-size 64m \
    --objects-library "$lib" >"$dir/log" 2>&1 &
  kv=$!
  port=
  for _ in $(seq 200); do
    port=$(sed -n 's/.*ready to accept connections on .*:\([0-9]*\)$/\1/p' "$dir/log")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$dir/log"; exit 1; }
  redis-cli -p "$port" OBJ.NEW t shop::tally >/dev/null
  redis-cli -p "$port" OBJ.CALL t add tea 300 >/dev/null
  [ "$(redis-cli -p "$port" OBJ.CALL t add cake 500)" = 800 ] || { echo "tally: wrong total ($lib)"; exit 1; }
  [ "$(redis-cli -p "$port" OBJ.CALL t mean)" = 400 ] || { echo "tally: wrong mean ($lib)"; exit 1; }
  kill "$kv"
  wait "$kv" || true
  rm -rf "$dir"
done
# The installed Python client, imported by Debian's python3 from the prefix's dist-packages (under
# /usr/local no PYTHONPATH is needed: Debian's python3 searches /usr/local/lib/python3.X/dist-packages).
PYTHONPATH=$(echo "$prefix"/lib/python3*/dist-packages) /usr/bin/python3 -c \
  "import pobjkv, pobjkv.executor; assert pobjkv.__file__.startswith('$prefix/'), pobjkv.__file__"
echo "external builds: ok"
SUITE_CXX=clang++-14 run_suite clang --buildtype=debugoptimized -Dbench=false -Dexamples=false -Dcrash_points=40 --
run_suite asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dcrash_points=40 -Dbench=false -- \
  --timeout-multiplier 3
# ThreadSanitizer: the tests that run several threads (the core's, and generated classes').
run_suite tsan --buildtype=debug -Db_sanitize=thread -Dexamples=false -Dbench=false -- pobj codegen \
  --test-args '[threads]' --timeout-multiplier 3
echo "== all suites passed in $(( $(date +%s) - start )) s"
