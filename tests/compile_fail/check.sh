#!/bin/sh
# Usage: check.sh COMPILER INCLUDE_DIR SOURCE — passes when SOURCE fails to compile.
if "$1" -std=c++20 -fsyntax-only -I"$2" "$3" 2>/dev/null; then
  echo "compiled, but must not: $3"
  exit 1
fi
echo "rejected, as it must be: $3"
