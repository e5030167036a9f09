#!/bin/sh
# Usage: check.sh SOURCE EXPECTED INCLUDE_DIR COMPILER... — passes when SOURCE fails to compile
# with a diagnostic matching EXPECTED (a grep -E pattern), and a well-formed control compiles
# with the same command (so a broken command line cannot pass for a rejection).
src=$1 expected=$2 inc=$3
shift 3
control=$(dirname "$src")/control.cpp
if ! "$@" -std=c++20 -fsyntax-only -I"$inc" "$control"; then
  echo "the control does not compile: the command is broken"
  exit 1
fi
if out=$("$@" -std=c++20 -fsyntax-only -I"$inc" "$src" 2>&1); then
  echo "compiled, but must not: $src"
  exit 1
fi
if ! printf '%s\n' "$out" | grep -Eq "$expected"; then
  printf 'rejected for another reason than /%s/:\n%s\n' "$expected" "$out"
  exit 1
fi
echo "rejected, as it must be: $src"
