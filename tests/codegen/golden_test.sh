#!/bin/sh
# Golden tests of pobj-gen. Usage: golden_test.sh POBJ_GEN SOURCE_DIR MODE NAME
#   MODE=output      inputs/NAME.hpp must generate exactly golden/NAME.pobj.hpp
#   MODE=diagnostic  diagnostics/NAME.hpp must fail (exit status 1) with exactly
#                    diagnostics/NAME.stderr, writing nothing
# POBJ_UPDATE_GOLDEN=1 rewrites the golden files instead (review the diff before committing).
set -u
gen=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") dir=$2 mode=$3 name=$4
cd "$dir" || exit 2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
case $mode in
  output)
    "$gen" -I ../../pobj/include -o "$out/$name.pobj.hpp" "inputs/$name.hpp" || exit 1
    if [ "${POBJ_UPDATE_GOLDEN:-}" = 1 ]; then cp "$out/$name.pobj.hpp" "golden/$name.pobj.hpp"; fi
    diff -u "golden/$name.pobj.hpp" "$out/$name.pobj.hpp"
    ;;
  diagnostic)
    "$gen" -I ../../pobj/include -o "$out/bad.pobj.hpp" "diagnostics/$name.hpp" 2> "$out/stderr"
    rc=$?
    if [ "$rc" -ne 1 ]; then echo "exit status $rc, expected 1"; cat "$out/stderr"; exit 1; fi
    if [ -e "$out/bad.pobj.hpp" ]; then echo "wrote output despite errors"; exit 1; fi
    if [ "${POBJ_UPDATE_GOLDEN:-}" = 1 ]; then cp "$out/stderr" "diagnostics/$name.stderr"; fi
    diff -u "diagnostics/$name.stderr" "$out/stderr"
    ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
