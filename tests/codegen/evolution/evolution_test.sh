#!/bin/sh
# Schema safety and evolution across three builds of one program (evolution.cpp):
#   v1 makes a pool; the incompatible build is refused, naming the class and the field, and leaves
#   the pool byte for byte as it was; so is v2 without its POBJ_APPENDED marks; v2 (fields appended
#   and marked) upgrades it in place and old objects read the new fields' defaults; v2 unmarked is
#   still refused, and so is v1 (a downgrade removes fields).
# Usage: evolution_test.sh EVO_V1 EVO_V2 EVO_BAD EVO_V2_UNMARKED
set -u
v1=$1 v2=$2 bad=$3 unmarked=$4
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pool=$dir/evo.pool
fail() { echo "FAILED: $*"; exit 1; }

"$v1" create "$pool" || fail "v1 create"
cp "$pool" "$dir/before"
out=$("$bad" open "$pool"); rc=$?
echo "incompatible build: $out"
[ $rc -eq 3 ] || fail "the incompatible build was not refused with schema_mismatch (status $rc)"
echo "$out" | grep -q "class 'evo::item'" || fail "the error does not name the class"
echo "$out" | grep -q "field 'count'" || fail "the error does not name the field"
cmp -s "$pool" "$dir/before" || fail "the refused open changed the pool"
out=$("$unmarked" open "$pool"); rc=$?
echo "appended fields not marked: $out"
[ $rc -eq 3 ] || fail "unmarked appended fields were not refused (status $rc)"
echo "$out" | grep -q "field 'rank'.*mark it POBJ_APPENDED" || fail "the error does not name the field and the fix"
cmp -s "$pool" "$dir/before" || fail "the refused open changed the pool"
"$v2" open "$pool" || fail "v2 did not upgrade the pool"
out=$("$unmarked" open "$pool"); rc=$?
[ $rc -eq 3 ] || fail "unmarked appended fields were not refused after the upgrade (status $rc)"
"$v2" open "$pool" || fail "v2 did not reopen the upgraded pool"
out=$("$v1" open "$pool"); rc=$?
echo "downgrade: $out"
[ $rc -eq 3 ] || fail "v1 opened a pool whose class has fields v1 does not know (status $rc)"
echo "$out" | grep -q "field 'rank'" || fail "the downgrade error does not name the field"
echo "evolution: ok"
