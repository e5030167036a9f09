#!/usr/bin/env bash
# The installed pobj, as a user outside the tree meets it, from a clean prefix and with no
# LD_LIBRARY_PATH: meson install of BUILD_DIR into PREFIX; the installed programs find libpobj.so
# by their rpath; examples/external builds against the install with meson and with CMake (each
# gives the library outside the loader's path an rpath) and runs; the installed pobj-kv loads
# each build's shared-objects library and runs its methods; Debian's python3 imports the installed
# Python client. Run by scripts/test.sh after the release suite.
#
#   tests/installed_test.sh BUILD_DIR PREFIX     (from the source root; PREFIX is emptied first)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: tests/installed_test.sh BUILD_DIR PREFIX}
prefix=${2:?usage: tests/installed_test.sh BUILD_DIR PREFIX}
work=$(dirname "$build")  # the external builds go beside BUILD_DIR
echo "== installed: meson install, the installed programs, examples/external with meson and with CMake, the Python client"
# PREFIX is emptied: only one beside BUILD_DIR, one this script made before (it leaves a mark),
# or an empty one.
case "$(realpath -m "$prefix")/" in
  "$(realpath -m "$work")"/*) inside=yes ;;
  *) inside=no ;;
esac
if [ "$inside" = no ] && [ -n "$(ls -A "$prefix" 2>/dev/null)" ] && [ ! -e "$prefix/.pobj-installed-test" ]; then
  echo "tests/installed_test.sh: $prefix is not empty and not one of this test's prefixes: refusing to empty it" >&2
  exit 2
fi
rm -rf "$prefix" "$work"/external-meson "$work"/external-cmake
mkdir -p "$prefix"
touch "$prefix/.pobj-installed-test"
meson install -C "$build" --quiet >/dev/null
libdir=$(dirname "$(find "$prefix" -name libpobj.so | head -n 1)")
"$prefix/bin/pobj-kv" --help >/dev/null
PATH=$prefix/bin:$PATH PKG_CONFIG_PATH=$libdir/pkgconfig \
  meson setup "$work"/external-meson examples/external >/dev/null
ninja -C "$work"/external-meson >/dev/null
cmake -S examples/external -B "$work"/external-cmake -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work"/external-cmake >/dev/null
pool=$(mktemp -d)/orders.pool
"$work"/external-meson/external "$pool"
"$work"/external-cmake/external "$pool" | grep -q "^1 orders before"
"$prefix/bin/pobj-check" --quiet "$pool"
rm -rf "$(dirname "$pool")"
# The installed pobj-kv loads each build's shared-objects library and runs its methods.
for lib in "$work"/external-meson/tally.so "$work"/external-cmake/tally.so; do
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
