#!/bin/sh
# Golden tests of pobj-gen. Usage: golden_test.sh POBJ_GEN SOURCE_DIR MODE
#   MODE=output       bank.hpp must generate exactly golden/bank.pobj.hpp
#   MODE=diagnostics  bad_fields.hpp must fail with exactly golden/bad_fields.stderr, writing nothing
# POBJ_UPDATE_GOLDEN=1 rewrites the golden files instead (review the diff before committing).
set -u
gen=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") dir=$2 mode=$3
cd "$dir" || exit 2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
case $mode in
  output)
    "$gen" -I ../../pobj/include -o "$out/bank.pobj.hpp" inputs/bank.hpp || exit 1
    if [ "${POBJ_UPDATE_GOLDEN:-}" = 1 ]; then cp "$out/bank.pobj.hpp" golden/bank.pobj.hpp; fi
    diff -u golden/bank.pobj.hpp "$out/bank.pobj.hpp"
    ;;
  diagnostics)
    "$gen" -I ../../pobj/include -o "$out/bad.pobj.hpp" inputs/bad_fields.hpp 2> "$out/stderr"
    rc=$?
    if [ "$rc" -ne 1 ]; then echo "exit status $rc, expected 1"; cat "$out/stderr"; exit 1; fi
    if [ -e "$out/bad.pobj.hpp" ]; then echo "wrote output despite errors"; exit 1; fi
    if [ "${POBJ_UPDATE_GOLDEN:-}" = 1 ]; then cp "$out/stderr" golden/bad_fields.stderr; fi
    diff -u golden/bad_fields.stderr "$out/stderr"
    ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
