#!/bin/sh
# pobj-gen's command line: --help (exit 0, says what it does, its options and an example),
# --version, a missing input ("No such file", not "cannot parse"), bad arguments (exit 2).
# Usage: cli_test.sh POBJ_GEN
set -u
gen=$1
fail() { echo "cli_test: $*"; exit 1; }
out=$("$gen" --help) || fail "--help exited $?"
for want in "POBJ_PERSISTENT" "-I DIR" "-o OUT.pobj.hpp" "--version" "Example:" "Exit status"; do
  echo "$out" | grep -q -- "$want" || fail "--help does not mention '$want'"
done
"$gen" --version | grep -q "^pobj-gen [0-9]" || fail "--version"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$gen" -o "$tmp/x.pobj.hpp" "$tmp/missing.hpp" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "a missing input exited $rc, expected 2"
grep -q "missing.hpp: No such file or directory" "$tmp/err" || fail "a missing input said: $(cat "$tmp/err")"
[ -e "$tmp/x.pobj.hpp" ] && fail "wrote output for a missing input"
"$gen" --bogus 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] || fail "a bad option exited $rc, expected 2"
grep -q "^usage: pobj-gen" "$tmp/err" || fail "a bad option did not print the usage"
echo "pobj-gen command line: ok"
